"""The WSGI application: ``/graphql`` is answered here, in front of Django's stack; everything
else (GraphiQL's page, ``/``, ``/healthz``, ``/admin/``, static files) goes to Django.

Why in front: a cached answer should cost next to nothing, and Django's request handling
(``HttpRequest``, nine middleware, URL resolution) costs several times more than the lookup
itself. What the middleware would add for this endpoint is done here: the ``Host`` check
(``ALLOWED_HOSTS``), ``X-Content-Type-Options: nosniff``, and closing stale database
connections around the work that uses them (``pipeline``, ``tokens.auth``). There is no session or CSRF state on this endpoint: it
authenticates with a bearer token, which a browser never sends on its own.
"""

from __future__ import annotations

from django.conf import settings

from . import pipeline

PATHS = ("/graphql", "/graphql/")
_STATUS = {200: "200 OK", 304: "304 Not Modified", 400: "400 Bad Request", 401: "401 Unauthorized",
           405: "405 Method Not Allowed", 413: "413 Content Too Large", 415: "415 Unsupported Media Type",
           429: "429 Too Many Requests", 500: "500 Internal Server Error"}


def _wants_graphiql(environ) -> bool:
    """A browser opening /graphql (no query parameters) gets GraphiQL from Django, when enabled."""
    return (environ.get("REQUEST_METHOD") == "GET" and not environ.get("QUERY_STRING")
            and "text/html" in environ.get("HTTP_ACCEPT", "") and settings.STRATA_GRAPHIQL)


def _body_reader(environ):
    def read(limit: int) -> bytes | None:
        """The body, or ``None`` when it is over ``limit`` bytes."""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH") or ""
        if length:
            try:
                n = int(length)
            except ValueError:
                return None
            return None if n > limit or n < 0 else stream.read(n)
        data = stream.read(limit + 1)  # chunked: read one byte past the bound to see it
        return None if len(data) > limit else data
    return read


class GraphQLGateway:
    def __init__(self, django_app):
        self.django_app = django_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") not in PATHS or _wants_graphiql(environ):
            return self.django_app(environ, start_response)
        request = pipeline.Request(
            method=environ.get("REQUEST_METHOD", "GET"), query_string=environ.get("QUERY_STRING", ""),
            headers=environ, read_body=_body_reader(environ), remote_addr=environ.get("REMOTE_ADDR", ""))
        try:
            response = pipeline.handle(request)
        except Exception:  # noqa: BLE001 - never a traceback to the client
            pipeline.log.exception("unexpected error on /graphql")
            response = pipeline.error_response(500, "internal error", "INTERNAL")
        headers = [*response.headers, ("X-Content-Type-Options", "nosniff")]
        if response.status != 304:
            headers.append(("Content-Length", str(len(response.body))))
        start_response(_STATUS.get(response.status, f"{response.status} Error"), headers)
        return [response.body]
