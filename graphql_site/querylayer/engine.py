"""Connections to the warehouse, one *snapshot* per data version.

A request takes one :class:`Snapshot` at its start and runs every query on it, so all fields of
one response reflect one data version, which is also the version in the cache keys and in the
response's ``extensions``.

DuckDB (local): ``strata transform`` builds a new file and ``os.replace``-s it onto
``warehouse.duckdb``, then writes ``$STRATA_HOME/data_version``. DuckDB keeps one database
instance per *path* per process while any connection to it is open, so reopening the same path
would return the old file. Each new version is therefore opened through a hard link named after
the version (``$STRATA_HOME/.api-readers/<pid>-<n>.duckdb``): a new path gets a new instance,
and the link pins the inode the version was read from. A replaced snapshot is retired, not
closed: requests that started on it finish on it, and it is closed (and its link removed) at a
later switch once ``RETIRE_AFTER_S`` has passed.

BigQuery (production): one engine; every job carries ``maximum_bytes_billed`` and reports the
bytes it processed. The data version is the one ``strata transform`` publishes
(``strata_core.dataversion``: the store ``$STRATA_DATA_VERSION_URL`` names, else the Redis key
``strata:data_version``), else ``STRATA_DATA_VERSION``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import pathlib
import threading
import time
from typing import Any

import sqlalchemy as sa
from django.conf import settings

from strata_core import dataversion, duckdb_config
from strata_core import paths as strata_paths

log = logging.getLogger(__name__)

LAYERS = ("raw", "staging", "curated", "mart")
#: A replaced snapshot stays open this long for requests still using it (seconds; above the
#: gunicorn request timeout).
RETIRE_AFTER_S = 120.0
#: How long a worker trusts the published version before asking the store again (seconds).
VERSION_RECHECK_S = 2.0


def version_store():
    """Where the BigQuery build id is published (``strata_core.dataversion``): the store
    ``$STRATA_DATA_VERSION_URL`` names, else the API's Redis (``$REDIS_URL``)."""
    return dataversion.store(os.environ.get(dataversion.ENV) or os.environ.get("REDIS_URL", ""))


