"""The raw tables' production sink: ``WriteRawBigQuery`` and the composites it is made of.

Two write methods (``--bq_write_method``):

* ``merge`` (the batch job's default): :class:`LoadAndMergeRows` – load files into a staging
  table, then ``MERGE`` on the row key (``beam_pipelines.bigquery.merge``): a rerun of the same
  files adds no rows. Needs a ``gs://`` temp location.
* ``streaming_inserts`` (the streaming job): :class:`StreamInsertRows` – rows BigQuery refuses
  become ``write``-stage dead letters, under a bounded retry budget, never dropped.

Tables are created up front (``beam_pipelines.bigquery.tables.ensure_tables``), so no write ever
calls tables.get or creates a table.
"""

from __future__ import annotations

import functools

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp.bigquery_tools import RetryStrategy
from apache_beam.metrics import Metrics

from beam_pipelines.bigquery import merge
from beam_pipelines.bigquery.clients import make_client
from beam_pipelines.bigquery.refused import FailedInsertToDeadLetterFn, FailOnUnwritableDeadLetterFn
from beam_pipelines.bigquery.rows import dead_letter_to_bigquery_row, to_insert_row, to_load_row
from beam_pipelines.transforms import DeadLetterBatch, RowsPart
from strata_core import contract as c

WRITE_METHODS = ("merge", "streaming_inserts")
#: Bound on Beam's insert retries for transient errors. Beam's own default (10 000, back-off
#: capped at 1 500 s) amounts to retrying forever. Beam 2.77 quirk (bigquery.py, _flush_batch):
#: the back-off iterator (0.2 s doubling, fuzzed) is created per *bundle* and every flush draws
#: from it, successful or not, so this is a budget per bundle, not per row: after 8 flushes in a
#: bundle a transient error is no longer retried and its rows become dead letters (replayable).
#: Permanent errors (reason ``invalid``) are never retried.
DEFAULT_MAX_INSERT_RETRIES = 8
#: Rows per insertAll request (BigQuery recommends about 500).
DEFAULT_BATCH_SIZE = 500


def rows_of(part: RowsPart):
    return part.rows.to_pylist()


def dead_letters_of(batch: DeadLetterBatch):
    return batch.rows


def _insert(project, dataset, table, bigquery_client, max_insert_retries, batch_size):
    return beam.io.WriteToBigQuery(
        f"{project}:{dataset}.{table}",
        method=beam.io.WriteToBigQuery.Method.STREAMING_INSERTS,
        create_disposition=beam.io.BigQueryDisposition.CREATE_NEVER,
        write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND,
        insert_retry_strategy=RetryStrategy.RETRY_ON_TRANSIENT_ERROR,
        max_retries=max_insert_retries,
        batch_size=batch_size,
        test_client=bigquery_client,
    )


