"""Every refusal: bad arguments, auth, rate limit, depth and cost, introspection, SQL injection
through every string argument, and the HTTP edges.

One shape for every bad argument (a rule broken, a wrong type as a literal or as a variable):
HTTP 400, no ``data``, ``extensions: {code: BAD_USER_INPUT, argument}``."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test.utils import override_settings

R = '{start: "2026-03-01", end: "2026-03-14"}'


def _error(api, query, variables=None, status=400):
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
    ('{ userEvents(userId: "u01", eventType: "Bad Type") { eventId } }', "eventType", "lower snake case"),
    ('{ userEvents(userId: "u01", eventType: "purchase\\n") { eventId } }', "eventType", "lower snake case"),
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
    status, body = api.post(query)
    assert status == 400 and "data" not in body, body
    error = body["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert f"`{argument}`" in error["message"] and fragment in error["message"], error["message"]
    assert error["locations"]


def test_bad_dates_have_the_shape_of_every_bad_argument(api):
    """Issue 12: bad dates answered 400 without extensions, other bad arguments 200 with
    BAD_USER_INPUT. Now a bad date (literal or variable) and a reversed range look alike."""
    shapes = []
    for query, variables in [
        ('{ dailyActiveUsers(date: "yesterday") { activeUsers } }', None),
        ("query($d: Date!) { dailyActiveUsers(date: $d) { activeUsers } }", {"d": "2026-13-40"}),
        ('{ revenueMetrics(dateRange: {start: "2026-03-40", end: "2026-03-01"}) { orders } }', None),
        ('{ revenueMetrics(dateRange: {start: "2026-03-05", end: "2026-03-01"}) { orders } }', None),
    ]:
        status, body = api.post(query, variables)
        assert status == 400 and "data" not in body, body
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        shapes.append((status, error["extensions"].get("argument")))
    assert shapes == [(400, "date"), (400, "date"), (400, "dateRange"), (400, "dateRange")]
    error = _error(api, "query($d: Date!) { dailyActiveUsers(date: $d) { activeUsers } }", {"d": "2026-13-40"})
    assert "$d" in error["message"] and error["extensions"]["variable"] == "d"


def test_one_bad_argument_refuses_the_whole_request(api):
    status, body = api.post('{ a: dailyActiveUsers(date: "2026-03-02") { activeUsers } '
                            'b: userEvents(userId: "u01", limit: 9999) { eventId } }')
    assert status == 400 and "data" not in body
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "limit"}


def test_one_failing_field_does_not_hide_the_others(api, monkeypatch):
    from graphql_site.querylayer import queries

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(queries, "user_events", broken)
    status, body = api.post('{ a: dailyActiveUsers(date: "2026-03-02") { activeUsers } '
                            'b: userEvents(userId: "u01") { eventId } }')
    assert status == 200
    assert body["data"]["a"]["activeUsers"] > 0 and body["data"]["b"] is None
    assert body["errors"][0]["path"] == ["b"] and body["errors"][0]["extensions"]["code"] == "INTERNAL"


# ---- auth and rate limit -----------------------------------------------------------------

def test_missing_bad_and_inactive_tokens_are_refused(api):
    from graphql_site.tokens.models import ApiToken

    q = '{ dailyActiveUsers(date: "2026-03-02") { activeUsers } }'
    for token in (None, "strata_not-a-real-token"):
        status, body = api.post(q, token=token)
        assert status == 401, body
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "data" not in body
    status, _headers, _body = api.request("POST", "/graphql", json_dump({"query": q}).encode(),
                                          headers={"Authorization": "Basic dXNlcjpwYXNz"})
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
    status, headers, content = api.request("POST", "/graphql", json_dump({"query": q}).encode(),
                                           headers={"Authorization": f"Bearer {limited}"})
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    assert orjson_loads(content)["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert api.post(q)[0] == 200  # other tokens are not affected


# ---- depth, complexity, introspection -------------------------------------------------------

def test_depth_limit(api):
    """graphene's depth_limit_validator: `revenueMetrics { daily { date } }` is 2 deep."""
    with override_settings(STRATA_GRAPHQL_MAX_DEPTH=1):
        error = _error(api, f'{{ revenueMetrics(dateRange: {R}) {{ daily {{ date }} }} }}')
    assert error["extensions"]["code"] == "QUERY_TOO_DEEP" and "maximum operation depth of 1" in error["message"]
    # through fragments too
    with override_settings(STRATA_GRAPHQL_MAX_DEPTH=1):
        error = _error(api, f'fragment D on RevenueMetrics {{ daily {{ date }} }} '
                            f'query Q {{ revenueMetrics(dateRange: {R}) {{ ...D }} }}')
    assert error["extensions"]["code"] == "QUERY_TOO_DEEP"
    assert api.post(f'{{ revenueMetrics(dateRange: {R}) {{ daily {{ date }} }} }}')[0] == 200


def test_cost_counts_aliases_ranges_and_limits(api):
    q = "query($n: Int) { userEvents(userId: \"u01\", limit: $n) { eventId eventType eventTimestamp amount properties } }"
    with override_settings(STRATA_GRAPHQL_MAX_COST=100):
        error = _error(api, q, {"n": 100})
        assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "cost": 110, "maxCost": 100}
        assert api.post(q, {"n": 10})[0] == 200
    # one year-long funnel fits; four aliased ones do not (each costs 10 + 366 x 4)
    year = '{start: "2025-03-01", end: "2026-03-01"}'
    one = f'conversionFunnel(dateRange: {year}) {{ steps {{ users }} }}'
    assert api.post("{ " + one + " }")[0] == 200
    error = _error(api, "{ " + " ".join(f"f{i}: {one}" for i in range(4)) + " }")
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX" and error["extensions"]["cost"] == 4 * (10 + 366 * 4)


