"""The idempotent batch write: load files into a staging table, then ``MERGE`` on the row key.

Streaming inserts are not idempotent across runs: Beam's insertIds only dedupe its own retries,
for about a minute. A batch rerun over the same files must not add rows, so the batch sink:

1. writes the rows as newline-delimited JSON files under ``--temp_location`` (``gs://``);
2. creates ``<dataset>._strata_load_<table>_<run id>`` (contract schema, expires in a day, so
   a crashed run cleans up after itself) and loads the files into it (one load job per 10 000
   files; load jobs are free, atomic, and either load every row or fail);
3. ``MERGE`` s it into the raw table on :data:`MERGE_KEYS`, inserting only rows whose key is
   not there yet. ``row_key`` is a stable hash of (input file, line), so a rerun, or a retry of
   a half-finished run, inserts nothing twice. The target is pruned to the partitions the staged
   rows fall in (events) or to the last :data:`DEAD_LETTER_DEDUPE_DAYS` days (dead letters),
   so a merge scans the partitions it touches, not 7 years of raw;
4. drops the staging table.

A load job that fails (BigQuery refused the file) fails the run: nothing of that table is
merged, and the rerun after the fix is safe because of step 3. Rows BigQuery could refuse one by
one were already dead-lettered by validation against the same contract.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from google.cloud import bigquery

from beam_pipelines.bigquery.tables import schema_fields
from strata_core import schemas

#: Columns that identify a row of each raw table across runs.
MERGE_KEYS = {"events": ("row_key",), "users": ("row_key",), "dead_letters": ("row_key", "error_type")}
#: A rerun later than this does add its dead letters again (they are diagnostics, and scanning
#: every dead-letter partition on each merge would cost more than it saves).
DEAD_LETTER_DEDUPE_DAYS = 30
#: BigQuery accepts at most 10 000 source URIs per load job.
MAX_URIS_PER_LOAD = 10_000
STAGING_PREFIX = "_strata_load_"


@dataclasses.dataclass
class MergeResult:
    table: str
    staged_rows: int
    inserted_rows: int


def new_run_id() -> str:
    """Names one run's staging tables and load files: ``20261126T171200_1a2b3c4d``."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"


def staging_table_id(table: str, run_id: str) -> str:
    return f"{STAGING_PREFIX}{table}_{run_id}"


def merge_statement(project: str, dataset: str, table: str, staging: str) -> str:
    """The ``MERGE`` of staging table ``staging`` into raw table ``table``.

    Parameters: ``@dates`` (ARRAY<DATE>, events: the staged rows' partitions) or ``@since``
    (TIMESTAMP, dead letters). Duplicates within one run (the same file matched twice) are
    collapsed before the merge; the column lists come from the contract.
    """
    if table not in MERGE_KEYS:
        raise ValueError(f"unknown raw table {table!r}; expected one of {sorted(MERGE_KEYS)}")
    columns = [f.name for f in schemas.RAW_TABLES[table]]
    keys = MERGE_KEYS[table]
    on = " AND ".join(f"T.{k} = S.{k}" for k in keys)
    partition = schemas.BIGQUERY_LAYOUT[table]["partition_field"]
    if table == "events":
        on += f" AND T.{partition} IN UNNEST(@dates)"
    elif table == "dead_letters":
        on += f" AND T.{partition} >= @since"
    return (
        f"MERGE `{project}.{dataset}.{table}` AS T\n"
        f"USING (\n"
        f"  SELECT * FROM `{project}.{dataset}.{staging}`\n"
        f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} ORDER BY {columns[0]}) = 1\n"
        f") AS S\n"
        f"ON {on}\n"
        f"WHEN NOT MATCHED THEN\n"
        f"  INSERT ({', '.join(columns)})\n"
        f"  VALUES ({', '.join('S.' + c for c in columns)})"
    )


def _merge_parameters(client: bigquery.Client, table: str, staging_ref: str,
                      now: dt.datetime) -> list | None:
    """Query parameters of the merge; ``None`` when there is nothing to merge."""
    if table == "events":
        dates = [row[0] for row in client.query(
            f"SELECT DISTINCT event_date FROM `{staging_ref}`").result()]
        return [bigquery.ArrayQueryParameter("dates", "DATE", sorted(dates))] if dates else None
    if table == "dead_letters":
        since = now - dt.timedelta(days=DEAD_LETTER_DEDUPE_DAYS)
        return [bigquery.ScalarQueryParameter("since", "TIMESTAMP", since)]
    return []


def load_and_merge(client: bigquery.Client, project: str, dataset: str, table: str,
                   uris: list[str], run_id: str, *, now: dt.datetime | None = None) -> MergeResult:
    """Steps 2-4 of the module doc for one raw table; returns how many rows were staged and how
    many of them were new. ``uris``: the load files (``gs://...``; may be empty)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    staging_ref = f"{project}.{dataset}.{staging_table_id(table, run_id)}"
    staging = bigquery.Table(staging_ref, schema=schema_fields(table))
    staging.expires = now + dt.timedelta(days=1)
    client.create_table(staging, exists_ok=True)
    try:
        for start in range(0, len(uris), MAX_URIS_PER_LOAD):
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                schema=schema_fields(table),
                create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            )
            client.load_table_from_uri(uris[start:start + MAX_URIS_PER_LOAD], staging_ref,
                                       job_config=config).result()
        staged = client.get_table(staging_ref).num_rows or 0
        if not staged:
            return MergeResult(table, 0, 0)
        params = _merge_parameters(client, table, staging_ref, now)
        if params is None:
            return MergeResult(table, staged, 0)
        job = client.query(merge_statement(project, dataset, table, staging.table_id),
                           job_config=bigquery.QueryJobConfig(query_parameters=params))
        job.result()
        return MergeResult(table, staged, int(job.num_dml_affected_rows or 0))
    finally:
        client.delete_table(staging_ref, not_found_ok=True)
