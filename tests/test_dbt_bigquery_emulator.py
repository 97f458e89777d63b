"""The dbt project on a local BigQuery stand-in (bqemulator on 127.0.0.1): a conformance check.

What it shows: every model's full-build SQL, as dbt-bigquery compiles it (CTAS with
partition_by/cluster_by/OPTIONS), is accepted and run by the emulator's BigQuery dialect, and the
data tests and the SQL-only unit tests pass on what it built.

What it cannot show (see transforms_sql/README.md): exact NUMERIC behaviour (the emulator loses
NUMERIC precision in casts and DIV, so the money unit test is excluded), and the incremental
insert_overwrite path (the emulator's SQL translator rejects dbt-bigquery's own
`array_agg(distinct ... ignore nulls)` partition script).

bqemulator is not in requirements.txt (it pins packages of its own): `make bqemulator` builds
.venv-bqemulator from requirements-bqemulator.txt, and `make test` then points
STRATA_BQEMULATOR_PYTHON at it. Without it the test skips locally and fails in CI
(STRATA_REQUIRE_SERVICES=1). Its DuckDB extension downloads are disabled.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from strata_core import paths
from strata import transform
from tests.fakes import bqemulator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with bqemulator.running(tmp_path_factory.mktemp("bqemu")) as endpoint:
        yield endpoint


def _seed(endpoint: str) -> None:
    paths.use_offline_env()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from strata_core import schemas

    client = bigquery.Client(project="strata-local", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=endpoint))
    client.create_dataset("raw", exists_ok=True)
    for name in ("events", "users", "dead_letters"):
        table = bigquery.Table(f"strata-local.raw.{name}", schema=[
            bigquery.SchemaField.from_api_repr(f) for f in schemas.bigquery_schema(name)["fields"]])
        layout = schemas.BIGQUERY_LAYOUT[name]
        if layout["partition_field"]:
            table.time_partitioning = bigquery.TimePartitioning(field=layout["partition_field"])
        table.clustering_fields = layout["cluster_fields"]
        client.create_table(table, exists_ok=True)
    rows = []
    for i in range(16):
        ts = dt.datetime(2026, 1, 1, 23, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=13 * i)
        kind = ("view_item", "add_to_cart", "begin_checkout", "purchase")[i % 4]
        rows.append({"event_id": f"e{i % 15}", "event_type": kind, "user_id": f"u{i % 2}",
                     "event_timestamp": ts.isoformat(), "event_date": ts.date().isoformat(),
                     "received_at": f"2026-01-02T01:00:{i:02d}+00:00", "ingest_source": "batch",
                     "row_key": f"r{i}", "pipeline_version": "test", "platform": "web",
                     "amount": "12.5" if kind == "purchase" else None, "currency": "EUR" if kind == "purchase" else None,
                     "properties": json.dumps({"item_id": "sku-1", "order_id": i}), "context": "{}"})
    assert client.insert_rows_json("strata-local.raw.events", rows) == []
    assert client.insert_rows_json("strata-local.raw.users", [
        {"user_id": "u0", "created_at": "2026-01-01T09:00:00+00:00", "user_source": "signup_event",
         "row_key": "x", "received_at": "2026-01-02T00:00:00+00:00", "pipeline_version": "test"}]) == []


def test_full_build_runs_on_the_emulator(emulator, strata_home, monkeypatch):
    _seed(emulator)
    monkeypatch.setenv("STRATA_BQ_API_ENDPOINT", emulator)
    res = transform.invoke_dbt(transform.dbt_args(
        "build", target="bigquery_emulator", full_refresh=True,
        extra=["--exclude", "business_metrics_exact_money_and_counts"]))
    summary = transform._summarise(res)
    assert res.success, summary["failures"]
    assert summary["models"]["built"] == 15  # 12 layer models + 3 monitoring models
    assert summary["tests"]["failed"] == 0 and summary["tests"]["passed"] > 40
    assert summary["unit_tests"]["passed"] == 5
