"""The alert rules on hand-made facts: each rule fires when it should, says why, and stays quiet
otherwise; overrides are validated; the report's status and text."""

from __future__ import annotations

import datetime as dt

import pytest

from strata_monitor import report, rules
from strata_monitor.facts import MARTS, Facts

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)


def healthy() -> Facts:
    """Everything fine: fresh marts and sources, tests passing, low dead-letter rate."""
    built = NOW - dt.timedelta(hours=1)
    return Facts(
        now=NOW,
        runs=[
            {"run_id": "transform-2", "job": "transform", "status": "success", "started_at": built,
             "finished_at": built, "duration_s": 10.0},
            {"run_id": "ingest_batch-2", "job": "ingest_batch", "status": "success", "started_at": built,
             "finished_at": built, "duration_s": 5.0, "records_read": 10_000, "records_dead_lettered": 150,
             "records_per_s": 2000.0},
        ],
        dead_letters_by_run={"ingest_batch-2": {"malformed_json": 100, "invalid_timestamp": 50}},
        latest_nodes=[
            {"run_id": "transform-2", "resource_type": "test", "name": "primary_key_business_metrics_date",
             "attached_node": "model.strata.business_metrics", "status": "pass", "failures": 0, "message": None,
             "finished_at": built},
        ],
        last_built={m: built for m in MARTS},
        source_loaded_at={"raw.events": built, "raw.users": built, "raw.dead_letters": built},
    )


def alerts(facts: Facts, overrides=None) -> list[rules.Alert]:
    return rules.evaluate(facts, rules.effective_rules(overrides))


def test_healthy_facts_raise_nothing():
    assert alerts(healthy()) == []
    assert report.build(healthy()).status == "ok"


def test_pipeline_failure_is_critical_until_the_job_succeeds_again():
    f = healthy()
    failed_at = NOW - dt.timedelta(minutes=5)
    f.runs.insert(0, {"run_id": "ingest_batch-3", "job": "ingest_batch", "status": "failed", "started_at": failed_at,
                      "finished_at": failed_at, "duration_s": 0.1,
                      "error_message": "FileNotFoundError: no input matches 'data/*.jsonl'"})
    (a,) = alerts(f)
    assert (a.severity, a.rule, a.subject) == ("critical", "pipeline_failure", "ingest_batch")
    assert "no input matches" in a.message and "Last success: 2026-03-01 11:00 UTC" in a.message
    assert report.build(f).status == "critical"
    later = NOW - dt.timedelta(minutes=1)
    f.runs.insert(0, {**f.runs[2], "run_id": "ingest_batch-4", "started_at": later, "finished_at": later})
    assert alerts(f) == []


def test_a_failed_dbt_test_is_critical_and_names_model_and_rows():
    f = healthy()
    f.latest_nodes.append({"run_id": "transform-2", "resource_type": "test", "name": "primary_key_user_metrics",
                           "attached_node": "model.strata.user_metrics", "status": "fail", "failures": 3,
                           "message": "Got 3 results, configured to fail if != 0", "finished_at": NOW})
    (a,) = alerts(f)
    assert (a.severity, a.rule) == ("critical", "dbt_test_failure")
    assert "on user_metrics: 3 failing rows" in a.message and "Got 3 results" in a.message


def test_mart_sla_per_mart_and_for_the_raw_source():
    f = healthy()
    f.last_built["funnel_daily"] = NOW - dt.timedelta(hours=30)
    del f.last_built["ml_training"]
    found = {a.subject: a for a in alerts(f)}
    assert set(found) == {"mart.funnel_daily", "mart.ml_training"}
    assert "last built 30.0 h ago" in found["mart.funnel_daily"].message and "SLA is 26 h" in found["mart.funnel_daily"].message
    assert "never been built" in found["mart.ml_training"].message
    # A per-mart SLA from the admin: funnel_daily may be 2 days old.
    overrides = [{"name": "mart_sla", "params": {"mart_sla_hours": {"funnel_daily": 48}}}]
    assert {a.subject for a in alerts(f, overrides)} == {"mart.ml_training"}
    f = healthy()
    f.source_loaded_at["raw.events"] = NOW - dt.timedelta(hours=40)
    (a,) = alerts(f)
    assert a.subject == "raw.events" and "40.0 h ago" in a.message and "source SLA is 36 h" in a.message


