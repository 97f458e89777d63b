"""Benchmark of the GraphQL API over loopback with wrk: the cached path against a do-nothing app
under the same server settings, and the uncached path, in one run.

    python bench/api.py [--home DIR] [--prepare] [--duration-s 10] [--servers gunicorn,granian]

* ``--home``: a ``$STRATA_HOME`` with a built warehouse (default ``bench/out/home-1m``).
  ``--prepare`` builds it first: ``strata generate --events 1000000`` -> ``ingest batch`` ->
  ``transform`` (a few minutes on 2 cores).
* For each server (granian, as ``strata serve`` runs it, and gunicorn gthread, its
  ``--server gunicorn``), with the same workers and threads:

  1. ``noop``: a WSGI app that returns the bytes of a cached ``revenueMetrics`` response and does
     nothing else (``bench/noop_app.py``): the ceiling;
  2. ``cached``: the same query through the API, answered from the response cache (POST, and GET
     with an APQ hash), authenticated and rate-limited as always;
  3. ``uncached`` (``STRATA_CACHE=off``): each query with rotating arguments, so every request
     runs its SQL on the warehouse.

* Load comes from wrk (C; ``apt-get install wrk``), ``--connections`` keep-alive connections for
  the cached runs (16, as in the issue) and ``--uncached-connections`` (8) for the uncached ones.

Prints a table and writes ``bench/out/api.json``. Nothing leaves 127.0.0.1. The machine may be
shared: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import pathlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUERIES = {
    "dailyActiveUsers": ("query($d: Date!) { dailyActiveUsers(date: $d) { date activeUsers } }",
                         lambda rnd, days, users: {"d": rnd.choice(days)}),
    "revenueMetrics": ("query($r: DateRangeInput!) { revenueMetrics(dateRange: $r) { totalRevenue grossRevenue "
                       "refunds orders payingUsers averageOrderValue daily { date revenue orders } } }",
                       lambda rnd, days, users: {"r": _range(rnd, days)}),
    "conversionFunnel": ("query($r: DateRangeInput!) { conversionFunnel(dateRange: $r) { "
                         "steps { name users conversionRate } } }",
                         lambda rnd, days, users: {"r": _range(rnd, days)}),
    "userMetrics": ("query($u: ID!) { userMetrics(userId: $u) { userId eventCount sessionCount totalRevenue "
                    "firstSeenAt lastSeenAt activeDays } }",
                    lambda rnd, days, users: {"u": rnd.choice(users)}),
}
CACHED = "revenueMetrics"

LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "max_us": %d, "socket_errors": %d, "status_errors": %d, "timeouts": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write, e.status, e.timeout))
end
"""


