"""The dbt side of monitoring: a primary-key test on every model (compound keys included), the
dead-letter source's freshness decision, the monitoring models held to their declaration in
strata_core/monitoring.py, and their incremental builds (new keys found, first-seen kept,
partition counts right after new data)."""

from __future__ import annotations

import datetime as dt
import json
import re

import duckdb
import pytest

from strata import transform
from strata_core import monitoring
from tests import monitoring_home

#: The keys of the models the issue named (they had only ad-hoc uniqueness tests before).
COMPOUND_KEYS = {
    "event_metrics": ["event_type", "date"],
    "user_metrics": ["user_id", "date"],
    "ml_features": ["user_id", "as_of_date"],
    "funnel_daily": ["event_date", "step_number"],
    "ml_training": ["user_id", "as_of_date"],
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("parse")
        mp.setenv("STRATA_HOME", str(home))
        res = transform.invoke_dbt(transform.dbt_args("parse", target="duckdb"))
        assert res.success, res.exception
        return json.loads((home / "dbt" / "target" / "manifest.json").read_text())


def _primary_keys(manifest) -> dict[str, list[str]]:
    keys = {}
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if node["resource_type"] == "test" and meta.get("name") == "primary_key":
            model = node["attached_node"].split(".")[-1]
            keys[model] = meta["kwargs"]["columns"]
    return keys


def test_every_model_has_a_primary_key_test(manifest):
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    keys = _primary_keys(manifest)
    assert set(keys) == models, f"models without a primary_key test: {sorted(models - set(keys))}"
    for model, columns in COMPOUND_KEYS.items():
        assert keys[model] == columns, model
    for table in monitoring.TABLES:
        if table.built_by == "dbt":
            assert keys[table.name] == list(table.key), table.name


def test_the_dead_letter_source_states_why_it_has_no_freshness_rule(manifest):
    sources = {s["name"]: s for s in manifest["sources"].values()}
    dead = sources["dead_letters"]
    assert not (dead.get("freshness") or {}).get("error_after", {}).get("count")
    reason = dead["meta"]["no_freshness_because"]
    assert "dead_letter_rate" in reason and "healthy" in reason
    for name in ("events", "users"):
        assert sources[name]["freshness"]["error_after"]["count"]


def test_bigquery_jobs_are_labelled_from_the_query_comment():
    project = (transform.PROJECT_DIR / "dbt_project.yml").read_text()
    assert re.search(r"query-comment:\s*\n\s*comment: \"\{\{ strata.query_comment\(node\) \}\}\"\s*\n\s*job-label: true",
                     project)
    macro = (transform.PROJECT_DIR / "macros" / "monitoring" / "query_comment.sql").read_text()
    from strata_monitor import cost

    for key in ("app", "component", "dbt_node"):
        assert f"'{key}'" in macro and f"'{key}'" in cost.bigquery_jobs_sql("region-eu")


def _duckdb_kind(data_type: str) -> str:
    t = data_type.upper()
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return {"VARCHAR": "string", "DATE": "date", "BIGINT": "integer", "INTEGER": "integer", "DOUBLE": "float",
            "BOOLEAN": "boolean"}.get(t, t)


@pytest.mark.slow
def test_monitoring_tables_match_their_declaration(monitored_home):
    con = duckdb.connect(str(monitored_home.path / "warehouse.duckdb"), read_only=True)
    try:
        for table in monitoring.TABLES:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'monitoring' and table_name = ? order by ordinal_position", [table.name]).fetchall()
            assert [c for c, _ in columns] == list(table.column_names), table.name
            for (name, data_type), field in zip(columns, table.fields):
                expected = {"enum": "string", "json": "string"}.get(field.kind, field.kind)
                assert _duckdb_kind(data_type) == expected, (table.name, name, data_type, field.kind)
    finally:
        con.close()


@pytest.mark.slow
def test_incremental_monitoring_models_follow_new_data(tmp_path):
    home = monitoring_home.Home(tmp_path / "home", tmp_path / "home" / "data", dt.date(2026, 1, 5), dt.date(2026, 1, 7))
    home.path.mkdir(parents=True)
    home.strata("generate", "--users", "120", "--days", "3", "--seed", "3", "--start-date", "2026-01-05",
                "--out", str(home.data))
    home.strata("ingest", "batch", "--input", str(home.data / "events-*"))
    home.strata("transform")

    def query(sql: str) -> list[dict]:
        return json.loads(home.strata("query", sql, "--json").stdout)

    before = {(r["kind"], r["event_type"], r["name"]): r["first_seen_at"]
              for r in query("select * from monitoring.schema_drift")}
    assert ("properties", "purchase", "order_id") in before and ("ingest_source", "", "batch") in before
    late = home.path / "late.jsonl"
    late.write_text("\n".join(json.dumps(e) for e in [
        {"event_id": "late-1", "event_type": "purchase", "user_id": "u-late", "event_timestamp": "2026-01-07T10:00:00Z",
         "amount": 12.5, "currency": "EUR", "properties": {"order_id": "o-1", "coupon": "WINTER"},
         "app_build": "7.1"},
        {"event_id": "late-2", "event_type": "wishlist_add", "user_id": "u-late",
         "event_timestamp": "2026-01-07T10:05:00Z", "properties": {"item_id": "sku-9"}},
    ]) + "\n")
    home.strata("ingest", "batch", "--input", str(late))
    home.strata("transform")
    after = {(r["kind"], r["event_type"], r["name"]): r for r in query("select * from monitoring.schema_drift")}
    for key, first_seen in before.items():
        assert after[key]["first_seen_at"] == first_seen, key  # known keys keep their first sighting
    new = set(after) - set(before)
    assert {("properties", "purchase", "coupon"), ("extra", "purchase", "app_build"),
            ("event_type", "wishlist_add", "wishlist_add"), ("properties", "wishlist_add", "item_id")} <= new
    coupon = after[("properties", "purchase", "coupon")]
    assert coupon["example_event_id"] == "late-1" and coupon["example_value"] == '"WINTER"'
    # partition_stats after the incremental run equals a count from raw, day by day
    stats = {r["partition_date"]: r for r in query(
        "select * from monitoring.partition_stats where relation = 'raw.events'")}
    raw = {r["d"]: r for r in query(
        "select event_date as d, count(*) as n, count(distinct event_id) as k from raw.events group by 1")}
    assert {d: (s["count_rows"], s["count_distinct_keys"]) for d, s in stats.items()} == \
        {d: (r["n"], r["k"]) for d, r in raw.items()}
    nulls = {(r["column_name"]): r for r in query(
        "select * from monitoring.null_rates where relation = 'raw.events' and partition_date = '2026-01-07'")}
    assert nulls["user_id"]["count_rows"] == raw["2026-01-07"]["n"]
    # ... and `strata check` reports the new key and the new event type as info alerts.
    status, report = home.check_json("--no-notify")
    info = {(a["rule"], a["subject"]) for a in report["alerts"] if a["severity"] == "info"}
    assert ("schema_drift", "properties.coupon on purchase") in info
    assert ("schema_drift", "extra.app_build on purchase") in info
    assert ("new_source", "event_type wishlist_add") in info
