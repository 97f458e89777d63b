"""What each dbt node scanned in a local (DuckDB) build: the local stand-in for BigQuery's bytes.

On BigQuery every model and test is a job whose statistics (bytes processed and billed, slot
time) dbt reports in ``run_results.json``. DuckDB reports none of that, so
:class:`ScanCollector` asks DuckDB's profiler instead: it listens to dbt's events in-process
(``dbtRunner(callbacks=[collector.on_event])``), turns profiling on for each connection dbt
opens, and after every statement a node runs reads that statement's table scans (rows read
after row-group pruning, and the columns). :meth:`ScanCollector.bytes_by_node` then prices the
scans with BigQuery's logical column widths (``strata_monitor.cost``).

This reaches into dbt's adapter to find the connection of the current thread: dbt offers no
public hook after a statement. ``tests/test_monitoring_record.py`` checks that every model of a
build gets an estimate, so a dbt upgrade that changes those internals fails a test instead of
silently recording nothing.
"""

from __future__ import annotations

import collections
import json
import logging

from strata_monitor import cost

log = logging.getLogger(__name__)


class ScanCollector:
    def __init__(self):
        self.scans: dict[str, list[cost.Scan]] = collections.defaultdict(list)
        # The cursors profiling was turned on for (kept alive, so an id is never reused).
        self._profiled: dict[int, object] = {}
        self._last_sql: str | None = None
        self.errors = 0

    @staticmethod
    def _cursor():
        from dbt.adapters.factory import get_adapter_by_type

        connection = get_adapter_by_type("duckdb").connections.get_thread_connection()
        return connection.handle.cursor()

    def on_event(self, event) -> None:
        name = event.info.name
        if name not in ("ConnectionUsed", "SQLQueryStatus"):
            return
        try:
            if name == "ConnectionUsed":
                self._profile(self._cursor())
            else:
                self._collect(event, self._cursor())
        except Exception:  # noqa: BLE001 - an estimate must never break a build
            self.errors += 1
            if self.errors == 1:
                log.warning("dbt cost estimate unavailable", exc_info=True)

    def _profile(self, cursor) -> None:
        if id(cursor) in self._profiled:
            return
        # Before dbt's statement runs, so no result of dbt's is pending on the cursor.
        cursor.execute("set enable_profiling = 'no_output'")
        cursor.execute("set profiling_coverage = 'ALL'")
        self._profiled[id(cursor)] = cursor

    def _collect(self, event, cursor) -> None:
        node = event.data.node_info.unique_id
        if not node or id(cursor) not in self._profiled:
            return
        # Reads the profiler only: dbt has not fetched this statement's result yet.
        profile = json.loads(cursor.get_profiling_information(format="json"))
        sql = (profile.get("query") or {}).get("sql")
        if sql is not None and sql == self._last_sql:
            return  # not profiled (the previous statement's profile again)
        self._last_sql = sql
        self.scans[node].extend(cost.scans_from_profile(profile))

    def bytes_by_node(self, execute) -> dict[str, int]:
        """Estimated bytes per dbt node; ``execute(sql, params) -> rows`` on the built warehouse."""
        widths: dict[str, dict[str, float]] = {}

        def table_widths(table: str) -> dict[str, float]:
            if table not in widths:
                widths[table] = cost.duckdb_widths(execute, table)
            return widths[table]

        return {node: cost.scan_bytes(scans, table_widths) for node, scans in self.scans.items()}
