"""``strata check`` end to end on generated data, through the real commands: normal data raises
no alert; a day with half the usual purchases raises an anomaly alert with its explanation; a
burst of dead letters raises the dead-letter alert; a failed ingest is critical (exit 1) until an
ingest succeeds; alerts reach a webhook on 127.0.0.1 once, and their resolution follows."""

from __future__ import annotations

import json
import re

import pytest

from tests import monitoring_home
from tests.fakes.webhook import WebhookReceiver

pytestmark = pytest.mark.slow


def test_normal_data_is_healthy(monitored_home):
    status, report = monitored_home.check_json("--no-notify")
    assert status == 0, report["alerts"]
    assert report["status"] == "ok" and report["alerts"] == []
    # The report covers freshness, tests, dead letters, anomalies, runs and cost.
    assert {f["relation"] for f in report["freshness"]} >= {"raw.events", "mart.business_metrics", "mart.funnel_daily"}
    assert all(f["ok"] for f in report["freshness"])
    assert report["tests"]["passed"] > 60 and report["tests"]["failed"] == 0
    assert 0.01 < report["dead_letters"]["last_run"]["rate"] < 0.05
    judged = {a["metric"]: a for a in report["anomalies"]}
    assert {"dau", "orders", "revenue", "events.purchase", "duplicate_rate"} <= set(judged)
    assert all(a["status"] == "normal" for a in judged.values()), judged
    assert [r["job"] for r in report["runs"]] == ["transform", "ingest_batch"]
    assert report["cost"]["source"] == "duckdb_estimate" and report["cost"]["last_build"]["bytes"] > 1e6
    text = monitored_home.strata("check", "--no-notify").stdout
    assert text.startswith("Strata health: OK") and "Freshness" in text and "Cost" in text
    assert len(text.splitlines()) <= 40  # one screen


def test_injected_anomalies_raise_the_right_alerts(tmp_path):
    home = monitoring_home.build(tmp_path / "home", drop_purchases_on_last_day=True)
    with WebhookReceiver() as hook:
        status, report = home.check_json("--webhook", hook.url)
        assert status == 0 and report["status"] == "warning"
        rules = {a["rule"] for a in report["alerts"]}
        assert rules == {"anomaly"}, report["alerts"]
        subjects = {a["subject"]: a["message"] for a in report["alerts"]}
        orders = subjects[f"orders {home.last_day}"]
        weekday = home.last_day.strftime("%A")
        # The generator has no weekly rhythm, so the detector compares with the usual level.
        assert orders.startswith(f"{weekday}'s orders (") and re.search(f"% below the usual ({weekday}|level)", orders)
        assert "typical range" in orders
        assert f"events.purchase {home.last_day}" in subjects
        assert len(hook.bodies) == len(report["alerts"])
        assert any(f"[WARNING] anomaly: orders {home.last_day}" in t for t in hook.texts())

        # The same alerts again: nothing new is posted.
        home.check_json("--webhook", hook.url)
        assert len(hook.bodies) == len(report["alerts"])

        # A burst of dead letters: one third of a new file's records are bad.
        burst = home.path / "burst"
        home.strata("generate", "--users", "40", "--days", "1", "--bad-rate", "0.5", "--seed", "9",
                    "--start-date", home.last_day.isoformat(), "--out", str(burst))
        home.strata("ingest", "batch", "--input", str(burst / "events-*"))
        status, report = home.check_json("--webhook", hook.url)
        (dead,) = [a for a in report["alerts"] if a["rule"] == "dead_letter_rate"]
        assert dead["severity"] == "warning" and dead["subject"] == "ingest_batch"
        assert "% of" in dead["message"] and "threshold 5 %" in dead["message"] and "most common:" in dead["message"]
        assert any("[WARNING] dead_letter_rate" in t for t in hook.texts())

        # A failed ingest is critical, and `strata check` exits 1, until an ingest succeeds.
        failed = home.strata("ingest", "batch", "--input", str(home.path / "missing" / "*.jsonl"), check=False)
        assert failed.returncode == 2
        status, report = home.check_json("--webhook", hook.url)
        assert status == 1 and report["status"] == "critical"
        (crit,) = [a for a in report["alerts"] if a["severity"] == "critical"]
        assert crit["rule"] == "pipeline_failure" and crit["subject"] == "ingest_batch"
        assert "missing" in crit["message"]
        assert any("[CRITICAL] pipeline_failure: ingest_batch" in t for t in hook.texts())
        home.strata("ingest", "batch", "--input", str(home.data / "events-*"))
        status, report = home.check_json("--webhook", hook.url)
        assert status == 0 and "pipeline_failure" not in {a["rule"] for a in report["alerts"]}
        assert any(t.startswith(":white_check_mark: [RESOLVED] pipeline_failure") for t in hook.texts())
    log = (home.path / "monitoring" / "alerts.log").read_text()
    assert "[CRITICAL] pipeline_failure" in log and "[WARNING] anomaly" in log


def test_recorded_runs_and_nodes(monitored_home):
    rows = json.loads(monitored_home.strata(
        "query", "select job, status, records_read, records_accepted, records_dead_lettered, records_per_s "
                 "from monitoring.pipeline_runs order by started_at", "--json").stdout)
    assert [r["job"] for r in rows] == ["ingest_batch", "transform"]
    ingest = rows[0]
    assert ingest["records_read"] == ingest["records_accepted"] + ingest["records_dead_lettered"] > 100_000
    by_type = json.loads(monitored_home.strata(
        "query", "select sum(count_records) as n, count(*) as types from monitoring.run_dead_letters", "--json").stdout)[0]
    assert by_type["n"] == ingest["records_dead_lettered"] and by_type["types"] >= 15
    nodes = json.loads(monitored_home.strata(
        "query", "select resource_type, name, status, bytes_scanned, cost_source from monitoring.dbt_results",
        "--json").stdout)
    models = {n["name"]: n for n in nodes if n["resource_type"] == "model"}
    assert len(models) == 15 and all(m["status"] == "success" for m in models.values())
    # Every model got its DuckDB estimate of BigQuery's bytes (dbt_costs reaches into dbt's
    # adapter: this is the test that notices when an upgrade breaks it).
    assert all(m["cost_source"] == "duckdb_estimate" and m["bytes_scanned"] > 0 for m in models.values()), models
    tests = [n for n in nodes if n["resource_type"] in ("test", "unit_test")]
    assert len(tests) > 60 and {t["status"] for t in tests} == {"pass"}
