"""``strata freshness [--target duckdb|bigquery] [--json]``: dbt source freshness of the raw
tables (exit 1 when a source is past its error threshold)."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("freshness", help="check how fresh the raw tables are (dbt source freshness)",
                       description="Run `dbt source freshness` against the freshness blocks of the raw "
                       "sources; exit 1 when a source is past its error threshold.")
    p.add_argument("--target", choices=("duckdb", "bigquery"), default="duckdb",
                   help="the local DuckDB warehouse (default) or BigQuery (STRATA_BQ_* variables)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from strata import transform

    try:
        result = transform.run_freshness(target=args.target)
    except transform.TransformError as exc:
        print(f"strata freshness: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        for name, status in sorted(result["sources"].items()):
            print(f"{name:<24}{status}")
        if result["error"]:
            print(f"error: {result['error']}", file=sys.stderr)
    return 0 if result["ok"] else 1
