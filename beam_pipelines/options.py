"""Pipeline options for the Strata ingest jobs, validated before the graph is built."""

from __future__ import annotations

import re

from apache_beam.options.pipeline_options import PipelineOptions

INPUT_FORMATS = ("auto", "ndjson", "avro", "parquet")
SINKS = ("local", "bigquery")
_DATASET_RE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: Pub/Sub resource names (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names).
SUBSCRIPTION_RE = re.compile(r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/subscriptions/[A-Za-z][-A-Za-z0-9._~%+]{2,254}$")
TOPIC_RE = re.compile(r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][-A-Za-z0-9._~%+]{2,254}$")


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
        parser.add_argument("--sink", default="local", choices=SINKS,
                            help="local: Parquet lake + DuckDB under --strata_home; bigquery: raw dataset.")
        parser.add_argument("--strata_home", default=None,
                            help="Local sink: absolute path of $STRATA_HOME.")
        parser.add_argument("--bq_project", default=None, help="BigQuery sink: project id.")
        parser.add_argument("--bq_dataset", default="raw", help="BigQuery sink: dataset of the raw tables.")
        parser.add_argument("--bq_endpoint", default=None,
                            help="BigQuery sink: a loopback endpoint (http://127.0.0.1:PORT) of a fake or "
                                 "emulator, for local runs and tests; unset in production.")


def validate_batch_options(opts: BatchIngestOptions) -> None:
    """Fail fast, naming the option and the expected form, before any step is built."""
    if not opts.input:
        raise ValueError("--input is required: a local path or gs:// glob such as 'data/events/*.jsonl'")
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

    The sink options (``--sink``, ``--strata_home``, ``--bq_*``) are declared once, by
    ``BatchIngestOptions``: Beam merges every ``PipelineOptions`` subclass into one parser, so a
    flag declared twice makes every pipeline fail with "conflicting option string".
    """

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--subscription", default=None,
                            help="Pub/Sub subscription to read, projects/PROJECT/subscriptions/NAME.")
        parser.add_argument("--dead_letter_topic", default=None,
                            help="Optional Pub/Sub topic (projects/PROJECT/topics/NAME) that also receives "
                                 "every dead letter, with its original bytes and attributes.")
        parser.add_argument("--window_sec", type=int, default=60,
                            help="Per-minute counts: event-time window length in seconds (default 60).")
        parser.add_argument("--allowed_lateness_sec", type=int, default=3600,
                            help="Per-minute counts: how late an event may arrive and still be counted "
                                 "in its window, in seconds (default 3600). Late events always reach raw.")
