"""The embedded local warehouse: a Parquet lake registered in one DuckDB file.

Layout under ``$STRATA_HOME``::

    lake/raw/events/event_date=YYYY-MM-DD/<part>.parquet   accepted events, partitioned by UTC date
    lake/raw/dead_letters/<part>.parquet                   rejected records with their original bytes
    lake/raw/users/<part>.parquet                          user master rows
    lake/raw/<table>/_schema.parquet                       zero-row file so an empty table still reads
    lake/monitoring/<table>/<date>/<run>.parquet           run facts (strata_core.monitoring), one part a run
    warehouse.duckdb                                       schemas raw and monitoring (views over the
                                                           lake), staging, curated, mart (and the
                                                           monitoring models, built by dbt)

Why this shape:

* Loads never open ``warehouse.duckdb``: they only add Parquet files, each written to a
  temporary name and renamed into place, so a reader sees a whole file or none, and readers can
  query while a load runs.
* Part names are derived from the input (file and line range), so re-ingesting the same input
  replaces the same parts: reruns are idempotent.
* ``raw.*`` are views, so a new part is visible to the next query with no registration step.
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Iterator

import duckdb

from strata_core import lake as lake_parts
from strata_core import paths
from strata_core.lake import table_dir, write_part

SCHEMAS = ("raw", "staging", "curated", "mart", "monitoring")


def _lake_tables():
    """(schema, table) of every lake table: raw.* and the recorded monitoring.* tables."""
    return [(schema, table) for schema, (tables, _) in lake_parts.SCHEMAS.items() for table in tables]


def _glob(table: str, lake: pathlib.Path, schema: str = "raw") -> str:
    return str(table_dir(table, lake, schema) / "**" / "*.parquet")


def init(db_path: pathlib.Path | None = None, lake: pathlib.Path | None = None) -> pathlib.Path:
    """Create the lake directories and the DuckDB file with its schemas and ``raw`` views.

    Cheap and idempotent: when the views already exist the file is only opened read-only, so
    ``init`` never takes the write lock away from a running reader.
    """
    db_path = db_path or paths.warehouse_path()
    lake = lake or paths.lake_dir()
    for schema, table in _lake_tables():
        directory = table_dir(table, lake, schema)
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / "_schema.parquet"
        if not marker.exists():
            write_part(table, "_schema", lake_parts.arrow_schema(table, schema).empty_table(), lake=lake,
                       schema=schema)
    if db_path.exists() and _has_views(db_path):
        return db_path
    con = duckdb.connect(str(db_path))
    try:
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
        for schema, table in _lake_tables():
            # The glob is ours (no user input); hive_partitioning is off because every part also
            # stores its partition column, which keeps types exact (DATE, not VARCHAR).
            con.execute(
                f"create or replace view {schema}.{table} as select * from read_parquet("
                f"'{_glob(table, lake, schema)}', hive_partitioning = false, union_by_name = true)"
            )
    finally:
        con.close()
    return db_path


def _has_views(db_path: pathlib.Path) -> bool:
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error:
        return False
    try:
        found = set(con.execute(
            "select table_schema, table_name from information_schema.tables").fetchall())
        return set(_lake_tables()) <= found
    finally:
        con.close()


@contextlib.contextmanager
def connect(read_only: bool = True, db_path: pathlib.Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    db_path = db_path or paths.warehouse_path()
    if not db_path.exists():
        init(db_path)
    con = duckdb.connect(str(db_path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def query(sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL against the local warehouse; return (column names, rows)."""
    with connect(read_only=True) as con:
        cur = con.execute(sql, params or [])
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall()
