"""Cost figures: BigQuery-like bytes from real DuckDB profiles, prices, spikes, job labels."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from strata_monitor import cost


def _profile(con, sql: str) -> dict:
    con.execute(sql).fetchall()
    return json.loads(con.get_profiling_information(format="json"))


def test_scan_bytes_from_a_duckdb_profile(tmp_path):
    lake = tmp_path / "lake" / "raw" / "events"
    lake.mkdir(parents=True)
    pq.write_table(pa.table({"event_id": [f"e{i:04d}" for i in range(1000)], "amount": [1.5] * 1000,
                             "user_id": [None if i % 2 else "u1" for i in range(1000)]}), lake / "part.parquet")
    con = duckdb.connect()
    con.execute("create schema raw; create schema mart")
    con.execute(f"create view raw.events as select * from read_parquet('{lake}/*.parquet')")
    con.execute("create table mart.daily as select range::bigint as n, 'x' || range as label, current_date as d "
                "from range(500)")
    con.execute("set enable_profiling = 'no_output'")
    widths = {t: cost.duckdb_widths(lambda sql, p: con.cursor().execute(sql, p).fetchall(), t)
              for t in ("events", "daily")}
    assert widths["events"] == {"event_id": 7.0, "amount": 8.0, "user_id": pytest.approx(2.0, abs=0.3)}
    assert widths["daily"]["n"] == 8.0 and widths["daily"]["d"] == 8.0

    scans = cost.scans_from_profile(_profile(con, "select sum(amount) from raw.events"))
    assert [(s.table, s.rows, s.columns) for s in scans] == [("events", 1000, ("amount",))]
    assert cost.scan_bytes(scans, widths.get) == 1000 * 8
    # The filter column counts too, as on BigQuery; on Parquet DuckDB counts the rows the filter
    # kept (499), which is a partition's rows for a filter on the partition column.
    scans = cost.scans_from_profile(_profile(con, "select sum(amount) from raw.events where event_id > 'e0500'"))
    assert [(s.table, s.rows) for s in scans] == [("events", 499)]
    assert cost.scan_bytes(scans, widths.get) == 499 * (8 + 7)
    scans = cost.scans_from_profile(_profile(con, "select n from mart.daily"))
    assert [(s.table, s.rows) for s in scans] == [("daily", 500)] and cost.scan_bytes(scans, widths.get) == 4000
    assert cost.scan_bytes(cost.scans_from_profile(_profile(con, "select 1")), widths.get) == 0


def test_prices_and_widths():
    assert cost.usd_for_bytes(cost.TIB) == cost.PRICE_PER_TIB_USD == 6.25
    assert cost.usd_for_slot_ms(3_600_000) == cost.PRICE_PER_SLOT_HOUR_USD
    assert cost.logical_width("DECIMAL(38,9)") == 16 and cost.logical_width("TIMESTAMP WITH TIME ZONE") == 8
    assert cost.logical_width("BOOLEAN") == 1 and cost.logical_width("VARCHAR", 12.5) == 12.5
    assert cost.logical_width("VARCHAR") == cost.DEFAULT_STRING_BYTES


def test_spike_needs_history_and_a_floor():
    assert cost.spike([10e6] * 5, 80e6, factor=5, min_history=5, min_bytes=1e6) == pytest.approx(8.0)
    assert cost.spike([10e6] * 5, 40e6, factor=5, min_history=5, min_bytes=1e6) is None
    assert cost.spike([10e6] * 4, 80e6, factor=5, min_history=5, min_bytes=1e6) is None  # no "usual" yet
    assert cost.spike([1e3] * 9, 1e5, factor=5, min_history=5, min_bytes=1e6) is None  # too small to matter


def test_job_labels_and_the_jobs_query():
    assert cost.job_labels("api", "revenueMetrics+conversionFunnel") == {
        "app": "strata", "component": "api", "api_query": "revenuemetrics_conversionfunnel"}
    assert cost.job_labels("dbt", "model.strata.stg_events")["dbt_node"] == "model_strata_stg_events"
    assert len(cost.label_value("x" * 100)) == 63
    sql = cost.bigquery_jobs_sql("region-eu")
    assert "`region-eu`.INFORMATION_SCHEMA.JOBS" in sql and "interval @days day" in sql
    with pytest.raises(ValueError, match="region"):
        cost.bigquery_jobs_sql("eu`; drop table x; --")
