"""Issue 12's API points: the index page, limits that agree, metric definitions that refuse
typos, and a first token on a fresh home."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test.utils import override_settings

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_index_page_links_what_the_server_offers(api):
    from django.apps import apps

    status, headers, content = api.request("GET", "/")
    page = content.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    for href in ('href="/graphql"', 'href="/admin/"', 'href="/healthz"'):
        assert href in page, href
    assert ('href="/dashboards/"' in page) == apps.is_installed("graphql_site.dashboards")
    assert "http://" not in page and "https://" not in page  # nothing from outside


def test_training_data_first_1000_is_allowed_with_every_feature(api):
    """Issue 12: `first: 1000` passed its argument check but never the complexity limit."""
    from graphql_site.querylayer import engine, queries

    features = queries.feature_columns(engine.snapshot(), "ml_training")
    status, body = api.post("""query($f: [String!]!) { trainingData(features: $f, first: 1000,
        dateRange: {start: "2026-03-01", end: "2026-03-14"}) { rows { userId features { name value } } } }""",
                            {"f": features})
    assert status == 200 and "errors" not in body, body
    assert body["data"]["trainingData"]["rows"]


def test_the_limits_agree_or_the_server_does_not_start():
    from graphql_site.gateway.planning import check_budget, largest_single_field_cost

    check_budget()  # the defaults agree
    from django.conf import settings

    assert largest_single_field_cost() <= settings.STRATA_GRAPHQL_MAX_COST
    with override_settings(STRATA_TRAINING_PAGE_MAX=100_000):
        with pytest.raises(ImproperlyConfigured, match="could never run"):
            check_budget()


def test_the_schema_says_the_limits_agree():
    from graphql_site.schema import schema

    query = schema.graphql_schema.query_type
    assert "any single field whose arguments are within" in query.description
    assert "fits the request cost budget" in query.fields["trainingData"].args["first"].description


@pytest.mark.parametrize("event_types", ["purchse", "purchase,refnud"])
def test_an_event_type_no_contract_type_matches_is_refused_on_save(event_types):
    from graphql_site.metrics.models import MetricDefinition

    with pytest.raises(ValidationError) as info:
        MetricDefinition(name="typo_metric", aggregation="count", expression="event_id", owner="tests",
                         event_types=event_types).save()
    message = " ".join(info.value.message_dict["event_types"])
    assert "unknown event type" in message and "purchase" in message  # names what is accepted


def test_net_revenue_reads_the_dbt_rollups_and_refuses_filters(api, accepted_events):
    import datetime as dt
    import decimal

    from graphql_site.metrics.models import MetricDefinition

    net = MetricDefinition.objects.get(name="net_revenue")
    assert (net.expression, net.event_types) == ("net_revenue", "")  # migrated from signed_amount
    assert "mart.business_metrics" in net.compiled_sql("duckdb")
    with pytest.raises(ValidationError) as info:
        MetricDefinition(name="net_books", aggregation="sum", expression="net_revenue", owner="tests",
                         property_filters={"category": "books"}).save()
    assert "defined once" in " ".join(info.value.message_dict["property_filters"])
    # the per-day values are business_metrics.revenue: anonymous purchases included
    points = api.data('{ metric(name: "net_revenue", dateRange: {start: "2026-03-01", end: "2026-03-14"}) '
                      '{ points { date exactValue } } }')["metric"]["points"]
    total = sum(decimal.Decimal(p["exactValue"]) for p in points)
    want = sum((e["amount"] if e["event_type"] == "purchase" else -e["amount"]) for e in accepted_events
               if e["event_type"] in ("purchase", "refund") and dt.date(2026, 3, 1) <= e["event_date"] <= dt.date(2026, 3, 14))
    assert total == want


def test_create_api_token_on_a_fresh_home(tmp_path):
    """Issue 9 and 12: `manage.py create_api_token` before any `strata serve` said "no such table"."""
    home = tmp_path / "fresh-home"
    env = {**os.environ, "STRATA_HOME": str(home), "DJANGO_SETTINGS_MODULE": "graphql_site.settings.local"}
    env.pop("DATABASE_URL", None)
    made = subprocess.run([sys.executable, "graphql_site/manage.py", "create_api_token", "first"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("strata_") and "migration" in made.stderr
    again = subprocess.run([sys.executable, "graphql_site/manage.py", "create_api_token", "second"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "migration" not in again.stderr


def test_vendored_browser_assets_match_their_checksums():
    from graphql_site.gateway import vendor_assets

    assert vendor_assets.check() == []
    manifest = json.loads(vendor_assets.MANIFEST.read_text())
    assert manifest["graphiql"]["version"] == "3.8.3" and manifest["react"]["integrity"].startswith("sha512-")
