"""The ``monitoring`` tables: every column declared once, like the event contract declares raw.

Two kinds of table, one declaration each:

* ``recorder`` tables hold facts only a run knows (how many records it read, which dbt tests
  failed, what each model scanned). The CLI writes them after every ingest run and every
  ``strata transform``, failed ones included: locally as Parquet parts under
  ``lake/monitoring/<table>/`` (so loads never open ``warehouse.duckdb``; ``monitoring.<table>``
  is a DuckDB view over them), on BigQuery as rows of the ``monitoring`` dataset (day-partitioned
  by ``partition_field``). Their Arrow and BigQuery schemas derive from the fields below.
* ``dbt`` tables are facts about the data (rows and null rates per partition, duplicate rate,
  schema drift): models in ``transforms_sql/models/monitoring/``, built by every build on both
  warehouses. They are declared here too, so readers (``strata check``, the dashboards) read
  the columns declared here and a test holds the dbt models to them.
"""

from __future__ import annotations

import dataclasses

from strata_core import schemas
from strata_core.contract import Field

SCHEMA = "monitoring"
JOBS = ("ingest_batch", "ingest_stream", "transform")


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    description: str
    fields: tuple[Field, ...]
    #: The primary key (a dbt ``primary_key`` test holds the dbt-built tables to it).
    key: tuple[str, ...]
    built_by: str  # "recorder" | "dbt"
    #: BigQuery day partitioning of recorder tables.
    partition_field: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def _f(name: str, kind: str, description: str, **kw) -> Field:
    return Field(name, kind, description, origin="pipeline", **kw)


_RUN_ID = _f("run_id", "string", "`<job>-<UTC start>-<random>`, e.g. `transform-20261201T101500Z-1a2b3c4d`.",
             required=True)
_FINISHED_AT = _f("finished_at", "timestamp", "When the run ended (UTC).", required=True)

PIPELINE_RUNS = Table(
    "pipeline_runs", "One row per ingest or transform run, successful or not.",
    (
        _RUN_ID,
        _f("job", "enum", "Which job ran.", required=True, choices=JOBS),
        _f("status", "enum", "`success`, or `failed` (an error, a failed dbt node, or lost records).",
           required=True, choices=("success", "failed")),
        _f("started_at", "timestamp", "When the run started (UTC).", required=True),
        _FINISHED_AT,
        _f("duration_s", "float", "Wall time of the run in seconds.", required=True),
        _f("target", "string", "Ingest: the sink (`local`, `bigquery`); transform: the dbt target."),
        _f("records_read", "integer", "Ingest: non-blank input records."),
        _f("records_accepted", "integer", "Ingest: records written to raw.events."),
        _f("records_dead_lettered", "integer", "Ingest: records written to raw.dead_letters."),
        _f("blank_lines", "integer", "Ingest: blank NDJSON lines skipped."),
        _f("users_read", "integer", "Ingest: user master records read."),
        _f("records_per_s", "float", "Ingest: throughput, records read per second."),
        _f("models_built", "integer", "Transform: models built successfully."),
        _f("tests_passed", "integer", "Transform: data and unit tests that passed."),
        _f("tests_failed", "integer", "Transform: data and unit tests that failed or errored."),
        _f("data_version", "string", "Transform: the build id readers see after the run."),
        _f("error_message", "string", "Why the run failed (first 2,000 characters)."),
        _f("details", "json", "Anything else worth keeping (inputs, selectors, failures)."),
    ),
    key=("run_id",), built_by="recorder", partition_field="finished_at",
)

RUN_DEAD_LETTERS = Table(
    "run_dead_letters", "Dead-lettered records of one ingest run, per error type.",
    (
        _RUN_ID,
        _f("job", "enum", "Which job ran.", required=True, choices=JOBS),
        _FINISHED_AT,
        _f("error_type", "string", "Stable error type (docs/events.md).", required=True),
        _f("stage", "string", "Pipeline stage of the error type.", required=True),
        _f("count_records", "integer", "Records dead-lettered with this error type.", required=True),
    ),
    key=("run_id", "error_type"), built_by="recorder", partition_field="finished_at",
)

