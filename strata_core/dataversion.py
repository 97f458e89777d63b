"""The data version: the id of the warehouse build that readers see. One interface, three stores.

``strata transform`` publishes a new id after every successful build, on either target; the
API keys its cache on it and reports it in every response, so a new build invalidates every
cached answer at once instead of when each TTL runs out.

Where it lives is chosen by one URL (``STRATA_DATA_VERSION_URL``):

* unset, or ``file:///abs/dir`` – the file ``data_version`` in ``$STRATA_HOME`` (or that
  directory), written atomically; the embedded default;
* ``redis://HOST:PORT/DB`` – the Redis key ``strata:data_version`` (no prefix); production when
  the API's Redis (Memorystore) is reachable from where dbt runs;
* ``bigquery://PROJECT/DATASET`` – the description of the table ``DATASET._strata_data_version``;
  production when it is not (Cloud Build, Composer). Reading it is a ``tables.get`` (metadata,
  not a query: nothing is billed).

Build ids sort by time: ``20261126T171200Z-1a2b3c4d``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pathlib
import tempfile
import urllib.parse
import uuid

from strata_core import paths

ENV = "STRATA_DATA_VERSION_URL"
FILE_NAME = "data_version"
REDIS_KEY = "strata:data_version"
BIGQUERY_TABLE = "_strata_data_version"


def new_build_id() -> str:
    """Sortable and unique: ``20261126T171200Z-1a2b3c4d``."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class FileStore:
    """``<directory>/data_version``; ``directory`` defaults to ``$STRATA_HOME``."""

    def __init__(self, directory: pathlib.Path | str | None = None):
        self.directory = pathlib.Path(directory) if directory is not None else None

    @property
    def path(self) -> pathlib.Path:
        return (self.directory or paths.home()) / FILE_NAME

    def read(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def publish(self, version: str) -> None:
        path = self.path
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(version + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


class RedisStore:
    """The Redis key :data:`REDIS_KEY` (module attribute, read at each call)."""

    def __init__(self, url: str):
        import redis

        self.url = url
        self._client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)

    def read(self) -> str | None:
        value = self._client.get(REDIS_KEY)
        return value.decode() if isinstance(value, bytes) else value

    def publish(self, version: str) -> None:
        self._client.set(REDIS_KEY, version)


class BigQueryStore:
    """The description of table ``PROJECT.DATASET._strata_data_version``.

    ``client``: a ``google.cloud.bigquery.Client`` (default: application default credentials).
    """

    def __init__(self, project: str, dataset: str, client=None):
        self.table_id = f"{project}.{dataset}.{BIGQUERY_TABLE}"
        if client is None:
            from google.cloud import bigquery

            client = bigquery.Client(project=project)
        self._client = client

    def read(self) -> str | None:
        from google.api_core.exceptions import NotFound

        try:
            return (self._client.get_table(self.table_id).description or "").strip() or None
        except NotFound:
            return None

    def publish(self, version: str) -> None:
        from google.cloud import bigquery

        table = bigquery.Table(self.table_id, schema=[bigquery.SchemaField("version", "STRING")])
        table = self._client.create_table(table, exists_ok=True)
        table.description = version
        self._client.update_table(table, ["description"])


def store(url: str | None = None):
    """The store for ``url`` (default ``$STRATA_DATA_VERSION_URL``; unset: the file in
    ``$STRATA_HOME``). Raises ``ValueError`` naming the accepted forms."""
    url = url if url is not None else os.environ.get(ENV, "")
    if not url:
        return FileStore()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return FileStore(parts.path)
    if parts.scheme in ("redis", "rediss", "unix"):
        return RedisStore(url)
    if parts.scheme == "bigquery" and parts.netloc and parts.path.strip("/"):
        return BigQueryStore(parts.netloc, parts.path.strip("/"))
    raise ValueError(f"{ENV}={url!r}: expected file:///ABSOLUTE/DIR, redis://HOST:PORT/DB or "
                     "bigquery://PROJECT/DATASET")