def read_published_version(store=None) -> str | None:
    """The build id ``strata transform`` published, or ``None`` (unset, or the store is down)."""
    try:
        return (store or version_store()).read()
    except Exception:  # noqa: BLE001 - the version store being down must not stop reads
        log.warning("data version store unavailable", exc_info=True)
        return None


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read (not built yet, or unreachable). The message is shown to
    clients, so it never contains a file path."""


@dataclasses.dataclass
class QueryStats:
    queries: int = 0
    bytes_processed: int = 0


class Snapshot:
    """One data version of the warehouse; run statements with :meth:`rows`."""

    def __init__(self, version: str, engine: sa.Engine, backend: str, execution_options: dict):
        self.version = version
        self.engine = engine
        self.backend = backend
        self._execution_options = execution_options
        #: Per-version memo (e.g. feature catalogues): valid exactly as long as this snapshot.
        self.memo: dict = {}

    @property
    def dialect(self) -> sa.Dialect:
        return self.engine.dialect

    def rows(self, statement, params: dict | None = None, stats: QueryStats | None = None) -> list[sa.Row]:
        with self.engine.connect() as conn:
            result = conn.execution_options(**self._execution_options).execute(statement, params or {})
            rows = result.fetchall()
            if stats is not None:
                stats.queries += 1
                stats.bytes_processed += bytes_processed(result)
            return rows

    def columns(self, statement) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execution_options(**self._execution_options).execute(statement).keys())


def bytes_processed(result) -> int:
    """Bytes a BigQuery job processed (the DB-API cursor keeps its job); 0 elsewhere."""
    job = getattr(getattr(getattr(result, "context", None), "cursor", None), "query_job", None)
    return int(getattr(job, "total_bytes_processed", None) or 0)


_resolved: dict[tuple, tuple[pathlib.Path, str, str]] = {}


def _duckdb_path() -> tuple[pathlib.Path, str, str]:
    """(warehouse path, as text, its data_version file as text), resolved once per setting:
    every request stats both files, and resolving ``$STRATA_HOME`` costs more than the stats."""
    key = (settings.STRATA_WAREHOUSE_PATH, os.environ.get("STRATA_HOME"))
    found = _resolved.get(key)
    if found is None:
        db = pathlib.Path(settings.STRATA_WAREHOUSE_PATH) if settings.STRATA_WAREHOUSE_PATH \
            else strata_paths.warehouse_path()
        found = _resolved[key] = (db, str(db), str(db.parent / dataversion.FILE_NAME))
    return found


def _read_version(directory: pathlib.Path, db_stat: os.stat_result) -> str:
    """The build id published next to the warehouse, else one derived from the file."""
    return dataversion.FileStore(directory).read() or f"file-{db_stat.st_ino}-{db_stat.st_mtime_ns}"


class DuckDBWarehouse:
    backend = "duckdb"

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._snapshot: Snapshot | None = None
        self._link: pathlib.Path | None = None
        self._counter = itertools.count()
        self._retired: list[tuple[float, sa.Engine, pathlib.Path | None]] = []
        self._fresh_until = 0.0

    def snapshot(self) -> Snapshot:
        db, db_text, version_text = _duckdb_path()
        snap, now = self._snapshot, time.monotonic()
        # Checked moments ago: a newly published build is seen within STRATA_VERSION_RECHECK_S.
        if snap is not None and now < self._fresh_until and self._key[0] == db_text:
            return snap
        try:
            db_stat = os.stat(db_text)
        except FileNotFoundError:
            # No path in the message: it reaches clients (and /healthz); the log has it.
            log.debug("warehouse file %s not found", db)
            raise WarehouseUnavailable(
                "the warehouse is not built yet: run `strata ingest` and `strata transform`") from None
        try:
            v_stat = os.stat(version_text)
            v_key = (v_stat.st_ino, v_stat.st_mtime_ns, v_stat.st_size)
        except FileNotFoundError:
            v_key = None
        key = (db_text, db_stat.st_ino, db_stat.st_mtime_ns, v_key)
        self._fresh_until = now + settings.STRATA_VERSION_RECHECK_S
        if snap is not None and key == self._key:
            if self._retired and self._retired[0][0] < time.monotonic() - RETIRE_AFTER_S:
                with self._lock:
                    self._close_retired(time.monotonic() - RETIRE_AFTER_S)
            return snap
        with self._lock:
            if self._snapshot is not None and key == self._key:
                return self._snapshot
            version = _read_version(db.parent, db_stat)
            link_dir = db.parent / ".api-readers"
            link_dir.mkdir(exist_ok=True)
            link = link_dir / f"{os.getpid()}-{next(self._counter)}.duckdb"
            with _suppress_missing():
                link.unlink()
            try:
                os.link(db, link)
            except FileNotFoundError:
                raise WarehouseUnavailable("the warehouse was replaced while opening; retry") from None
            # Read-only and offline by DuckDB's own settings (the API reads only the marts).
            config = duckdb_config.read_only_config(threads=settings.STRATA_DUCKDB_THREADS or None,
                                                    memory_limit=settings.STRATA_DUCKDB_MEMORY_LIMIT)
            engine = sa.create_engine(
                f"duckdb:///{link}", connect_args={"read_only": True, "config": config},
                poolclass=sa.pool.QueuePool, pool_size=8, max_overflow=8, pool_pre_ping=False)
            # Then allow reading only this home's lake, no network, and lock the settings.
            lake = db.parent / "lake"
            profiling = settings.STRATA_API_COST_ESTIMATE  # the per-query cost history (monitoring.costs)
            sa.event.listen(engine, "connect",
                            lambda dbapi_con, _record: duckdb_config.secure(dbapi_con, lake, profiling=profiling))
            if self._snapshot is not None:
                # Requests that took the old snapshot may still run queries on it: retire it,
                # and close it only after RETIRE_AFTER_S (longer than any request may run).
                self._retired.append((time.monotonic(), self._snapshot.engine, self._link))
            self._snapshot = Snapshot(version, engine, self.backend, {})
            self._key, self._link = key, link
            self._close_retired(time.monotonic() - RETIRE_AFTER_S)
            log.info("warehouse data version %s (%s)", version, db)
            return self._snapshot

    def _close_retired(self, before: float) -> None:
        keep = []
        for retired_at, engine, link in self._retired:
            if retired_at > before:
                keep.append((retired_at, engine, link))
                continue
            engine.dispose()
            if link is not None:
                with _suppress_missing():
                    link.unlink()
        self._retired = keep

    def close(self) -> None:
        with self._lock:
            self._close_retired(float("inf"))
            if self._snapshot is not None:
                self._snapshot.engine.dispose()
            if self._link is not None:
                with _suppress_missing():
                    self._link.unlink()
            self._snapshot = self._key = self._link = None


class _suppress_missing:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is FileNotFoundError


class BigQueryWarehouse:
    backend = "bigquery"

    def __init__(self, engine: sa.Engine | None = None, store=None):
        """``engine``/``store``: for a loopback emulator in the conformance tier; by default the
        engine from the settings and :func:`version_store`."""
        from google.cloud import bigquery

        project = settings.STRATA_BIGQUERY_PROJECT
        url = f"bigquery://{project}" if project else "bigquery://"
        query = {"maximum_bytes_billed": str(settings.STRATA_MAX_BYTES_BILLED)}
        if settings.STRATA_BIGQUERY_LOCATION:
            query["location"] = settings.STRATA_BIGQUERY_LOCATION
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        self._engine = engine or sa.create_engine(url)
        self._store = store or version_store()
        job_config = bigquery.QueryJobConfig(maximum_bytes_billed=settings.STRATA_MAX_BYTES_BILLED)
        self._version = "unversioned"
        self._version_checked_until = 0.0
        self._options = {
            "job_config": job_config,
            "schema_translate_map": {layer: settings.STRATA_BIGQUERY_DATASETS.get(layer, layer)
                                     for layer in LAYERS},
        }

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        if now >= self._version_checked_until:
            self._version = (read_published_version(self._store)
                             or os.environ.get("STRATA_DATA_VERSION", "unversioned"))
            self._version_checked_until = now + VERSION_RECHECK_S
        return Snapshot(self._version, self._engine, self.backend, self._options)

    def close(self) -> None:
        self._engine.dispose()


_warehouse: Any = None
_warehouse_lock = threading.Lock()


def get_warehouse():
    """The process-wide warehouse for ``settings.STRATA_WAREHOUSE``."""
    global _warehouse
    if _warehouse is None or _warehouse.backend != settings.STRATA_WAREHOUSE:
        with _warehouse_lock:
            if _warehouse is None or _warehouse.backend != settings.STRATA_WAREHOUSE:
                if settings.STRATA_WAREHOUSE == "duckdb":
                    _warehouse = DuckDBWarehouse()
                elif settings.STRATA_WAREHOUSE == "bigquery":
                    _warehouse = BigQueryWarehouse()
                else:
                    raise WarehouseUnavailable(
                        f"STRATA_WAREHOUSE={settings.STRATA_WAREHOUSE!r}: expected duckdb or bigquery")
    return _warehouse


def snapshot() -> Snapshot:
    return get_warehouse().snapshot()
