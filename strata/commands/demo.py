"""``strata demo``: the whole local path on the embedded default, end to end.

generate realistic events → ingest them (Beam, local runner) → build the dbt layers → serve the
GraphQL API, and print where to look. Everything lives under ``$STRATA_HOME``; nothing leaves
127.0.0.1. The server runs until Ctrl-C (``--no-wait`` leaves it in the background instead).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys


def register(sub) -> None:
    p = sub.add_parser("demo", help="generate → ingest → transform on the embedded default")
    p.add_argument("--users", type=int, default=2000, help="simulated users (default 2000)")
    p.add_argument("--days", type=int, default=28,
                   help="days of events (default 28: the anomaly detector judges a series after 21 days)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--port", type=int, default=8000, help="first port to try for the API (default 8000)")
    p.add_argument("--no-serve", action="store_true", help="stop after the transform")
    p.add_argument("--no-wait", action="store_true",
                   help="leave the API server (and the streaming part) running in the background and exit")
    p.add_argument("--no-stream", action="store_true",
                   help="skip the streaming part (Pub/Sub emulator, collector, streaming pipeline)")
    p.set_defaults(func=run)


def _free_port(first: int) -> int:
    for port in range(first, first + 20):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {first}..{first + 19}; pass --port")


def _demo_admin() -> str:
    """(Re)create the demo's admin login with a fresh random password; returns the password."""
    import secrets

    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(12)
    user, _ = get_user_model().objects.get_or_create(username="admin")
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return password


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def run(args) -> int:
    from strata import cli
    from strata_core import paths

    paths.use_offline_env()
    home = paths.home()
    data = home / "demo-data"
    if data.exists():
        shutil.rmtree(data)

    _step(f"Generating events for {args.users:,} users over {args.days} days into {data}")
    status = cli.main(["generate", "--users", str(args.users), "--days", str(args.days),
                       "--seed", str(args.seed), "--out", str(data)])
    if status:
        return status

    _step("Ingesting them with the Beam batch pipeline (local runner) into the local warehouse")
    status = cli.main(["ingest", "batch", "--input", str(data / "events-*"),
                       "--users-input", str(data / "users.jsonl")])
    if status:
        return status

    _step("Building the dbt layers (staging → curated → mart)")
    status = cli.main(["transform"])
    if status:
        return status

    print(f"""
==> Data is in. Where to look:
    warehouse (DuckDB):   {paths.warehouse_path()}
    Parquet lake:         {paths.lake_dir()}
    generated input:      {data}  (ground_truth.json holds the expected counts)
    SQL, with STRATA_HOME={home}:
      .venv/bin/strata query "select event_date, count(*) from raw.events group by 1 order by 1"
      .venv/bin/strata query "select error_type, count(*) from raw.dead_letters group by 1 order by 2 desc"
      .venv/bin/strata query "select * from mart.business_metrics order by date desc limit 7\"
""", flush=True)
    if args.no_serve:
        return 0

    from strata.commands import serve

    truth = json.loads((data / "ground_truth.json").read_text())
    dates = sorted(d for d, n in truth["dau_by_date"].items() if n)
    env = {}
    if "REDIS_URL" not in os.environ and _redis_up():
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    _step("Serving the GraphQL API (Django + Graphene under granian)"
          + (" with the Redis cache on 127.0.0.1:6379" if env or os.environ.get("REDIS_URL") else
             " with the in-process cache (no Redis found)"))
    token = serve.create_token("demo")
    admin_password = _demo_admin()
    proc, url = serve.start_background("127.0.0.1", _free_port(args.port), env=env)
    # The servers run in sessions of their own, so stop them ourselves on Ctrl-C *and* on SIGTERM.
    signal.signal(signal.SIGTERM, _interrupt)
    streaming = None
    try:
        if not args.no_stream:
            from strata.commands import demo_stream

            streaming = demo_stream.start(home, data, _free_port(8088), _step)
        print()
        print(serve.demo_instructions(url, token, dates[0], dates[-1]))
        print(f"Admin:      {url}/admin/  user `admin`, password `{admin_password}` (new each demo run; "
              "metric definitions live there)")
        print(f"Dashboards: {url}/dashboards/  (the same login; health on one screen: .venv/bin/strata check)")
        print(f"    server log: {home / 'serve.log'}")
        if streaming is not None:
            print(demo_stream.instructions(streaming, url, token, home))
        sys.stdout.flush()
        if args.no_wait:
            pids = " ".join(str(p) for p in [proc.pid, *(streaming.pids if streaming else [])])
            print(f"\nThe API{' and the streaming part' if streaming else ''} keep running in the background; "
                  f"stop them with: kill {pids}")
            streaming = None
            return 0
        print("\nThe API" + (", the collector and the streaming pipeline are" if streaming else " is")
              + " running; press Ctrl-C to stop.", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if streaming is not None:
            streaming.stop()
        if not args.no_wait and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