def test_introspection_follows_the_setting(api):
    q = "{ __schema { queryType { name } } }"
    with override_settings(STRATA_GRAPHQL_INTROSPECTION=True):
        status, body = api.post(q)
        assert status == 200 and body["data"]["__schema"]["queryType"]["name"] == "Query"
    with override_settings(STRATA_GRAPHQL_INTROSPECTION=False):
        status, body = api.post(q)
        assert status == 400 and "introspection" in body["errors"][0]["message"].lower()
        assert body["errors"][0]["extensions"]["code"] == "INTROSPECTION_DISABLED"


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
      userFeatures(userId: $id) { userId }
      eventFeatures(eventId: $id) { eventId }
    }"""
    status, body = api.post(q.replace("$p: String!, ", ""), {"id": payload})
    assert status == 200, body
    data = body["data"]
    assert data["userMetrics"] is None and data["ranged"] is None and data["userEvents"] == []
    assert data["userFeatures"] is None and data["eventFeatures"] is None
    # eventType must be snake case: refused, naming it
    typed = 'query($p: String!) { userEvents(userId: "u01", eventType: $p) { eventId } }'
    status, body = api.post(typed, {"p": payload})
    assert status == 400 and body["errors"][0]["extensions"]["argument"] == "eventType", body
    for name_arg in ("steps", "features", "metric", "name"):
        query = {
            "steps": "query($p: String!) { conversionFunnel(dateRange: {start: \"2026-03-01\", end: \"2026-03-14\"}, steps: [\"view_item\", $p]) { steps { users } } }",
            "features": "query($p: String!) { trainingData(features: [$p], dateRange: {start: \"2026-03-01\", end: \"2026-03-14\"}) { rows { userId } } }",
            "metric": "query($p: String!) { userBehavior(userId: \"u01\", metric: $p) { date } }",
            "name": "query($p: String!) { metric(name: $p, dateRange: {start: \"2026-03-01\", end: \"2026-03-14\"}) { name } }",
        }[name_arg]
        status, body = api.post(query, {"p": payload})
        assert status == 400 and body["errors"][0]["extensions"]["argument"] == name_arg, body
        assert "data" not in body
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
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def status(method, body=b"", **kw):
        return api.request(method, "/graphql", body, headers={**auth, **kw.get("headers", {})},
                           query_string=kw.get("query_string", ""))[0]

    assert status("POST", b"not json") == 400
    assert status("POST", b'{"variables": {}}') == 400
    assert status("POST", b'{"query": "{", "variables": {}}') == 400
    assert status("POST", b'{"query": "{ x }", "variables": []}') == 400
    assert status("POST", b'{"query": "{ __typename }"}', headers={"Content-Type": "text/plain"}) == 415
    assert status("PUT") == 405
    assert status("GET", headers={"Accept": "application/json"}) == 400  # GET needs `query` or a hash
    assert status("GET", query_string="query=%7B__typename%7D") == 200
    # without a token, every GraphQL request is a 401 before anything is read
    assert api.request("PUT", "/graphql")[0] == 405
    assert api.request("GET", "/graphql", query_string="query=%7B__typename%7D")[0] == 401
    assert api.request("POST", "/graphql", b"not json")[0] == 401


def test_graphiql_page_for_browsers(api):
    with override_settings(STRATA_GRAPHIQL=True):
        status, headers, content = api.request("GET", "/graphql", headers={"Accept": "text/html"})
        assert status == 200 and b"graphiql" in content.lower()
        # every script and stylesheet is this server's own
        assert b"https://" not in content and b"http://" not in content and b"/static/gateway/vendor/" in content
    with override_settings(STRATA_GRAPHIQL=False):  # then /graphql is the API only
        assert api.request("GET", "/graphql", headers={"Accept": "text/html"})[0] == 401


def test_healthz(api, tmp_path):
    status, _headers, content = api.request("GET", "/healthz")
    body = orjson_loads(content)
    assert status == 200, body
    assert body["status"] == "ok" and body["database"] == "ok" and body["warehouse"] == "ok"
    assert body["dataVersion"] == "fixture-v1"
    # the warehouse down: 503, saying what is down, and no file path (issues 9 and 12)
    missing = tmp_path / "gone" / "warehouse.duckdb"
    with override_settings(STRATA_WAREHOUSE_PATH=str(missing)):
        status, _headers, content = api.request("GET", "/healthz")
    body = orjson_loads(content)
    assert status == 503 and body["status"] == "unavailable" and body["down"] == ["warehouse"], body
    assert "strata transform" in body["warehouse"]
    assert str(tmp_path) not in content.decode() and "/" not in body["warehouse"].replace("`", "")


def test_missing_warehouse_is_a_clear_error(api, tmp_path):
    with override_settings(STRATA_WAREHOUSE_PATH=str(tmp_path / "none.duckdb")):
        status, body = api.post('{ dailyActiveUsers(date: "2026-03-02") { activeUsers } }')
    assert status == 200 and body["data"] == {"dailyActiveUsers": None}
    assert body["errors"][0]["extensions"]["code"] == "WAREHOUSE_UNAVAILABLE"
    assert "strata transform" in body["errors"][0]["message"]
    assert str(tmp_path) not in json_dump(body)
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
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "dateRange"}, q


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


def orjson_loads(content: bytes):
    import json

    return json.loads(content)


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