class WriteDeadLettersToBigQuery(beam.PTransform):
    """Stream dead-letter records (any stage) into the ``dead_letters`` table.

    Input: dicts with the ``contract.DEAD_LETTER_FIELDS`` columns; ``raw_payload`` as bytes,
    ``attributes`` as JSON text or a dict, ``failed_at`` as RFC 3339 text or an aware datetime.
    A dead letter BigQuery refuses fails the run (``refused.UnwritableDeadLetterError``).
    ``bigquery_client``: ``None`` in production (Beam builds its client from application default
    credentials); a ``clients.LoopbackClient`` in local mode and tests.
    """

    def __init__(self, project: str, dataset: str, table: str = "dead_letters", *,
                 bigquery_client=None, max_insert_retries: int = DEFAULT_MAX_INSERT_RETRIES,
                 batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__()
        self.project, self.dataset, self.table = project, dataset, table
        self.bigquery_client = bigquery_client
        self.max_insert_retries = max_insert_retries
        self.batch_size = batch_size

    def expand(self, dead_letters):
        result = (
            dead_letters
            | "ToBigQueryRow" >> beam.Map(dead_letter_to_bigquery_row)
            | "InsertDeadLetters" >> _insert(self.project, self.dataset, self.table, self.bigquery_client,
                                             self.max_insert_retries, self.batch_size)
        )
        _ = result.failed_rows_with_errors | "FailOnUnwritable" >> beam.ParDo(FailOnUnwritableDeadLetterFn())
        return beam.pvalue.PDone(dead_letters.pipeline)


class StreamInsertRows(beam.PTransform):
    """Stream raw rows into ``table`` (``events`` or ``users``); refused rows become ``write``
    dead letters, written to ``dead_letters_table``.

    Input: one dict per row with the columns of ``schemas.arrow_schema(table)`` as JSON-able
    values: TIMESTAMP as RFC 3339 text (``2026-11-26T10:00:00.123456Z``), DATE as
    ``YYYY-MM-DD``, NUMERIC as a decimal string (``"12.50"``), JSON columns as JSON text,
    integers as ``int``, absent values as ``None``. Rows from ``pa.Table.to_pylist()`` (datetime,
    date, Decimal) work too: ``rows.to_insert_row`` converts them.

    Output: the dead-letter records (``contract.DEAD_LETTER_FIELDS``, ``raw_payload`` as bytes)
    for rows BigQuery refused, after they were handed to the dead-letter table. Every input row
    ends up either in ``table`` or in this output: permanent errors (``invalid``) are not
    retried, transient ones at most ``max_insert_retries`` times. Counter
    ``strata/bigquery_refused`` counts them.
    """

    def __init__(self, project: str, dataset: str, table: str = "events", *,
                 dead_letters_table: str = "dead_letters", source: str = "batch",
                 bigquery_client=None, max_insert_retries: int = DEFAULT_MAX_INSERT_RETRIES,
                 batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__()
        sources = next(f.choices for f in c.DEAD_LETTER_FIELDS if f.name == "source")
        if source not in sources:
            raise ValueError(f"source {source!r} must be one of {sources}")
        if not 0 <= max_insert_retries <= 100:
            raise ValueError(f"max_insert_retries={max_insert_retries} must be in [0, 100]; "
                             "higher values amount to retrying forever")
        self.project, self.dataset, self.table = project, dataset, table
        self.dead_letters_table = dead_letters_table
        self.source = source
        self.bigquery_client = bigquery_client
        self.max_insert_retries = max_insert_retries
        self.batch_size = batch_size

    def expand(self, rows):
        result = rows | "ToInsertRow" >> beam.Map(to_insert_row) | "InsertRows" >> _insert(
            self.project, self.dataset, self.table, self.bigquery_client,
            self.max_insert_retries, self.batch_size)
        dead_letters = (
            result.failed_rows_with_errors
            | "RefusedToDeadLetter" >> beam.ParDo(FailedInsertToDeadLetterFn(self.source))
        )
        _ = dead_letters | "WriteDeadLetters" >> WriteDeadLettersToBigQuery(
            self.project, self.dataset, self.dead_letters_table,
            bigquery_client=self.bigquery_client, max_insert_retries=self.max_insert_retries,
            batch_size=self.batch_size)
        return dead_letters


class _LoadAndMergeFn(beam.DoFn):
    """Runs once (on one element) after every load file is written; see ``merge.load_and_merge``."""

    def __init__(self, project, dataset, table, run_id, bigquery_client):
        self.project, self.dataset, self.table, self.run_id = project, dataset, table, run_id
        self.bigquery_client = bigquery_client
        self.staged = Metrics.counter("strata", f"bigquery_{table}_staged")
        self.inserted = Metrics.counter("strata", f"bigquery_{table}_inserted")

    def setup(self):
        self.client = (self.bigquery_client.client if self.bigquery_client is not None
                       else make_client(self.project))

    def process(self, _, files):
        files = sorted(files)
        result = merge.load_and_merge(self.client, self.project, self.dataset, self.table, files, self.run_id)
        if files:
            FileSystems.delete(files)
        self.staged.inc(result.staged_rows)
        self.inserted.inc(result.inserted_rows)
        yield result


class LoadAndMergeRows(beam.PTransform):
    """Raw rows of ``table`` → load files under ``temp_location`` → staging table → ``MERGE``.

    Input: dicts as for :class:`StreamInsertRows`. Output: one ``merge.MergeResult``. Counters
    ``strata/bigquery_<table>_staged`` and ``strata/bigquery_<table>_inserted`` (0 on a rerun).
    ``run_id`` names the staging table and the files; default: a fresh one per pipeline.
    """

    def __init__(self, project: str, dataset: str, table: str, temp_location: str, *,
                 bigquery_client=None, run_id: str | None = None):
        super().__init__()
        if not (temp_location or "").startswith("gs://"):
            raise ValueError(f"temp_location {temp_location!r} must be a gs:// path: BigQuery load "
                             "jobs read their files from Cloud Storage (set --temp_location gs://BUCKET/tmp)")
        self.project, self.dataset, self.table = project, dataset, table
        self.run_id = run_id or merge.new_run_id()
        self.prefix = f"{temp_location.rstrip('/')}/strata-load/{self.run_id}/{table}/part"
        self.bigquery_client = bigquery_client

    def expand(self, rows):
        files = (rows
                 | "ToLoadRow" >> beam.Map(functools.partial(to_load_row, self.table))
                 | "WriteLoadFiles" >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl"))
        return (rows.pipeline
                | "Once" >> beam.Create([None])
                | "LoadAndMerge" >> beam.ParDo(
                    _LoadAndMergeFn(self.project, self.dataset, self.table, self.run_id, self.bigquery_client),
                    beam.pvalue.AsList(files)))


class WriteRawBigQuery(beam.PTransform):
    """``{"events", "users", "dead_letters"}`` PCollections → the ``raw`` dataset in BigQuery.

    ``events`` and ``users``: ``RowsPart`` s; ``dead_letters``: ``DeadLetterBatch`` es.
    ``method``: ``streaming_inserts`` (default) or ``merge`` (idempotent reruns; needs
    ``temp_location``, a ``gs://`` path). With streaming inserts, rows BigQuery refuses come back
    as ``write``-stage dead letters (already written to ``dead_letters``) and are counted by
    ``strata/bigquery_refused``; with ``merge`` a refused load fails the run, and the output is
    empty. ``bigquery_client`` is ``None`` in production and a ``clients.LoopbackClient`` for a
    fake or an emulator.
    """

    def __init__(self, project: str, dataset: str, bigquery_client=None, *,
                 method: str = "streaming_inserts", temp_location: str | None = None,
                 source: str = "batch"):
        super().__init__()
        if method not in WRITE_METHODS:
            raise ValueError(f"method {method!r} must be one of {WRITE_METHODS}")
        self.project, self.dataset, self.client = project, dataset, bigquery_client
        self.method, self.temp_location, self.source = method, temp_location, source
        if method == "merge":  # validate now, not when the graph is expanded
            LoadAndMergeRows(project, dataset, "events", temp_location)

    def expand(self, pcolls):
        events = pcolls["events"] | "EventRows" >> beam.FlatMap(rows_of)
        users = pcolls["users"] | "UserRows" >> beam.FlatMap(rows_of)
        dead_letters = pcolls["dead_letters"] | "DeadLetterRows" >> beam.FlatMap(dead_letters_of)
        if self.method == "merge":
            run_id = merge.new_run_id()
            for label, table, pc in (("Events", "events", events), ("Users", "users", users),
                                     ("DeadLetters", "dead_letters", dead_letters)):
                _ = pc | f"Merge{label}" >> LoadAndMergeRows(
                    self.project, self.dataset, table, self.temp_location,
                    bigquery_client=self.client, run_id=run_id)
            return events.pipeline | "NoneRefused" >> beam.Create([])
        refused_events = events | "WriteEvents" >> StreamInsertRows(
            self.project, self.dataset, "events", source=self.source, bigquery_client=self.client)
        refused_users = users | "WriteUsers" >> StreamInsertRows(
            self.project, self.dataset, "users", source=self.source, bigquery_client=self.client)
        _ = dead_letters | "WriteDeadLetters" >> WriteDeadLettersToBigQuery(
            self.project, self.dataset, bigquery_client=self.client)
        return (refused_events, refused_users) | "FlattenRefused" >> beam.Flatten()
