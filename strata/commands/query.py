"""``strata query "SQL" [--json]``: read-only SQL against the local warehouse, like ``bq query``."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("query", help="run read-only SQL against the warehouse",
                       description="Run read-only SQL against the local warehouse. Schemas: raw, "
                       "staging, curated, mart; e.g. strata query \"select count(*) from raw.events\".")
    p.add_argument("sql", help="the SQL statement")
    p.add_argument("--json", action="store_true", help="print rows as a JSON array of objects")
    p.set_defaults(func=run)


def _plain(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def run(args) -> int:
    import duckdb

    from strata import warehouse
    from strata_core import duckdb_config, paths

    try:
        columns, rows = warehouse.query(args.sql)
    except (PermissionError, warehouse.HomeMissing) as exc:
        print(f"strata query: {exc}", file=sys.stderr)
        return 2
    except duckdb.PermissionException as exc:
        # DuckDB's own settings refused it (network, a file outside the lake, a setting).
        print(f"strata query: {exc}\nstrata query: queries read the warehouse and its lake only, offline; "
              f"{duckdb_config.READ_ONLY_HINT}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"strata query: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump([{k: _plain(v) for k, v in zip(columns, row)} for row in rows], sys.stdout, default=str)
        print()
        return 0
    widths = [max([len(col)] + [len(str(_plain(r[i]))) for r in rows]) for i, col in enumerate(columns)]
    print("  ".join(col.ljust(w) for col, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(_plain(v)).ljust(w) for v, w in zip(row, widths)))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''}; home {paths.home_path()})", file=sys.stderr)
    return 0