def _range(rnd: random.Random, days: list[str]) -> dict:
    a, b = sorted(rnd.sample(range(len(days)), 2))
    return {"start": days[a], "end": days[b]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _lua_string(text: str) -> str:
    level = "=" * 4
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def _lua_script(token: str, requests: list[tuple[str, str, str]]) -> str:
    """``requests``: (method, path, body). One request is prebuilt by wrk; several rotate."""
    lines = [f'wrk.headers["Authorization"] = "Bearer {token}"',
             'wrk.headers["Content-Type"] = "application/json"']
    if len(requests) == 1:
        method, path, body = requests[0]
        lines += [f'wrk.method = "{method}"', f"wrk.path = {_lua_string(path)}"]
        if body:
            lines.append(f"wrk.body = {_lua_string(body)}")
    else:
        lines.append("local reqs = {")
        lines += [f"  {{{_lua_string(m)}, {_lua_string(p)}, {_lua_string(b)}}}," for m, p, b in requests]
        lines += ["}", "local i = math.random(#reqs)",
                  "request = function()", "  i = i % #reqs + 1", "  local r = reqs[i]",
                  "  return wrk.format(r[1], r[2], nil, r[3] ~= '' and r[3] or nil)", "end"]
    return "\n".join(lines) + "\n" + LUA_DONE


def wrk(port: int, token: str, requests, connections: int, duration_s: float, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_lua_script(token, requests))
        script = f.name
    try:
        out = subprocess.run(["wrk", "-t", str(min(threads, connections)), "-c", str(connections),
                              "-d", f"{max(1, round(duration_s))}s", "--timeout", "10s", "-s", script,
                              f"http://127.0.0.1:{port}/"], check=True, capture_output=True, text=True)
    finally:
        os.unlink(script)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRK-JSON "))
    r = json.loads(line[len("WRK-JSON "):])
    seconds = r["duration_us"] / 1e6
    return {"requests": r["requests"], "rps": round(r["requests"] / seconds, 1),
            "p50_ms": round(r["p50_us"] / 1000, 2), "p90_ms": round(r["p90_us"] / 1000, 2),
            "p99_ms": round(r["p99_us"] / 1000, 2), "max_ms": round(r["max_us"] / 1000, 2),
            "errors": r["socket_errors"] + r["status_errors"] + r["timeouts"]}


def _http(port: int, token: str, method: str, path: str, body: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode() if body else None,
                                     method=method, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _check(port: int, token: str, requests, sample: int = 40) -> dict:
    """Every sampled request answers 200 without errors; returns the last body."""
    body = {}
    for method, path, payload in requests[:sample]:
        status, body = _http(port, token, method, path, payload)
        if status != 200 or body.get("errors"):
            raise RuntimeError(f"{method} {path} {payload[:200]} -> {status} {json.dumps(body)[:300]}")
    return body


def prepare(home: pathlib.Path, events: int) -> None:
    env = {**os.environ, "STRATA_HOME": str(home)}
    data = home / "data"
    steps = [
        ["generate", "--users", "20000", "--days", "30", "--events", str(events), "--seed", "1",
         "--out", str(data), "--overwrite"],
        ["ingest", "batch", "--input", str(data / "events-*"), "--users-input", str(data / "users.jsonl")],
        ["transform"],
    ]
    for step in steps:
        print("strata", " ".join(step), flush=True)
        subprocess.run([sys.executable, "-m", "strata", *step], cwd=REPO, env=env, check=True)


def _token(env: dict) -> str:
    out = subprocess.run([sys.executable, "graphql_site/manage.py", "create_api_token", f"bench-{time.time_ns()}",
                          "--rate-limit", "0"], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Server:
    """One server process on a free port: ``app`` is a WSGI path, ``kind`` gunicorn or granian."""

    def __init__(self, kind: str, app: str, chdir: pathlib.Path, env: dict, workers: int, threads: int,
                 log: pathlib.Path):
        self.port = _free_port()
        if kind == "gunicorn":
            from strata.commands import serve

            argv = serve.gunicorn_argv("127.0.0.1", self.port, workers, threads)
            argv[argv.index("graphql_site.wsgi:application")] = app
            argv[argv.index("--chdir") + 1] = str(chdir)
        else:
            argv = [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
                    "--port", str(self.port), "--workers", str(workers), "--blocking-threads", str(threads),
                    "--log-level", "warning", "--working-dir", str(chdir), app]
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(argv, cwd=chdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} {app} did not start; see {log}")
            time.sleep(0.2)
        time.sleep(1.5)  # every worker up before connections are opened (gunicorn pins them)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", type=pathlib.Path, default=REPO / "bench" / "out" / "home-1m")
    p.add_argument("--prepare", action="store_true", help="build the warehouse in --home first")
    p.add_argument("--events", type=int, default=1_000_000, help="events for --prepare (default 1M)")
    p.add_argument("--connections", type=int, default=16, help="connections for the cached runs (default 16)")
    p.add_argument("--uncached-connections", type=int, default=8, help="connections for the uncached runs")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds per measurement (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the cached comparison (default 3)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per worker (default: what `strata serve` picks, serve.default_threads)")
    p.add_argument("--servers", default="gunicorn,granian",
                   help="servers for the cached comparison; granian is skipped when not installed")
    p.add_argument("--cached-only", action="store_true", help="skip the uncached runs")
    p.add_argument("--only", choices=sorted(QUERIES), action="append", help="uncached: only these queries")
    args = p.parse_args(argv)
    if args.threads is None:
        from strata.commands import serve

        args.threads = serve.default_threads()

    from strata_core import paths as strata_paths

    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    home = args.home.resolve()
    if args.prepare:
        home.mkdir(parents=True, exist_ok=True)
        prepare(home, args.events)
    if not (home / "warehouse.duckdb").exists():
        print(f"no warehouse in {home}: run with --prepare", file=sys.stderr)
        return 2
    env = {**os.environ, **strata_paths.OFFLINE_ENV, "STRATA_HOME": str(home), "PYTHONPATH": str(REPO),
           "DJANGO_SETTINGS_MODULE": "graphql_site.settings.local"}
    env.pop("DATABASE_URL", None)
    redis_up = _port_open(6379)
    if redis_up:
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
        env["STRATA_CACHE_KEY_PREFIX"] = f"strata-bench-{os.getpid()}"
    token = _token(env)

    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    # The generated days (a few stray events lie years away: messy input on purpose).
    days = sorted(d.isoformat() for (d,) in con.execute(
        "select date from mart.business_metrics order by dau desc limit 30").fetchall())
    users = [u for (u,) in con.execute("select user_id from mart.user_analytics order by user_id").fetchall()]
    n_events = con.execute("select count(*) from staging.stg_events").fetchone()[0]
    con.close()

    rnd = random.Random(42)
    cached_query = QUERIES[CACHED][0]
    cached_vars = {"r": {"start": days[0], "end": days[-1]}}
    post_body = json.dumps({"query": cached_query, "variables": cached_vars})
    query_hash = hashlib.sha256(cached_query.encode()).hexdigest()
    get_path = "/graphql?" + urllib.parse.urlencode({
        "variables": json.dumps(cached_vars),
        "extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": query_hash}})})
    load_before = os.getloadavg()[0]
    results, servers = [], []
    bench_dir = REPO / "bench"
    try:
        available = [s for s in args.servers.split(",") if s == "gunicorn" or _has_module(s)]
        for kind in available:
            api = Server(kind, "graphql_site.wsgi:application", REPO, env, args.workers, args.threads,
                         home / f"bench-{kind}-api.log")
            servers.append(api)
            # register the APQ hash, warm every worker, and keep a cached body for the do-nothing app
            _http(api.port, token, "POST", "/graphql", json.dumps({
                "query": cached_query, "variables": cached_vars,
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": query_hash}}}))
            body = _check(api.port, token, [("POST", "/graphql", post_body)] * 20 + [("GET", get_path, "")] * 20)
            assert body["extensions"]["cacheHit"], body["extensions"]
            with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
                f.write(json.dumps(body, separators=(",", ":")).encode())
                noop_body = f.name
            noop = Server(kind, "noop_app:application", bench_dir, {**env, "STRATA_NOOP_BODY_FILE": noop_body},
                          args.workers, args.threads, home / f"bench-{kind}-noop.log")
            servers.append(noop)
            scenarios = [("noop", noop, [("POST", "/graphql", post_body)]),
                         ("cached POST", api, [("POST", "/graphql", post_body)]),
                         ("cached GET (APQ)", api, [("GET", get_path, "")])]
            for _name, server, requests in scenarios:
                wrk(server.port, token, requests, args.connections, 2, args.wrk_threads)  # warm-up
            # Rounds interleave the scenarios, so that a busy moment on a shared machine hits all
            # of them alike; each figure is the median round.
            rounds: dict[str, list[dict]] = {name: [] for name, _s, _r in scenarios}
            for _round in range(args.rounds):
                for name, server, requests in scenarios:
                    rounds[name].append(wrk(server.port, token, requests, args.connections, args.duration_s,
                                            args.wrk_threads))
            for name, runs in rounds.items():
                results.append({"server": kind, "scenario": name, "query": CACHED, "connections": args.connections,
                                **_median(runs), "rounds_rps": [r["rps"] for r in runs]})
                _print(results[-1])
            noop.stop()
            api.stop()
            os.unlink(noop_body)
        for kind in ([] if args.cached_only else available):
            uncached = Server(kind, "graphql_site.wsgi:application", REPO, {**env, "STRATA_CACHE": "off"},
                              args.workers, args.threads, home / f"bench-{kind}-uncached.log")
            servers.append(uncached)
            for name in args.only or QUERIES:
                query, make = QUERIES[name]
                requests = [("POST", "/graphql", json.dumps({"query": query, "variables": make(rnd, days, users)}))
                            for _ in range(2000)]
                _check(uncached.port, token, requests, sample=20)
                wrk(uncached.port, token, requests, args.uncached_connections, 2, args.wrk_threads)
                r = wrk(uncached.port, token, requests, args.uncached_connections, args.duration_s, args.wrk_threads)
                results.append({"server": kind, "scenario": "uncached", "query": name,
                                "connections": args.uncached_connections, **r})
                _print(results[-1])
            uncached.stop()
    finally:
        for server in servers:
            server.stop()
    ratios = {}
    for kind in {r["server"] for r in results}:
        by = {r["scenario"]: r for r in results if r["server"] == kind}
        if "noop" in by:
            ratios[kind] = {s: round(by[s]["rps"] / by["noop"]["rps"], 2) for s in by if s.startswith("cached")}
    for kind, rs in ratios.items():
        print(f"{kind}: cached vs do-nothing: " + ", ".join(f"{s} {v}x" for s, v in rs.items()))
    report = {"measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "warehouse_events": n_events, "cache": "redis" if redis_up else "in-process",
              "workers": args.workers, "threads": args.threads, "load_average_before": load_before,
              "results": results, "cached_vs_noop": ratios}
    out = REPO / "bench" / "out" / "api.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")
    return 0


def _median(runs: list[dict]) -> dict:
    """The run with the median throughput (its latencies come with it)."""
    return dict(sorted(runs, key=lambda r: r["rps"])[len(runs) // 2])


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _print(r: dict) -> None:
    print(f"{r['server']:9} {r['scenario']:17} {r['query']:17} {r['connections']:3d} conn "
          f"{r['rps']:9.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
          f"errors {r['errors']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
