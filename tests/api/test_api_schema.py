"""The committed schema, metric definitions (validation, compilation for both warehouses), the
token command, and the BigQuery query layer (compiled, never sent)."""

from __future__ import annotations

import io
import pathlib

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

SCHEMA_FILE = pathlib.Path(__file__).resolve().parents[2] / "graphql_site" / "schema.graphql"


def test_committed_schema_matches_the_code():
    from graphql import print_schema

    from graphql_site.schema import schema

    current = print_schema(schema.graphql_schema)
    committed = SCHEMA_FILE.read_text()
    assert committed.strip() == current.strip(), (
        "graphql_site/schema.graphql is out of date: run "
        "`python graphql_site/manage.py graphql_schema` and commit the result")


def test_schema_has_the_issue_fields():
    from graphql_site.schema import schema

    fields = schema.graphql_schema.query_type.fields
    for name in ("dailyActiveUsers", "revenueMetrics", "conversionFunnel", "userMetrics", "userEvents",
                 "userBehavior", "userFeatures", "eventFeatures", "trainingData", "metric"):
        assert name in fields, name
    assert str(fields["userEvents"].args["limit"].type) == "Int" and fields["userEvents"].args["limit"].default_value == 50


def test_create_api_token_prints_once_and_stores_hash():
    from graphql_site.tokens.models import ApiToken, hash_token

    out = io.StringIO()
    call_command("create_api_token", "cmd-test", "--rate-limit", "5", stdout=out)
    token = out.getvalue().strip()
    row = ApiToken.objects.get(name="cmd-test")
    assert row.key_hash == hash_token(token) and row.rate_limit_per_minute == 5
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_token", "cmd-test", stdout=io.StringIO())


def _metric(**kw):
    from graphql_site.metrics.models import MetricDefinition

    base = dict(name="m_test", aggregation="count", expression="event_id", owner="tests")
    base.update(kw)
    return MetricDefinition(**base)


@pytest.mark.parametrize("kw,field", [
    ({"name": "Bad Name"}, "name"),
    ({"aggregation": "median"}, "aggregation"),
    ({"expression": "amount; drop table x"}, "expression"),
    ({"aggregation": "sum", "expression": "user_id"}, "aggregation"),
    ({"expression": "property_number", "property_key": "a.b'"}, "property_key"),
    ({"expression": "property_number", "property_key": ""}, "property_key"),
    ({"property_key": "price"}, "property_key"),
    ({"event_types": "purchase,DROP TABLE"}, "event_types"),
    ({"property_filters": {"bad key'": "x"}}, "property_filters"),
    ({"property_filters": ["not", "a", "dict"]}, "property_filters"),
    ({"property_filters": {"k": {"nested": 1}}}, "property_filters"),
    ({"owner": ""}, "owner"),
])
def test_metric_definition_is_validated_on_save(kw, field):
    with pytest.raises(ValidationError) as info:
        _metric(**kw).save()
    assert field in info.value.message_dict, info.value.message_dict


def test_metric_definition_compiles_for_both_warehouses():
    m = _metric(name="m_ok", aggregation="avg", expression="property_number", property_key="price",
                event_types="view_item", property_filters={"category": "books"})
    m.save()
    duck, bq = m.compiled_sql("duckdb"), m.compiled_sql("bigquery")
    assert "json_extract_string(staging.stg_events.properties, '$.price')" in duck
    assert "JSON_VALUE(`stg_events`.`properties`, '$.price')" in bq and "FROM `staging`.`stg_events`" in bq
    for sql in (duck, bq):
        assert "books" not in sql and "view_item" not in sql  # values are bound, never inlined


def test_metric_grains_compile_per_dialect():
    from sqlalchemy_bigquery import BigQueryDialect

    from graphql_site.querylayer import metrics as ql

    spec = ql.MetricSpec(name="x", aggregation="count", expression="event_id")
    assert "ISOWEEK" in str(ql.compile_select(spec, "week").compile(dialect=BigQueryDialect()))
    assert "date_trunc('month'" in str(ql.compile_select(spec, "month").compile(
        dialect=__import__("duckdb_engine").Dialect()))
    # the grain is part of the statement cache key
    assert ql.compile_select(spec, "week")._generate_cache_key() != ql.compile_select(spec, "month")._generate_cache_key()


def test_every_query_compiles_for_bigquery_with_dataset_mapping():
    """The production dialect: compile each statement the API runs (nothing is sent)."""
    import datetime as dt

    import sqlalchemy as sa
    from sqlalchemy_bigquery import BigQueryDialect

    from graphql_site.querylayer import queries
    from graphql_site.querylayer.engine import QueryStats

    compiled = []

    class FakeSnapshot:
        memo: dict = {}
        version = "v"

        def rows(self, statement, params=None, stats=None):
            compiled.append(str(statement.compile(dialect=BigQueryDialect())))
            return []

        def columns(self, statement):
            return ["user_id", "as_of_date", "f1", "loaded_at"]

    snap, st, d = FakeSnapshot(), QueryStats(), dt.date(2026, 3, 1)
    queries.daily_active_users(snap, st, d)
    with pytest.raises(Exception):
        queries.revenue_metrics(snap, st, d, d)  # no rows from the fake: index error after compiling
    queries.user_metrics(snap, st, "u", None, None)
    queries.user_events(snap, st, "u", "purchase", 5)
    queries.user_features(snap, st, "u", d)
    queries.event_features(snap, st, "e")
    queries.training_data(snap, st, ["f1"], d, d, 10, (d, "u"))
    assert len(compiled) >= 7
    assert all("`" in sql for sql in compiled)
    assert not any("'u'" in sql or "'e'" in sql for sql in compiled)  # values stay bound
    assert any("`mart`.`business_metrics`" in s for s in compiled)
    assert sa  # imported for the dialect registry


