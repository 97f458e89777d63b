"""The production BigQuery side of the raw ingest: table layout, creation, and the row sink.

* :func:`table_definition` / :func:`ensure_tables` create the raw tables from the contract
  (``schemas.bigquery_schema`` + ``schemas.BIGQUERY_LAYOUT``); nothing here names a column.
* :class:`WriteRawToBigQuery` streams raw event rows into ``events`` and turns every row BigQuery
  refuses into a dead letter (stage ``write``, error type ``bigquery_insert_error``) written to
  ``dead_letters``. It returns those dead letters so the caller can count them.
* :class:`LoopbackClient` lets local mode and tests run the same sink against a fake endpoint on
  127.0.0.1 (``tests/fakes/bigquery_server.py``) without touching Google.

Streaming inserts are used because FILE_LOADS needs a ``gs://`` temp location and the Storage
Write API needs a Java expansion service (see shared/ENVIRONMENT.md); tables are created up front
by :func:`ensure_tables`, so the sink runs with ``CREATE_NEVER`` and never calls tables.get.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Iterable

import apache_beam as beam
from apache_beam.io.gcp.bigquery_tools import RetryStrategy
from apache_beam.metrics import Metrics
from google.cloud import bigquery

from strata_core import contract as c
from strata_core import schemas
from beam_pipelines.deadletters import dead_letter

#: Counters: ``strata/bigquery_refused`` (rows turned into write dead letters; ``batch.summarize``
#: reads it) and ``strata/bigquery_dead_letters_unwritable``.
METRICS_NAMESPACE = "strata"
#: Bound on Beam's insert retries for transient errors. Beam's own default (10 000, back-off
#: capped at 1 500 s) amounts to retrying forever. Beam 2.77 quirk (bigquery.py, _flush_batch):
#: the back-off iterator (0.2 s doubling, fuzzed) is created per *bundle* and every flush draws
#: from it, successful or not, so this is a budget per bundle, not per row: after 8 flushes in a
#: bundle a transient error is no longer retried and its rows become dead letters (replayable).
#: Permanent errors (reason ``invalid``) are never retried.
DEFAULT_MAX_INSERT_RETRIES = 8
#: Rows per insertAll request (BigQuery recommends about 500).
DEFAULT_BATCH_SIZE = 500

_MS_PER_DAY = 24 * 60 * 60 * 1000


# ---- table definitions -------------------------------------------------------------------------

def table_definition(project: str, dataset: str, table: str) -> bigquery.Table:
    """The ``google.cloud.bigquery.Table`` for raw table ``table`` (``events``, ``dead_letters``,
    ``users``): contract columns, DAY partitioning on the layout's partition field with its
    expiration (days converted to ms), and clustering."""
    if table not in schemas.RAW_TABLES:
        raise ValueError(f"unknown raw table {table!r}; expected one of {sorted(schemas.RAW_TABLES)}")
    fields = [
        bigquery.SchemaField(f["name"], f["type"], mode=f["mode"], description=f["description"])
        for f in schemas.bigquery_schema(table)["fields"]
    ]
    definition = bigquery.Table(f"{project}.{dataset}.{table}", schema=fields)
    layout = schemas.BIGQUERY_LAYOUT[table]
    if layout["partition_field"]:
        days = layout["partition_expiration_days"]
        definition.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY,
            field=layout["partition_field"],
            expiration_ms=days * _MS_PER_DAY if days else None,
        )
    if layout["cluster_fields"]:
        definition.clustering_fields = list(layout["cluster_fields"])
    definition.description = f"Strata raw {table}, contract v{c.CONTRACT_VERSION}."
    return definition


def ensure_tables(client: bigquery.Client, project: str, dataset: str,
                  location: str | None = None) -> dict[str, bigquery.Table]:
    """Create ``dataset`` and the raw tables if missing; idempotent. Returns the tables by name.

    An existing table is left as it is, but if it lacks a contract column this raises
    ``RuntimeError`` naming the columns: every insert would fail with "no such field", and adding
    columns to a production table is a deliberate migration, not a side effect of a run.
    """
    ds = bigquery.Dataset(f"{project}.{dataset}")
    if location:
        ds.location = location
    client.create_dataset(ds, exists_ok=True)
    tables = {}
    for name in schemas.RAW_TABLES:
        table = client.create_table(table_definition(project, dataset, name), exists_ok=True)
        existing = {f.name for f in table.schema}
        missing = [f["name"] for f in schemas.bigquery_schema(name)["fields"] if f["name"] not in existing]
        if missing:
            raise RuntimeError(
                f"BigQuery table {project}.{dataset}.{name} exists but lacks contract columns "
                f"{missing}; add them (bq update / ALTER TABLE ADD COLUMN) before ingesting.")
        tables[name] = table
    return tables


# ---- clients for local mode and tests ----------------------------------------------------------

def loopback_client(endpoint: str, project: str) -> bigquery.Client:
    """A BigQuery client for a fake endpoint on loopback (``http://127.0.0.1:PORT``).

    Uses ``AnonymousCredentials`` and ``client_options.api_endpoint``, so it never looks up
    credentials, never probes the metadata server and never resolves a Google host.
    """
    if not endpoint.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:")):
        raise ValueError(f"endpoint {endpoint!r} is not loopback; expected http://127.0.0.1:PORT")
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": endpoint.rstrip("/")})


class LoopbackClient:
    """Picklable stand-in for Beam's ``WriteToBigQuery(test_client=...)``.

    ``google.cloud.bigquery.Client`` refuses to be pickled, and Beam pickles the write DoFn, so
    this carries only ``endpoint`` and ``project`` and builds the real client on first use on the
    worker. Beam hands a ``test_client`` both to its apitools calls (tables.get/insert, never made
    with ``CREATE_NEVER``) and to ``insert_rows_json``; everything is delegated to the client.
    """

    def __init__(self, endpoint: str, project: str):
        self.endpoint = endpoint
        self.project = project
        self._client = None

    def __getstate__(self):
        return {"endpoint": self.endpoint, "project": self.project, "_client": None}

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            self._client = loopback_client(self.endpoint, self.project)
        return self._client

    def insert_rows_json(self, *args, **kwargs):
        return self.client.insert_rows_json(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("endpoint", "project", "_client"):
            raise AttributeError(name)
        return getattr(self.client, name)


# ---- dead letters --------------------------------------------------------------------------------

def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _error_list(errors) -> list[dict]:
    # Beam gives a list of BigQuery error dicts, or a plain string for rows over its size limit.
    if isinstance(errors, str):
        return [{"reason": "rowTooLarge", "location": "", "message": errors}]
    return [dict(e) if isinstance(e, dict) else {"reason": "", "message": str(e)} for e in errors or []]


def failed_insert_to_dead_letter(destination: str, row: dict, errors, *, source: str = "batch",
                                 failed_at: dt.datetime | None = None) -> dict:
    """A dead-letter record (``deadletters.dead_letter`` shape) for a row BigQuery refused.

    ``destination``/``row``/``errors`` are one element of ``WriteToBigQuery``'s
    ``failed_rows_with_errors``. ``failed_at`` is an aware datetime, ``raw_payload`` bytes,
    ``attributes`` JSON text with the destination, ``source_file``/``source_line`` and BigQuery's
    errors, ``replay_count`` 0.
    """
    errors = _error_list(errors)
    parts = []
    for e in errors:
        part = e.get("reason") or "error"
        if e.get("location"):
            part += f" at {e['location']}"
        if e.get("message"):
            part += f": {e['message']}"
        parts.append(part)
    message = "; ".join(parts) or "no error detail returned"
    return dead_letter(
        error_type="bigquery_insert_error",
        error_message=f"BigQuery refused the row for {destination}: {message}",
        # The original input bytes are the row's source (``source_file`` line ``source_line``,
        # kept in ``attributes``); by the write stage only the refused row exists, so the exact
        # row BigQuery saw is the payload. A replay re-inserts it after fixing the cause.
        raw_payload=json.dumps(row, sort_keys=True, separators=(",", ":"), default=str).encode(),
        source=source,
        attributes={"destination": destination, "source_file": row.get("source_file"),
                    "source_line": row.get("source_line"), "bigquery_errors": errors},
        row_key=row.get("row_key") or "",
        failed_at=failed_at or dt.datetime.now(dt.timezone.utc),
        event_id=row.get("event_id"),
    )


def _json_value(value):
    if isinstance(value, dt.datetime):
        return _rfc3339(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def to_insert_row(row: dict) -> dict:
    """A raw row as insertAll JSON. Already JSON-able values pass through unchanged; Python
    values (``pa.Table.to_pylist()`` output) are converted: datetime -> RFC 3339 UTC, date ->
    ``YYYY-MM-DD``, Decimal -> plain decimal string, bytes -> base64."""
    return {k: _json_value(v) for k, v in row.items()}


def dead_letter_to_bigquery_row(dead_letter: dict) -> dict:
    """The insertAll JSON of a dead-letter record: ``raw_payload`` bytes become base64 (BigQuery's
    JSON form of BYTES; Beam would otherwise decode them as UTF-8), ``attributes`` dicts become
    JSON text, datetimes become RFC 3339 strings. Columns outside the contract are dropped."""
    row = {}
    for field in c.DEAD_LETTER_FIELDS:
        value = dead_letter.get(field.name, field.default)
        if field.kind == "bytes" and value is not None:
            if isinstance(value, str):
                value = value.encode()
            value = base64.b64encode(value).decode("ascii")
        elif field.kind == "json" and value is not None and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, default=str)
        elif field.kind == "timestamp" and isinstance(value, dt.datetime):
            value = _rfc3339(value)
        row[field.name] = value
    return row


class FailedInsertToDeadLetterFn(beam.DoFn):
    """``(destination, row, errors)`` from ``failed_rows_with_errors`` -> dead-letter record."""

    def __init__(self, source: str = "batch"):
        self.source = source
        self.refused = Metrics.counter(METRICS_NAMESPACE, "bigquery_refused")

    def process(self, failed) -> Iterable[dict]:
        destination, row, errors = failed
        self.refused.inc()
        yield failed_insert_to_dead_letter(destination, row, errors, source=self.source)


class UnwritableDeadLetterError(RuntimeError):
    """BigQuery refused a dead letter too. Raised so the run fails instead of losing the record."""


class _FailOnUnwritableDeadLetterFn(beam.DoFn):
    def __init__(self):
        self.unwritable = Metrics.counter(METRICS_NAMESPACE, "bigquery_dead_letters_unwritable")

    def process(self, failed):
        destination, row, errors = failed
        self.unwritable.inc()
        raise UnwritableDeadLetterError(
            f"BigQuery refused dead letter row_key={row.get('row_key')!r} "
            f"error_type={row.get('error_type')!r} for {destination}: {_error_list(errors)}. "
            "Dead letters are the last stop, so the run fails rather than dropping it; fix the "
            "dead-letter table (schema, permissions) and rerun.")


def _table_spec(project: str, dataset: str, table: str) -> str:
    return f"{project}:{dataset}.{table}"


def _write(project, dataset, table, bigquery_client, max_insert_retries, batch_size):
    return beam.io.WriteToBigQuery(
        _table_spec(project, dataset, table),
        method=beam.io.WriteToBigQuery.Method.STREAMING_INSERTS,
        create_disposition=beam.io.BigQueryDisposition.CREATE_NEVER,
        write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND,
        insert_retry_strategy=RetryStrategy.RETRY_ON_TRANSIENT_ERROR,
        max_retries=max_insert_retries,
        batch_size=batch_size,
        test_client=bigquery_client,
    )


class WriteDeadLettersToBigQuery(beam.PTransform):
    """Write dead-letter records (any stage) to the ``dead_letters`` table.

    Input: dicts with the ``contract.DEAD_LETTER_FIELDS`` columns; ``raw_payload`` as bytes,
    ``attributes`` as JSON text or a dict, ``failed_at`` as RFC 3339 text or an aware datetime.
    A dead letter BigQuery refuses fails the run (:class:`UnwritableDeadLetterError`).
    ``bigquery_client``: ``None`` in production (Beam builds its client from application default
    credentials); a :class:`LoopbackClient` in local mode and tests.
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
            | "InsertDeadLetters" >> _write(self.project, self.dataset, self.table, self.bigquery_client,
                                            self.max_insert_retries, self.batch_size)
        )
        _ = result.failed_rows_with_errors | "FailOnUnwritable" >> beam.ParDo(_FailOnUnwritableDeadLetterFn())
        return beam.pvalue.PDone(dead_letters.pipeline)


