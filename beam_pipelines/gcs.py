"""Point Beam's ``gs://`` file system at a local GCS emulator, without the ~20 s credential wait.

Beam's GCS client (``apache_beam.io.gcp.gcsio.create_storage_client``) always asks
``apache_beam.internal.gcp.auth`` for credentials first. With no Google account that lookup calls
``google.auth.default()`` under a retry decorator (4 retries, 2 s initial back-off, fuzzed), fails
each time, and only then falls back to an anonymous client: the first ``FileSystems.match``
took 18.7 s here (the back-off is fuzzed, so it varies from run to run). Beam 2.77 has no
option to skip it (``--no_auth`` is read only by the Dataflow client), and
``STORAGE_EMULATOR_HOST`` alone does not help because the wait happens before the storage
client is built.

:func:`configure_emulator` therefore sets ``STORAGE_EMULATOR_HOST`` and settles Beam's
process-wide credential cache to anonymous credentials up front. That is the state Beam reaches
by itself after the retries ("Connecting anonymously"), minus the wait, with one improvement: the
cache holds ``AnonymousCredentials`` instead of ``None``, so an apitools client built later in the
same process (for example Beam's BigQuery wrapper) sends no token instead of starting an
interactive OAuth login. It relies on Beam internals (``auth._Credentials``); if a Beam upgrade
renames them, :func:`configure_emulator` raises ``RuntimeError`` rather than silently falling back
to the slow path, and ``tests/test_gcs_read.py`` checks the timing.

Only for local mode and tests. On Dataflow nothing here is called and real credentials are used.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

ENV_VAR = "STORAGE_EMULATOR_HOST"


def _auth_cache():
    from apache_beam.internal.gcp import auth

    cache = getattr(auth, "_Credentials", None)
    adapter = getattr(auth, "_ApitoolsCredentialsAdapter", None)
    if cache is None or adapter is None or not hasattr(cache, "_credentials_init"):
        raise RuntimeError(
            "apache_beam.internal.gcp.auth no longer has _Credentials/_ApitoolsCredentialsAdapter "
            "(Beam upgrade?): beam_pipelines.gcs.configure_emulator cannot pre-set anonymous "
            "credentials; update it for this Beam version.")
    return cache, adapter


def _validate_host(host: str) -> str:
    if not host.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:")):
        raise ValueError(
            f"GCS emulator host {host!r} is not a loopback URL; expected http://127.0.0.1:PORT "
            "(local mode never talks to a remote storage endpoint).")
    return host.rstrip("/")


def configure_emulator(host: str | None = None) -> str:
    """Make ``gs://`` paths in this process go to the emulator at ``host``, anonymously.

    ``host`` is ``http://127.0.0.1:PORT``; default: the current ``$STORAGE_EMULATOR_HOST``.
    Call it in local-mode start-up before the first ``FileSystems`` call. Returns the host.
    Process-wide and permanent; tests should use :func:`storage_emulator` instead.
    """
    host = _validate_host(host or os.environ.get(ENV_VAR, ""))
    os.environ[ENV_VAR] = host
    from google.auth.credentials import AnonymousCredentials

    cache, adapter = _auth_cache()
    with cache._credentials_lock:
        cache._credentials = adapter(AnonymousCredentials())
        cache._credentials_init = True
    return host


@contextlib.contextmanager
def storage_emulator(host: str) -> Iterator[str]:
    """:func:`configure_emulator` for the duration of a ``with`` block, then restore everything."""
    cache, _ = _auth_cache()
    saved_env = os.environ.get(ENV_VAR)
    with cache._credentials_lock:
        saved = (cache._credentials, cache._credentials_init)
    try:
        yield configure_emulator(host)
    finally:
        with cache._credentials_lock:
            cache._credentials, cache._credentials_init = saved
        if saved_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved_env
