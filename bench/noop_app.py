"""A do-nothing WSGI app: the ceiling for the cached path under the same server settings.

It answers every request with the bytes of ``$STRATA_NOOP_BODY_FILE`` (a cached GraphQL
response, captured by ``bench/api.py``) and the same content type, without reading anything.
"""

import os

_BODY = open(os.environ["STRATA_NOOP_BODY_FILE"], "rb").read()
_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))]


def application(environ, start_response):
    start_response("200 OK", list(_HEADERS))
    return [_BODY]
