"""Record what every run did into the ``monitoring`` tables (``strata_core.monitoring``).

``strata ingest`` and ``strata transform`` call this after each run, failed runs included:

* locally, one Parquet part per run and table under ``lake/monitoring/<table>/<date>/`` (loads
  never open ``warehouse.duckdb``; ``monitoring.<table>`` is a DuckDB view over the parts);
* on BigQuery, rows of ``<project>.monitoring.<table>`` (created from the same declaration,
  day-partitioned), inserted with ids derived from the run, so a retried insert adds nothing.

Recording must never turn a good run into a failed one: an error here is logged and swallowed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import pathlib
import uuid
from typing import Iterator

from strata_core import contract, monitoring, paths

log = logging.getLogger(__name__)

MESSAGE_CHARS = 2000


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_run_id(job: str, started_at: dt.datetime) -> str:
    return f"{job}-{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


# ---- where rows go ---------------------------------------------------------------------------

class LakeRecorder:
    """Parquet parts of the local lake: ``lake/monitoring/<table>/<YYYY-MM-DD>/<run_id>.parquet``."""

    def __init__(self, lake: pathlib.Path | None = None):
        self.lake = lake or paths.lake_dir()

    def write(self, table: str, run_id: str, rows: list[dict]) -> None:
        import pyarrow as pa

        from strata_core.lake import write_part

        if not rows:
            return
        day = rows[0]["finished_at"].date().isoformat()
        write_part(table, run_id, pa.Table.from_pylist(rows, schema=monitoring.arrow_schema(table)),
                   partition=day, lake=self.lake, schema=monitoring.SCHEMA)


class BigQueryRecorder:
    """Rows of ``<project>.monitoring.<table>``; tables are created on first use."""

    def __init__(self, project: str, endpoint: str | None = None, dataset: str = monitoring.SCHEMA):
        from beam_pipelines.bigquery.clients import make_client  # Google's client only, no Beam

        self.project, self.dataset = project, dataset
        self.client = make_client(project, endpoint)
        self._ready: set[str] = set()

    def _ensure(self, table: str) -> None:
        from google.cloud import bigquery

        if table in self._ready:
            return
        self.client.create_dataset(bigquery.Dataset(f"{self.project}.{self.dataset}"), exists_ok=True)
        declared = monitoring.RECORDED[table]
        definition = bigquery.Table(
            f"{self.project}.{self.dataset}.{table}",
            schema=[bigquery.SchemaField(f["name"], f["type"], mode=f["mode"], description=f["description"])
                    for f in monitoring.bigquery_schema(table)["fields"]])
        definition.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=declared.partition_field)
        definition.description = declared.description
        self.client.create_table(definition, exists_ok=True)
        self._ready.add(table)

    def write(self, table: str, run_id: str, rows: list[dict]) -> None:
        from beam_pipelines.bigquery.rows import to_insert_row

        if not rows:
            return
        self._ensure(table)
        key = monitoring.RECORDED[table].key
        ids = ["|".join(str(r[k]) for k in key) for r in rows]
        errors = self.client.insert_rows_json(f"{self.project}.{self.dataset}.{table}",
                                              [to_insert_row(r) for r in rows], row_ids=ids)
        if errors:
            raise RuntimeError(f"BigQuery refused monitoring rows of {table}: {errors[:3]}")


def _write(recorder, run_id: str, tables: dict[str, list[dict]]) -> None:
    try:
        for table, rows in tables.items():
            recorder.write(table, run_id, rows)
    except Exception:  # noqa: BLE001 - see the module docstring
        log.warning("could not record run %s in the monitoring tables", run_id, exc_info=True)


def _trim(text) -> str | None:
    return None if text is None else str(text)[:MESSAGE_CHARS]


def _run_row(run_id: str, job: str, status: str, started_at: dt.datetime, finished_at: dt.datetime,
             target: str, **values) -> dict:
    row = {f.name: None for f in monitoring.PIPELINE_RUNS.fields}
    row.update(run_id=run_id, job=job, status=status, started_at=started_at, finished_at=finished_at,
               duration_s=(finished_at - started_at).total_seconds(), target=target, **values)
    if isinstance(row["details"], dict):
        row["details"] = json.dumps(row["details"], sort_keys=True, default=str)
    row["error_message"] = _trim(row["error_message"])
    return row


# ---- ingest ----------------------------------------------------------------------------------

class IngestRun:
    """One ``strata ingest batch`` run; see :func:`ingest_run`."""

    def __init__(self, sink: str, recorder, inputs: list[str]):
        self.sink, self.recorder, self.inputs = sink, recorder, inputs
        self.started_at = now()
        self.run_id = new_run_id("ingest_batch", self.started_at)
        self.summary = None

    def rows(self, error: BaseException | None) -> dict[str, list[dict]]:
        finished_at, s = now(), self.summary
        details = {"inputs": self.inputs}
        if s is None:
            return {"pipeline_runs": [_run_row(self.run_id, "ingest_batch", "failed", self.started_at, finished_at,
                                               self.sink, error_message=f"{type(error).__name__}: {error}",
                                               details=details)]}
        error_message = None if s.balanced else (
            f"lost records: read {s.read} != accepted {s.accepted} + dead-lettered {s.dead_lettered}")
        details["users"] = {"read": s.users_read, "accepted": s.users_accepted,
                            "dead_lettered": s.users_dead_lettered}
        run = _run_row(self.run_id, "ingest_batch", "success" if s.balanced else "failed", self.started_at,
                       finished_at, self.sink, records_read=s.read, records_accepted=s.accepted,
                       records_dead_lettered=s.dead_lettered, blank_lines=s.blank_lines,
                       users_read=s.users_read, records_per_s=s.events_per_s, error_message=error_message,
                       details=details)
        dead = [{"run_id": self.run_id, "job": "ingest_batch", "finished_at": finished_at, "error_type": name,
                 "stage": contract.ERROR_TYPES_BY_NAME[name].stage if name in contract.ERROR_TYPES_BY_NAME else "",
                 "count_records": n} for name, n in sorted(s.by_error_type.items()) if n]
        return {"pipeline_runs": [run], "run_dead_letters": dead}


@contextlib.contextmanager
def ingest_run(sink: str, inputs: list[str], *, bq_project: str | None = None,
               bq_endpoint: str | None = None) -> Iterator[IngestRun]:
    """Record the ingest run inside the ``with`` block: set ``run.summary`` to the job's
    ``IngestSummary``; an exception (re-raised) records a failed run."""
    recorder = _recorder("bigquery" if sink == "bigquery" else "local", bq_project, bq_endpoint)
    run = IngestRun(sink, recorder, list(inputs))
    try:
        yield run
    except BaseException as exc:
        if recorder is not None:
            _write(recorder, run.run_id, run.rows(exc))
        raise
    if recorder is not None:
        _write(recorder, run.run_id, run.rows(None))


def _recorder(target: str, project: str | None = None, endpoint: str | None = None):
    if target in ("local", "duckdb"):
        return LakeRecorder()
    if not project:
        log.warning("not recording the run: no BigQuery project for the monitoring dataset")
        return None
    try:
        return BigQueryRecorder(project, endpoint)
    except Exception:  # noqa: BLE001
        log.warning("not recording the run: no BigQuery client", exc_info=True)
        return None


# ---- transform -------------------------------------------------------------------------------

def _dbt_target_dir() -> pathlib.Path:
    return paths.home() / "dbt" / "target"


def _read_json(path: pathlib.Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def dbt_result_rows(run_id: str, finished_at: dt.datetime, started_at: dt.datetime,
                    estimates: dict[str, int] | None = None,
                    target_dir: pathlib.Path | None = None) -> list[dict]:
    """``monitoring.dbt_results`` rows from dbt's ``run_results.json`` of this run (ignored when
    it is older than ``started_at``: dbt did not get as far as writing one)."""
    target_dir = target_dir or _dbt_target_dir()
    results = _read_json(target_dir / "run_results.json")
    if not results:
        return []
    generated = (results.get("metadata") or {}).get("generated_at")
    if generated and dt.datetime.fromisoformat(generated.replace("Z", "+00:00")) < started_at:
        return []
    manifest = _read_json(target_dir / "manifest.json") or {}
    nodes = {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}
    rows = []
    for r in results.get("results", []):
        unique_id = r.get("unique_id", "")
        node = nodes.get(unique_id, {})
        response = r.get("adapter_response") or {}
        on_bigquery = "bytes_processed" in response
        scanned = response.get("bytes_processed") if on_bigquery else (estimates or {}).get(unique_id)
        rows.append({
            "run_id": run_id, "finished_at": finished_at, "unique_id": unique_id,
            "resource_type": node.get("resource_type") or unique_id.split(".")[0],
            "name": node.get("name") or unique_id.split(".")[-1],
            "attached_node": _attached_node(node) if unique_id.startswith(("test.", "unit_test.")) else None,
            "status": str(r.get("status")), "failures": r.get("failures"),
            "execution_s": r.get("execution_time"), "rows_affected": response.get("rows_affected"),
            "bytes_scanned": scanned, "bytes_billed": response.get("bytes_billed"),
            "slot_ms": response.get("slot_ms"),
            "cost_source": "bigquery" if on_bigquery else ("duckdb_estimate" if scanned is not None else None),
            "job_id": response.get("job_id"), "message": _trim(r.get("message")),
        })
    return rows


def _attached_node(test: dict) -> str | None:
    """The model a data test checks (dbt's ``attached_node``), or a unit test's model."""
    if test.get("attached_node"):
        return test["attached_node"]
    models = [n for n in (test.get("depends_on") or {}).get("nodes", []) if n.startswith("model.")]
    return models[0] if models else None


class TransformRun:
    """One ``strata transform`` run: :meth:`finish` with its summary, or :meth:`fail`."""

    def __init__(self, target: str):
        self.target = target
        self.started_at = now()
        self.run_id = new_run_id("transform", self.started_at)
        project = os.environ.get("STRATA_BQ_PROJECT") if target == "bigquery" else None
        self.recorder = _recorder(target, project, os.environ.get("STRATA_BQ_MONITORING_ENDPOINT"))

    def fail(self, error: BaseException) -> None:
        if self.recorder is None:
            return
        finished_at = now()
        dbt_rows = dbt_result_rows(self.run_id, finished_at, self.started_at)
        _write(self.recorder, self.run_id, {
            "pipeline_runs": [_run_row(self.run_id, "transform", "failed", self.started_at, finished_at,
                                       self.target, error_message=f"{type(error).__name__}: {error}")],
            "dbt_results": dbt_rows})

    def finish(self, summary: dict, estimates: dict[str, int] | None = None) -> None:
        if self.recorder is None:
            return
        finished_at = now()
        failures = summary.get("failures") or []
        error = "; ".join(f"{f['type']} {f['node']}: {f['status']}" for f in failures[:20]) or None
        t, u = summary["tests"], summary["unit_tests"]
        run = _run_row(self.run_id, "transform", "success" if summary["ok"] else "failed", self.started_at,
                       finished_at, self.target, models_built=summary["models"]["built"],
                       tests_passed=t["passed"] + u["passed"],
                       tests_failed=t["failed"] + t["errors"] + u["failed"],
                       data_version=summary.get("data_version"), error_message=error,
                       details={"full_refresh": summary.get("full_refresh"), "rows": summary.get("rows"),
                                "failures": failures[:20]})
        _write(self.recorder, self.run_id, {
            "pipeline_runs": [run],
            "dbt_results": dbt_result_rows(self.run_id, finished_at, self.started_at, estimates)})
