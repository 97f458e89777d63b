"""Recording runs into the monitoring tables: lake parts locally, rows of the ``monitoring``
dataset on BigQuery (against the loopback fake), both shaped by strata_core/monitoring.py; dbt's
run_results become dbt_results rows; recording never fails a run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pyarrow.parquet as pq
import pytest

from beam_pipelines.batch import IngestSummary
from strata import recorder
from strata_core import monitoring
from tests.fakes.bigquery_server import FakeBigQuery
from tests.fakes.network_guard import loopback_only

SUMMARY = IngestSummary(read=1000, blank_lines=2, accepted=960, dead_lettered=40,
                        by_error_type={"malformed_json": 30, "invalid_timestamp": 10}, users_read=5,
                        users_accepted=5, users_dead_lettered=0, seconds=0.5)


def test_ingest_run_to_the_lake(strata_home):
    with recorder.ingest_run("local", ["data/*.jsonl"]) as run:
        run.summary = SUMMARY
    parts = sorted((strata_home / "lake" / "monitoring").rglob(f"{run.run_id}.parquet"))
    assert [p.parent.parent.name for p in parts] == ["pipeline_runs", "run_dead_letters"]
    (row,) = pq.read_table(parts[0]).to_pylist()
    assert pq.read_schema(parts[0]).names == list(monitoring.PIPELINE_RUNS.column_names)
    assert (row["job"], row["status"], row["records_read"], row["records_dead_lettered"]) == \
        ("ingest_batch", "success", 1000, 40)
    assert json.loads(row["details"])["inputs"] == ["data/*.jsonl"]
    dead = {r["error_type"]: (r["count_records"], r["stage"]) for r in pq.read_table(parts[1]).to_pylist()}
    assert dead == {"malformed_json": (30, "parse"), "invalid_timestamp": (10, "validate")}


def test_failed_and_unbalanced_ingest_runs_are_recorded_as_failed(strata_home):
    with pytest.raises(FileNotFoundError):
        with recorder.ingest_run("local", ["missing/*.jsonl"]) as run:
            raise FileNotFoundError("no input matches 'missing/*.jsonl'")
    (part,) = (strata_home / "lake" / "monitoring" / "pipeline_runs").rglob(f"{run.run_id}.parquet")
    (row,) = pq.read_table(part).to_pylist()
    assert row["status"] == "failed" and row["error_message"] == "FileNotFoundError: no input matches 'missing/*.jsonl'"
    with recorder.ingest_run("local", ["x"]) as run:
        run.summary = dataclasses.replace(SUMMARY, accepted=900)  # 60 records lost
    (part,) = (strata_home / "lake" / "monitoring" / "pipeline_runs").rglob(f"{run.run_id}.parquet")
    (row,) = pq.read_table(part).to_pylist()
    assert row["status"] == "failed" and row["error_message"].startswith("lost records: read 1000")


def test_ingest_run_to_bigquery_creates_the_declared_tables():
    with FakeBigQuery() as fake, loopback_only():
        with recorder.ingest_run("bigquery", ["gs://b/x.jsonl"], bq_project="strata-test",
                                 bq_endpoint=fake.endpoint) as run:
            run.summary = SUMMARY
        table = fake.tables[("strata-test", "monitoring", "pipeline_runs")]
        assert [f["name"] for f in table["schema"]["fields"]] == list(monitoring.PIPELINE_RUNS.column_names)
        assert table["timePartitioning"] == {"type": "DAY", "field": "finished_at"}
        (row,) = fake.rows("strata-test", "monitoring", "pipeline_runs")
        assert row["run_id"] == run.run_id and row["records_accepted"] == 960 and row["target"] == "bigquery"
        assert {r["error_type"] for r in fake.rows("strata-test", "monitoring", "run_dead_letters")} == \
            {"malformed_json", "invalid_timestamp"}


def test_recording_errors_never_fail_the_run(strata_home, caplog):
    (strata_home / "lake").mkdir(parents=True)
    (strata_home / "lake" / "monitoring").write_text("not a directory")
    with recorder.ingest_run("local", ["x"]) as run:
        run.summary = SUMMARY
    assert "could not record run" in caplog.text


def test_dbt_run_results_become_dbt_results_rows(tmp_path):
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    (tmp_path / "manifest.json").write_text(json.dumps({
        "nodes": {"model.strata.stg_events": {"resource_type": "model", "name": "stg_events"},
                  "test.strata.primary_key_stg_events.abc": {
                      "resource_type": "test", "name": "primary_key_stg_events",
                      "attached_node": "model.strata.stg_events"}},
        "unit_tests": {"unit_test.strata.stg_events.sessions": {
            "resource_type": "unit_test", "name": "sessions",
            "depends_on": {"nodes": ["model.strata.stg_events"]}}}}))
    (tmp_path / "run_results.json").write_text(json.dumps({
        "metadata": {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")},
        "results": [
            {"unique_id": "model.strata.stg_events", "status": "success", "execution_time": 2.5,
             "adapter_response": {"rows_affected": 10, "bytes_processed": 5_000_000, "bytes_billed": 10_485_760,
                                  "slot_ms": 1234, "job_id": "job-1"}, "failures": None, "message": "MERGE (10)"},
            {"unique_id": "test.strata.primary_key_stg_events.abc", "status": "fail", "execution_time": 0.5,
             "adapter_response": {}, "failures": 3, "message": "Got 3 results"},
            {"unique_id": "unit_test.strata.stg_events.sessions", "status": "pass", "execution_time": 0.1,
             "adapter_response": {}, "failures": 0, "message": None},
        ]}))
    rows = {r["name"]: r for r in recorder.dbt_result_rows("transform-1", dt.datetime.now(dt.timezone.utc), started,
                                                           estimates={"test.strata.primary_key_stg_events.abc": 99},
                                                           target_dir=tmp_path)}
    model, test, unit = rows["stg_events"], rows["primary_key_stg_events"], rows["sessions"]
    assert (model["bytes_scanned"], model["bytes_billed"], model["slot_ms"], model["cost_source"]) == \
        (5_000_000, 10_485_760, 1234, "bigquery")
    assert (test["status"], test["failures"], test["attached_node"]) == ("fail", 3, "model.strata.stg_events")
    assert (test["bytes_scanned"], test["cost_source"]) == (99, "duckdb_estimate")
    assert unit["resource_type"] == "unit_test" and unit["attached_node"] == "model.strata.stg_events"
    assert set(model) == set(monitoring.DBT_RESULTS.column_names)
    # A run_results.json older than the run is another run's: nothing is taken from it.
    assert recorder.dbt_result_rows("transform-2", dt.datetime.now(dt.timezone.utc),
                                    dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1), target_dir=tmp_path) == []
