"""``strata generate``: realistic synthetic events with exact ground truth, for demos, tests and benchmarks."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import sys

_DESCRIPTION = """\
Write synthetic event files into DIR, plus DIR/ground_truth.json (exact expected counts and
metrics, computed from what was generated), DIR/expected_errors.jsonl (file, line and error_type
of every bad record) and DIR/users.jsonl (a user master file for ~70% of the users).

Volume: users and days drive it. At the default activity a user has about 1 session a day
(heavy-tailed across users) of about 4 events, i.e. roughly 4 events per user-day, plus bad
records (--bad-rate) and duplicates (--duplicate-rate) on top. --events N instead scales the
activity so that about N records are written in total, e.g.
  strata generate --users 20000 --days 30 --events 1000000 --out data/bench

Realistic mess included: timestamps as RFC 3339 with Z, with local offsets (+05:30, -08:00, ...,
local date often differing from the UTC date), with fractions, and as epoch milliseconds;
anonymous events; unknown top-level fields; non-ASCII text; CRLF and blank lines (NDJSON); exact
duplicate lines; and bad records of every decode/parse/validate error type the format can carry
(Avro/Parquet cannot carry invalid UTF-8, broken JSON, > 1 MiB records or wrong JSON types).
Same --seed and --start-date give byte-identical output.
"""


def register(sub) -> None:
    from strata.generator import FORMATS

    p = sub.add_parser("generate", help="write realistic synthetic events with ground truth",
                       description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, metavar="DIR", type=pathlib.Path, help="output directory")
    p.add_argument("--users", type=int, default=1000, metavar="N", help="user population (default 1000)")
    p.add_argument("--days", type=int, default=7, metavar="D", help="days of events (default 7)")
    p.add_argument("--events", type=int, metavar="N",
                   help="approximate total records to write; scales activity per user-day")
    p.add_argument("--format", default="ndjson", choices=FORMATS, help="file format (default ndjson)")
    p.add_argument("--files", type=int, default=1, metavar="K",
                   help="split into K files, each a consecutive slice of the time range (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--start-date", type=_date, metavar="YYYY-MM-DD",
                   help="first UTC date (default: today (UTC) minus --days, so the range ends yesterday)")
    p.add_argument("--duplicate-rate", type=float, default=0.01, metavar="R",
                   help="exact duplicate lines per good event (default 0.01)")
    p.add_argument("--bad-rate", type=float, default=0.02, metavar="R",
                   help="bad records per good event, cycling through every error type (default 0.02)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the event files and sidecars of an earlier run in DIR")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.set_defaults(func=run)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


class _Progress:
    """One self-rewriting line on a terminal; a few plain lines otherwise."""

    def __init__(self, days: int):
        self.tty = sys.stderr.isatty()
        self.every = max(1, days // 10)
        self.calls = 0
        self.shown = False

    def __call__(self, message: str) -> None:
        self.calls += 1
        if self.tty:
            print(f"\rstrata generate: {message}\033[K", end="", file=sys.stderr, flush=True)
            self.shown = True
        elif self.calls % self.every == 0:
            print(f"strata generate: {message}", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)


def run(args) -> int:
    from strata.generator import GeneratorConfig, existing_outputs, generate

    old = existing_outputs(args.out)
    if old and not args.overwrite:
        print(f"strata generate: {args.out} already holds {len(old)} generator output file(s) "
              f"(e.g. {old[0].name}); pass --overwrite to replace them or choose another --out",
              file=sys.stderr)
        return 2
    config = GeneratorConfig(out=args.out, users=args.users, days=args.days, format=args.format,
                             seed=args.seed, start_date=args.start_date, duplicate_rate=args.duplicate_rate,
                             bad_rate=args.bad_rate, files=args.files, events=args.events)
    try:
        config.check(dt.datetime.now(dt.timezone.utc).date())
    except ValueError as exc:
        print(f"strata generate: {exc}", file=sys.stderr)
        return 2
    for path in old:
        path.unlink()
    progress = _Progress(args.days)
    try:
        summary = generate(config, progress=progress)
    except ValueError as exc:
        progress.done()
        print(f"strata generate: {exc}", file=sys.stderr)
        return 2
    progress.done()
    if args.json:
        print(json.dumps(summary))
        return 0
    files = summary["files"]
    print(f"wrote {len(files)} {summary['format']} file{'s' if len(files) != 1 else ''} to {summary['out']}")
    print(f"records         {summary['records']:>12,}   (blank lines: {summary['blank_lines']:,})")
    print(f"  good          {summary['unique_events']:>12,}")
    print(f"  duplicates    {summary['duplicates']:>12,}")
    print(f"  bad           {summary['bad']:>12,}")
    print(f"users file rows {summary['users_file_rows']:>12,}")
    print(f"seconds         {summary['seconds']:>12,.2f}   ({summary['records_per_second'] or 0:,} records/s)")
    print(f"ground truth    {pathlib.Path(summary['out']) / 'ground_truth.json'}")
    from strata_core import paths

    print(f"ingest with     {ingest_command(args.out, summary['format'])}   (into home {paths.home_path()})")
    return 0


def ingest_command(out: pathlib.Path, fmt: str) -> str:
    """The command that ingests what ``generate`` wrote: the event files, and the user file
    as users (``expected_errors.jsonl`` and ``ground_truth.json`` are answers, not input)."""
    import shlex

    from strata.generator.writers import WRITERS

    events = shlex.quote(str(out / f"events-*.{WRITERS[fmt].ext}"))
    return f".venv/bin/strata ingest batch --input {events} --users-input {shlex.quote(str(out / 'users.jsonl'))}"
