"""Run the dbt project (``transforms_sql/``) and publish its output without blocking readers.

On the local DuckDB warehouse a build never writes the file readers open:

1. copy ``warehouse.duckdb`` to ``warehouse.build.duckdb`` (the raw views and the previous
   staging/curated/mart tables come along, so incremental models resume where they stopped);
2. run ``dbt build`` against the copy (``STRATA_WAREHOUSE_PATH`` points the profile at it);
3. on success, checkpoint and close the copy, ``os.replace`` it onto ``warehouse.duckdb`` (an
   atomic rename), then publish a new build id (``strata_core.dataversion``: the file
   ``$STRATA_HOME/data_version``, written atomically).

A reader that opened the old file keeps reading the old inode until it closes; a reader that
opens after the rename sees the new build. Nobody sees a half-built table or a lock error. A
failed build leaves ``warehouse.duckdb`` and ``data_version`` untouched.

On BigQuery dbt writes the datasets directly (``insert_overwrite`` replaces whole partitions in
one job each); a new build id is then published to the store ``$STRATA_DATA_VERSION_URL`` names
(Redis or a BigQuery table), so the API's caches invalidate. ``publish=False`` leaves that to a
later step (the Airflow DAG publishes after the freshness checks).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import re
import shutil
import sys
import time
from typing import Iterable, Iterator

from strata import dbt_costs, recorder
from strata_core import dataversion, paths

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent / "transforms_sql"
TARGETS = ("duckdb", "bigquery")
#: The tables ``strata transform`` reports row counts for (docs/layers.md, "mart").
MARTS = ("business_metrics", "user_analytics", "funnel_events", "funnel_daily", "ml_training")


class TransformError(RuntimeError):
    """The build could not run (bad arguments, dbt could not start, another build holds the lock)."""


def build_path() -> pathlib.Path:
    return paths.home() / "warehouse.build.duckdb"


def version_store(target: str):
    """Where ``target``'s data version is published (``strata_core.dataversion``): the DuckDB
    warehouse's readers read the file next to it; BigQuery readers the store that
    ``$STRATA_DATA_VERSION_URL`` names (Redis or a BigQuery table in production)."""
    return dataversion.FileStore() if target == "duckdb" else dataversion.store()


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build per STRATA_HOME at a time; a second one waits for the first."""
    lock_path = paths.home() / "transform.lock"
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _release_dbt_duckdb() -> None:
    """dbt-duckdb caches its database handle per process; make sure the build file is closed."""
    with contextlib.suppress(Exception):
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        env = DuckDBConnectionManager._ENV
        if env is not None:
            env.close()
        DuckDBConnectionManager._ENV = None


def dbt_args(command: str, *, target: str, full_refresh: bool = False,
             select: Iterable[str] | None = None, extra: Iterable[str] = ()) -> list[str]:
    args = [command, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
            "--target", target]
    if full_refresh:
        args.append("--full-refresh")
    select = [s for s in (select or []) if s]
    if select:
        # dbt only warns when a selector matches nothing; make it an error, with dbt's own switch.
        args += ["--select", *select,
                 "--warn-error-options", json.dumps({"error": ["NoNodesForSelectionCriteria"]})]
    return args + list(extra)