def test_dead_letter_rate_above_the_threshold_explains_the_causes():
    f = healthy()
    f.runs[1].update(records_dead_lettered=1_500)
    f.dead_letters_by_run["ingest_batch-2"] = {"malformed_json": 1_200, "invalid_timestamp": 300}
    (a,) = alerts(f)
    assert (a.severity, a.rule) == ("warning", "dead_letter_rate")
    assert a.message.startswith("15.0 % of 10,000 records were dead-lettered by ingest_batch-2 (threshold 5 %)")
    assert "most common: malformed_json 1,200, invalid_timestamp 300" in a.message
    assert alerts(f, [{"name": "dead_letter_rate", "params": {"threshold": 0.2}}]) == []
    assert alerts(f, [{"name": "dead_letter_rate", "enabled": False}]) == []
    (a,) = alerts(f, [{"name": "dead_letter_rate", "severity": "critical"}])
    assert a.severity == "critical"


def test_cost_spike_against_the_models_own_history():
    f = healthy()
    for i in range(8):
        f.node_history.append({"run_id": f"transform-{i:02d}", "finished_at": NOW - dt.timedelta(hours=8 - i),
                               "resource_type": "model", "name": "stg_events", "bytes_scanned": 40e6 + i * 1e6,
                               "status": "success", "execution_s": 1.0})
    assert alerts(f) == []
    f.node_history.append({"run_id": "transform-99", "finished_at": NOW, "resource_type": "model",
                           "name": "stg_events", "bytes_scanned": 900e6, "status": "success", "execution_s": 9.0})
    (a,) = alerts(f)
    assert (a.rule, a.subject) == ("cost_spike", "model stg_events")
    assert "scanned 900.0 MB" in a.message and "x its usual (median of 8 runs" in a.message
    # API history per query name, per minute
    f = healthy()
    f.api_costs = [{"query_name": "revenueMetrics", "bucket_start": NOW - dt.timedelta(minutes=10 - i),
                    "executions": 3, "bytes_total": 3 * 20e6, "bytes_max": 20e6} for i in range(6)]
    f.api_costs.append({"query_name": "revenueMetrics", "bucket_start": NOW, "executions": 1,
                        "bytes_total": 400e6, "bytes_max": 400e6})
    (a,) = alerts(f)
    assert a.subject == "api revenueMetrics" and "20.0x its usual" in a.message


def drift_row(kind, name, event_type, seen, value="1", first_build=False):
    """A schema_drift row; the first build (the baseline) loads at 3 days ago + 10 minutes."""
    loaded = NOW - dt.timedelta(days=3) + dt.timedelta(minutes=10) if first_build else seen + dt.timedelta(minutes=10)
    return {"kind": kind, "name": name, "event_type": event_type, "first_seen_at": seen, "loaded_at": loaded,
            "example_event_id": "evt-1", "example_value": value}


def test_schema_drift_after_the_baseline_and_not_for_declared_keys():
    f = healthy()
    start = NOW - dt.timedelta(days=3)
    f.schema_drift = [
        drift_row("properties", "order_id", "purchase", start, first_build=True),  # the schema as found
        drift_row("extra", "sdk_version", "page_view", start + dt.timedelta(minutes=5), first_build=True),
        drift_row("properties", "coupon", "purchase", NOW - dt.timedelta(hours=2), '"WINTER"'),  # new
        drift_row("properties", "item_count", "purchase", NOW - dt.timedelta(hours=2)),  # declared in the contract
        drift_row("extra", "app_build", "purchase", NOW - dt.timedelta(hours=1), '"1.2.3"'),  # new
        drift_row("event_type", "purchase", "purchase", start, first_build=True),
    ]
    found = {a.subject: a for a in alerts(f)}
    assert set(found) == {"properties.coupon on purchase", "extra.app_build on purchase"}
    assert all(a.severity == "info" for a in found.values())
    assert "'coupon' on purchase events" in found["properties.coupon on purchase"].message
    assert 'value "WINTER"' in found["properties.coupon on purchase"].message
    assert "a top-level field (kept in extra)" in found["extra.app_build on purchase"].message
    assert report.build(f).status == "ok"  # info alerts do not change the status


