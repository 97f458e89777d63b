"""``strata lake sources|drop``: what raw holds per input file, and removing one file's rows."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("lake", help="list or remove ingested sources in the local lake (raw.*)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = actions.add_parser("sources", help="every ingested input file with its rows per raw table",
                           description="List every input source in raw.events, raw.users and "
                           "raw.dead_letters, with its row count in each.")
    s.add_argument("--json", action="store_true", help="print one JSON array")
    s.set_defaults(func=run_sources)
    d = actions.add_parser(
        "drop", help="remove every row one input file put into raw",
        description="Remove the Parquet parts holding the rows of one ingested input file from "
        "raw.events, raw.users and raw.dead_letters. staging, curated and mart keep those rows "
        "until `strata transform --full-refresh` rebuilds them.")
    d.add_argument("--source", required=True, metavar="FILE",
                   help="the input file as ingested (see `strata lake sources`)")
    d.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    d.set_defaults(func=run_drop)


def _fail(message: str) -> int:
    print(f"strata lake: {message}", file=sys.stderr)
    return 2


def run_sources(args) -> int:
    from strata import lake, warehouse
    from strata_core import paths

    try:
        found = lake.sources()
    except warehouse.HomeMissing as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(found))
        return 0
    width = max([len("source")] + [len(s["source"]) for s in found])
    print(f"{'source':<{width}}  " + "  ".join(f"{t:>12}" for t in lake.SOURCE_COLUMN))
    for s in found:
        print(f"{s['source']:<{width}}  " + "  ".join(f"{s[t]:>12,}" for t in lake.SOURCE_COLUMN))
    print(f"({len(found)} source{'s' if len(found) != 1 else ''}; home {paths.home_path()})", file=sys.stderr)
    return 0


def run_drop(args) -> int:
    from strata import lake, warehouse
    from strata_core import paths

    try:
        parts = lake.parts_of(args.source)
    except (warehouse.HomeMissing, ValueError) as exc:
        return _fail(str(exc))
    if not parts:
        known = [s["source"] for s in lake.sources()]
        hint = "; ingested sources: " + ", ".join(known[:10]) + (" …" if len(known) > 10 else "") \
            if known else "; the lake holds no source yet"
        return _fail(f"no rows of {args.source} in raw (looked for {' or '.join(lake.spellings(args.source))})"
                     f"{hint}. `strata lake sources` lists them all")
    totals: dict[str, int] = {}
    for part in parts:
        totals[part.table] = totals.get(part.table, 0) + part.rows
    verb = "would remove" if args.dry_run else "removed"
    if not args.dry_run:
        lake.drop(parts)
    for part in parts:
        print(f"{verb} {part.path}  ({part.table}, {part.rows:,} rows)")
    summary = ", ".join(f"{n:,} {t}" for t, n in sorted(totals.items()))
    print(f"{args.source}: {verb} {len(parts)} part(s): {summary}  (home {paths.home_path()})")
    if args.dry_run:
        print("dry run: nothing was removed")
    else:
        print("raw no longer holds these rows; rebuild the layers without them with "
              "`.venv/bin/strata transform --full-refresh`")
    return 0