def invoke_dbt(args: list[str], *, warehouse_file: pathlib.Path | None = None, callbacks: Iterable = ()):
    """Run one dbt command in-process with Strata's environment; returns dbt's result object.

    ``target/`` and ``logs/`` go under ``$STRATA_HOME/dbt`` so two homes never share them and
    the project directory stays clean. ``callbacks`` receive every dbt event (progress, plans).
    """
    paths.use_offline_env()
    from dbt.cli.main import dbtRunner

    dbt_dir = paths.home() / "dbt"
    env = {
        "DBT_TARGET_PATH": str(dbt_dir / "target"),
        "DBT_LOG_PATH": str(dbt_dir / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DBT_QUIET": os.environ.get("DBT_QUIET", "True"),
        # Strata prints progress and failures itself (Progress, format_summary); dbt's own
        # console output would repeat them. Everything still goes to dbt/logs/dbt.log.
        "DBT_LOG_LEVEL": os.environ.get("DBT_LOG_LEVEL", "none"),
    }
    if warehouse_file is not None:
        env["STRATA_WAREHOUSE_PATH"] = str(warehouse_file)
    with _env(env):
        try:
            return dbtRunner(callbacks=list(callbacks)).invoke(args)
        finally:
            _release_dbt_duckdb()


def _summarise(res) -> dict:
    models = {"built": 0, "errors": 0, "skipped": 0}
    tests = {"passed": 0, "failed": 0, "warned": 0, "errors": 0, "skipped": 0}
    unit_tests = {"passed": 0, "failed": 0, "skipped": 0}
    failures: list[dict] = []
    rows_affected: dict[str, int | None] = {}
    results = getattr(res.result, "results", None) or []
    for r in results:
        node = r.node
        kind = str(getattr(node, "resource_type", ""))
        kind = kind.split(".")[-1].lower()
        status = str(r.status).split(".")[-1].lower()
        name = getattr(node, "name", "?")
        if kind == "model":
            if status == "success":
                models["built"] += 1
                rows_affected[name] = (r.adapter_response or {}).get("rows_affected")
            elif status == "skipped":
                models["skipped"] += 1
            else:
                models["errors"] += 1
        elif kind == "unit_test":
            unit_tests[{"pass": "passed", "skipped": "skipped"}.get(status, "failed")] += 1
        elif kind == "test":
            key = {"pass": "passed", "fail": "failed", "warn": "warned", "error": "errors",
                   "skipped": "skipped"}.get(status, "errors")
            tests[key] += 1
        if status in ("error", "fail"):
            failures.append({"node": name, "type": kind, "status": status,
                             "message": (r.message or "")[:2000]})
    if res.exception is not None:
        failures.append({"node": None, "type": "dbt", "status": "error", "message": str(res.exception)})
    return {"models": models, "tests": tests, "unit_tests": unit_tests, "failures": failures,
            "rows_affected": rows_affected}


def _mart_rows(db_file: pathlib.Path) -> dict[str, int]:
    import duckdb

    from strata_core import duckdb_config

    # The readers' configuration: a process may not open one file with two configurations.
    con = duckdb.connect(str(db_file), read_only=True, config=duckdb_config.read_only_config())
    try:
        present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'mart'").fetchall()}
        return {f"mart.{t}": con.execute(f"select count(*) from mart.{t}").fetchone()[0]
                for t in MARTS if t in present}
    finally:
        con.close()


def _estimate(costs, db_file: pathlib.Path) -> dict[str, int]:
    """Bytes each node would have scanned on BigQuery, estimated from DuckDB's profiles."""
    import duckdb

    from strata_core import duckdb_config

    con = duckdb.connect(str(db_file))
    try:
        duckdb_config.point_at_lake(con, paths.lake_dir())  # the raw views read this home's lake
        return costs.bytes_by_node(lambda sql, params: con.execute(sql, params).fetchall())
    finally:
        con.close()


def _checkpoint(db_file: pathlib.Path) -> None:
    """Fold the WAL into the file so the renamed file is complete on its own."""
    import duckdb

    con = duckdb.connect(str(db_file))
    try:
        con.execute("checkpoint")
    finally:
        con.close()
    wal = db_file.with_name(db_file.name + ".wal")
    if wal.exists():
        raise TransformError(f"{wal} still exists after a checkpoint; refusing to publish {db_file}")


class Progress:
    """dbt's node events → progress on stderr while a build runs, as ``dbt build`` prints it.

    One line per model, and per test that did not pass: ``[ 8/83] model staging.stg_events
    OK 0.18 s``. On a terminal a self-rewriting line also names the node running now; on
    anything else (a log file, CI) only the plain lines are written, without carriage returns.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = 0
        self.done = 0
        self._status_shown = False

    def __call__(self, msg) -> None:
        name = msg.info.name
        if name == "LogStartLine":
            self.total = max(self.total, msg.data.total)
            if self.tty:
                self._write(f"\r[{msg.data.index:>{self._width}}/{self.total}] {msg.data.description}\033[K")
                self._status_shown = True
        elif name == "NodeFinished":
            info = msg.data.node_info
            self.done += 1
            if info.resource_type not in ("model", "seed", "snapshot") and info.node_status in ("pass", "success"):
                return
            where = f"{info.node_relation.schema}.{info.node_relation.alias}" \
                if info.resource_type == "model" else info.node_name
            status = "OK" if info.node_status == "success" else info.node_status.upper()
            self._line(f"[{self.done:>{self._width}}/{self.total or '?'}] {info.resource_type} {where} "
                       f"{status} {msg.data.run_result.execution_time:.2f} s")

    @property
    def _width(self) -> int:
        return len(str(self.total or 0))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _line(self, text: str) -> None:
        prefix = "\r\033[K" if self._status_shown else ""
        self._status_shown = False
        self._write(f"{prefix}strata transform: {text}\n")

    def close(self) -> None:
        if self._status_shown:
            self._write("\r\033[K")
            self._status_shown = False


class _Plan:
    """Collects, from a build's debug events, the date partitions each incremental model replaced
    (the ``strata.changed_dates`` line of ``macros/incremental/changed_dates.sql``)."""

    PREFIX = "strata.changed_dates "

    def __init__(self):
        self.dates: dict[str, list[str]] = {}

    def __call__(self, msg) -> None:
        if msg.info.name == "JinjaLogDebug" and msg.data.msg.startswith(self.PREFIX):
            found = json.loads(msg.data.msg[len(self.PREFIX):])
            self.dates.setdefault(found["model"], []).extend(found["dates"])


def raw_is_empty() -> bool:
    """Whether ``raw.events`` has no row: its Parquet parts, counted from their footers by an
    in-memory DuckDB (the warehouse file is not opened, so no reader is in the way)."""
    import duckdb

    from strata_core import duckdb_config

    con = duckdb.connect()
    try:
        duckdb_config.point_at_lake(con, paths.lake_dir())
        return con.execute(f"select count(*) from {duckdb_config.scan_sql('events')}").fetchone()[0] == 0
    finally:
        con.close()


def _require_home() -> pathlib.Path:
    """The live warehouse file's path; TransformError when the home does not exist."""
    from strata import warehouse

    try:
        return warehouse.require_home(warehouse=False)
    except warehouse.HomeMissing as exc:
        raise TransformError(str(exc)) from None


def _check_inputs() -> pathlib.Path:
    """The live warehouse file, or TransformError when there is nothing to transform."""
    from strata import warehouse

    _require_home()
    live = warehouse.init()
    if raw_is_empty():
        raise TransformError(
            f"raw.events is empty in {paths.home_path()}: there is nothing to transform. Ingest events "
            "first, e.g. `.venv/bin/strata ingest batch --input 'data/events-*.ndjson' --users-input "
            "data/users.jsonl` (after `.venv/bin/strata generate --out data`)")
    return live


def run_transform(*, target: str = "duckdb", full_refresh: bool = False,
                  select: Iterable[str] | None = None, command: str = "build",
                  publish: bool = True, progress: bool = False, dry_run: bool = False) -> dict:
    """Build the dbt layers and publish them; returns a summary dict.

    ``target``: ``duckdb`` (local warehouse under ``$STRATA_HOME``) or ``bigquery`` (datasets
    from the ``STRATA_BQ_*`` environment variables, see ``transforms_sql/profiles.yml``).
    ``select``: dbt selectors (e.g. ``["+business_metrics"]``); a selector that matches no node
    fails the build. ``full_refresh`` rebuilds every incremental model from raw. ``command``:
    ``build`` (models + tests) or ``run``. ``progress``: a line per model on stderr
    (:class:`Progress`). ``publish``: publish a new data version after a successful build
    (BigQuery; the DuckDB target always does when something changed, since its build is swapped
    in at that moment). ``dry_run`` (DuckDB only): build models into a throwaway copy, report
    what would be built and which date partitions replaced (``plan``), and publish nothing.

    Locally a build whose staging, curated and mart tables come out identical to the live ones
    (:data:`BOOKKEEPING_COLUMNS` aside) publishes nothing: the data version stays, so caches
    stay warm (:func:`changed_tables`).

    Summary keys: ``ok``, ``target``, ``data_version`` (new build id, or the unchanged one when
    the build failed or changed nothing), ``changed``, ``seconds``, ``models``/``tests``/
    ``unit_tests`` counters, ``rows`` (rows per mart, DuckDB only), ``failures`` (node, status,
    message), ``strata_home``; with ``dry_run``, ``plan`` (model → dates or a note).
    """
    if target not in TARGETS:
        raise TransformError(f"target {target!r} is not supported; expected one of {', '.join(TARGETS)}")
    if command not in ("build", "run"):
        raise TransformError(f"command {command!r} is not supported; expected build or run")
    if dry_run and target != "duckdb":
        raise TransformError("--dry-run needs the local DuckDB warehouse: it builds into a throwaway copy")
    started = time.monotonic()
    paths.use_offline_env()
    args = dbt_args("run" if dry_run else command, target=target, full_refresh=full_refresh, select=select)
    if target == "duckdb":
        _require_home()  # before the build lock, which would create the home
    callbacks = [Progress()] if progress else []
    # Every build is recorded in the monitoring tables, failed ones too (strata/recorder.py); a
    # dry run builds nothing that stays, so it is not recorded.
    run = None if dry_run else recorder.TransformRun(target)
    costs = dbt_costs.ScanCollector() if target == "duckdb" and not dry_run else None
    try:
        with _build_lock():
            if target == "duckdb":
                summary = _run_duckdb(args, callbacks, costs, dry_run=dry_run, full_refresh=full_refresh)
            else:
                summary = _run_direct(args, callbacks, publish=publish)
        _refuse_empty_selection(summary)
    except BaseException as exc:
        if run is not None:
            run.fail(exc)
        raise
    finally:
        for callback in callbacks:
            callback.close()
    summary.update(target=target, full_refresh=full_refresh, seconds=round(time.monotonic() - started, 3),
                   strata_home=str(paths.home_path()))
    estimates = summary.pop("estimates", None)
    if run is not None:
        run.finish(summary, estimates)
    return summary


_NO_MATCH = re.compile(r"The selection criterion '(.*)' does not match any enabled nodes")


def node_names() -> list[str]:
    """Names of the project's models, seeds and snapshots (from the last parse's manifest)."""
    try:
        manifest = json.loads((paths.home_path() / "dbt" / "target" / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    return sorted({n["name"] for n in manifest.get("nodes", {}).values()
                   if n.get("resource_type") in ("model", "seed", "snapshot")})


def _refuse_empty_selection(summary: dict) -> None:
    """A ``--select`` that matched nothing (dbt's NoNodesForSelectionCriteria, made an error by
    :func:`dbt_args`) becomes a TransformError naming the nearest models."""
    import difflib

    for failure in summary["failures"]:
        match = _NO_MATCH.search(failure["message"] or "")
        if match:
            selector = match.group(1)
            bare = selector.strip("+@").split(":")[-1]
            close = difflib.get_close_matches(bare, node_names(), n=3)
            raise TransformError(
                f"--select {selector} matches no model, test or source, so nothing was built or published"
                + (f"; did you mean {', '.join(close)}?" if close else "")
                + " (selector syntax: https://docs.getdbt.com/reference/node-selection/syntax)")


def _tables(con, catalog: str) -> dict[str, list[str]]:
    """``schema.table`` → its columns, for the tables dbt builds (staging, curated, mart)."""
    rows = con.execute(
        "select c.table_schema || '.' || c.table_name, list(c.column_name order by c.ordinal_position) "
        "from information_schema.columns c join information_schema.tables t using "
        "(table_catalog, table_schema, table_name) where c.table_catalog = $1 and t.table_type = 'BASE TABLE' "
        "and c.table_schema in ('staging', 'curated', 'mart') group by 1", [catalog]).fetchall()
    return dict(rows)


#: Columns that record how a row was built (the run that wrote it, the raw high-water mark it
#: read up to), not what it says: a rebuild that reproduces the same rows differs only in these.
BOOKKEEPING_COLUMNS = frozenset({"loaded_at", "received_high_water_at"})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def fingerprint(con, catalog: str, table: str, columns: list[str]) -> tuple:
    """(row count, order-independent sum of row hashes) of ``catalog.table``, bookkeeping
    columns (:data:`BOOKKEEPING_COLUMNS`) left out."""
    kept = [c for c in columns if c not in BOOKKEEPING_COLUMNS]
    schema, name = table.split(".", 1)
    return tuple(con.execute(f"select count(*), sum(hash(row({', '.join(map(_quote, kept))}))::hugeint) "
                             f"from {_quote(catalog)}.{_quote(schema)}.{_quote(name)}").fetchone())


def _written(con, catalog: str, table: str) -> tuple:
    """(row count, max(loaded_at)): every model stamps the rows a run writes with loaded_at, so
    equal pairs mean the build neither wrote nor removed a row of the table."""
    schema, name = table.split(".", 1)
    return tuple(con.execute(f"select count(*), max(loaded_at) from "
                             f"{_quote(catalog)}.{_quote(schema)}.{_quote(name)}").fetchone())


def changed_tables(live: pathlib.Path, build: pathlib.Path) -> list[str]:
    """The staging/curated/mart tables whose content differs between two warehouse files.

    A table the build did not write (same row count and ``max(loaded_at)``) is unchanged without
    reading its rows; a table it wrote is compared by :func:`fingerprint`.
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("attach $1 as live (read_only)", [str(live)])
        con.execute("attach $1 as build (read_only)", [str(build)])
        before, after = _tables(con, "live"), _tables(con, "build")
        changed = []
        for table in sorted(set(before) | set(after)):
            columns = after.get(table)
            if before.get(table) != columns:
                changed.append(table)  # added, dropped, or its columns changed
            elif "loaded_at" in columns and _written(con, "live", table) == _written(con, "build", table):
                continue
            elif fingerprint(con, "live", table, columns) != fingerprint(con, "build", table, columns):
                changed.append(table)
        return changed
    finally:
        con.close()


def _run_duckdb(args: list[str], callbacks: list, costs: "dbt_costs.ScanCollector | None", *, dry_run: bool,
                full_refresh: bool) -> dict:
    live = _check_inputs()
    build = build_path()
    for stale in (build, build.with_name(build.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    shutil.copyfile(live, build)
    published = False
    plan = _Plan()
    try:
        res = invoke_dbt(args, warehouse_file=build,
                         callbacks=callbacks + [plan] + ([costs.on_event] if costs is not None else []))
        summary = _summarise(res)
        summary["ok"] = bool(res.success)
        summary["data_version"] = version_store("duckdb").read()
        summary["rows"] = {}
        summary["changed"] = False
        summary["estimates"] = _estimate(costs, build) if costs is not None else None
        if not res.success:
            return summary
        _checkpoint(build)
        if dry_run:
            summary["plan"] = _describe_plan(res, plan, full_refresh)
            return summary
        changed = changed_tables(live, build)
        summary["changed"] = bool(changed) or summary["data_version"] is None
        if not summary["changed"]:
            summary["rows"] = _mart_rows(live)
            return summary  # nothing changed: keep the live file and its data version
        summary["rows"] = _mart_rows(build)
        os.replace(build, live)
        published = True
        summary["data_version"] = _publish("duckdb")
        summary["warehouse"] = str(live)
        return summary
    finally:
        if not published:
            for leftover in (build, build.with_name(build.name + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()


def _publish(target: str) -> str:
    version = dataversion.new_build_id()
    version_store(target).publish(version)
    return version


def _describe_plan(res, plan: _Plan, full_refresh: bool) -> dict[str, dict]:
    """Model (``schema.name``) → what the build does to it: ``{"dates": [...]}`` (the date
    partitions it replaces; empty: nothing upstream changed) or ``{"note": ...}`` (a full build,
    or the rows of changed keys for the models keyed by ``user_id``)."""
    out = {}
    for r in getattr(res.result, "results", None) or []:
        node = r.node
        if str(node.resource_type).split(".")[-1].lower() != "model":
            continue
        name = node.alias or node.name
        if name in plan.dates:
            what = {"dates": sorted(set(plan.dates[name]))}
        elif full_refresh:
            what = {"note": "full build"}
        else:
            what = {"note": "rebuild the rows of changed keys (a full build if the table is new)"}
        out[f"{node.schema}.{name}"] = what
    return out


def _plan_line(what: dict) -> str:
    if "note" in what:
        return what["note"]
    dates = what["dates"]
    if not dates:
        return "nothing to replace (nothing upstream changed)"
    shown = ", ".join(dates) if len(dates) <= 6 else f"{dates[0]} … {dates[-1]}"
    return f"replace {len(dates)} date partition(s): {shown}"


def _run_direct(args: list[str], callbacks: list, *, publish: bool) -> dict:
    res = invoke_dbt(args, callbacks=callbacks)
    summary = _summarise(res)
    summary["ok"] = bool(res.success)
    summary["rows"] = {}
    # BigQuery offers no cheap "did anything change?"; a successful build always publishes
    # (unless told not to: the Airflow DAG publishes after its freshness checks).
    summary["changed"] = bool(res.success)
    summary["data_version"] = (_publish("bigquery") if res.success and publish
                               else version_store("bigquery").read())
    return summary


def run_freshness(*, target: str = "duckdb") -> dict:
    """``dbt source freshness`` on ``target``: how old the newest raw row of each source is,
    against the ``freshness`` blocks of ``models/staging/__sources.yml``. Returns ``ok`` (no
    source past its error threshold) and ``sources`` (name -> pass / warn / error)."""
    if target not in TARGETS:
        raise TransformError(f"target {target!r} is not supported; expected one of {', '.join(TARGETS)}")
    args = ["source", "freshness", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
            "--target", target, "--output", str(paths.home() / "dbt" / "sources.json")]
    res = invoke_dbt(args, warehouse_file=paths.warehouse_path() if target == "duckdb" else None)
    sources = {}
    for r in getattr(res.result, "results", None) or []:
        sources[getattr(r.node, "unique_id", "?").removeprefix("source.strata.")] = str(r.status).split(".")[-1].lower()
    ok = res.exception is None and not any(status in ("error", "runtime error") for status in sources.values())
    return {"ok": ok, "target": target, "sources": sources,
            "error": str(res.exception) if res.exception is not None else None}


def format_summary(summary: dict) -> str:
    """A few human lines: what was built, what was tested, rows per mart, how long it took."""
    m, t, u = summary["models"], summary["tests"], summary["unit_tests"]
    lines = [
        f"strata transform ({summary['target']}{', full refresh' if summary.get('full_refresh') else ''}): "
        f"{'OK' if summary['ok'] else 'FAILED'} in {summary['seconds']:.1f} s",
        f"  models: {m['built']} built, {m['errors']} errors, {m['skipped']} skipped",
        f"  tests:  {t['passed']} passed, {t['failed']} failed, {t['warned']} warned, {t['errors']} errors; "
        f"unit tests: {u['passed']} passed, {u['failed']} failed",
    ]
    for model, what in summary.get("plan", {}).items():
        lines.append(f"  would build {model}: {_plan_line(what)}")
    if "plan" in summary:
        lines.append("  dry run: built into a throwaway copy; nothing was published")
    for table, n in summary.get("rows", {}).items():
        lines.append(f"  {table}: {n} rows")
    if summary["ok"] and "plan" not in summary and not summary.get("changed", True):
        lines.append(f"  nothing changed: data version {summary.get('data_version')} kept (caches stay valid)")
    else:
        lines.append(f"  data version: {summary.get('data_version')}")
    lines.append(f"  home: {summary.get('strata_home')}")
    for f in summary.get("failures", []):
        first = (f["message"] or "").strip().splitlines()
        lines.append(f"  ! {f['type']} {f['node']}: {f['status']}: {first[0] if first else ''}")
    if summary.get("failures"):
        lines.append(f"  full messages: {pathlib.Path(summary.get('strata_home') or '.') / 'dbt' / 'logs' / 'dbt.log'}")
    return "\n".join(lines)
