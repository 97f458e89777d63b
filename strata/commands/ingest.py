"""``strata ingest batch``: files → raw tables (local warehouse or BigQuery), with a summary."""

from __future__ import annotations

import json
import logging
import os
import re
import sys

#: CLI flag → the Beam pipeline option it sets (``beam_pipelines.options.BatchIngestOptions``).
#: The one table both for building the job's argv and for naming, in an error, the flag the
#: user typed rather than the Beam option it became.
BEAM_OPTION = {
    "--input": "input", "--users-input": "users_input", "--format": "input_format", "--sink": "sink",
    "--bq-project": "bq_project", "--bq-dataset": "bq_dataset", "--bq-endpoint": "bq_endpoint",
    "--bq-write-method": "bq_write_method",
}
#: Options the command sets itself; passing them after ``--`` would fight its flags.
_OWN_OPTIONS = {f"--{option}": flag for flag, option in BEAM_OPTION.items()} | {"--strata_home": "STRATA_HOME"}
#: A run that reads at least this many records and accepts none gets a warning.
NOTHING_ACCEPTED_MIN_RECORDS = 10


def quiet_beam_logs() -> None:
    """The local runner logs worker chatter at WARNING; keep the terminal for the summary."""
    for name in ("apache_beam.runners.portability", "apache_beam.runners.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)


def register(sub) -> None:
    p = sub.add_parser("ingest", help="ingest events (batch files, or a Pub/Sub stream)")
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    b = modes.add_parser(
        "batch", help="ingest NDJSON/Avro/Parquet files (local paths or gs:// globs)",
        description="Run the batch ingest job. Beam/Dataflow pipeline options go after a bare `--`, "
                    "e.g. `strata ingest batch --input 'gs://b/*.ndjson' --sink bigquery --bq-project P "
                    "--runner DataflowRunner -- --project P --region europe-west1 --temp_location gs://b/tmp`; "
                    "an unknown one is refused, with the nearest Beam option.")
    b.add_argument("--input", action="append", required=True, metavar="GLOB",
                   help="input path or glob, local or gs:// (repeatable), e.g. 'data/events-*.ndjson'")
    b.add_argument("--users-input", action="append", metavar="GLOB",
                   help="user master NDJSON files (user_id, created_at, country, plan, traits)")
    b.add_argument("--format", default="auto", choices=("auto", "ndjson", "avro", "parquet"),
                   help="input format; auto picks by extension (default)")
    b.add_argument("--sink", default="local", choices=("local", "bigquery"),
                   help="local: Parquet lake + DuckDB under $STRATA_HOME (default); bigquery: --bq-project")
    b.add_argument("--bq-project", help="BigQuery sink: project id")
    b.add_argument("--bq-dataset", default="raw", help="BigQuery sink: raw dataset (default raw)")
    b.add_argument("--bq-endpoint", help="BigQuery sink: loopback URL of a fake/emulator (tests, local runs)")
    b.add_argument("--bq-write-method", default="merge", choices=("merge", "streaming_inserts"),
                   help="BigQuery sink: merge (default: load files into a staging table, then MERGE on "
                        "row_key, so reruns add nothing; needs --temp_location gs://... after --) or "
                        "streaming_inserts")
    b.add_argument("--runner", default="local",
                   help="local (Beam's in-process FnApiRunner, default) or a Beam runner such as DataflowRunner")
    b.add_argument("--workers", type=int, default=None,
                   help="local runner: worker processes (default: one per 128 MiB of input, so two from 256 MiB, at "
                        "most one per idle core; small inputs, or a busy machine, run in this process)")
    b.add_argument("--dry-run", action="store_true",
                   help="list the files that would be read, with their formats and sizes; write nothing")
    b.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    b.set_defaults(func=run_batch, beam_options=True)
    from strata.commands import ingest_stream

    ingest_stream.register(modes)


def _fail(message: str) -> int:
    print(f"strata ingest batch: {message}", file=sys.stderr)
    return 2


def as_typed(message: str) -> str:
    """A Beam-side message, with each Beam option name replaced by the CLI flag that sets it."""
    for flag, option in BEAM_OPTION.items():
        message = re.sub(rf"--{option}\b(?![-_])", flag, message)
    return message


def unknown_beam_options(argv: list[str]) -> list[str]:
    """Problems with the options passed after ``--``: unknown to every Beam options class
    (with Beam's nearest option), or set by this command's own flags."""
    import difflib

    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    import beam_pipelines.options  # noqa: F401 - registers Strata's own options classes

    parser = _BeamArgumentParser(allow_abbrev=False)  # as Beam's own PipelineOptions.get_all_options
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    known = [s for a in parser._actions for s in a.option_strings]
    _, unknown = parser.parse_known_args(argv)
    problems = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in _OWN_OPTIONS:
            problems.append(f"{name} is set by this command; use {_OWN_OPTIONS[name]} instead")
    for arg in unknown:
        name = arg.split("=", 1)[0]
        if not name.startswith("-"):
            problems.append(f"unexpected Beam argument {arg!r}")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        problems.append(f"unknown Beam option {name}" + (f"; did you mean {close[0]}?" if close else ""))
    return problems


def local_pattern(pattern: str) -> str:
    """A local path or glob made absolute, so that a file has one name in raw (``source_file``,
    part names) whatever directory it was ingested from; ``gs://`` and other URLs unchanged."""
    return pattern if "://" in pattern else os.path.abspath(os.path.expanduser(pattern))


def dry_run(args) -> int:
    """List what the job would read (file, format, size), per input kind; write nothing."""
    from apache_beam.io.filesystems import FileSystems

    from beam_pipelines.reading import detect_format
    from strata_core import paths

    plan, problems = [], []
    for kind, patterns, fmt in (("events", args.input, args.format), ("users", args.users_input or [], "ndjson")):
        for result in FileSystems.match(list(patterns)):
            files = [m for m in result.metadata_list if not m.path.endswith("/")]
            if not files:
                problems.append(f"--{'input' if kind == 'events' else 'users-input'} {result.pattern!r} "
                                "matched no files")
            for m in sorted(files, key=lambda m: m.path):
                try:
                    detected = detect_format(m.path, fmt)
                except ValueError as exc:
                    detected = None
                    problems.append(as_typed(str(exc)))
                plan.append({"kind": kind, "path": m.path, "format": detected, "bytes": m.size_in_bytes})
    target = str(paths.home_path() / "lake") if args.sink == "local" else f"bigquery:{args.bq_project}.{args.bq_dataset}"
    if args.json:
        print(json.dumps({"dry_run": True, "files": plan, "problems": problems, "sink": args.sink,
                          "writes_to": target, "total_bytes": sum(f["bytes"] for f in plan)}))
    else:
        for f in plan:
            print(f"{f['kind']:<7} {f['format'] or '?':<8} {f['bytes']:>14,} B  {f['path']}")
        print(f"dry run: {len(plan)} file(s), {sum(f['bytes'] for f in plan):,} bytes would be read "
              f"into {target}; nothing was written")
        for problem in problems:
            print(f"strata ingest batch: {problem}", file=sys.stderr)
    return 2 if problems else 0


def run_batch(args) -> int:
    from strata_core import paths

    beam_args = list(getattr(args, "beam_args", None) or [])
    problems = unknown_beam_options(beam_args)
    if problems:
        return _fail("; ".join(problems) + " (see `--help` for Strata's flags; Beam's options: "
                     "https://beam.apache.org/releases/pydoc/current/apache_beam.options.pipeline_options.html)")
    if args.workers is not None and args.workers < 1:
        return _fail("--workers must be >= 1")
    args.input = [local_pattern(p) for p in args.input]
    args.users_input = [local_pattern(p) for p in args.users_input or []]
    if args.dry_run:
        return dry_run(args)

    local = args.runner in ("local", "FnApiRunner")
    if local:
        paths.use_offline_env()
        quiet_beam_logs()
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from beam_pipelines.gcs import configure_emulator

            configure_emulator(os.environ["STORAGE_EMULATOR_HOST"])
    from beam_pipelines import batch

    def option(flag: str, value) -> str:
        return f"--{BEAM_OPTION[flag]}={value}"

    argv = [option("--input", pattern) for pattern in args.input]
    argv += [option("--users-input", pattern) for pattern in args.users_input]
    argv += [option("--format", args.format), option("--sink", args.sink)]
    if args.sink == "local":
        from strata import warehouse

        warehouse.init()
        argv.append(f"--strata_home={paths.home()}")
    else:
        argv += [option("--bq-project", args.bq_project or ""), option("--bq-dataset", args.bq_dataset)]
        argv.append(option("--bq-write-method", args.bq_write_method))
        if args.bq_endpoint:
            argv.append(option("--bq-endpoint", args.bq_endpoint))
    argv += beam_args
    from strata import recorder

    try:
        # Recorded in the monitoring tables, failed runs included (strata/recorder.py).
        with recorder.ingest_run(args.sink, args.input, bq_project=args.bq_project,
                                 bq_endpoint=args.bq_endpoint) as run:
            summary = run.summary = batch.run(argv, runner=args.runner, workers=args.workers,
                                              progress=not args.json and sys.stderr.isatty())
    except (ValueError, FileNotFoundError) as exc:
        return _fail(as_typed(str(exc)))
    warning = nothing_accepted(summary)
    if args.json:
        print(json.dumps(dict(summary.as_json(), strata_home=str(paths.home_path()),
                              **({"warning": warning} if warning else {}))))
    else:
        print_summary(summary)
        print(f"home              {paths.home_path()}" if args.sink == "local" else
              f"sink              bigquery:{args.bq_project}.{args.bq_dataset}")
    if warning:
        print(f"strata ingest batch: WARNING: {warning}", file=sys.stderr)
    if not summary.balanced:
        print(f"strata ingest batch: LOST RECORDS: read {summary.read} != accepted {summary.accepted} "
              f"+ dead-lettered {summary.dead_lettered}", file=sys.stderr)
        return 1
    if summary.failed_files:
        print(f"strata ingest batch: {len(summary.failed_files)} input file(s) could not be read to the end "
              "(see raw.dead_letters, stage decode); the other files were ingested", file=sys.stderr)
        return 1
    return 0


def nothing_accepted(summary) -> str | None:
    """A warning with a hint when a non-trivial input yielded no accepted event, else None."""
    if summary.accepted or summary.read < NOTHING_ACCEPTED_MIN_RECORDS:
        return None
    top = max(summary.by_error_type.items(), key=lambda kv: kv[1], default=("?", 0))
    return (f"none of the {summary.read:,} records read was accepted (most common error: {top[0]}, "
            f"{top[1]:,}). Does --input name event files? `strata generate` writes events to "
            "events-*.ndjson; users.jsonl goes to --users-input and expected_errors.jsonl is not input. "
            "`strata ingest batch --dry-run ...` lists what a pattern matches; "
            "`strata lake drop --source FILE` removes a file's rows from raw.")


def print_summary(summary) -> None:
    print(f"records read      {summary.read:>12,}   (blank lines skipped: {summary.blank_lines:,})")
    print(f"records accepted  {summary.accepted:>12,}")
    print(f"dead-lettered     {summary.dead_lettered:>12,}")
    for error_type, count in sorted(summary.by_error_type.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {error_type:<24}{count:>10,}")
    if summary.users_read:
        print(f"user records      {summary.users_read:>12,}   (accepted {summary.users_accepted:,}, "
              f"dead-lettered {summary.users_dead_lettered:,})")
    for failed in summary.failed_files:
        print(f"file not read to the end: {failed['file']}\n  {failed['error_type']} at byte {failed['offset']:,}: "
              f"{failed['reason']}")
    print(f"throughput        {summary.events_per_s:>12,.0f} events/s  ({summary.seconds:.2f} s, "
          f"{summary.workers} worker process{'es' if summary.workers > 1 else ''})")
