"""``strata data-version show|publish [--version ID] [--target duckdb|bigquery]``: the id of the
warehouse build the API serves (``strata_core.dataversion``)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("data-version", help="show or publish the data version the API keys its cache on",
                       description="The data version is published by `strata transform` after each build; "
                       "publishing by hand (or from the Airflow DAG) invalidates every cached API answer. "
                       "duckdb: $STRATA_HOME/data_version; bigquery: the store $STRATA_DATA_VERSION_URL names "
                       "(redis://HOST:PORT/DB or bigquery://PROJECT/DATASET).")
    p.add_argument("action", choices=("show", "publish"))
    p.add_argument("--version", help="publish: this id (default: a new build id)")
    p.add_argument("--target", choices=("duckdb", "bigquery"), default="duckdb",
                   help="which warehouse's readers (default duckdb)")
    p.set_defaults(func=run)


def run(args) -> int:
    from strata.transform import version_store

    try:
        store = version_store(args.target)
        if args.action == "publish":
            from strata_core import dataversion

            version = (args.version or dataversion.new_build_id()).strip()
            if not version:
                raise ValueError("--version must not be empty")
            store.publish(version)
        else:
            version = store.read()
    except ValueError as exc:
        print(f"strata data-version: {exc}", file=sys.stderr)
        return 2
    print(version or "(none published yet)")
    return 0 if version else 1
