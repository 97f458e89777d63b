"""End to end on the real pipeline: ``strata generate`` -> ``strata ingest batch`` ->
``strata transform`` (dbt) -> ``strata serve`` (gunicorn) -> HTTP, checked against the
generator's ground truth; a transform with nothing new keeps the data version, one after new
raw rows must invalidate the cache."""

from __future__ import annotations

import datetime as dt
import decimal
import http.client
import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
D = decimal.Decimal


def _strata(home: pathlib.Path, *args: str) -> str:
    env = {**os.environ, "STRATA_HOME": str(home)}
    env.pop("DATABASE_URL", None)  # the server under test keeps its own SQLite under this home
    done = subprocess.run([sys.executable, "-m", "strata", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"strata {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, token: str | None, query: str, variables: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request("POST", "/graphql", json.dumps({"query": query, "variables": variables or {}}), headers)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


@pytest.mark.slow
def test_pipeline_to_api_over_http(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    data = home / "data"
    _strata(home, "generate", "--users", "150", "--days", "6", "--seed", "11", "--start-date", "2026-02-02",
            "--out", str(data))
    _strata(home, "ingest", "batch", "--input", str(data / "events-*"), "--users-input", str(data / "users.jsonl"))
    _strata(home, "transform")
    truth = json.loads((data / "ground_truth.json").read_text())
    version1 = (home / "data_version").read_text().strip()

    env = {**os.environ, "STRATA_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    created = subprocess.run([sys.executable, "graphql_site/manage.py", "migrate", "-v", "0"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    made = subprocess.run([sys.executable, "graphql_site/manage.py", "create_api_token", "e2e"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()

    from strata.commands import serve

    port = _free_port()
    proc, _url = serve.start_background("127.0.0.1", port, log_path=tmp_path / "serve.log", workers=2,
                                        threads=2, env={"STRATA_HOME": str(home), "DATABASE_URL": ""})
    try:
        assert _post(port, None, "{ __typename }")[0] == 401
        start, end = min(truth["dau_by_date"]), max(truth["dau_by_date"])
        for day, dau in truth["dau_by_date"].items():
            status, body = _post(port, token, "query($d: Date!) { dailyActiveUsers(date: $d) { activeUsers } }", {"d": day})
            assert status == 200 and body["data"]["dailyActiveUsers"]["activeUsers"] == dau, (day, body)
            assert body["extensions"]["dataVersion"] == version1
        q = """query($r: DateRangeInput!) { revenueMetrics(dateRange: $r) { totalRevenue grossRevenue refunds orders
               payingUsers averageOrderValue daily { date revenue orders } } }"""
        body = _post(port, token, q, {"r": {"start": start, "end": end}})[1]["data"]["revenueMetrics"]
        assert D(body["totalRevenue"]) == sum(D(v) for v in truth["revenue_by_date"].values())
        assert D(body["grossRevenue"]) == sum(D(v) for v in truth["gross_by_date"].values())
        assert D(body["refunds"]) == sum(D(v) for v in truth["refunds_by_date"].values())
        assert body["orders"] == sum(truth["orders_by_date"].values())
        assert {d["date"]: (D(d["revenue"]), d["orders"]) for d in body["daily"]} == {
            day: (D(truth["revenue_by_date"][day]), truth["orders_by_date"][day]) for day in truth["revenue_by_date"]}
        for day, paying in truth["paying_users_by_date"].items():
            one = _post(port, token, q, {"r": {"start": day, "end": day}})[1]["data"]["revenueMetrics"]
            assert one["payingUsers"] == paying, day
        funnel = _post(port, token, """query($r: DateRangeInput!) { conversionFunnel(dateRange: $r) {
            steps { name users } } }""", {"r": {"start": start, "end": end}})[1]["data"]["conversionFunnel"]["steps"]
        assert [(s["name"], s["users"]) for s in funnel] == [(s, truth["funnel_users"][s]) for s in truth["funnel_steps"]]

        # the same query twice: the second is a cache hit (shared across workers when Redis is up)
        key_q = "query($d: Date!) { dailyActiveUsers(date: $d) { activeUsers } }"
        _post(port, token, key_q, {"d": start})
        # a transform with nothing new to build publishes nothing: the version (and cache) stay
        _strata(home, "transform")
        assert (home / "data_version").read_text().strip() == version1
        # new raw rows (on a later day): the transform publishes a new data version, and the next
        # answer is not from the old cache
        _strata(home, "generate", "--users", "20", "--days", "1", "--seed", "12", "--start-date", "2026-02-20",
                "--out", str(home / "data2"))
        _strata(home, "ingest", "batch", "--input", str(home / "data2" / "events-*"))
        _strata(home, "transform")
        version2 = (home / "data_version").read_text().strip()
        assert version2 != version1
        status, body = _post(port, token, key_q, {"d": start})
        assert body["extensions"]["dataVersion"] == version2 and body["extensions"]["cacheHit"] is False
        assert body["data"]["dailyActiveUsers"]["activeUsers"] == truth["dau_by_date"][start]

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/graphql", headers={"Accept": "text/html"})
        page = conn.getresponse()
        assert page.status == 200 and b"graphiql" in page.read().lower()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(30)
    assert dt.date.fromisoformat(start)  # dates from the truth file are ISO dates


def test_the_server_runs_a_thread_per_worker_on_duckdb_and_four_on_bigquery(monkeypatch):
    from strata.commands import serve

    def threads(argv: list[str], flag: str) -> int:
        return int(argv[argv.index(flag) + 1])

    monkeypatch.delenv("STRATA_WAREHOUSE", raising=False)
    assert threads(serve.granian_argv("127.0.0.1", 8000), "--blocking-threads") == 1
    assert threads(serve.gunicorn_argv("127.0.0.1", 8000), "--threads") == 1
    assert threads(serve.granian_argv("127.0.0.1", 8000, threads=3), "--blocking-threads") == 3
    monkeypatch.setenv("STRATA_WAREHOUSE", "bigquery")
    assert threads(serve.granian_argv("127.0.0.1", 8000), "--blocking-threads") == 4
