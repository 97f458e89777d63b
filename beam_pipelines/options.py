"""Pipeline options for the Strata ingest jobs, validated before the graph is built."""

from __future__ import annotations

import re

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from strata_core.resources import PROJECT_ID_RE

#: Pub/Sub resource names (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names).
from strata_core.pubsub import SUBSCRIPTION_RE, TOPIC_RE  # noqa: F401  (re-exported)

INPUT_FORMATS = ("auto", "ndjson", "avro", "parquet")
SINKS = ("local", "bigquery")
#: How the batch job writes BigQuery (``beam_pipelines.sinks.bigquery``): ``merge`` loads files
#: into a staging table and MERGEs on row_key (reruns add no rows); ``streaming_inserts`` is
#: the streaming job's method (not idempotent across runs; refused rows become dead letters).
BQ_WRITE_METHODS = ("merge", "streaming_inserts")
_DATASET_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_PROJECT_RE = PROJECT_ID_RE


def add_sink_arguments(parser) -> None:
    """The sink options both jobs share, declared once.

    Beam parses the options of every ``PipelineOptions`` subclass with one parser
    (``get_all_options``), so a flag declared by both job classes would conflict; each flag is
    added only where the parser lacks it.
    """
    def add(flag, **kwargs):
        if flag not in parser._option_string_actions:  # argparse has no public "has option"
            parser.add_argument(flag, **kwargs)

    add("--sink", default="local", choices=SINKS,
        help="local: Parquet lake + DuckDB under --strata_home; bigquery: raw dataset.")
    add("--strata_home", default=None, help="Local sink: absolute path of $STRATA_HOME.")
    add("--bq_project", default=None, help="BigQuery sink: project id.")
    add("--bq_dataset", default="raw", help="BigQuery sink: dataset of the raw tables.")
    add("--bq_endpoint", default=None,
        help="BigQuery sink: a loopback endpoint (http://127.0.0.1:PORT) of a fake or emulator, for "
             "local runs and tests; unset in production.")


