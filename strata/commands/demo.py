"""``strata demo``: the whole local path on the embedded default, end to end.

generate realistic events → ingest them (Beam, local runner) → build the dbt layers →
print where to look. Everything lives under ``$STRATA_HOME``; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import shutil
import sys


def register(sub) -> None:
    p = sub.add_parser("demo", help="generate → ingest → transform on the embedded default")
    p.add_argument("--users", type=int, default=2000, help="simulated users (default 2000)")
    p.add_argument("--days", type=int, default=14, help="days of events (default 14)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.set_defaults(func=run)


def _step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def run(args) -> int:
    from strata import cli, settings

    settings.use_offline_env()
    home = settings.home()
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
==> Done. Where to look:
    warehouse (DuckDB):   {settings.warehouse_path()}
    Parquet lake:         {settings.lake_dir()}
    generated input:      {data}  (ground_truth.json holds the expected counts)
    try:
      strata query "select event_date, count(*) from raw.events group by 1 order by 1"
      strata query "select error_type, count(*) from raw.dead_letters group by 1 order by 2 desc"
      strata query "select * from mart.business_metrics order by date"
    (run them as .venv/bin/strata, with STRATA_HOME={home})""")
    sys.stdout.flush()
    return 0
