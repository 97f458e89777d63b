"""Every refusal: bad arguments, auth, rate limit, depth and complexity, introspection, SQL
injection through every string argument, and the HTTP edges."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test.utils import override_settings

R = '{start: "2026-03-01", end: "2026-03-14"}'


def _error(api, query, variables=None, status=200):
    got_status, body = api.post(query, variables)
    assert got_status == status, body
    assert body.get("errors"), body
    return body["errors"][0]


@pytest.mark.parametrize("query,argument,fragment", [
    ('{ revenueMetrics(dateRange: {start: "2026-03-05", end: "2026-03-01"}) { orders } }', "dateRange", "before start"),
    ('{ revenueMetrics(dateRange: {start: "2020-01-01", end: "2026-03-01"}) { orders } }', "dateRange", "at most 366"),
    ('{ conversionFunnel(dateRange: {start: "2026-03-05", end: "2026-03-01"}) { steps { name } } }', "dateRange", "before start"),
    (f'{{ conversionFunnel(dateRange: {R}, steps: ["view_item", "teleport"]) {{ steps {{ name }} }} }}', "steps", "unknown step 'teleport'"),
    (f'{{ conversionFunnel(dateRange: {R}, steps: []) {{ steps {{ name }} }} }}', "steps", "1 to 10 steps"),
    (f'{{ conversionFunnel(dateRange: {R}, steps: ["purchase", "purchase"]) {{ steps {{ name }} }} }}', "steps", "distinct"),
    ('{ userEvents(userId: "u01", limit: 501) { eventId } }', "limit", "allowed 1 to 500"),
    ('{ userEvents(userId: "u01", limit: 0) { eventId } }', "limit", "allowed 1 to 500"),
    ('{ userEvents(userId: "u01", eventType: "Bad Type") { eventId } }', "eventType", "must match"),
    ('{ userMetrics(userId: "") { userId } }', "userId", "1 to 128"),
    (f'{{ userMetrics(userId: "{"x" * 129}") {{ userId }} }}', "userId", "1 to 128"),
    (f'{{ userBehavior(userId: "u01", metric: "no_such_metric") {{ date }} }}', "metric", "unknown metric"),
    (f'{{ metric(name: "no_such_metric", dateRange: {R}) {{ name }} }}', "name", "unknown metric"),
    (f'{{ trainingData(features: ["count_events_7d", "secret_column"], dateRange: {R}) {{ rows {{ userId }} }} }}', "features", "unknown feature"),
    (f'{{ trainingData(features: [], dateRange: {R}) {{ rows {{ userId }} }} }}', "features", "at least one"),
    (f'{{ trainingData(features: ["count_events_7d"], dateRange: {R}, first: 5000) {{ rows {{ userId }} }} }}', "first", "allowed 1 to 1000"),
    (f'{{ trainingData(features: ["count_events_7d"], dateRange: {R}, after: "garbage") {{ rows {{ userId }} }} }}', "after", "not a cursor"),
    (f'{{ trainingData(features: ["user_id"], dateRange: {R}) {{ rows {{ userId }} }} }}', "features", "unknown feature"),
])
def test_bad_arguments_name_the_argument_and_rule(api, query, argument, fragment):
    error = _error(api, query)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert f"`{argument}`" in error["message"] and fragment in error["message"], error["message"]


def test_wrong_types_are_validation_errors(api):
    error = _error(api, '{ dailyActiveUsers(date: "yesterday") { activeUsers } }', status=400)
    assert "Date" in error["message"] or "date" in error["message"]
    error = _error(api, "query($d: Date!) { dailyActiveUsers(date: $d) { activeUsers } }", {"d": "2026-13-40"}, status=400)
    assert "$d" in error["message"]


def test_one_bad_field_does_not_hide_the_others(api):
    status, body = api.post('{ a: dailyActiveUsers(date: "2026-03-02") { activeUsers } '
                            'b: userEvents(userId: "u01", limit: 9999) { eventId } }')
    assert status == 200
    assert body["data"]["a"]["activeUsers"] > 0 and body["data"]["b"] is None
    assert body["errors"][0]["path"] == ["b"]


# ---- auth and rate limit -----------------------------------------------------------------

def test_missing_bad_and_inactive_tokens_are_refused(api):
    from graphql_site.tokens.models import ApiToken

    q = '{ dailyActiveUsers(date: "2026-03-02") { activeUsers } }'
    for token in (None, "strata_not-a-real-token"):
        status, body = api.post(q, token=token)
        assert status == 401, body
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "data" not in body
    status, body = api.client.post("/graphql", {"query": q}, content_type="application/json",
                                   HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz").status_code, None
    assert status == 401
    row, token = ApiToken.issue("inactive-token")
    ApiToken.objects.filter(pk=row.pk).update(is_active=False)
    assert api.post(q, token=token)[0] == 401


def test_tokens_are_stored_hashed(api):
    from graphql_site.tokens.models import ApiToken, hash_token

    row, token = ApiToken.issue("hash-check")
    stored = ApiToken.objects.get(pk=row.pk)
    assert token not in (stored.key_hash, stored.key_prefix) and stored.key_hash == hash_token(token)
    assert len(token) > 40


def test_rate_limit_per_token(api):
    from graphql_site.tokens.models import ApiToken

    _row, limited = ApiToken.issue("limited", rate_limit_per_minute=3)
    q = '{ dailyActiveUsers(date: "2026-03-02") { activeUsers } }'
    statuses = [api.post(q, token=limited)[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    with pytest.MonkeyPatch.context():
        response = api.client.post("/graphql", {"query": q}, content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Bearer {limited}")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert api.post(q)[0] == 200  # other tokens are not affected


# ---- depth, complexity, introspection -------------------------------------------------------

def test_depth_limit(api):
    with override_settings(STRATA_GRAPHQL_MAX_DEPTH=2):
        error = _error(api, f'{{ revenueMetrics(dateRange: {R}) {{ daily {{ date }} }} }}', status=400)
    assert error["extensions"]["code"] == "QUERY_TOO_DEEP" and "maximum depth is 2" in error["message"]
    # through fragments too
    with override_settings(STRATA_GRAPHQL_MAX_DEPTH=2):
        error = _error(api, f'fragment D on RevenueMetrics {{ daily {{ date }} }} '
                            f'query Q {{ revenueMetrics(dateRange: {R}) {{ ...D }} }}', status=400)
    assert error["extensions"]["code"] == "QUERY_TOO_DEEP"
    assert api.post(f'{{ revenueMetrics(dateRange: {R}) {{ daily {{ date }} }} }}')[0] == 200


def test_complexity_limit_counts_aliases_and_limits(api):
    aliases = " ".join(f'a{i}: dailyActiveUsers(date: "2026-03-02") {{ activeUsers }}' for i in range(300))
    error = _error(api, "{ " + aliases + " }", status=400)
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    q = "query($n: Int) { userEvents(userId: \"u01\", limit: $n) { eventId eventType eventTimestamp amount properties } }"
    with override_settings(STRATA_GRAPHQL_MAX_COMPLEXITY=300):
        assert _error(api, q, {"n": 100}, status=400)["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert api.post(q, {"n": 10})[0] == 200


def test_introspection_follows_the_setting(api):
    q = "{ __schema { queryType { name } } }"
    with override_settings(STRATA_GRAPHQL_INTROSPECTION=True):
        status, body = api.post(q)
        assert status == 200 and body["data"]["__schema"]["queryType"]["name"] == "Query"
    with override_settings(STRATA_GRAPHQL_INTROSPECTION=False):
        status, body = api.post(q)
        assert status == 400 and "introspection" in body["errors"][0]["message"].lower()


def test_production_settings_refuse_to_start_without_a_secret(monkeypatch):
    import importlib
    import sys

    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    sys.modules.pop("graphql_site.settings.production", None)
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        importlib.import_module("graphql_site.settings.production")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "api.example.com")
    sys.modules.pop("graphql_site.settings.production", None)
    prod = importlib.import_module("graphql_site.settings.production")
    assert prod.DEBUG is False and prod.STRATA_GRAPHQL_INTROSPECTION is False and prod.STRATA_GRAPHIQL is False
    sys.modules.pop("graphql_site.settings.production", None)


# ---- injection ------------------------------------------------------------------------------

INJECTIONS = [
    "u01' OR '1'='1", "u01\" OR \"1\"=\"1", "' OR 1=1 --", "u01'; DROP TABLE staging.stg_events; --",
    "x') UNION SELECT event_id, event_type, event_timestamp, amount, properties FROM staging.stg_events --",
    "$1", "?", "%s", ":user_id", "\\'", "u01\x00", "';select 1;'",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_sql_injection_through_every_string_argument(api, payload):
    """Every string argument with a payload: no rows leak, nothing breaks, nothing is dropped."""
    q = """query($p: String!, $id: ID!) {
      userMetrics(userId: $id) { userId eventCount }
      ranged: userMetrics(userId: $id, dateRange: {start: "2026-03-01", end: "2026-03-14"}) { userId }
      userEvents(userId: $id) { eventId }
      typed: userEvents(userId: "u01", eventType: $p) { eventId }
      userFeatures(userId: $id) { userId }
      eventFeatures(eventId: $id) { eventId }
    }"""
    status, body = api.post(q, {"p": payload, "id": payload})
    assert status == 200, body
    data = body["data"]
    assert data["userMetrics"] is None and data["ranged"] is None and data["userEvents"] == []
    assert data["userFeatures"] is None and data["eventFeatures"] is None
    # eventType is checked against the event-type pattern: an error naming it, or no rows
    assert data["typed"] in (None, [])
    for name_arg in ("steps", "features", "metric", "name"):
        query = {
            "steps": "query($p: String!) { conversionFunnel(dateRange: {start: \"2026-03-01\", end: \"2026-03-14\"}, steps: [\"view_item\", $p]) { steps { users } } }",
            "features": "query($p: String!) { trainingData(features: [$p], dateRange: {start: \"2026-03-01\", end: \"2026-03-14\"}) { rows { userId } } }",
            "metric": "query($p: String!) { userBehavior(userId: \"u01\", metric: $p) { date } }",
            "name": "query($p: String!) { metric(name: $p, dateRange: {start: \"2026-03-01\", end: \"2026-03-14\"}) { name } }",
        }[name_arg]
        status, body = api.post(query, {"p": payload})
        assert status == 200 and body["errors"][0]["extensions"]["argument"] == name_arg, body
        assert not any(body["data"].values()) if body.get("data") else True
    cursor_q = "query($p: String!) { trainingData(features: [\"count_events_7d\"], dateRange: {start: \"2026-03-01\", end: \"2026-03-14\"}, after: $p) { rows { userId } } }"
    status, body = api.post(cursor_q, {"p": payload})
    assert body["errors"][0]["extensions"]["argument"] == "after"
    # the table is still there and intact
    assert api.data('{ userMetrics(userId: "u01") { eventCount } }')["userMetrics"]["eventCount"] > 0


def test_injection_inside_a_forged_cursor(api):
    import base64
    import json

    forged = base64.urlsafe_b64encode(json.dumps(["2026-03-01", "x' OR '1'='1"]).encode()).decode()
    data = api.data("""query($a: String) { trainingData(features: ["count_events_7d"],
        dateRange: {start: "2026-03-01", end: "2026-03-01"}, after: $a) { rows { userId asOfDate } } }""", {"a": forged})
    # keyset: only rows after (2026-03-01, "x' OR ...") on that date; "x..." sorts after every "u.." id
    assert data["trainingData"]["rows"] == []


def test_quote_in_a_real_user_id_is_just_data(api, accepted_events):
    data = api.data("""{ userMetrics(userId: "o'brien") { userId eventCount } }""")
    assert data["userMetrics"]["eventCount"] == sum(1 for e in accepted_events if e["user_id"] == "o'brien")


# ---- HTTP edges -----------------------------------------------------------------------------

def test_http_edges(api, token):
    c = api.client
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert c.post("/graphql", "not json", content_type="application/json", **auth).status_code == 400
    assert c.post("/graphql", {"variables": {}}, content_type="application/json", **auth).status_code == 400
    assert c.post("/graphql", {"query": "{", "variables": {}}, content_type="application/json", **auth).status_code == 400
    assert c.post("/graphql", {"query": "{ x }", "variables": []}, content_type="application/json", **auth).status_code == 400
    assert c.put("/graphql", **auth).status_code == 405
    assert c.get("/graphql", HTTP_ACCEPT="application/json").status_code == 405


def test_graphiql_page_for_browsers(api):
    with override_settings(STRATA_GRAPHIQL=True):
        response = api.client.get("/graphql", HTTP_ACCEPT="text/html")
        assert response.status_code == 200 and b"graphiql" in response.content.lower()
    with override_settings(STRATA_GRAPHIQL=False):
        assert api.client.get("/graphql", HTTP_ACCEPT="text/html").status_code == 405


def test_healthz(api):
    response = api.client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["dataVersion"] == "fixture-v1"


def test_missing_warehouse_is_a_clear_error(api, tmp_path):
    with override_settings(STRATA_WAREHOUSE_PATH=str(tmp_path / "none.duckdb")):
        status, body = api.post('{ dailyActiveUsers(date: "2026-03-02") { activeUsers } }')
    assert status == 200 and body["data"] == {"dailyActiveUsers": None}
    assert body["errors"][0]["extensions"]["code"] == "WAREHOUSE_UNAVAILABLE"
    assert "strata transform" in body["errors"][0]["message"]
    assert body["extensions"]["dataVersion"] is None


def test_admin_requires_login(api):
    response = api.client.get("/admin/strata_metrics/metricdefinition/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_every_date_range_field_rejects_a_reversed_range(api):
    bad = '{start: "2026-03-05", end: "2026-03-01"}'
    queries = [
        f'{{ revenueMetrics(dateRange: {bad}) {{ orders }} }}',
        f'{{ conversionFunnel(dateRange: {bad}) {{ steps {{ name }} }} }}',
        f'{{ userMetrics(userId: "u01", dateRange: {bad}) {{ userId }} }}',
        f'{{ userBehavior(userId: "u01", metric: "events", dateRange: {bad}) {{ date }} }}',
        f'{{ trainingData(features: ["count_events_7d"], dateRange: {bad}) {{ rows {{ userId }} }} }}',
        f'{{ metric(name: "events", dateRange: {bad}) {{ name }} }}',
    ]
    for q in queries:
        error = _error(api, q)
        assert error["extensions"]["argument"] == "dateRange", q


def test_dates_are_utc(api):
    assert dt.date(2026, 3, 2).isoformat() == api.data('{ dailyActiveUsers(date: "2026-03-02") { date } }')["dailyActiveUsers"]["date"]


def test_warehouse_without_marts_says_run_transform(api, tmp_path):
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw; create schema mart")
    con.close()
    with override_settings(STRATA_WAREHOUSE_PATH=str(path)):
        status, body = api.post('{ dailyActiveUsers(date: "2026-03-02") { activeUsers } }')
    assert status == 200 and body["data"] == {"dailyActiveUsers": None}
    assert body["errors"][0]["extensions"]["code"] == "WAREHOUSE_NOT_BUILT"
    assert "strata transform" in body["errors"][0]["message"] and "select" not in body["errors"][0]["message"].lower()


def test_unexpected_failures_do_not_leak_details(api, monkeypatch):
    from graphql_site.querylayer import queries

    def boom(*args, **kwargs):
        raise RuntimeError("secret connection string postgres://user:pw@host")

    monkeypatch.setattr(queries, "daily_active_users", boom)
    status, body = api.post('{ dailyActiveUsers(date: "2026-03-12") { activeUsers } }')
    assert status == 200 and body["errors"][0]["message"] == "internal error"
    assert "secret" not in json_dump(body)


def json_dump(body) -> str:
    import json

    return json.dumps(body)


def test_explicit_nulls_mean_the_defaults(api, accepted_events):
    data = api.data("""{ userEvents(userId: "u01", limit: null) { eventId }
        trainingData(features: ["count_events_7d"], dateRange: {start: "2026-03-01", end: "2026-03-14"}, first: null) {
          rows { userId } }
        conversionFunnel(dateRange: {start: "2026-03-01", end: "2026-03-14"}, steps: null) { steps { name } } }""")
    assert len(data["userEvents"]) == min(50, sum(1 for e in accepted_events if e["user_id"] == "u01"))
    assert len(data["trainingData"]["rows"]) == 100
    assert [s["name"] for s in data["conversionFunnel"]["steps"]] == ["view_item", "add_to_cart", "begin_checkout", "purchase"]
    metric = api.data('{ metric(name: "events", dateRange: {start: "2026-03-01", end: "2026-03-02"}, grain: null) { grain } }')
    assert metric["metric"]["grain"] == "DAY"


@pytest.mark.parametrize("query", [
    '{ userMetrics(userId: "u01", dateRange: null) { userId } }',
    '{ userBehavior(userId: "u01", metric: "events") { date value } }',
    '{ userBehavior(userId: "u01", metric: "average_purchase", dateRange: null) { date value exactValue } }',
    '{ userFeatures(userId: "u01", asOf: "2001-01-01T00:00:00+00:00") { userId } }',
    '{ userFeatures(userId: "u01", asOf: "2026-03-05T23:30:00-05:00") { asOfDate } }',
    '{ userEvents(userId: "u01", eventType: "teleport") { eventId } }',
    '{ trainingData(features: ["count_events_7d"], dateRange: {start: "2030-01-01", end: "2030-01-02"}) { rows { userId } pageInfo { hasNextPage endCursor } } }',
    '{ conversionFunnel(dateRange: {start: "2030-01-01", end: "2030-01-02"}) { steps { users conversionRate } } }',
    '{ metric(name: "average_purchase", dateRange: {start: "2026-03-01", end: "2026-03-14"}, grain: WEEK) { points { date value exactValue } } }',
])
def test_edge_inputs_answer_without_errors(api, query):
    status, body = api.post(query)
    assert status == 200 and "errors" not in body, body


def test_anonymous_event_features(api, accepted_events):
    anon = next(e for e in accepted_events if e["user_id"] is None)
    data = api.data('query($e: ID!) { eventFeatures(eventId: $e) { userId userFeaturesAsOf features { name } } }',
                    {"e": anon["event_id"]})
    assert data["eventFeatures"] == {"userId": None, "userFeaturesAsOf": None, "features": []}


def test_graphiql_introspection_passes_the_depth_limit(api):
    from graphql import get_introspection_query

    with override_settings(STRATA_GRAPHQL_INTROSPECTION=True):
        status, body = api.post(get_introspection_query(descriptions=True))
    assert status == 200 and body["data"]["__schema"]["queryType"]["name"] == "Query"
