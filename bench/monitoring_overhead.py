"""What watching costs: the dbt build with and without the DuckDB scan collector, the API's
uncached queries with and without the per-query cost estimate, and ``strata check`` itself,
each against its own baseline in the same run.

    .venv/bin/python bench/monitoring_overhead.py [--home DIR] [--repeat 3]

``--home`` is a STRATA_HOME with a built warehouse (e.g. the one ``bench/dashboards.py`` or
``make demo`` made); without it, the demo's data (2,000 users, 14 days) is built first.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def dbt_overhead(home: pathlib.Path, repeat: int) -> None:
    from strata import dbt_costs, transform

    work = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-overhead-"))
    db = work / "copy.duckdb"
    shutil.copyfile(home / "warehouse.duckdb", db)
    args = transform.dbt_args("build", target="duckdb")
    os.environ["STRATA_HOME"] = str(work)
    transform.invoke_dbt(args, warehouse_file=db)  # parse once, outside the measurement
    times = {"plain": [], "collector": []}
    for _ in range(repeat):
        for name in ("plain", "collector"):
            collector = dbt_costs.ScanCollector()
            started = time.perf_counter()
            res = transform.invoke_dbt(args, warehouse_file=db,
                                       callbacks=[collector.on_event] if name == "collector" else [])
            times[name].append(time.perf_counter() - started)
            assert res.success
    plain, with_collector = statistics.median(times["plain"]), statistics.median(times["collector"])
    print(f"| `dbt build` (incremental, nothing new), median of {repeat} | {plain:.2f} s | {with_collector:.2f} s "
          f"| {with_collector / plain:.2f}x |")
    shutil.rmtree(work, ignore_errors=True)


def api_worker(start: str, end: str, requests: int) -> None:
    """In a fresh process (``--api-worker``): median latency of two uncached GraphQL queries."""
    import json

    os.environ.update(DJANGO_SETTINGS_MODULE="graphql_site.settings.local", STRATA_CACHE="off")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from graphql_site.tokens.models import ApiToken

    call_command("migrate", verbosity=0)
    _row, token = ApiToken.issue(f"bench-overhead-{os.getpid()}", rate_limit_per_minute=0)
    client = Client(HTTP_HOST="127.0.0.1")
    queries = {
        "revenueMetrics": f'{{ revenueMetrics(dateRange: {{start: "{start}", end: "{end}"}}) {{ totalRevenue orders }} }}',
        "conversionFunnel": f'{{ conversionFunnel(dateRange: {{start: "{start}", end: "{end}"}}) {{ steps {{ users }} }} }}',
    }
    out = {}
    for name, query in queries.items():
        body = json.dumps({"query": query})
        samples = []
        for n in range(requests + 5):
            started = time.perf_counter()
            response = client.post("/graphql", body, content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Bearer {token}")
            assert response.status_code == 200, response.content
            if n >= 5:  # warm-up
                samples.append(time.perf_counter() - started)
        out[name] = statistics.median(samples) * 1000
    print(json.dumps(out))


def api_overhead(home: pathlib.Path, repeat: int) -> None:
    import json

    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    start, end = con.execute("select min(date), max(date) from mart.business_metrics where dau > 0").fetchone()
    con.close()
    results = {}
    for mode in ("off", "on"):
        env = {**os.environ, "STRATA_HOME": str(home), "STRATA_API_COST_ESTIMATE": mode}
        env.pop("DATABASE_URL", None)
        done = subprocess.run([sys.executable, __file__, "--api-worker", start.isoformat(), end.isoformat(),
                               str(repeat * 40)], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    for name in results["off"]:
        off, on = results["off"][name], results["on"][name]
        print(f"| uncached `{name}` through Django's request handling, median of {repeat * 40} | {off:.2f} ms "
              f"| {on:.2f} ms | {on / off:.2f}x |")


def check_time(home: pathlib.Path, repeat: int) -> None:
    env = {**os.environ, "STRATA_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    times = {"query": [], "check": []}
    for _ in range(repeat):
        for name, argv in (("query", ["query", "select count(*) from monitoring.pipeline_runs"]),
                           ("check", ["check", "--no-notify"])):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "strata", *argv], cwd=REPO, env=env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - started)
    q, c = statistics.median(times["query"]), statistics.median(times["check"])
    print(f"| `strata check` vs `strata query` (one small query: process start-up), median | {q:.2f} s | {c:.2f} s "
          f"| {c / q:.2f}x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=pathlib.Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--api-worker", nargs=3, metavar=("START", "END", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.api_worker:
        api_worker(args.api_worker[0], args.api_worker[1], int(args.api_worker[2]))
        return 0
    home = args.home
    if home is None or not (home / "warehouse.duckdb").exists():
        from bench.dashboards import prepare  # noqa: PLC0415

        home = home or pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-monitoring-"))
        home.mkdir(parents=True, exist_ok=True)
        prepare(home)
    print(f"home {home}\n")
    print("| what | baseline | with monitoring | ratio |")
    print("|---|---:|---:|---:|")
    dbt_overhead(home, args.repeat)
    api_overhead(home, args.repeat)
    check_time(home, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