class WriteRawToBigQuery(beam.PTransform):
    """Stream raw event rows into ``events``; refused rows become ``write`` dead letters.

    Input: one dict per event with the columns of ``schemas.arrow_schema('events')`` as JSON-able
    values: TIMESTAMP as RFC 3339 text (``2026-11-26T10:00:00.123456Z``), ``event_date`` as
    ``YYYY-MM-DD``, ``amount`` as a decimal string (``"12.50"``), JSON columns as JSON text,
    integers as ``int``, absent values as ``None``. Rows from ``pa.Table.to_pylist()`` (datetime,
    date, Decimal) work too: :func:`to_insert_row` converts them.

    Output: the dead-letter records (``contract.DEAD_LETTER_FIELDS``, ``raw_payload`` as bytes)
    for rows BigQuery refused, after they were handed to the ``dead_letters`` table. Every input
    row ends up either in ``events`` or in this output: permanent errors (``invalid``) are not
    retried, transient ones at most ``max_insert_retries`` times. Counter
    ``strata/bigquery_refused`` counts them.
    """

    def __init__(self, project: str, dataset: str, *, events_table: str = "events",
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
        self.project, self.dataset = project, dataset
        self.events_table, self.dead_letters_table = events_table, dead_letters_table
        self.source = source
        self.bigquery_client = bigquery_client
        self.max_insert_retries = max_insert_retries
        self.batch_size = batch_size

    def expand(self, rows):
        result = rows | "ToInsertRow" >> beam.Map(to_insert_row) | "InsertEvents" >> _write(
            self.project, self.dataset, self.events_table, self.bigquery_client,
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