DBT_RESULTS = Table(
    "dbt_results", "One row per dbt node a transform run executed: models, data and unit tests.",
    (
        _RUN_ID,
        _FINISHED_AT,
        _f("unique_id", "string", "dbt node id, e.g. `model.strata.business_metrics`.", required=True),
        _f("resource_type", "string", "`model`, `test`, `unit_test`, `seed` or `snapshot`.", required=True),
        _f("name", "string", "Node name.", required=True),
        _f("attached_node", "string", "Tests: the unique_id of the model the test checks."),
        _f("status", "string", "dbt status: success, error, skipped (models); pass, fail, warn, error.",
           required=True),
        _f("failures", "integer", "Tests: failing rows."),
        _f("execution_s", "float", "Execution time in seconds."),
        _f("rows_affected", "integer", "Models: rows written, when the adapter reports it."),
        _f("bytes_scanned", "integer", "Bytes the node's queries read: BigQuery's bytes processed, "
           "or the DuckDB estimate of the same (see cost_source)."),
        _f("bytes_billed", "integer", "BigQuery only: bytes billed."),
        _f("slot_ms", "integer", "BigQuery only: slot milliseconds."),
        _f("cost_source", "string", "`bigquery` (the job's statistics) or `duckdb_estimate` "
           "(rows DuckDB scanned x BigQuery's logical column widths)."),
        _f("job_id", "string", "BigQuery only: the job id."),
        _f("message", "string", "dbt's message (first 2,000 characters)."),
    ),
    key=("run_id", "unique_id"), built_by="recorder", partition_field="finished_at",
)

_LOADED_AT = _f("loaded_at", "timestamp", "Start of the build that wrote the row.", required=True)

PARTITION_STATS = Table(
    "partition_stats", "Rows per date partition of raw.events and every date-partitioned model; "
    "for raw.events also distinct event_ids (duplicate rate = 1 - distinct / rows).",
    (
        _f("relation", "string", "`raw.events`, `staging.stg_events`, `mart.business_metrics` ...", required=True),
        _f("partition_date", "date", "The partition (UTC date).", required=True),
        _f("count_rows", "integer", "Rows in the partition.", required=True),
        _f("count_distinct_keys", "integer", "raw.events: distinct event_id (null elsewhere)."),
        _LOADED_AT,
    ),
    key=("relation", "partition_date"), built_by="dbt",
)

NULL_RATES = Table(
    "null_rates", "Nulls in the key columns of raw.events and the models, per date partition.",
    (
        _f("relation", "string", "Relation name, as in partition_stats.", required=True),
        _f("partition_date", "date", "The partition (UTC date).", required=True),
        _f("column_name", "string", "The column.", required=True),
        _f("count_rows", "integer", "Rows in the partition.", required=True),
        _f("count_nulls", "integer", "Rows where the column is null.", required=True),
        _LOADED_AT,
    ),
    key=("relation", "partition_date", "column_name"), built_by="dbt",
)

DRIFT_KINDS = ("properties", "context", "extra", "event_type", "ingest_source")

SCHEMA_DRIFT = Table(
    "schema_drift", "Every top-level key of properties / context / extra (per event type), every "
    "event type and ingest source, with when it was first received and an example.",
    (
        _f("kind", "enum", "What was seen: a key of `properties`, `context` or `extra`, an "
           "`event_type` or an `ingest_source`.", required=True, choices=DRIFT_KINDS),
        _f("event_type", "string", "The event type the key was seen on ('' for ingest sources).",
           required=True),
        _f("name", "string", "The key, event type or ingest source.", required=True),
        _f("first_seen_at", "timestamp", "received_at of the first raw row that had it.", required=True),
        _f("first_seen_event_date", "date", "event_date of that row."),
        _f("example_event_id", "string", "event_id of that row."),
        _f("example_value", "string", "Keys: the value in that row, as JSON text (first 200 characters)."),
        _f("received_high_water_at", "timestamp", "Newest raw received_at the build read (its watermark).",
           required=True),
        _LOADED_AT,
    ),
    key=("kind", "event_type", "name"), built_by="dbt",
)

TABLES: tuple[Table, ...] = (PIPELINE_RUNS, RUN_DEAD_LETTERS, DBT_RESULTS, PARTITION_STATS, NULL_RATES,
                             SCHEMA_DRIFT)
TABLES_BY_NAME = {t.name: t for t in TABLES}
#: Tables the CLI writes (lake parts / BigQuery rows); the others are dbt models.
RECORDED = {t.name: t for t in TABLES if t.built_by == "recorder"}


def arrow_schema(table: str):
    return schemas.arrow_schema_for(RECORDED[table].fields)


def bigquery_schema(table: str) -> dict:
    return schemas.bigquery_schema_for(TABLES_BY_NAME[table].fields)