def test_new_source_undeclared_event_type_and_new_ingest_path():
    f = healthy()
    start = NOW - dt.timedelta(days=2)
    f.schema_drift = [
        drift_row("ingest_source", "batch", "", start, first_build=True),
        drift_row("event_type", "page_view", "page_view", start, first_build=True),
        drift_row("event_type", "wishlist_add", "wishlist_add", start, first_build=True),
        drift_row("ingest_source", "stream", "", NOW - dt.timedelta(hours=3)),
    ]
    found = {a.subject for a in alerts(f)}
    assert found == {"event_type wishlist_add", "ingest_source stream"}


def test_overrides_are_validated_with_precise_messages():
    assert rules.validate_override("dead_letter_rate", "critical", {"threshold": 0.1}) == {"threshold": 0.1}
    assert rules.validate_override("cost_spike", None, {"factor": 3}) == {"factor": 3.0}
    with pytest.raises(ValueError, match="unknown rule 'nope'; expected one of pipeline_failure"):
        rules.validate_override("nope", None, {})
    with pytest.raises(ValueError, match="severity 'urgent': expected one of critical, warning, info"):
        rules.validate_override("anomaly", "urgent", {})
    with pytest.raises(ValueError, match="has no parameter treshold; its parameters are threshold"):
        rules.validate_override("dead_letter_rate", None, {"treshold": 0.1})
    with pytest.raises(ValueError, match="parameter 'threshold' must be float"):
        rules.validate_override("dead_letter_rate", None, {"threshold": "ten"})
    with pytest.raises(ValueError, match="must be >= 0"):
        rules.validate_override("anomaly", None, {"k": -1})
    # An invalid stored override falls back to the rule's defaults instead of breaking the check.
    (eff,) = [e for e in rules.effective_rules([{"name": "anomaly", "params": {"k": "x"}}]) if e.name == "anomaly"]
    assert eff.params == rules.RULES_BY_NAME["anomaly"].defaults


def test_anomaly_rule_and_report_on_a_series():
    f = healthy()
    start = dt.date(2026, 1, 5)
    values = [200.0 * (0.6 if (start + dt.timedelta(days=i)).weekday() >= 5 else 1.0) * (1 + 0.01 * ((i * 5) % 7 - 3))
              for i in range(55)]
    values[-1] *= 0.5  # the last day: half the usual orders
    f.series["orders"] = [(start + dt.timedelta(days=i), v) for i, v in enumerate(values)]
    (a,) = alerts(f)
    assert (a.severity, a.rule, a.subject) == ("warning", "anomaly", f"orders {start + dt.timedelta(days=54)}")
    assert "orders (" in a.message and "% below the usual" in a.message and "typical range" in a.message
    assert a.fingerprint.startswith("anomaly|orders")
    r = report.build(f)
    (orders,) = [s for s in r.anomalies if s["metric"] == "orders"]
    assert orders["status"] == "anomaly" and len(orders["flagged"]) == 1
    text = report.render_text(r)
    assert text.splitlines()[0].startswith("Strata health: WARNING")
    assert "orders" in text and "Anomalies  1 series watched" in text
    body = r.as_json()
    assert body["status"] == "warning"
    assert body["alerts"] == [{"severity": "warning", "rule": "anomaly", "subject": a.subject, "message": a.message}]
