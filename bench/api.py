"""Benchmark of the GraphQL API over loopback: throughput and p50/p99 latency, cached and uncached.

    python bench/api.py [--home DIR] [--prepare] [--clients 8] [--requests 3000] [--duration-s 20]

* ``--home``: a ``$STRATA_HOME`` with a built warehouse (default ``bench/out/home-1m``).
  ``--prepare`` builds it first: ``strata generate --events 1000000`` -> ``ingest batch`` ->
  ``transform`` (a few minutes on 2 cores).
* Two servers are started with ``strata serve`` (gunicorn, ``--workers``/``--threads``): one with
  the result cache (Redis on 127.0.0.1:6379 when it is up, else in-process) and one with
  ``STRATA_CACHE=off``, so "uncached" means every request runs its SQL on the warehouse.
* Each scenario runs ``--clients`` concurrent clients (threads with one keep-alive connection
  each, over ``--client-processes`` processes) for at most ``--requests`` requests or
  ``--duration-s`` seconds in total, after a warm-up. Cached scenarios repeat one query;
  uncached scenarios rotate through many argument values. Many connections matter: gunicorn
  pins a keep-alive connection to one worker process, so a handful of connections can load
  one worker while the other idles.

Results go to stdout and ``bench/out/api.json``. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import pathlib
import random
import socket
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUERIES = {
    "dailyActiveUsers": ("query($d: Date!) { dailyActiveUsers(date: $d) { date activeUsers } }",
                         lambda rnd, days, users: {"d": rnd.choice(days)}),
    "revenueMetrics": ("""query($r: DateRangeInput!) { revenueMetrics(dateRange: $r) { totalRevenue grossRevenue
                          refunds orders payingUsers averageOrderValue daily { date revenue orders } } }""",
                       lambda rnd, days, users: {"r": _range(rnd, days)}),
    "conversionFunnel": ("""query($r: DateRangeInput!) { conversionFunnel(dateRange: $r) {
                            steps { name users conversionRate } } }""",
                         lambda rnd, days, users: {"r": _range(rnd, days)}),
    "userMetrics": ("""query($u: ID!) { userMetrics(userId: $u) { userId eventCount sessionCount totalRevenue
                       firstSeenAt lastSeenAt activeDays } }""",
                    lambda rnd, days, users: {"u": rnd.choice(users)}),
}


def _range(rnd: random.Random, days: list[str]) -> dict:
    a, b = sorted(rnd.sample(range(len(days)), 2))
    return {"start": days[a], "end": days[b]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class RawClient:
    """A minimal HTTP/1.1 keep-alive client over one socket.

    ``http.client`` parses every response's headers with the ``email`` package, which costs
    about as much CPU as the server spends on a cached request; on a 2-core machine shared with
    the server that would measure the client. This one sends prebuilt bytes and reads
    ``Content-Length`` bytes back; it reconnects when the server closes the connection.
    """

    def __init__(self, port: int):
        self.port = port
        self.sock = None
        self.buf = b""

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            try:
                self.sock.sendall(raw)
                return self._read()
            except (ConnectionError, BrokenPipeError, EOFError):
                self.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def _read(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head[9:12])
        lower = head.lower()
        marker = lower.find(b"content-length:")
        if marker < 0:  # no length: the body ends when the server closes
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            body, self.buf = self.buf, b""
            self.close()
            return status, body
        length = int(lower[marker + 15:lower.find(b"\r\n", marker) if lower.find(b"\r\n", marker) > 0 else None])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        if b"connection: close" in lower:
            self.close()
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buf = b""


def _raw_request(port: int, token: str, body: bytes) -> bytes:
    return (f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def _client_process(args) -> list[float]:
    """One client process: ``connections`` threads, each with its own keep-alive connection."""
    port, token, query, variables_list, budget, deadline, seed, connections = args
    from concurrent.futures import ThreadPoolExecutor

    per_connection = max(1, budget // connections)
    with ThreadPoolExecutor(connections) as pool:
        parts = pool.map(_client, [(port, token, query, variables_list, per_connection, deadline, seed + 31 * k)
                                   for k in range(connections)])
        return [x for part in parts for x in part]


def _client(args) -> list[float]:
    """One connection: requests until its budget or the deadline is reached."""
    port, token, query, variables_list, budget, deadline, seed = args
    client = RawClient(port)
    requests = [_raw_request(port, token, json.dumps({"query": query, "variables": v}).encode())
                for v in variables_list]
    latencies = []
    i = seed
    while len(latencies) < budget and time.perf_counter() < deadline:
        raw = requests[i % len(requests)]
        i += 1
        started = time.perf_counter()
        status, payload = client.request(raw)
        latencies.append(time.perf_counter() - started)
        if status != 200 or b'"errors"' in payload:
            raise RuntimeError(f"bad response {status}: {payload[:300]!r}")
    client.close()
    return latencies


def run_scenario(pool, processes, port, token, name, cached, days, users, clients, requests, duration_s) -> dict:
    """``clients`` concurrent connections, spread over ``processes`` client processes."""
    query, make = QUERIES[name]
    rnd = random.Random(42)
    if cached:
        variables_list = [make(rnd, days, users)]
    else:
        variables_list = [make(rnd, days, users) for _ in range(2000)]
    per_process = [clients // processes + (1 if p < clients % processes else 0) for p in range(processes)]
    per_process = [c for c in per_process if c]
    # warm-up: connections, parsed documents, and (cached) the one cache entry
    pool.map(_client_process, [(port, token, query, variables_list, 10 * c, time.perf_counter() + 10, p * 97, c)
                               for p, c in enumerate(per_process)])
    started = time.perf_counter()
    deadline = started + duration_s
    results = pool.map(_client_process, [
        (port, token, query, variables_list, requests * c // clients, deadline, 1000 + p * 7919, c)
        for p, c in enumerate(per_process)])
    wall = time.perf_counter() - started
    lat = sorted(x for r in results for x in r)
    return {
        "query": name, "cached": cached, "clients": clients, "requests": len(lat), "wall_s": round(wall, 3),
        "throughput_rps": round(len(lat) / wall, 1),
        "p50_ms": round(statistics.median(lat) * 1000, 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2),
    }


def prepare(home: pathlib.Path, events: int) -> None:
    env = {**os.environ, "STRATA_HOME": str(home)}
    data = home / "data"
    steps = [
        ["generate", "--users", "20000", "--days", "30", "--events", str(events), "--seed", "1",
         "--out", str(data), "--overwrite"],
        ["ingest", "batch", "--input", str(data / "events-*"), "--users-input",
         str(data / "users.jsonl")],
        ["transform"],
    ]
    for step in steps:
        print("strata", " ".join(step), flush=True)
        subprocess.run([sys.executable, "-m", "strata", *step], cwd=REPO, env=env, check=True)


def _token(home: pathlib.Path, env: dict) -> str:
    subprocess.run([sys.executable, "graphql_site/manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    name = f"bench-{int(time.time())}"
    out = subprocess.run([sys.executable, "graphql_site/manage.py", "create_api_token", name, "--rate-limit", "100000000"],
                         cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", type=pathlib.Path, default=REPO / "bench" / "out" / "home-1m")
    p.add_argument("--prepare", action="store_true", help="build the warehouse in --home first")
    p.add_argument("--events", type=int, default=1_000_000, help="events for --prepare (default 1M)")
    p.add_argument("--clients", type=int, default=8,
                   help="concurrent clients (keep-alive connections) for the cached runs (default 8)")
    p.add_argument("--client-processes", type=int, default=2,
                   help="processes the clients are spread over (default 2)")
    p.add_argument("--requests", type=int, default=3000, help="requests per scenario at most (default 3000)")
    p.add_argument("--uncached-requests", type=int, default=400, help="requests per uncached scenario at most")
    p.add_argument("--uncached-clients", default="2,8",
                   help="client counts for the uncached runs, comma-separated (default 2,8: one per core, "
                        "and the cached load)")
    p.add_argument("--duration-s", type=float, default=20.0, help="seconds per scenario at most (default 20)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    p.add_argument("--worker-class", default="gthread", choices=("gthread", "sync"))
    p.add_argument("--cached-only", action="store_true", help="skip the uncached server")
    p.add_argument("--only", choices=sorted(QUERIES), action="append", help="run only these queries")
    args = p.parse_args(argv)

    from strata_core import paths as strata_paths
    from strata.commands import serve

    home = args.home.resolve()
    if args.prepare:
        home.mkdir(parents=True, exist_ok=True)
        prepare(home, args.events)
    if not (home / "warehouse.duckdb").exists():
        print(f"no warehouse in {home}: run with --prepare", file=sys.stderr)
        return 2
    env = {**os.environ, **strata_paths.OFFLINE_ENV, "STRATA_HOME": str(home),
           "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "graphql_site.settings.local"}
    env.pop("DATABASE_URL", None)
    redis = _port_open("127.0.0.1", 6379)
    if redis:
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
        env["STRATA_CACHE_KEY_PREFIX"] = f"strata-bench-{os.getpid()}"
    token = _token(home, env)

    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    # The generated days (a few stray events lie years away: messy input on purpose).
    days = sorted(d.isoformat() for (d,) in con.execute(
        "select date from mart.business_metrics order by dau desc limit 30").fetchall())
    users = [u for (u,) in con.execute("select user_id from mart.user_analytics order by user_id").fetchall()]
    n_events = con.execute("select count(*) from staging.stg_events").fetchone()[0]
    con.close()

    # The machine may be shared: record how busy it was, since every figure depends on it.
    load_before = os.getloadavg()[0]
    servers = {}
    results = []
    try:
        for cached in ((True,) if args.cached_only else (True, False)):
            port = _free_port()
            extra = {} if cached else {"STRATA_CACHE": "off"}
            proc, _url = serve.start_background(
                "127.0.0.1", port, log_path=home / f"bench-serve-{'cached' if cached else 'uncached'}.log",
                workers=args.workers, threads=args.threads, env={**env, **extra},
                worker_class=args.worker_class)
            servers[cached] = proc
            time.sleep(2)  # every worker accepting before connections are opened (they stay pinned)
            client_counts = [args.clients] if cached else [int(c) for c in args.uncached_clients.split(",")]
            for clients in client_counts:
                processes = min(clients, args.client_processes)
                with mp.get_context("fork").Pool(processes) as pool:
                    for name in args.only or QUERIES:
                        r = run_scenario(pool, processes, port, token, name, cached, days, users, clients,
                                         args.requests if cached else args.uncached_requests, args.duration_s)
                        results.append(r)
                        print(f"{name:18} {'cached  ' if cached else 'uncached'} {clients:2d} clients "
                              f"{r['throughput_rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                              f"p99 {r['p99_ms']:7.2f} ms  ({r['requests']} requests)", flush=True)
            proc.terminate()
            proc.wait(30)
    finally:
        for proc in servers.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    report = {"measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "warehouse_events": n_events, "days": len(days), "users": len(users),
              "cache": "redis" if redis else "in-process", "workers": args.workers, "threads": args.threads, "worker_class": args.worker_class,
              "clients": args.clients, "load_average_before": load_before, "results": results}
    out = REPO / "bench" / "out" / "api.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
