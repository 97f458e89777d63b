"""Dashboard page loads in headless Chromium on the demo data, next to the Django admin's index
page (a plain server-rendered page) measured in the same run.

    .venv/bin/python bench/dashboards.py [--home DIR] [--repeat 5]

Builds a demo-sized home (2,000 users, 14 days, seed 7: generate, ingest, transform)
into ``--home`` unless it already holds a warehouse, serves it with ``strata serve`` (one
gunicorn worker), logs in through the admin and loads every page ``--repeat`` times. For each
page: the navigation's load event (HTML, the 1.1 MB ECharts file from cache after the first
load, the page's script) and the moment its charts are drawn (``performance.mark`` at the end
of dashboards.js), both from navigation start. Two runs of the server: ``cold`` computes the
health report on every page (``STRATA_DASHBOARD_REPORT_TTL_S=0``), ``warm`` reuses a worker's
report for up to 30 s (the default).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes import chromium  # noqa: E402

PAGES = {"business": "", "quality": "quality/", "pipeline": "pipeline/", "cost": "cost/", "lineage": "lineage/"}


def _env(home: pathlib.Path, **extra) -> dict:
    env = {**os.environ, "STRATA_HOME": str(home), **extra}
    env.pop("DATABASE_URL", None)
    return env


def _strata(home: pathlib.Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "strata", *args], cwd=REPO, env=_env(home), check=True,
                   stdout=subprocess.DEVNULL)


def prepare(home: pathlib.Path) -> None:
    if (home / "warehouse.duckdb").exists():
        return
    data = home / "demo-data"
    _strata(home, "generate", "--users", "2000", "--days", "14", "--seed", "7", "--out", str(data))
    _strata(home, "ingest", "batch", "--input", str(data / "events-*"), "--users-input", str(data / "users.jsonl"))
    _strata(home, "transform")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(home: pathlib.Path, repeat: int, ttl_s: str, artefacts: pathlib.Path) -> dict[str, list[tuple]]:
    from strata.commands import serve

    env = _env(home)
    subprocess.run([sys.executable, "graphql_site/manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    subprocess.run([sys.executable, "graphql_site/manage.py", "createsuperuser", "--noinput", "--username", "bench",
                    "--email", "bench@example.org"], cwd=REPO, env={**env, "DJANGO_SUPERUSER_PASSWORD": "bench-pw"},
                   capture_output=True)
    proc, url = serve.start_background("127.0.0.1", _free_port(), workers=1, threads=4,
                                       log_path=artefacts / "serve.log",
                                       env={"STRATA_HOME": str(home), "DATABASE_URL": "",
                                            "STRATA_DASHBOARD_REPORT_TTL_S": ttl_s})
    results: dict[str, list[tuple]] = {name: [] for name in ["admin index", *PAGES]}
    try:
        with chromium.Browser(artefacts) as browser:
            browser.login_admin(url, "bench", "bench-pw")
            for _ in range(repeat):
                browser.open(f"{url}/admin/")
                results["admin index"].append((browser.load_ms(), None))
                for name, path in PAGES.items():
                    browser.open(f"{url}/dashboards/{path}")
                    browser.wait_for("document.body.dataset.charts !== undefined")
                    drawn = browser.js("const m = performance.getEntriesByName('strata-charts-drawn')[0];"
                                       " return m ? m.startTime : null;")
                    results[name].append((browser.load_ms(), drawn))
    finally:
        proc.terminate()
        proc.wait(10)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=pathlib.Path, help="a STRATA_HOME to reuse (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    ok, why = chromium.available()
    if not ok:
        parser.error(why)
    home = args.home or pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-dashboards-"))
    home.mkdir(parents=True, exist_ok=True)
    prepare(home)
    artefacts = home / "bench-dashboards"
    artefacts.mkdir(exist_ok=True)
    print(f"home {home}; {args.repeat} loads per page; medians (max) in ms from navigation start\n")
    print("| page | cold: load event | cold: charts drawn | warm: load event | warm: charts drawn "
          "| warm load vs admin index |")
    print("|---|---:|---:|---:|---:|---:|")
    cold = measure(home, args.repeat, "0", artefacts)
    warm = measure(home, args.repeat, "30", artefacts)
    admin = statistics.median(load for load, _ in warm["admin index"])

    def cell(samples, index):
        values = [s[index] for s in samples if s[index] is not None]
        return f"{statistics.median(values):.0f} ({max(values):.0f})" if values else "–"

    for name in ["admin index", *PAGES]:
        ratio = statistics.median(load for load, _ in warm[name]) / admin
        print(f"| {name} | {cell(cold[name], 0)} | {cell(cold[name], 1)} | {cell(warm[name], 0)} | "
              f"{cell(warm[name], 1)} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
