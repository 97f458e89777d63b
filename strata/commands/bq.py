"""``strata bq init --project P [--location EU] [--print-ddl] [--no-pubsub]``: datasets, raw
tables, Pub/Sub topics and subscriptions for production (see ``strata.provision``)."""

from __future__ import annotations

import sys

from strata_core.resources import PROJECT_ID_RE


def register(sub) -> None:
    p = sub.add_parser("bq", help="set up BigQuery and Pub/Sub for production (bq init)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create datasets raw/staging/curated/mart, the raw tables, Pub/Sub topics and subscriptions",
        description="Create (idempotently) the layer datasets with their expirations, the raw tables from "
                    "the contract (partitioned, clustered, 7-year expiration) and the Pub/Sub topics and "
                    "subscriptions (retention, dead-letter policy). Uses application default credentials; "
                    "with --print-ddl prints the reviewed BigQuery DDL instead and touches nothing.")
    init.add_argument("--project", help="GCP project id (6-30 chars: lower-case letters, digits, hyphens)")
    init.add_argument("--location", default=None, help="BigQuery location for new datasets, e.g. EU or europe-west1")
    init.add_argument("--print-ddl", action="store_true",
                      help="print the DDL (datasets and raw tables) and exit; nothing is created")
    init.add_argument("--no-pubsub", action="store_true", help="BigQuery only")
    init.add_argument("--no-bigquery", action="store_true", help="Pub/Sub only")
    init.add_argument("--bq-endpoint", help="loopback URL of a BigQuery fake or emulator (tests only)")
    init.set_defaults(func=run)


def run(args) -> int:
    from strata_core import ddl

    if args.print_ddl:
        sys.stdout.write(ddl.render(args.location))
        return 0
    if not args.project or not PROJECT_ID_RE.match(args.project):
        print(f"strata bq init: --project {args.project!r} must be a GCP project id "
              "(6-30 chars: lower-case letters, digits, hyphens; e.g. my-analytics-prod)", file=sys.stderr)
        return 2
    from strata import provision

    lines = []
    if not args.no_bigquery:
        lines += provision.provision_bigquery(args.project, location=args.location, endpoint=args.bq_endpoint)
    if not args.no_pubsub:
        lines += provision.provision_pubsub(args.project)
    print("\n".join(lines))
    return 0
