"""``strata ingest stream``: Pub/Sub → the ingest steps → raw tables, until SIGINT/SIGTERM.

Locally (``--runner local``, the default) the micro-batch runner of ``beam_pipelines.local_stream``
writes the local lake; ``--sink bigquery --runner DataflowRunner`` submits the Dataflow job
(``beam_pipelines.stream``) instead.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading


def register(modes) -> None:
    s = modes.add_parser(
        "stream", help="ingest a Pub/Sub subscription continuously (until Ctrl-C / SIGTERM)",
        description="Run the streaming ingest job. It stops cleanly on SIGINT or SIGTERM: the "
                    "micro-batch in flight is finished, written and acknowledged. Beam/Dataflow "
                    "options (with --runner DataflowRunner) go after a bare `--`.")
    s.add_argument("--subscription", required=True, help="projects/PROJECT/subscriptions/NAME")
    s.add_argument("--dead-letter-topic", help="projects/PROJECT/topics/NAME: also publish every dead letter there")
    s.add_argument("--sink", default="local", choices=("local", "bigquery"),
                   help="local: Parquet lake under $STRATA_HOME (default); bigquery: with --runner DataflowRunner")
    s.add_argument("--bq-project", help="BigQuery sink: project id")
    s.add_argument("--bq-dataset", default="raw", help="BigQuery sink: raw dataset (default raw)")
    s.add_argument("--runner", default="local", help="local (micro-batches in this process, default) or DataflowRunner")
    s.add_argument("--window-sec", type=int, default=60, help="per-minute counts: window length (default 60)")
    s.add_argument("--allowed-lateness-sec", type=int, default=3600,
                   help="per-minute counts: allowed lateness (default 3600); later events still reach raw")
    s.add_argument("--max-batch-delay-ms", type=int, default=500,
                   help="local: a micro-batch closes this long after its first message (default 500)")
    s.add_argument("--max-batch-messages", type=int, default=20_000, help="local: micro-batch cap (default 20000)")
    s.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    s.set_defaults(func=run_stream, beam_options=True)


def beam_argv(args, home) -> list[str]:
    argv = [f"--subscription={args.subscription}", f"--sink={args.sink}",
            f"--window_sec={args.window_sec}", f"--allowed_lateness_sec={args.allowed_lateness_sec}",
            f"--max_batch_delay_ms={args.max_batch_delay_ms}", f"--max_batch_messages={args.max_batch_messages}"]
    if args.dead_letter_topic:
        argv.append(f"--dead_letter_topic={args.dead_letter_topic}")
    if args.sink == "local":
        argv.append(f"--strata_home={home}")
    else:
        argv += [f"--bq_project={args.bq_project or ''}", f"--bq_dataset={args.bq_dataset}"]
    return argv + list(getattr(args, "beam_args", []) or [])


def run_stream(args) -> int:
    import logging

    from strata_core import paths

    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        paths.use_offline_env()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    from strata.commands.ingest import quiet_beam_logs

    quiet_beam_logs()
    if args.runner not in ("local", "FnApiRunner"):
        from beam_pipelines import stream

        try:
            stream.main(beam_argv(args, None) + [f"--runner={args.runner}"])
        except ValueError as exc:
            print(f"strata ingest stream: {exc}", file=sys.stderr)
            return 2
        return 0
    from beam_pipelines import local_stream
    from strata import warehouse

    if args.sink == "local":
        warehouse.init()
    stop = threading.Event()

    def on_signal(signum, frame):
        if not stop.is_set():
            print(f"\nstrata ingest stream: {signal.Signals(signum).name}: finishing the micro-batch in "
                  "flight, then stopping", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"strata ingest stream: reading {args.subscription} into {paths.lake_dir()} (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        summary = local_stream.run(beam_argv(args, paths.home()), stop)
    except ValueError as exc:
        print(f"strata ingest stream: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.as_json()), flush=True)
    else:
        print(f"messages {summary.received:,}, accepted {summary.accepted:,}, dead-lettered "
              f"{summary.dead_lettered:,} {dict(sorted(summary.by_error_type.items()))}, "
              f"{summary.batches:,} micro-batches, {summary.acked:,} acknowledged", flush=True)
    return 0 if summary.balanced else 1
