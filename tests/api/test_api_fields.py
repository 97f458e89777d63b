"""Every field over HTTP, checked against ``expected`` (plain Python over the same events)."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from api import expected
from api.events import START

D = decimal.Decimal
RANGE = {"start": "2026-03-01", "end": "2026-03-14"}


def iso(day: dt.date) -> str:
    return day.isoformat()


def test_daily_active_users_every_day(api, accepted_events):
    for offset in range(-1, 15):
        day = START + dt.timedelta(days=offset)
        data = api.data("query($d: Date!) { dailyActiveUsers(date: $d) { date activeUsers } }", {"d": iso(day)})
        assert data["dailyActiveUsers"] == {"date": iso(day), "activeUsers": expected.dau(accepted_events, day)}


@pytest.mark.parametrize("start,end", [("2026-03-01", "2026-03-14"), ("2026-03-03", "2026-03-05"),
                                       ("2026-02-27", "2026-03-02"), ("2026-03-20", "2026-03-21")])
def test_revenue_metrics(api, accepted_events, start, end):
    data = api.data("""query($r: DateRangeInput!) { revenueMetrics(dateRange: $r) {
        totalRevenue grossRevenue refunds orders payingUsers averageOrderValue daily { date revenue orders } } }""",
                    {"r": {"start": start, "end": end}})["revenueMetrics"]
    want = expected.revenue(accepted_events, dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    for key in ("totalRevenue", "grossRevenue", "refunds"):
        assert isinstance(data[key], str) and D(data[key]) == want[key], key
    assert data["orders"] == want["orders"]
    assert data["payingUsers"] == want["payingUsers"]
    if want["averageOrderValue"] is None:
        assert data["averageOrderValue"] is None
    else:
        assert D(data["averageOrderValue"]) == want["averageOrderValue"]
    assert [(d["date"], D(d["revenue"]), d["orders"]) for d in data["daily"]] == \
        [(d["date"], d["revenue"], d["orders"]) for d in want["daily"]]


MONEY_TEXT = r"-?[0-9]+\.[0-9]{9}"


def test_money_is_fixed_scale_everywhere(api):
    """Issue 12: "0", "57.520495867768595" and 0E-9 all appeared; now always 9 decimal places."""
    import re

    data = api.data("""{ revenueMetrics(dateRange: {start: "2026-03-20", end: "2026-03-20"}) {
        totalRevenue grossRevenue refunds averageOrderValue daily { revenue } }
      all: revenueMetrics(dateRange: {start: "2026-03-01", end: "2026-03-14"}) {
        totalRevenue grossRevenue refunds averageOrderValue daily { revenue } }
      userMetrics(userId: "u01") { totalRevenue }
      userEvents(userId: "u01", eventType: "purchase", limit: 5) { amount }
      avg: metric(name: "average_purchase", dateRange: {start: "2026-03-01", end: "2026-03-14"}) {
        points { exactValue } }
      count: metric(name: "events", dateRange: {start: "2026-03-01", end: "2026-03-02"}) { points { exactValue } } }""")
    empty = data["revenueMetrics"]
    assert empty["totalRevenue"] == empty["grossRevenue"] == empty["refunds"] == "0.000000000"
    assert empty["daily"] == [{"revenue": "0.000000000"}] and empty["averageOrderValue"] is None
    texts = [data["all"]["totalRevenue"], data["all"]["grossRevenue"], data["all"]["refunds"],
             data["all"]["averageOrderValue"], data["userMetrics"]["totalRevenue"],
             *[d["revenue"] for d in data["all"]["daily"]], *[e["amount"] for e in data["userEvents"]],
             *[p["exactValue"] for p in data["avg"]["points"]], *[p["exactValue"] for p in data["count"]["points"]]]
    assert len(texts) > 20
    for text in texts:
        assert re.fullmatch(MONEY_TEXT, text), text


@pytest.mark.parametrize("steps", [None, ["view_item", "add_to_cart"], ["page_view", "search", "purchase"],
                                   ["add_to_cart", "view_item", "begin_checkout"]])
@pytest.mark.parametrize("start,end", [("2026-03-01", "2026-03-14"), ("2026-03-04", "2026-03-07")])
def test_conversion_funnel(api, accepted_events, steps, start, end):
    variables = {"r": {"start": start, "end": end}}
    if steps is not None:
        variables["s"] = steps
    data = api.data("""query($r: DateRangeInput!, $s: [String!]) {
        conversionFunnel(dateRange: $r, steps: $s) { steps { name users conversionRate } } }""", variables)
    names = steps or ["view_item", "add_to_cart", "begin_checkout", "purchase"]
    want = expected.funnel(accepted_events, dt.date.fromisoformat(start), dt.date.fromisoformat(end), names)
    got = data["conversionFunnel"]["steps"]
    assert [(s["name"], s["users"]) for s in got] == [(s["name"], s["users"]) for s in want]
    for g, w in zip(got, want):
        assert g["conversionRate"] == pytest.approx(w["conversionRate"])


def test_funnel_edge_users(api, accepted_events):
    """u90 (cart before view), u91 (equal timestamps), u93 (greedy trap) on their days."""
    q = """query($r: DateRangeInput!) { conversionFunnel(dateRange: $r) { steps { users } } }"""
    on = lambda day: {"r": {"start": iso(START + dt.timedelta(days=day)), "end": iso(START + dt.timedelta(days=day))}}  # noqa: E731
    for day in (2, 3, 6):
        got = [s["users"] for s in api.data(q, on(day))["conversionFunnel"]["steps"]]
        want = [s["users"] for s in expected.funnel(accepted_events, START + dt.timedelta(days=day),
                                                    START + dt.timedelta(days=day),
                                                    ["view_item", "add_to_cart", "begin_checkout", "purchase"])]
        assert got == want


USER_FIELDS = "userId eventCount sessionCount totalRevenue firstSeenAt lastSeenAt activeDays"


def _norm_user(d):
    if d is None:
        return None
    return {**d, "totalRevenue": D(d["totalRevenue"]),
            "firstSeenAt": dt.datetime.fromisoformat(d["firstSeenAt"]),
            "lastSeenAt": dt.datetime.fromisoformat(d["lastSeenAt"])}


@pytest.mark.parametrize("user", ["u01", "u05", "u92", "o'brien", "u91"])
def test_user_metrics_all_time(api, accepted_events, user):
    data = api.data(f"query($u: ID!) {{ userMetrics(userId: $u) {{ {USER_FIELDS} }} }}", {"u": user})
    assert _norm_user(data["userMetrics"]) == expected.user_metrics(accepted_events, user)


@pytest.mark.parametrize("user", ["u01", "u03", "u92"])
@pytest.mark.parametrize("start,end", [("2026-03-04", "2026-03-06"), ("2026-03-05", "2026-03-05")])
def test_user_metrics_in_range(api, accepted_events, user, start, end):
    data = api.data(f"query($u: ID!, $r: DateRangeInput) {{ userMetrics(userId: $u, dateRange: $r) {{ {USER_FIELDS} }} }}",
                    {"u": user, "r": {"start": start, "end": end}})
    assert _norm_user(data["userMetrics"]) == expected.user_metrics(
        accepted_events, user, dt.date.fromisoformat(start), dt.date.fromisoformat(end))


def test_unknown_user_is_empty_not_error(api):
    data = api.data("""{ userMetrics(userId: "nobody") { userId } userEvents(userId: "nobody") { eventId }
        userFeatures(userId: "nobody") { userId } eventFeatures(eventId: "nope") { eventId }
        userBehavior(userId: "nobody", metric: "events") { date } }""")
    assert data == {"userMetrics": None, "userEvents": [], "userFeatures": None, "eventFeatures": None,
                    "userBehavior": []}


@pytest.mark.parametrize("user,event_type,limit", [("u01", None, 50), ("u02", "view_item", 3), ("u04", None, 1),
                                                   ("o'brien", None, 500)])
def test_user_events(api, accepted_events, user, event_type, limit):
    data = api.data("""query($u: ID!, $t: String, $l: Int) { userEvents(userId: $u, eventType: $t, limit: $l) {
        eventId eventType eventTimestamp amount properties } }""", {"u": user, "t": event_type, "l": limit})
    got = [{**e, "eventTimestamp": dt.datetime.fromisoformat(e["eventTimestamp"]),
            "amount": None if e["amount"] is None else D(e["amount"])} for e in data["userEvents"]]
    assert got == expected.user_events(accepted_events, user, event_type, limit)
    assert len(got) <= limit


def _features(items):
    return {f["name"]: f["value"] for f in items}


def test_user_features_point_in_time(api, accepted_events):
    as_of = START + dt.timedelta(days=6)
    data = api.data("""query($u: ID!, $a: DateTime) { userFeatures(userId: $u, asOf: $a) {
        userId asOfDate features { name value } } }""", {"u": "u01", "a": f"{iso(as_of)}T23:00:00+00:00"})
    row = data["userFeatures"]
    active = sorted(e["event_date"] for e in accepted_events if e["user_id"] == "u01" and e["event_date"] <= as_of)
    assert row["asOfDate"] == iso(active[-1])
    want = expected.features(accepted_events, "u01", active[-1])
    got = _features(row["features"])
    assert got["count_events_7d"] == want["count_events_7d"]
    assert got["count_orders_28d"] == want["count_orders_28d"]
    assert D(got["revenue_28d"]) == want["revenue_28d"]
    assert "loaded_at" not in got


def test_event_features_use_the_day_before(api, accepted_events):
    ev = next(e for e in accepted_events if e["user_id"] == "u02" and e["event_date"] > START + dt.timedelta(days=5))
    data = api.data("""query($e: ID!) { eventFeatures(eventId: $e) { eventId eventType userId amount
        userFeaturesAsOf features { name value } } }""", {"e": ev["event_id"]})["eventFeatures"]
    assert (data["eventId"], data["eventType"], data["userId"]) == (ev["event_id"], ev["event_type"], "u02")
    before = sorted(e["event_date"] for e in accepted_events if e["user_id"] == "u02" and e["event_date"] < ev["event_date"])
    if before:
        assert data["userFeaturesAsOf"] == iso(before[-1])
        assert _features(data["features"])["count_events_7d"] == \
            expected.features(accepted_events, "u02", before[-1])["count_events_7d"]
    else:
        assert data["userFeaturesAsOf"] is None


def test_training_data_pages_cover_all_rows_once(api, accepted_events):
    start, end = START + dt.timedelta(days=2), START + dt.timedelta(days=9)
    want = expected.training_rows(accepted_events, start, end)
    seen, after, pages = [], None, 0
    while True:
        data = api.data("""query($f: [String!]!, $r: DateRangeInput!, $n: Int, $a: String) {
            trainingData(features: $f, dateRange: $r, first: $n, after: $a) {
              rows { userId asOfDate labelPurchasesNext7d features { name value } }
              pageInfo { hasNextPage endCursor } } }""",
                        {"f": ["count_orders_28d", "count_events_7d"], "r": {"start": iso(start), "end": iso(end)},
                         "n": 17, "a": after})["trainingData"]
        pages += 1
        for row in data["rows"]:
            assert [f["name"] for f in row["features"]] == ["count_orders_28d", "count_events_7d"]
            seen.append((dt.date.fromisoformat(row["asOfDate"]), row["userId"], row["labelPurchasesNext7d"]))
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == want
    assert pages == -(-len(want) // 17)


def test_metric_daily_weekly_monthly(api, accepted_events):
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 14)
    q = """query($n: String!, $r: DateRangeInput!, $g: MetricGrain) { metric(name: $n, dateRange: $r, grain: $g) {
        name unit aggregation grain points { date value exactValue } } }"""
    data = api.data(q, {"n": "net_revenue", "r": RANGE, "g": "DAY"})["metric"]
    assert (data["name"], data["aggregation"], data["grain"]) == ("net_revenue", "sum", "DAY")
    want = expected.daily_series(
        accepted_events, start, end, lambda e: e["event_type"] in ("purchase", "refund"),
        lambda evs: sum((e["amount"] if e["event_type"] == "purchase" else -e["amount"] for e in evs), D(0)))
    assert {p["date"]: D(p["exactValue"]) for p in data["points"]} == {iso(k): v for k, v in want.items()}

    weekly = api.data(q, {"n": "active_users", "r": RANGE, "g": "WEEK"})["metric"]["points"]
    by_week: dict[dt.date, set] = {}
    for e in accepted_events:
        if start <= e["event_date"] <= end and e["user_id"] is not None:
            by_week.setdefault(e["event_date"] - dt.timedelta(days=e["event_date"].weekday()), set()).add(e["user_id"])
    assert {p["date"]: p["value"] for p in weekly} == {iso(k): len(v) for k, v in sorted(by_week.items())}

    monthly = api.data(q, {"n": "events", "r": RANGE, "g": "MONTH"})["metric"]["points"]
    n = sum(1 for e in accepted_events if start <= e["event_date"] <= end)
    assert monthly == [{"date": "2026-03-01", "value": float(n), "exactValue": f"{n}.000000000"}]


def test_user_behavior(api, accepted_events):
    data = api.data("""{ userBehavior(userId: "u03", metric: "events",
        dateRange: {start: "2026-03-01", end: "2026-03-10"}) { date value } }""")["userBehavior"]
    want = expected.daily_series(accepted_events, dt.date(2026, 3, 1), dt.date(2026, 3, 10),
                                 lambda e: e["user_id"] == "u03", len)
    assert {p["date"]: p["value"] for p in data} == {iso(k): float(v) for k, v in want.items()}


def test_metric_with_property_filter_and_property_number(api, accepted_events):
    from graphql_site.metrics.models import MetricDefinition

    MetricDefinition.objects.update_or_create(name="book_price_sum", defaults=dict(
        aggregation="sum", expression="property_number", property_key="price",
        property_filters={"category": "books"}, event_types="view_item,add_to_cart", owner="tests"))
    data = api.data("""{ metric(name: "book_price_sum", dateRange: {start: "2026-03-01", end: "2026-03-14"}) {
        points { date exactValue } } }""")["metric"]["points"]
    import json
    want = expected.daily_series(
        accepted_events, dt.date(2026, 3, 1), dt.date(2026, 3, 14),
        lambda e: e["event_type"] in ("view_item", "add_to_cart") and json.loads(e["properties"]).get("category") == "books"
        and "price" in json.loads(e["properties"]),
        lambda evs: sum(D(json.loads(e["properties"])["price"]) for e in evs))
    assert {p["date"]: D(p["exactValue"]) for p in data} == {iso(k): v for k, v in want.items()}


@pytest.mark.parametrize("strategy", ["joins", "lists"])
def test_both_funnel_plans_agree_with_the_definition(accepted_events, strategy):
    """``lists`` runs on DuckDB; ``joins`` is the portable plan BigQuery runs. Both are exact."""
    from graphql_site.querylayer import engine, queries

    snap = engine.snapshot()
    for steps in (["view_item", "add_to_cart", "begin_checkout", "purchase"], ["search", "view_item"],
                  ["purchase"], ["page_view", "view_item", "add_to_cart", "begin_checkout", "purchase", "refund"]):
        for start, end in ((START, START + dt.timedelta(days=13)), (START + dt.timedelta(days=6),) * 2):
            got = queries.conversion_funnel(snap, engine.QueryStats(), start, end, steps, strategy)
            assert [s["users"] for s in got["steps"]] == \
                [s["users"] for s in expected.funnel(accepted_events, start, end, steps)]
