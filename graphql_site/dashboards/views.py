"""``/dashboards/``: business, quality, pipeline, cost and lineage pages, behind the admin login.

Every page reads the warehouse through the API's query layer (one snapshot per request, the
same read-only SQLAlchemy Core path as GraphQL): the business figures through the API's own
query functions (``querylayer.queries``), everything else as ``strata_monitor.facts`` over the
monitoring tables. The page's data is embedded as JSON (``json_script``) and drawn by Apache
ECharts, served from the app's static files (``static/dashboards/vendor``, never a CDN): one
request per page, no API token in the browser.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import threading
import time

import sqlalchemy as sa
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from graphql_site.monitoring import costs
from graphql_site.monitoring.models import AlertRule
from graphql_site.querylayer import queries
from graphql_site.querylayer.engine import QueryStats, WarehouseUnavailable, get_warehouse
from strata_core import paths
from strata_monitor import facts as facts_mod
from strata_monitor import lineage, report, rules

PAGES = ("business", "quality", "pipeline", "cost", "lineage")
TITLES = {"business": "Business", "quality": "Data quality", "pipeline": "Pipeline", "cost": "Cost",
          "lineage": "Lineage"}
ECHARTS = json.loads((pathlib.Path(__file__).resolve().parent / "static" / "dashboards" / "vendor"
                      / "VENDORED.json").read_text())
FUNNEL_STEPS = ["view_item", "add_to_cart", "begin_checkout", "purchase"]


def _dbt_target_dir() -> pathlib.Path:
    configured = getattr(settings, "STRATA_DBT_TARGET_DIR", None)
    return pathlib.Path(configured) if configured else paths.home() / "dbt" / "target"


def _business(facts, rep, snap) -> dict:
    days = facts.business_days
    data = {"days": [{"date": d["date"], "dau": d["dau"], "revenue": d["revenue"], "orders": d["orders"],
                      "aov": d["aov"]} for d in days], "funnel": None, "top_events": [], "totals": None}
    if days:
        start, end = days[0]["date"], days[-1]["date"]
        stats = QueryStats()
        try:
            totals = queries.revenue_metrics(snap, stats, start, end)
            funnel = queries.conversion_funnel(snap, stats, start, end, FUNNEL_STEPS)
        except sa.exc.DBAPIError as exc:  # a mart missing: say so instead of a 500
            note = f"business figures unavailable ({str(exc.orig or exc).splitlines()[0][:160]})"
            if note not in facts.notes:  # the facts are shared by a worker's pages for a while
                facts.notes.append(note)
            return data
        aov = totals["average_order_value"]
        data["totals"] = {"start": start, "end": end, "revenue": f"{totals['total_revenue']:,.2f}",
                          "orders": f"{totals['orders']:,}", "paying_users": f"{totals['paying_users']:,}",
                          "aov": f"{aov:,.2f}" if aov is not None else "–", "dau_last": f"{days[-1]['dau']:,}"}
        data["funnel"] = {"start": start, "end": end, **funnel}
        week = end - dt.timedelta(days=6)
        data["top_events"] = sorted(
            ({"event_type": name[7:], "events": sum(v for d, v in series if d >= week)}
             for name, series in facts.series.items() if name.startswith("events.")),
            key=lambda e: -e["events"])
    return data


def _pct(fraction: float | None) -> str:
    return "" if fraction is None else f"{fraction * 100:.2f} %" if fraction < 0.1 else f"{fraction * 100:.1f} %"


def _quality(facts, rep, snap) -> dict:
    dead = dict(rep.dead_letters, threshold_pct=_pct(rep.dead_letters["threshold"]))
    if dead["last_run"]:
        dead["last_run"] = dict(dead["last_run"], rate_pct=_pct(dead["last_run"]["rate"]))
    return {"freshness": rep.freshness, "tests": rep.tests, "dead_letters": dead,
            "anomalies": rep.anomalies, "null_rates": _latest_null_rates(facts.null_rates),
            "schema_drift": sorted(facts.schema_drift, key=lambda r: r["first_seen_at"], reverse=True)[:50],
            "duplicate_rate": facts.series.get("duplicate_rate", [])}


def _latest_null_rates(rows: list[dict]) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for row in rows:  # ordered by partition_date
        latest[(row["relation"], row["column_name"])] = row
    return [{**r, "null_pct": _pct(r["count_nulls"] / r["count_rows"]) if r["count_rows"] else ""}
            for r in latest.values()]


def _pipeline(facts, rep, snap) -> dict:
    minutes = facts.stream_minutes
    lag = None
    if minutes:
        lag = [{"window_end": m["window_end"], "lag_s": (m["emitted_at"] - m["window_end"]).total_seconds()}
               for m in minutes if m.get("emitted_at") and m.get("window_end")]
    return {"runs": facts.runs[:100], "stream_minutes": minutes, "stream_lag": lag}


def _cost(facts, rep, snap) -> dict:
    return {"cost": rep.cost}


def _lineage(facts, rep, snap) -> dict:
    manifest = lineage.read_manifest(_dbt_target_dir())
    if manifest is None:
        return {"graph": None, "manifest": str(_dbt_target_dir() / "manifest.json")}
    sla = next(r["params"]["sla_hours"] for r in rep.rules if r["name"] == "mart_sla")
    return {"graph": lineage.graph(manifest, facts.last_built, rep.tests["by_model"], facts.now, float(sla))}


BUILDERS = {"business": _business, "quality": _quality, "pipeline": _pipeline, "cost": _cost, "lineage": _lineage}


#: Seconds a worker reuses the facts and report it computed (every page shows the alerts);
#: ``STRATA_DASHBOARD_REPORT_TTL_S`` (0: compute on every page, as bench/dashboards.py measures).
REPORT_TTL_S = float(os.environ.get("STRATA_DASHBOARD_REPORT_TTL_S", "30"))
_reports: dict[tuple, tuple[float, object, object]] = {}
_reports_lock = threading.Lock()


def _facts_and_report(snap):
    """The facts and the health report for this data version and these rule overrides, at most
    ``REPORT_TTL_S`` old (the monitoring tables also change between builds: new runs)."""
    overrides = [rule.as_override() for rule in AlertRule.objects.all()]
    key = (snap.version, json.dumps(overrides, sort_keys=True, default=str))
    cached = _reports.get(key)
    if cached and time.monotonic() - cached[0] < REPORT_TTL_S:
        return cached[1], cached[2]
    now = dt.datetime.now(dt.timezone.utc)
    facts = facts_mod.load(lambda statement, params: snap.rows(statement, params), now,
                           api_costs=costs.history(now - dt.timedelta(days=30)))
    rep = report.build(facts, rules.effective_rules(overrides))
    with _reports_lock:
        _reports.clear()
        _reports[key] = (time.monotonic(), facts, rep)
    return facts, rep


@staff_member_required
def page(request, name: str):
    started = time.perf_counter()
    context = {"page": name, "pages": [(p, TITLES[p]) for p in PAGES], "title": TITLES[name],
               "echarts": f"dashboards/vendor/{ECHARTS['file']}"}
    try:
        snap = get_warehouse().snapshot()
    except WarehouseUnavailable as exc:
        return render(request, "dashboards/unavailable.html", {**context, "reason": str(exc)}, status=503)
    facts, rep = _facts_and_report(snap)
    data = BUILDERS[name](facts, rep, snap)
    context.update(report=rep, alerts=rep.alerts, data={"page": name, **report.plain(data)},
                   data_version=snap.version, notes=facts.notes, server_ms=None)
    context["server_ms"] = round((time.perf_counter() - started) * 1000)
    return render(request, f"dashboards/{name}.html", context)