class BatchIngestOptions(PipelineOptions):
    """Options of the batch job (``strata ingest batch`` and the ``ingest_batch`` Flex Template)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--input", action="append", default=None,
                            help="Input path or glob, local or gs:// (repeatable), e.g. 'data/*.jsonl'.")
        parser.add_argument("--input_format", default="auto", choices=INPUT_FORMATS,
                            help="ndjson, avro or parquet; 'auto' picks by extension "
                                 "(.jsonl/.ndjson/.json[.gz], .avro, .parquet).")
        parser.add_argument("--users_input", action="append", default=None,
                            help="Optional user master NDJSON files (user_id, created_at, country, plan, traits).")
        add_sink_arguments(parser)
        parser.add_argument("--bq_write_method", default="merge", choices=BQ_WRITE_METHODS,
                            help="BigQuery sink: merge (default; load files into a staging table, then "
                                 "MERGE on row_key, so a rerun adds no rows; needs --temp_location gs://...) "
                                 "or streaming_inserts.")


def validate_batch_options(opts: BatchIngestOptions) -> None:
    """Fail fast, naming the option and the expected form, before any step is built."""
    if not opts.input:
        raise ValueError("--input is required: a local path or gs:// glob such as 'data/events/*.jsonl'")
    _validate_sink(opts)
    if opts.sink == "bigquery":
        temp_location = opts.view_as(GoogleCloudOptions).temp_location
        if opts.bq_write_method == "merge" and not (temp_location or "").startswith("gs://"):
            raise ValueError(f"--temp_location {temp_location!r} must be a gs:// path with "
                             "--bq_write_method=merge (BigQuery load jobs read their files from Cloud "
                             "Storage), e.g. --temp_location=gs://my-bucket/tmp; or pass "
                             "--bq_write_method=streaming_inserts (reruns then add rows again)")


def _validate_sink(opts) -> None:
    if opts.sink == "local" and not opts.strata_home:
        raise ValueError("--strata_home is required with --sink=local (an absolute directory path)")
    if opts.sink == "bigquery":
        if not opts.bq_project or not _PROJECT_RE.match(opts.bq_project):
            raise ValueError(f"--bq_project {opts.bq_project!r} must be a GCP project id "
                             "(6-30 chars: lower-case letters, digits, hyphens)")
        if opts.bq_endpoint and not opts.bq_endpoint.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise ValueError(f"--bq_endpoint {opts.bq_endpoint!r} must be a loopback URL such as "
                             "http://127.0.0.1:9050 (production uses the real BigQuery endpoint)")
        if not _DATASET_RE.match(opts.bq_dataset or ""):
            raise ValueError(f"--bq_dataset {opts.bq_dataset!r} must be letters, digits and underscores")


class StreamIngestOptions(PipelineOptions):
    """Options of the streaming job (``strata ingest stream`` and the ``ingest_stream`` Flex Template).

    The sink options (``--sink``, ``--strata_home``, ``--bq_*``) come from ``add_sink_arguments``,
    shared with ``BatchIngestOptions``.
    """

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--subscription", default=None,
                            help="Pub/Sub subscription to read, projects/PROJECT/subscriptions/NAME.")
        parser.add_argument("--dead_letter_topic", default=None,
                            help="Optional Pub/Sub topic (projects/PROJECT/topics/NAME) that also receives "
                                 "every dead letter, with its original bytes and attributes.")
        add_sink_arguments(parser)
        parser.add_argument("--window_sec", type=int, default=60,
                            help="Per-minute counts: event-time window length in seconds (default 60).")
        parser.add_argument("--allowed_lateness_sec", type=int, default=3600,
                            help="Per-minute counts: how late an event may arrive and still be counted "
                                 "in its window, in seconds (default 3600). Late events always reach raw.")
        parser.add_argument("--max_batch_delay_ms", type=int, default=500,
                            help="Local runner: a micro-batch closes this long after its first message "
                                 "(default 500) or at --max_batch_messages, whichever comes first.")
        parser.add_argument("--max_batch_messages", type=int, default=20_000,
                            help="Local runner: most messages in one micro-batch (default 20000).")
        parser.add_argument("--max_outstanding_messages", type=int, default=50_000,
                            help="Local runner: flow control, most messages pulled but not yet acknowledged "
                                 "(default 50000).")


def validate_stream_options(opts: StreamIngestOptions) -> None:
    """Fail fast, naming the option and the expected form, before any step is built."""
    if not opts.subscription or not SUBSCRIPTION_RE.match(opts.subscription):
        raise ValueError(f"--subscription {opts.subscription!r} must be a Pub/Sub subscription name, "
                         "projects/PROJECT/subscriptions/NAME")
    if opts.dead_letter_topic and not TOPIC_RE.match(opts.dead_letter_topic):
        raise ValueError(f"--dead_letter_topic {opts.dead_letter_topic!r} must be a Pub/Sub topic name, "
                         "projects/PROJECT/topics/NAME")
    if opts.window_sec < 1 or 86_400 % opts.window_sec:
        raise ValueError(f"--window_sec {opts.window_sec} must be a positive divisor of 86400 (e.g. 60)")
    if opts.allowed_lateness_sec < 0:
        raise ValueError(f"--allowed_lateness_sec {opts.allowed_lateness_sec} must be >= 0")
    if not 10 <= opts.max_batch_delay_ms <= 10_000:
        raise ValueError(f"--max_batch_delay_ms {opts.max_batch_delay_ms} must be in [10, 10000]")
    if not 1 <= opts.max_batch_messages <= opts.max_outstanding_messages:
        raise ValueError(f"--max_batch_messages {opts.max_batch_messages} must be in "
                         f"[1, --max_outstanding_messages={opts.max_outstanding_messages}]")
    _validate_sink(opts)
