"""``strata ingest batch``: files → raw tables (local warehouse or BigQuery), with a summary."""

from __future__ import annotations

import json
import logging
import os
import sys


def quiet_beam_logs() -> None:
    """The local runner logs worker chatter at WARNING; keep the terminal for the summary."""
    for name in ("apache_beam.runners.portability", "apache_beam.runners.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)


def register(sub) -> None:
    p = sub.add_parser("ingest", help="ingest events (batch files; later: stream)")
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    b = modes.add_parser(
        "batch", help="ingest NDJSON/Avro/Parquet files (local paths or gs:// globs)",
        description="Run the batch ingest job. Extra --flags are passed to Beam "
                    "(e.g. --project, --region, --temp_location with --runner DataflowRunner).")
    b.add_argument("--input", action="append", required=True, metavar="GLOB",
                   help="input path or glob, local or gs:// (repeatable), e.g. 'data/events/*.jsonl'")
    b.add_argument("--users-input", action="append", metavar="GLOB",
                   help="user master NDJSON files (user_id, created_at, country, plan, traits)")
    b.add_argument("--format", default="auto", choices=("auto", "ndjson", "avro", "parquet"),
                   help="input format; auto picks by extension (default)")
    b.add_argument("--sink", default="local", choices=("local", "bigquery"),
                   help="local: Parquet lake + DuckDB under $STRATA_HOME (default); bigquery: --bq-project")
    b.add_argument("--bq-project", help="BigQuery sink: project id")
    b.add_argument("--bq-dataset", default="raw", help="BigQuery sink: raw dataset (default raw)")
    b.add_argument("--bq-endpoint", help="BigQuery sink: loopback URL of a fake/emulator (tests, local runs)")
    b.add_argument("--runner", default="local",
                   help="local (Beam's in-process FnApiRunner, default) or a Beam runner such as DataflowRunner")
    b.add_argument("--workers", type=int, default=1,
                   help="local runner: worker processes (default 1; 2 uses both cores)")
    b.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    b.set_defaults(func=run_batch)


def run_batch(args, beam_args: list[str] | None = None) -> int:
    from strata_core import paths

    local = args.runner in ("local", "FnApiRunner")
    if local:
        paths.use_offline_env()
        quiet_beam_logs()
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from beam_pipelines.gcs import configure_emulator

            configure_emulator(os.environ["STORAGE_EMULATOR_HOST"])
    from beam_pipelines import batch

    argv = [f"--input={pattern}" for pattern in args.input]
    argv += [f"--users_input={pattern}" for pattern in args.users_input or []]
    argv += [f"--input_format={args.format}", f"--sink={args.sink}"]
    if args.sink == "local":
        from strata import warehouse

        warehouse.init()
        argv.append(f"--strata_home={paths.home()}")
    else:
        argv += [f"--bq_project={args.bq_project or ''}", f"--bq_dataset={args.bq_dataset}"]
        if args.bq_endpoint:
            argv.append(f"--bq_endpoint={args.bq_endpoint}")
    argv += list(beam_args or getattr(args, "beam_args", []) or [])
    if args.workers < 1:
        print("strata ingest batch: --workers must be >= 1", file=sys.stderr)
        return 2
    from strata import recorder

    try:
        # Recorded in the monitoring tables, failed runs included (strata/recorder.py).
        with recorder.ingest_run(args.sink, args.input, bq_project=args.bq_project,
                                 bq_endpoint=args.bq_endpoint) as run:
            summary = run.summary = batch.run(argv, runner=args.runner, workers=args.workers,
                                              progress=not args.json and sys.stderr.isatty())
    except (ValueError, FileNotFoundError) as exc:
        print(f"strata ingest batch: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.as_json()))
    else:
        print_summary(summary)
    if not summary.balanced:
        print(f"strata ingest batch: LOST RECORDS: read {summary.read} != accepted {summary.accepted} "
              f"+ dead-lettered {summary.dead_lettered}", file=sys.stderr)
        return 1
    return 0


def print_summary(summary) -> None:
    print(f"records read      {summary.read:>12,}   (blank lines skipped: {summary.blank_lines:,})")
    print(f"records accepted  {summary.accepted:>12,}")
    print(f"dead-lettered     {summary.dead_lettered:>12,}")
    for error_type, count in sorted(summary.by_error_type.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {error_type:<24}{count:>10,}")
    if summary.users_read:
        print(f"user records      {summary.users_read:>12,}   (accepted {summary.users_accepted:,}, "
              f"dead-lettered {summary.users_dead_lettered:,})")
    print(f"throughput        {summary.events_per_s:>12,.0f} events/s  ({summary.seconds:.2f} s)")
