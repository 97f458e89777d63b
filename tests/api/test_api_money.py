"""Issue 9, section 2: every Money value equals the exact decimal sum of the input amounts.

Amounts are chosen so that floats get them wrong (``123456789.12`` came back as
``123456789.120000005``) and so that a range's total needs more than the 28 significant digits of
Python's default decimal context. Three paths:

* the API over a warehouse built from those events (the test stand-in for dbt);
* the whole pipeline: an NDJSON file -> ``strata ingest batch`` -> ``strata transform`` (dbt on
  DuckDB) -> the API (slow);
* BigQuery's read path: the real google-cloud-bigquery client and sqlalchemy-bigquery dialect
  against a loopback fake of ``jobs.query`` that answers NUMERIC values as BigQuery does (text).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import pathlib
import subprocess
import sys

import pytest
from django.test.utils import override_settings

from api import fixture_warehouse
from api.events import _event, _ts
from strata_core import contract

D = decimal.Decimal
EXACT = decimal.Context(prec=100)
REPO = pathlib.Path(__file__).resolve().parents[2]
BIG = D("9999999999999999999.999999999")  # 28 significant digits: a day's sum still fits DECIMAL(38, 9)
AMOUNTS = [D("123456789.12"), D("0.1"), D("0.2"), D("0.3"), D("1.000000001"), D("33.333333333"), BIG]


def _money_events() -> list[dict]:
    events, n = [], 0
    for day in range(14):
        for k, amount in enumerate(AMOUNTS):
            n += 1
            events.append(_event(n, "purchase", _ts(day, 100 + k), f"m{k:02d}", amount=amount))
        n += 1
        events.append(_event(n, "refund", _ts(day, 900), "m00", amount=D("0.1")))
    return events


def _sum(values) -> D:
    total = D(0)
    for v in values:
        total = EXACT.add(total, v)
    return total


def _check_revenue(api, start: str, end: str, gross_per_day: D, refunds_per_day: D, days: int, orders_per_day: int):
    data = api.data("""query($r: DateRangeInput!) { revenueMetrics(dateRange: $r) {
        totalRevenue grossRevenue refunds orders averageOrderValue daily { date revenue } } }""",
                    {"r": {"start": start, "end": end}})["revenueMetrics"]
    gross = EXACT.multiply(gross_per_day, days)
    refunds = EXACT.multiply(refunds_per_day, days)
    assert D(data["grossRevenue"]) == gross and data["grossRevenue"] == format(EXACT.quantize(gross, D("1e-9")), "f")
    assert D(data["refunds"]) == refunds
    assert D(data["totalRevenue"]) == EXACT.subtract(gross, refunds)
    assert len(D(data["grossRevenue"]).as_tuple().digits) > 28  # beyond Python's default context
    assert all(D(d["revenue"]) == EXACT.subtract(gross_per_day, refunds_per_day) for d in data["daily"])
    aov = EXACT.divide(gross, days * orders_per_day).quantize(D("1e-9"), rounding=decimal.ROUND_HALF_UP)
    assert D(data["averageOrderValue"]) == aov
    return data


def test_money_is_exact_through_the_api(api, tmp_path):
    home = tmp_path / "money"
    fixture_warehouse.build(home, _money_events(), version="money-v1")
    with override_settings(STRATA_WAREHOUSE_PATH=str(home / "warehouse.duckdb")):
        _check_revenue(api, "2026-03-01", "2026-03-14", _sum(AMOUNTS), D("0.1"), 14, len(AMOUNTS))
        events = api.data('{ userEvents(userId: "m00", eventType: "purchase", limit: 1) { amount } }')["userEvents"]
        assert events == [{"amount": "123456789.120000000"}]
        user = api.data('{ userMetrics(userId: "m06") { totalRevenue } '
                        'r: userMetrics(userId: "m06", dateRange: {start: "2026-03-01", end: "2026-03-14"}) '
                        '{ totalRevenue } }')
        assert D(user["userMetrics"]["totalRevenue"]) == D(user["r"]["totalRevenue"]) == EXACT.multiply(BIG, 14)
        metric = api.data('{ metric(name: "net_revenue", dateRange: {start: "2026-03-01", end: "2026-03-14"}, '
                          'grain: MONTH) { points { exactValue } } }')["metric"]["points"]
        assert D(metric[0]["exactValue"]) == EXACT.subtract(EXACT.multiply(_sum(AMOUNTS), 14), D("1.4"))
        avg = api.data('{ metric(name: "average_purchase", dateRange: {start: "2026-03-01", end: "2026-03-01"}) '
                       '{ points { exactValue } } }')["metric"]["points"]
        assert D(avg[0]["exactValue"]) == EXACT.divide(_sum(AMOUNTS), len(AMOUNTS)).quantize(
            D("1e-9"), rounding=decimal.ROUND_HALF_UP)


#: Amounts a producer may send that a float cannot hold exactly, within a double's 15 significant digits.
LINE_AMOUNTS = [D("123456789.12"), D("0.1"), D("0.2"), D("0.3"), D("1.000000001"), D("33.333333333"),
                D("999999999999.999")]
#: The largest amount the contract accepts at full scale: 24 significant digits, beyond any double.
LARGEST_AMOUNT = D(10) ** contract.AMOUNT_LIMIT_EXPONENT - D("1e-9")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> pathlib.Path:
    """One home through the real ingest and dbt build: LINE_AMOUNTS on 2026-03-02..04, and
    LARGEST_AMOUNT (more digits than a double holds) on 2026-03-06."""
    tmp = tmp_path_factory.mktemp("money-pipeline")
    home, data = tmp / "home", tmp / "data"
    data.mkdir()
    base = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
    lines = []

    def purchase(event_id, user, at, amount):
        # the amount is written as the JSON number it is: exactly as a producer would send it
        lines.append('{"event_id": "%s", "event_type": "purchase", "user_id": "%s", "event_timestamp": "%s", '
                     '"amount": %s, "currency": "EUR"}' % (event_id, user, at.isoformat(), format(amount, "f")))

    for day in range(3):
        for k, amount in enumerate(LINE_AMOUNTS):
            purchase(f"p-{day}-{k}", f"m{k:02d}", base + dt.timedelta(days=day, minutes=k), amount)
        lines.append('{"event_id": "r-%d", "event_type": "refund", "user_id": "m00", "event_timestamp": "%s", '
                     '"amount": 0.1, "currency": "EUR"}' % (day, (base + dt.timedelta(days=day, hours=1)).isoformat()))
    purchase("big-1", "b01", base + dt.timedelta(days=4), LARGEST_AMOUNT)
    (data / "money.ndjson").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "STRATA_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    for args in (["ingest", "batch", "--input", str(data / "money.ndjson")], ["transform", "--no-tests"]):
        done = subprocess.run([sys.executable, "-m", "strata", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"strata {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return home


@pytest.mark.slow
def test_money_is_exact_from_the_input_line_to_the_answer(api, ingested):
    """NDJSON lines with amounts floats get wrong, through the real ingest and the dbt build."""
    with override_settings(STRATA_WAREHOUSE_PATH=str(ingested / "warehouse.duckdb")):
        data = api.data("""{ revenueMetrics(dateRange: {start: "2026-03-02", end: "2026-03-04"}) {
            totalRevenue grossRevenue refunds daily { revenue } } }""")["revenueMetrics"]
        gross = EXACT.multiply(_sum(LINE_AMOUNTS), 3)
        assert (D(data["grossRevenue"]), D(data["refunds"]), D(data["totalRevenue"])) == (
            gross, D("0.3"), EXACT.subtract(gross, D("0.3")))
        assert {d["revenue"] for d in data["daily"]} == {format(EXACT.subtract(_sum(LINE_AMOUNTS), D("0.1")), "f")}
        events = api.data('{ userEvents(userId: "m00", eventType: "purchase", limit: 1) { amount } }')["userEvents"]
        assert events == [{"amount": "123456789.120000000"}]


@pytest.mark.slow
def test_amounts_with_more_digits_than_a_double_survive_ingest(api, ingested):
    with override_settings(STRATA_WAREHOUSE_PATH=str(ingested / "warehouse.duckdb")):
        data = api.data('{ revenueMetrics(dateRange: {start: "2026-03-06", end: "2026-03-06"}) { grossRevenue } }')
    assert D(data["revenueMetrics"]["grossRevenue"]) == LARGEST_AMOUNT


# ---- BigQuery: the real client and dialect, a loopback fake of jobs.query ------------------------

class _FakeBigQueryQueries:
    """Answers ``jobs.query`` with the rows a test gives, typed and encoded the way BigQuery's REST
    API encodes them (NUMERIC as text). It runs no SQL: it proves the read path, not the SQL."""

    def __init__(self, schema: list[tuple[str, str]], rows: list[list]):
        import http.server
        import threading

        self.schema, self.rows, self.queries = schema, rows, []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.queries.append(body.get("query"))
                self._send({"kind": "bigquery#queryResponse", "jobComplete": True,
                            "jobReference": {"projectId": "strata-test", "jobId": "job-1", "location": "EU"},
                            "schema": {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in fake.schema]},
                            "rows": [{"f": [{"v": None if v is None else str(v)} for v in row]} for row in fake.rows],
                            "totalRows": str(len(fake.rows)), "totalBytesProcessed": "1234", "cacheHit": False})

            def do_GET(self):  # getQueryResults / jobs.get, if the client asks
                self._send({"kind": "bigquery#getQueryResultsResponse", "jobComplete": True,
                            "jobReference": {"projectId": "strata-test", "jobId": "job-1", "location": "EU"},
                            "status": {"state": "DONE"}, "totalRows": "0", "rows": []})

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_bigquery_numeric_is_exact_through_the_dialect_and_the_api_sums(monkeypatch):
    """BigQuery NUMERIC arrives as text; the client makes it a Decimal, and nothing after that may
    turn it into a float or round its sum."""
    pytest.importorskip("sqlalchemy_bigquery")
    import sqlalchemy as sa
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from fakes.network_guard import loopback_only
    from graphql_site.querylayer import engine, queries

    day = dt.date(2026, 3, 1)
    gross = _sum(AMOUNTS)
    rows = [[(day + dt.timedelta(days=i)).isoformat(), format(EXACT.subtract(gross, D("0.1")), "f"),
             format(gross, "f"), "0.1", len(AMOUNTS)] for i in range(14)]
    fake = _FakeBigQueryQueries([("date", "DATE"), ("revenue", "NUMERIC"), ("gross_revenue", "NUMERIC"),
                                 ("refunds", "NUMERIC"), ("orders", "INTEGER")], rows)
    try:
        with loopback_only():
            client = bigquery.Client(project="strata-test", credentials=AnonymousCredentials(),
                                     client_options=ClientOptions(api_endpoint=fake.endpoint))
            sa_engine = sa.create_engine("bigquery://strata-test?user_supplied_client=True",
                                         connect_args={"client": client})
            snap = engine.Snapshot("bq-v1", sa_engine, "bigquery", {})
            bm = queries.t.business_metrics
            got = snap.rows(sa.select(bm.c.date, bm.c.revenue, bm.c.gross_revenue, bm.c.refunds, bm.c.orders))
            assert [type(r.gross_revenue) for r in got] == [D] * 14
            assert got[0].gross_revenue == gross and got[0].revenue == EXACT.subtract(gross, D("0.1"))
            # the API's range totals over those rows: paying users come from a second query
            fake.rows, fake.schema = [[3]], [("n", "INTEGER")]
            original_rows = snap.rows
            calls = iter([got, None])

            def rows_then_paying(statement, params=None, stats=None):
                first = next(calls)
                return first if first is not None else original_rows(statement, params, stats)
            monkeypatch.setattr(snap, "rows", rows_then_paying)
            result = queries.revenue_metrics(snap, engine.QueryStats(), day, day + dt.timedelta(days=13))
        assert result["gross_revenue"] == EXACT.multiply(gross, 14)
        assert result["total_revenue"] == EXACT.multiply(EXACT.subtract(gross, D("0.1")), 14)
        assert len(result["gross_revenue"].as_tuple().digits) > 28
        assert any("`business_metrics`" in q for q in fake.queries)
    finally:
        fake.stop()
