"""``strata replay [--error-type T] [--since TS] [--until TS] [--event-id ID...] [--dry-run]``."""

from __future__ import annotations

import datetime as dt
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("replay", help="re-ingest dead letters with the current code (after a fix)",
                       description="Re-validate the original payload of each pending dead letter (from files "
                       "or messages) with the current code: what passes is written to raw.events and marked "
                       "replayed (raw.dead_letter_replays); what still fails gets replay_count + 1. "
                       "Running it twice changes nothing the second time.")
    p.add_argument("--error-type", action="append", metavar="T", help="only this error_type (repeatable)")
    p.add_argument("--since", metavar="TS", help="only dead letters that first failed at or after TS (RFC 3339)")
    p.add_argument("--until", metavar="TS", help="... and before TS (RFC 3339)")
    p.add_argument("--event-id", nargs="+", metavar="ID", help="only these event ids")
    p.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def _moment(value: str | None, flag: str):
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{flag} {value!r} is not a date-time; send RFC 3339, e.g. 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{flag} {value!r} has no UTC offset; append Z or +HH:MM")
    return moment


def run(args) -> int:
    from strata import replay
    from strata_core import contract as c
    from strata_core import paths

    paths.use_offline_env()
    try:
        since, until = _moment(args.since, "--since"), _moment(args.until, "--until")
        unknown = sorted(set(args.error_type or ()) - set(c.ERROR_TYPES_BY_NAME))
        if unknown:
            raise ValueError(f"--error-type {', '.join(unknown)} is not an error type; expected one of "
                             f"{', '.join(e.name for e in c.ERROR_TYPES)}")
    except ValueError as exc:
        print(f"strata replay: {exc}", file=sys.stderr)
        return 2
    result = replay.replay(args.error_type, since, until, args.event_id, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result.as_json()))
        return 0
    verb = "would be" if args.dry_run else "were"
    print(f"{result.candidates:,} pending dead letters matched"
          + (f" (replay {result.replay_id})" if result.replay_id else ""))
    print(f"  {result.accepted:,} {verb} accepted into raw.events and marked replayed")
    print(f"  {result.still_failing:,} still fail ({verb} recorded with replay_count + 1)"
          + (f": {dict(sorted(result.by_error_type.items()))}" if result.by_error_type else ""))
    if result.unchanged:
        print(f"  {result.unchanged:,} fail exactly as after their last replay (nothing changed, nothing written)")
    return 0
