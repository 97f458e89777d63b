"""The Airflow DAGs (orchestration/dags), in Airflow's own venv (`make airflow`; CI builds it):
a DagBag import with no errors in both modes, the failure alert posted to a webhook, and
`airflow dags test` of the daily DAG against the local warehouse (Google operators swapped for
the local CLI by STRATA_ORCHESTRATION_MODE=local, not by editing the DAG)."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import pytest

from conftest import need_service

ROOT = pathlib.Path(__file__).resolve().parents[1]
DAGS = ROOT / "orchestration" / "dags"

pytestmark = pytest.mark.slow


@pytest.fixture
def airflow(tmp_path):
    python = os.environ.get("STRATA_AIRFLOW_PYTHON")
    need_service(bool(python) and pathlib.Path(python).exists(),
                 "Airflow venv not built: run `make airflow` (CI does) or set STRATA_AIRFLOW_PYTHON")
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STRATA_ORCHESTRATION"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(DAGS), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__UNIT_TEST_MODE="False", PYTHONPATH=str(DAGS), STRATA_GCP_PROJECT="my-project",
               NO_GCE_CHECK="true", GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9",
               GCE_METADATA_ROOT="127.0.0.1:9")

    def run(code: str = "", *, args: list[str] | None = None, extra_env: dict | None = None, timeout: int = 300):
        argv = [python, "-c", textwrap.dedent(code)] if args is None else [str(pathlib.Path(python).parent / "airflow"), *args]
        return subprocess.run(argv, capture_output=True, text=True, env={**env, **(extra_env or {})},
                              cwd=tmp_path, timeout=timeout)

    return run


DAGBAG = """
    import json
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=%r)
    print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                      "dags": {d.dag_id: {
                                          "tasks": {t.task_id: {"type": type(t).__name__, "retries": t.retries,
                                                                "backoff": t.retry_exponential_backoff,
                                                                "alert": t.on_failure_callback is not None,
                                                                "upstream": sorted(t.upstream_task_ids)}
                                                    for t in d.tasks}} for d in bag.dags.values()}}))
""" % str(DAGS)


@pytest.mark.parametrize("mode, operators", [
    ("gcp", {"wait_for_new_files": "GCSObjectsWithPrefixExistenceSensor", "ingest_batch": "DataflowStartFlexTemplateOperator",
             "transform_staging": "CloudRunExecuteJobOperator", "transform_curated_mart": "CloudRunExecuteJobOperator",
             "source_freshness": "CloudRunExecuteJobOperator", "publish_data_version": "CloudRunExecuteJobOperator"}),
    ("local", {"wait_for_new_files": "PythonSensor", "ingest_batch": "BashOperator", "transform_staging": "BashOperator",
               "transform_curated_mart": "BashOperator", "source_freshness": "BashOperator",
               "publish_data_version": "BashOperator"}),
])
def test_dagbag_imports_without_errors(airflow, mode, operators):
    proc = airflow(DAGBAG, extra_env={"STRATA_ORCHESTRATION_MODE": mode})
    assert proc.returncode == 0, proc.stderr[-3000:]
    bag = json.loads(proc.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert set(bag["dags"]) == {"strata_hourly", "strata_daily"}
    hourly, daily = bag["dags"]["strata_hourly"]["tasks"], bag["dags"]["strata_daily"]["tasks"]
    assert hourly["transform_staging"]["upstream"] == ["ingest_batch"]
    assert hourly["ingest_batch"]["upstream"] == ["wait_for_new_files"]
    assert daily["source_freshness"]["upstream"] == ["transform_curated_mart"]
    assert daily["publish_data_version"]["upstream"] == ["source_freshness"]
    for task_id, task in {**hourly, **daily}.items():
        assert task["type"] == operators[task_id], task_id
        assert task["retries"] == 3 and task["backoff"] and task["alert"], task_id


def test_failure_alert_posts_to_the_webhook(airflow):
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = airflow("""
            import datetime as dt, types
            from strata_airflow import alerts
            ti = types.SimpleNamespace(dag_id="strata_daily", task_id="source_freshness", run_id="r1",
                                       try_number=4, log_url="http://127.0.0.1/log")
            alerts.notify_failure({"task_instance": ti, "exception": RuntimeError("raw.events is stale"),
                                   "logical_date": dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)})
        """, extra_env={"STRATA_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/alerts"})
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert received == [{"text": ":rotating_light: [CRITICAL] pipeline_failure: strata_daily.source_freshness\n"
                                 "raw.events is stale",
                         "source": "airflow", "severity": "critical", "rule": "pipeline_failure",
                         "dag_id": "strata_daily",
                         "task_id": "source_freshness", "run_id": "r1", "try_number": 4,
                         "logical_date": "2026-01-02T00:00:00+00:00", "log_url": "http://127.0.0.1/log",
                         "error": "raw.events is stale"}]


def test_daily_dag_runs_against_the_local_warehouse(airflow, strata_home, tmp_path):
    from strata import cli, transform

    data = tmp_path / "events"
    assert cli.main(["generate", "--users", "40", "--days", "2", "--out", str(data)]) == 0
    assert cli.main(["ingest", "batch", "--input", str(data / "events-*")]) == 0
    assert cli.main(["transform"]) == 0
    before = transform.version_store("duckdb").read()
    strata_cli = str(pathlib.Path(sys.executable).parent / "strata")
    local = {"STRATA_ORCHESTRATION_MODE": "local", "STRATA_CLI": strata_cli, "STRATA_HOME": str(strata_home),
             "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    migrate = airflow(args=["db", "migrate"], extra_env=local, timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    proc = airflow(args=["dags", "test", "strata_daily", "2026-01-03"], extra_env=local, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    after = transform.version_store("duckdb").read()
    assert after and after != before, "the DAG's last step did not publish a new data version"
    from strata import warehouse

    _, rows = warehouse.query("select count(*) from mart.business_metrics")
    assert rows[0][0] > 0
    for task in ("transform_curated_mart", "source_freshness", "publish_data_version"):
        assert f"task_id={task}" in proc.stdout + proc.stderr or task in proc.stdout + proc.stderr