def test_bigquery_engine_sets_maximum_bytes_billed(monkeypatch):
    pytest.importorskip("google.cloud.bigquery")
    import google.auth
    from django.test.utils import override_settings
    from google.auth.credentials import AnonymousCredentials

    # No Google account here: the engine's client gets anonymous credentials and never sends.
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), "strata-test-project"))

    from graphql_site.querylayer.engine import BigQueryWarehouse

    from fakes.network_guard import loopback_only

    with override_settings(STRATA_WAREHOUSE="bigquery", STRATA_BIGQUERY_PROJECT="strata-test-project",
                           STRATA_MAX_BYTES_BILLED=12345, STRATA_BIGQUERY_DATASETS={"mart": "strata_mart"}), \
            loopback_only():
        wh = BigQueryWarehouse()  # creating the engine and its client sends nothing
        assert wh._options["job_config"].maximum_bytes_billed == 12345
        assert wh._options["schema_translate_map"]["mart"] == "strata_mart"
        assert "maximum_bytes_billed=12345" in str(wh._engine.url)


def test_bytes_processed_is_read_from_the_bigquery_job():
    from types import SimpleNamespace as NS

    from graphql_site.querylayer.engine import bytes_processed

    assert bytes_processed(NS(context=NS(cursor=NS(query_job=NS(total_bytes_processed=1234))))) == 1234
    assert bytes_processed(NS(context=NS(cursor=NS(query_job=None)))) == 0
    assert bytes_processed(NS(context=NS(cursor=object()))) == 0  # DuckDB cursors have no job


def test_bigquery_responses_report_bytes_processed(api, monkeypatch):
    """On BigQuery, extensions carry bytesProcessed (the warehouse is faked at the snapshot)."""
    from django.test.utils import override_settings

    from graphql_site.gateway import pipeline
    from graphql_site.querylayer import engine

    class FakeBigQuery:
        backend = "bigquery"

        def snapshot(self):
            snap = real.snapshot()
            fake = engine.Snapshot(snap.version, snap.engine, "bigquery", {})
            original = fake.rows

            def rows(statement, params=None, stats=None):
                out = original(statement, params, stats)
                if stats is not None:
                    stats.bytes_processed += 1000
                return out
            fake.rows = rows
            return fake

    real = engine.DuckDBWarehouse()
    monkeypatch.setattr(pipeline, "get_warehouse", lambda: FakeBigQuery())
    try:
        with override_settings(STRATA_WAREHOUSE="bigquery"):
            status, body = api.post('{ dailyActiveUsers(date: "2026-03-09") { activeUsers } }')
    finally:
        real.close()
    assert status == 200 and body["extensions"]["warehouse"] == "bigquery"
    assert body["extensions"]["bytesProcessed"] == 1000


def test_migrations_match_the_models():
    call_command("makemigrations", "strata_tokens", "strata_metrics", "--check", "--dry-run", stdout=io.StringIO())


def test_admin_edits_metrics_validates_and_records_history():
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth.models import User
    from django.test import Client

    from graphql_site.metrics.models import MetricDefinition

    admin = User.objects.create_superuser("metric-admin", "a@example.com", "pw")
    client = Client()
    client.force_login(admin)
    form = {"name": "admin_made", "description": "", "unit": "events", "owner": "data team",
            "aggregation": "count", "expression": "event_id", "property_key": "", "event_types": "search",
            "property_filters": "{}"}
    response = client.post("/admin/strata_metrics/metricdefinition/add/", form)
    assert response.status_code == 302, response.content[:2000]
    metric = MetricDefinition.objects.get(name="admin_made")
    assert LogEntry.objects.filter(object_id=str(metric.pk), user=admin).exists()
    page = client.get(f"/admin/strata_metrics/metricdefinition/{metric.pk}/change/")
    assert b"stg_events" in page.content  # the compiled SQL is shown
    bad = client.post("/admin/strata_metrics/metricdefinition/add/",
                      {**form, "name": "admin_bad", "aggregation": "sum", "expression": "user_id"})
    assert bad.status_code == 200 and b"needs a numeric expression" in bad.content
    assert not MetricDefinition.objects.filter(name="admin_bad").exists()


def test_bigquery_data_version_comes_from_redis(monkeypatch):
    from conftest import need_service

    from api.conftest import REDIS_UP

    need_service(REDIS_UP, "Redis on 127.0.0.1:6379 (published BigQuery data version)")
    import redis

    from graphql_site.querylayer import engine
    from strata_core import dataversion

    r = redis.Redis(host="127.0.0.1", port=6379)
    previous = r.get(dataversion.REDIS_KEY)
    monkeypatch.setattr(dataversion, "REDIS_KEY", "strata-test:data_version")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.delenv(dataversion.ENV, raising=False)
    try:
        out = io.StringIO()
        call_command("publish_data_version", "bq-build-42", stdout=out)
        assert "bq-build-42" in out.getvalue()
        assert engine.read_published_version() == "bq-build-42"
    finally:
        r.delete("strata-test:data_version")
    assert r.get(dataversion.REDIS_KEY) == previous  # the real key was never touched
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens: reads go on
    assert engine.read_published_version() is None