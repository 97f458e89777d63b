"""The dashboards and the monitoring app through Django's request handling: the admin login
guards every page, the pages carry the demo data's figures, charts come from the vendored
ECharts and nothing from elsewhere, alert rules are overridden in the admin, and the API keeps
a per-query-name cost history."""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import override_settings

from graphql_site.dashboards import views

APP = pathlib.Path(views.__file__).resolve().parent
PAGES = ["", "quality/", "pipeline/", "cost/", "lineage/"]


def staff_client() -> Client:
    user = get_user_model().objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def page_data(response) -> dict:
    match = re.search(rb'<script id="page-data" type="application/json">(.*?)</script>', response.content, re.S)
    assert match, response.content[:500]
    return json.loads(match.group(1))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_needs_the_admin_login(page):
    response = Client().get(f"/dashboards/{page}")
    assert response.status_code == 302 and response["Location"].startswith(f"/admin/login/?next=/dashboards/{page}")
    user = get_user_model().objects.create_user(f"plain-{uuid.uuid4().hex[:6]}", password="pw")
    client = Client()
    client.force_login(user)  # logged in, but not staff
    assert client.get(f"/dashboards/{page}").status_code == 302


def test_echarts_is_vendored_pinned_and_checksummed():
    record = json.loads((APP / "static" / "dashboards" / "vendor" / "VENDORED.json").read_text())
    assert record["package"] == "echarts" and re.fullmatch(r"\d+\.\d+\.\d+", record["version"])
    vendored = APP / "static" / "dashboards" / "vendor" / record["file"]
    assert hashlib.sha256(vendored.read_bytes()).hexdigest() == record["sha256"]
    assert (vendored.parent / "ECHARTS_LICENSE").exists()
    # No page loads anything from another origin (no CDN): only relative / static URLs.
    for path in [*APP.glob("templates/dashboards/*.html"), APP / "static" / "dashboards" / "dashboards.js"]:
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text), path
        assert "cdn" not in text.lower(), path


def test_pages_show_the_warehouse_when_it_is_missing(tmp_path):
    with override_settings(STRATA_WAREHOUSE_PATH=str(tmp_path / "none.duckdb")):
        response = staff_client().get("/dashboards/")
    assert response.status_code == 503 and b"not readable yet" in response.content


@pytest.mark.slow
def test_pages_render_the_demo_data(monitored_home):
    client = staff_client()
    with override_settings(STRATA_WAREHOUSE_PATH=str(monitored_home.path / "warehouse.duckdb"),
                           STRATA_DBT_TARGET_DIR=str(monitored_home.path / "dbt" / "target")):
        pages = {}
        for page in PAGES:
            response = client.get(f"/dashboards/{page}")
            assert response.status_code == 200, response.content[:2000]
            assert b'class="status status-ok"' in response.content
            pages[page.strip("/") or "business"] = page_data(response)
    business = pages["business"]
    assert len(business["days"]) == 35 and business["days"][-1]["date"] == monitored_home.last_day.isoformat()
    assert [s["name"] for s in business["funnel"]["steps"]] == ["view_item", "add_to_cart", "begin_checkout", "purchase"]
    funnel = [s["users"] for s in business["funnel"]["steps"]]
    assert funnel == sorted(funnel, reverse=True) and funnel[-1] > 0
    assert business["top_events"][0]["event_type"] == "page_view"
    quality = pages["quality"]
    assert quality["tests"]["failed"] == 0 and quality["tests"]["passed"] > 60
    assert {a["status"] for a in quality["anomalies"]} == {"normal"}
    assert all(len(a["points"]) >= 30 for a in quality["anomalies"])
    assert quality["dead_letters"]["by_type_day"] and quality["null_rates"] and quality["schema_drift"]
    pipeline = pages["pipeline"]
    # Nothing was streamed: the per-minute counts table exists (from the contract) and is empty.
    assert [r["job"] for r in pipeline["runs"]] == ["transform", "ingest_batch"] and pipeline["stream_minutes"] == []
    cost = pages["cost"]["cost"]
    assert cost["source"] == "duckdb_estimate" and cost["top_models"] and cost["daily"]
    graph = pages["lineage"]["graph"]
    names = {n["name"]: n for n in graph["nodes"]}
    assert {"raw.events", "stg_events", "business_metrics", "partition_stats"} <= set(names)
    assert all(n["state"] == "ok" for n in graph["nodes"] if n["kind"] == "model")
    assert names["business_metrics"]["tests_passed"] > 0
    assert {"source": names["stg_events"]["id"], "target": names["funnel_events"]["id"]} in graph["edges"]
    assert all(names_by_id(graph)[e["source"]]["column"] < names_by_id(graph)[e["target"]]["column"]
               for e in graph["edges"])


def names_by_id(graph) -> dict:
    return {n["id"]: n for n in graph["nodes"]}


def test_alert_rules_are_overridden_in_the_admin():
    from graphql_site.monitoring.models import AlertRule
    from strata.commands import check
    from strata_monitor import rules

    admin = get_user_model().objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", password="pw")
    client = Client()
    client.force_login(admin)
    rule = AlertRule.objects.get(name="dead_letter_rate")  # seeded by a migration, overriding nothing
    url = f"/admin/strata_monitoring/alertrule/{rule.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and b"Default parameters" in page.content and b"threshold" in page.content
    form = {"name": "dead_letter_rate", "enabled": "on", "severity": "", "note": "noisy source until March"}
    bad = client.post(url, {**form, "params": '{"treshold": 0.2}'})
    assert bad.status_code == 200 and b"has no parameter treshold; its parameters are threshold" in bad.content
    good = client.post(url, {**form, "severity": "critical", "params": '{"threshold": 0.2}'})
    assert good.status_code == 302, good.content[:3000]
    overrides, _costs, note = check.site_state()
    assert note is None
    (eff,) = [e for e in rules.effective_rules(overrides) if e.name == "dead_letter_rate"]
    assert (eff.severity, eff.params["threshold"]) == ("critical", 0.2)
    AlertRule.objects.filter(pk=rule.pk).update(severity="", params={}, note="")


def test_the_api_keeps_a_cost_history_per_query_name(api):
    from graphql_site.monitoring import costs
    from graphql_site.monitoring.models import QueryCostBucket

    costs.flush()
    QueryCostBucket.objects.all().delete()
    query = '{ revenueMetrics(dateRange: {start: "2026-03-01", end: "2026-03-14"}) { totalRevenue orders } }'
    api.data(query)
    api.data(query)  # a cache hit runs no warehouse query and costs nothing
    status, _ = api.post("query Named { dailyActiveUsers(date: \"2026-03-05\") { activeUsers } }")
    assert status == 200
    assert costs.flush() == 2
    rows = {r.query_name: r for r in QueryCostBucket.objects.all()}
    assert set(rows) == {"revenueMetrics", "Named"}
    revenue = rows["revenueMetrics"]
    assert revenue.executions == 1 and revenue.queries == 2 and revenue.warehouse == "duckdb"
    assert revenue.estimated and revenue.bytes_total == revenue.bytes_max > 0
    history = costs.history(revenue.bucket_start)
    assert {h["query_name"] for h in history} == {"revenueMetrics", "Named"}
