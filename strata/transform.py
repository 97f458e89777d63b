"""Run the dbt project (``transforms_sql/``) and publish its output without blocking readers.

On the local DuckDB warehouse a build never writes the file readers open:

1. copy ``warehouse.duckdb`` to ``warehouse.build.duckdb`` (the raw views and the previous
   staging/curated/mart tables come along, so incremental models resume where they stopped);
2. run ``dbt build`` against the copy (``STRATA_WAREHOUSE_PATH`` points the profile at it);
3. on success, checkpoint and close the copy, ``os.replace`` it onto ``warehouse.duckdb`` (an
   atomic rename), then atomically write ``$STRATA_HOME/data_version`` with a new build id.

A reader that opened the old file keeps reading the old inode until it closes; a reader that
opens after the rename sees the new build. Nobody sees a half-built table or a lock error. A
failed build leaves ``warehouse.duckdb`` and ``data_version`` untouched.

On BigQuery dbt writes the datasets directly (``insert_overwrite`` replaces whole partitions in
one job each); ``data_version`` is still bumped so caches invalidate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from typing import Iterable, Iterator

from strata import dbt_costs, recorder
from strata_core import paths

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent / "transforms_sql"
TARGETS = ("duckdb", "bigquery")
#: The tables ``strata transform`` reports row counts for (docs/layers.md, "mart").
MARTS = ("business_metrics", "user_analytics", "funnel_events", "funnel_daily", "ml_training")


class TransformError(RuntimeError):
    """The build could not run (bad arguments, dbt could not start, another build holds the lock)."""


def build_path() -> pathlib.Path:
    return paths.home() / "warehouse.build.duckdb"


def data_version_path() -> pathlib.Path:
    return paths.home() / "data_version"


def read_data_version() -> str | None:
    """The id of the build readers currently see, or None before the first build."""
    try:
        return data_version_path().read_text().strip() or None
    except FileNotFoundError:
        return None


def new_build_id() -> str:
    """Sortable and unique: ``20261126T171200Z-1a2b3c4d``."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _write_atomically(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
        args += ["--select", *select]
    return args + list(extra)


def invoke_dbt(args: list[str], *, warehouse_file: pathlib.Path | None = None, callbacks=()):
    """Run one dbt command in-process with Strata's environment; returns dbt's result object.

    ``target/`` and ``logs/`` go under ``$STRATA_HOME/dbt`` so two homes never share them and
    the project directory stays clean.
    """
    paths.use_offline_env()
    from dbt.cli.main import dbtRunner

    dbt_dir = paths.home() / "dbt"
    env = {
        "DBT_TARGET_PATH": str(dbt_dir / "target"),
        "DBT_LOG_PATH": str(dbt_dir / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DBT_QUIET": os.environ.get("DBT_QUIET", "True"),
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

    con = duckdb.connect(str(db_file), read_only=True)
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

    con = duckdb.connect(str(db_file))
    try:
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


def run_transform(*, target: str = "duckdb", full_refresh: bool = False,
                  select: Iterable[str] | None = None, command: str = "build") -> dict:
    """Build the dbt layers and publish them; returns a summary dict.

    ``target``: ``duckdb`` (local warehouse under ``$STRATA_HOME``) or ``bigquery`` (datasets
    from the ``STRATA_BQ_*`` environment variables, see ``transforms_sql/profiles.yml``).
    ``select``: dbt selectors (e.g. ``["+business_metrics"]``); ``full_refresh`` rebuilds every
    incremental model from raw. ``command``: ``build`` (models + tests) or ``run``.

    Summary keys: ``ok``, ``target``, ``data_version`` (new build id, or the unchanged one when
    the build failed), ``seconds``, ``models``/``tests``/``unit_tests`` counters, ``rows``
    (rows per mart, DuckDB only), ``failures`` (node, status, message).
    """
    if target not in TARGETS:
        raise TransformError(f"target {target!r} is not supported; expected one of {', '.join(TARGETS)}")
    if command not in ("build", "run"):
        raise TransformError(f"command {command!r} is not supported; expected build or run")
    started = time.monotonic()
    paths.use_offline_env()
    args = dbt_args(command, target=target, full_refresh=full_refresh, select=select)
    # Every build is recorded in the monitoring tables, failed ones too (strata/recorder.py).
    run = recorder.TransformRun(target)
    costs = dbt_costs.ScanCollector() if target == "duckdb" else None
    try:
        with _build_lock():
            if target == "duckdb":
                summary = _run_duckdb(args, costs)
            else:
                summary = _run_direct(args)
    except BaseException as exc:
        run.fail(exc)
        raise
    summary.update(target=target, full_refresh=full_refresh, seconds=round(time.monotonic() - started, 3))
    run.finish(summary, summary.pop("estimates", None))
    return summary


def _run_duckdb(args: list[str], costs: "dbt_costs.ScanCollector") -> dict:
    from strata import warehouse

    live = warehouse.init()
    build = build_path()
    for stale in (build, build.with_name(build.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    shutil.copyfile(live, build)
    published = False
    try:
        res = invoke_dbt(args, warehouse_file=build, callbacks=[costs.on_event])
        summary = _summarise(res)
        summary["ok"] = bool(res.success)
        summary["estimates"] = _estimate(costs, build)
        if not res.success:
            summary["data_version"] = read_data_version()
            summary["rows"] = {}
            return summary
        _checkpoint(build)
        summary["rows"] = _mart_rows(build)
        version = new_build_id()
        os.replace(build, live)
        published = True
        _write_atomically(data_version_path(), version + "\n")
        summary["data_version"] = version
        summary["warehouse"] = str(live)
        return summary
    finally:
        if not published:
            for leftover in (build, build.with_name(build.name + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()


def _run_direct(args: list[str]) -> dict:
    res = invoke_dbt(args)
    summary = _summarise(res)
    summary["ok"] = bool(res.success)
    summary["rows"] = {}
    if res.success:
        version = new_build_id()
        _write_atomically(data_version_path(), version + "\n")
        summary["data_version"] = version
    else:
        summary["data_version"] = read_data_version()
    return summary


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
    for table, n in summary.get("rows", {}).items():
        lines.append(f"  {table}: {n} rows")
    lines.append(f"  data version: {summary.get('data_version')}")
    for f in summary.get("failures", []):
        first = (f["message"] or "").strip().splitlines()
        lines.append(f"  ! {f['type']} {f['node']}: {f['status']}: {first[0] if first else ''}")
    return "\n".join(lines)
