"""``strata transform [--target duckdb|bigquery] [--full-refresh] [--select ...] [--no-tests] [--dry-run] [--json]``.

Runs ``dbt build`` on ``transforms_sql/`` and publishes the result (see ``strata.transform``).
"""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("transform", help="build the dbt layers (staging, curated, mart)",
                       description="Run dbt build (models, data tests, unit tests) on the "
                       "configured warehouse and print a short summary. Locally the build goes "
                       "into a copy of the DuckDB file that replaces the live one atomically.")
    p.add_argument("--target", choices=("duckdb", "bigquery"), default="duckdb",
                   help="dbt target: the local DuckDB warehouse (default) or BigQuery "
                   "(STRATA_BQ_PROJECT, STRATA_BQ_METHOD, STRATA_BQ_KEYFILE, STRATA_BQ_LOCATION)")
    p.add_argument("--full-refresh", action="store_true",
                   help="rebuild every incremental model from raw instead of changed dates only")
    p.add_argument("--select", nargs="+", metavar="SELECTOR",
                   help="dbt node selection, e.g. --select +business_metrics")
    p.add_argument("--no-tests", action="store_true",
                   help="dbt run instead of dbt build: models only, no data or unit tests (faster hourly runs)")
    p.add_argument("--no-publish", action="store_true",
                   help="BigQuery: do not publish a new data version after the build (a later "
                   "`strata data-version publish` does; the Airflow DAG publishes after its freshness checks)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the models a build would run and the date partitions each would replace "
                   "(builds a throwaway copy of the local warehouse; publishes nothing)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr, only the summary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from strata import transform

    try:
        summary = transform.run_transform(target=args.target, full_refresh=args.full_refresh,
                                          select=args.select, command="run" if args.no_tests else "build",
                                          publish=not args.no_publish, progress=not args.quiet,
                                          dry_run=args.dry_run)
    except transform.TransformError as exc:
        print(f"strata transform: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(summary, sys.stdout, default=str)
        print()
    else:
        print(transform.format_summary(summary))
    return 0 if summary["ok"] else 1
