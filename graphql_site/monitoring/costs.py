"""What each API query costs, per query name, kept as a history in the API's own database.

One line in the gateway and nothing in the query layer:

* ``measure`` wraps executing a ``/graphql`` request (``gateway.pipeline``): it names the query
  (``operationName``, else the operation's own name, else its root fields, e.g.
  ``revenueMetrics+conversionFunnel``) and opens an accumulator for the request;
* SQLAlchemy events on every engine (``install``) add what each warehouse statement cost: on
  BigQuery the job's bytes processed and slot time; on DuckDB a BigQuery-like estimate from
  DuckDB's profiler (rows scanned after pruning x BigQuery's column widths,
  ``strata_monitor.cost``), read once the statement's rows are fetched; the query layer switches
  the profiler on for its DuckDB connections (``strata_core.duckdb_config.secure``) unless
  ``STRATA_API_COST_ESTIMATE=off``; it costs about 0.1-0.2 ms a statement;
* responses that ran warehouse statements (cache hits run none) are added to a per-minute bucket
  (``QueryCostBucket``) in memory, written to the database every ``FLUSH_EVERY_S`` seconds by a
  background thread: no database write on the request path.

BigQuery jobs should also carry labels (``strata_monitor.cost.job_labels("api", name)``), so
``INFORMATION_SCHEMA.JOBS`` can be grouped by query name: that belongs in the job config the
query layer builds (``graphql_site/querylayer/engine.py``, ``BigQueryWarehouse``).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import threading
import time

import sqlalchemy as sa
from django.conf import settings

from strata_monitor import cost

log = logging.getLogger("graphql_site.monitoring")

FLUSH_EVERY_S = 10.0



@dataclasses.dataclass
class Usage:
    queries: int = 0
    bytes: int = 0
    slot_ms: int = 0
    estimated: bool = False


_current: contextvars.ContextVar[Usage | None] = contextvars.ContextVar("strata_query_usage", default=None)


# ---- SQLAlchemy events -----------------------------------------------------------------------

def _is_duckdb(dbapi_connection) -> bool:
    return type(dbapi_connection).__module__.startswith("duckdb")


_width_memo: dict[tuple[str, str], dict[str, float]] = {}
_width_lock = threading.Lock()


def _table_widths(dbapi_connection, database: str, table: str) -> dict[str, float]:
    key = (database, table)
    if key not in _width_memo:
        # A duplicate connection: the statement's result is still pending on the original.
        side = dbapi_connection.duplicate()
        try:
            widths = cost.duckdb_widths(lambda sql, params: side.execute(sql, params).fetchall(), table)
        finally:
            side.close()
        with _width_lock:
            if len(_width_memo) > 2048:
                _width_memo.clear()
            _width_memo[key] = widths
    return _width_memo[key]


_PENDING = "strata_cost_pending"


def _after_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    usage = _current.get()
    if usage is None:
        return
    usage.queries += 1
    try:
        job = getattr(cursor, "query_job", None) or getattr(cursor, "_query_job", None)
        if job is not None:  # BigQuery: the job is done, its statistics are final
            usage.bytes += int(getattr(job, "total_bytes_processed", None) or 0)
            usage.slot_ms += int(getattr(job, "slot_millis", None) or 0)
        elif settings.STRATA_API_COST_ESTIMATE and _is_duckdb(conn.connection.dbapi_connection):
            # DuckDB scans while the rows are fetched: read the profile when the statement is
            # done, i.e. before the next one or when the transaction ends (_settle).
            conn.info[_PENDING] = usage
    except Exception:  # noqa: BLE001 - a cost figure must never fail a query
        log.debug("query cost unavailable", exc_info=True)


def _settle(conn, *args) -> None:
    usage = conn.info.pop(_PENDING, None)
    if usage is None:
        return
    try:
        dbapi = conn.connection.dbapi_connection
        profile = json.loads(dbapi.get_profiling_information(format="json"))
        database = str(conn.engine.url.database)
        usage.bytes += cost.scan_bytes(cost.scans_from_profile(profile),
                                       lambda table: _table_widths(dbapi, database, table))
        usage.estimated = True
    except Exception:  # noqa: BLE001
        log.debug("query cost unavailable", exc_info=True)


_installed = False


def install() -> None:
    """Listen on every SQLAlchemy engine and pool of this process (idempotent)."""
    global _installed
    if _installed:
        return
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", _settle)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", _after_execute)
    sa.event.listen(sa.engine.Engine, "rollback", _settle)
    sa.event.listen(sa.engine.Engine, "commit", _settle)
    _installed = True


# ---- per-minute buckets ----------------------------------------------------------------------

_pending: dict[tuple[str, dt.datetime, str], dict] = {}
_pending_lock = threading.Lock()
_flusher_pid: int | None = None


def record(query_name: str, usage: Usage, duration_ms: float, warehouse: str) -> None:
    minute = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    key = (query_name[:200], minute, warehouse)
    with _pending_lock:
        bucket = _pending.setdefault(key, {"executions": 0, "queries": 0, "bytes_total": 0, "bytes_max": 0,
                                           "slot_ms_total": 0, "duration_ms_total": 0.0, "estimated": False})
        bucket["executions"] += 1
        bucket["queries"] += usage.queries
        bucket["bytes_total"] += usage.bytes
        bucket["bytes_max"] = max(bucket["bytes_max"], usage.bytes)
        bucket["slot_ms_total"] += usage.slot_ms
        bucket["duration_ms_total"] += duration_ms
        bucket["estimated"] = bucket["estimated"] or usage.estimated
    _ensure_flusher()


def flush() -> int:
    """Write the pending buckets to the database; returns how many. Adds to existing rows."""
    from django.db import transaction
    from django.db.models import F
    from django.db.models.functions import Greatest

    from .models import QueryCostBucket

    with _pending_lock:
        pending = dict(_pending)
        _pending.clear()
    for (name, minute, warehouse), b in pending.items():
        with transaction.atomic():
            row, created = QueryCostBucket.objects.get_or_create(
                query_name=name, bucket_start=minute, warehouse=warehouse, defaults=b)
            if not created:
                QueryCostBucket.objects.filter(pk=row.pk).update(
                    executions=F("executions") + b["executions"], queries=F("queries") + b["queries"],
                    bytes_total=F("bytes_total") + b["bytes_total"],
                    bytes_max=Greatest(F("bytes_max"), b["bytes_max"]),
                    slot_ms_total=F("slot_ms_total") + b["slot_ms_total"],
                    duration_ms_total=F("duration_ms_total") + b["duration_ms_total"],
                    estimated=b["estimated"] or row.estimated)
    return len(pending)


def _flush_quietly() -> None:
    from django.db import connection

    try:
        flush()
    except Exception:  # noqa: BLE001 - losing a minute of cost history must not hurt the API
        log.warning("could not write the API query cost history", exc_info=True)
    finally:
        connection.close()


def _flush_loop() -> None:
    while True:
        time.sleep(FLUSH_EVERY_S)
        _flush_quietly()


def _ensure_flusher() -> None:
    """One flusher thread per process (gunicorn forks workers after import: check the pid)."""
    global _flusher_pid
    if _flusher_pid == os.getpid() or getattr(settings, "STRATA_COST_FLUSH_THREAD", True) is False:
        return
    _flusher_pid = os.getpid()
    threading.Thread(target=_flush_loop, name="strata-cost-flush", daemon=True).start()
    atexit.register(_flush_quietly)


def history(since: dt.datetime) -> list[dict]:
    """Buckets since ``since``, oldest first, as plain dicts (what ``strata_monitor`` reads)."""
    from .models import QueryCostBucket

    fields = ("query_name", "bucket_start", "warehouse", "executions", "queries", "bytes_total", "bytes_max",
              "slot_ms_total", "duration_ms_total", "estimated")
    return list(QueryCostBucket.objects.filter(bucket_start__gte=since).order_by("bucket_start").values(*fields))


# ---- per request --------------------------------------------------------------------------

@functools.lru_cache(maxsize=512)
def _document_name(query: str) -> str:
    """The first operation's name, else its root fields joined with ``+``."""
    from graphql import OperationDefinitionNode, parse

    try:
        document = parse(query)
    except Exception:  # noqa: BLE001 - the gateway reports the syntax error
        return "invalid"
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if definition.name is not None:
                return definition.name.value[:200]
            names = sorted({s.name.value for s in definition.selection_set.selections if hasattr(s, "name")})
            return "+".join(names)[:200] or "empty"
    return "empty"


def query_name(operation_name: str | None, query: str) -> str:
    """``operationName`` when given, else the document's first operation name or root fields."""
    if isinstance(operation_name, str) and operation_name:
        return operation_name[:200]
    return _document_name(query) if isinstance(query, str) else "invalid"


@contextlib.contextmanager
def measure(operation_name: str | None, query: str):
    """Count what the warehouse statements run inside the block cost, under the query's name
    (``gateway.pipeline`` wraps executing a request with it; cache hits run no statement and are
    not counted)."""
    usage = Usage()
    token = _current.set(usage)
    started = time.perf_counter()
    try:
        yield
    finally:
        _current.reset(token)
        if usage.queries:
            record(query_name(operation_name, query), usage, (time.perf_counter() - started) * 1000,
                   settings.STRATA_WAREHOUSE)
