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
* The views find the lake through a per-connection variable, not a stored path, so a home can
  be copied or moved (``strata_core/duckdb_config.py``).
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Iterator

import duckdb

from strata_core import duckdb_config, paths
from strata_core import lake as lake_parts
from strata_core.lake import table_dir, write_part

SCHEMAS = ("raw", "staging", "curated", "mart", "monitoring")


class HomeMissing(FileNotFoundError):
    """The home (or its warehouse) does not exist: nothing was ingested there."""


def _lake_tables():
    """(schema, table) of every lake table: raw.* and the recorded monitoring.* tables."""
    return [(schema, table) for schema, (tables, _) in lake_parts.SCHEMAS.items() for table in tables]


def init(db_path: pathlib.Path | None = None, lake: pathlib.Path | None = None) -> pathlib.Path:
    """Create the lake directories and the DuckDB file with its schemas and ``raw`` views.

    Cheap and idempotent: when the views already exist the file is only opened read-only, so
    ``init`` never takes the write lock away from a running reader. The views store no path
    (``strata_core.duckdb_config``): a copied or moved home reads its own lake.
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
        duckdb_config.point_at_lake(con, lake)  # a view is bound (its files globbed) on creation
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
        for schema, table in _lake_tables():
            con.execute(duckdb_config.view_sql(table, schema))
    finally:
        con.close()
    return db_path


def _has_views(db_path: pathlib.Path) -> bool:
    """Whether every raw view exists in its current (path-free) form; older homes stored the
    lake's absolute path in them, and are rewritten by the next ``init``."""
    try:  # the readers' configuration: one process may not open a file with two configurations
        con = duckdb.connect(str(db_path), read_only=True, config=duckdb_config.read_only_config())
    except duckdb.Error:
        return False
    try:
        found = dict(con.execute(
            "select schema_name || '.' || view_name, sql from duckdb_views()").fetchall())
        return all(duckdb_config.LAKE_VARIABLE in (found.get(f"{s}.{t}") or "") for s, t in _lake_tables())
    finally:
        con.close()


def require_home(*, warehouse: bool = True) -> pathlib.Path:
    """The warehouse file of an existing home, or :class:`HomeMissing` saying what to run.

    ``warehouse=False``: only the home must exist (writers such as ``strata transform`` create
    the warehouse file over a lake that a stream or a batch job filled)."""
    home = paths.home_path()
    if not home.is_dir():
        raise HomeMissing(f"STRATA_HOME {home} does not exist: nothing has been ingested there. "
                          "Set STRATA_HOME to an existing home, or start one with "
                          "`.venv/bin/strata ingest batch --input 'data/events-*.ndjson'`")
    db_path = home / "warehouse.duckdb"
    if warehouse and not db_path.exists():
        raise HomeMissing(f"{home} has no warehouse yet: run `.venv/bin/strata ingest batch` first")
    return db_path


@contextlib.contextmanager
def connect(db_path: pathlib.Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only, offline, locked connection to the warehouse (``strata_core.duckdb_config``).

    Never creates a missing home (:class:`HomeMissing`). Writers are the ingest jobs (Parquet
    parts, never this file) and ``strata transform`` (a copy swapped in atomically).
    """
    db_path = db_path or require_home()
    con = duckdb_config.connect_read_only(db_path, db_path.parent / "lake")
    try:
        yield con
    finally:
        con.close()


def query(sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL against the local warehouse; return (column names, rows) of its last
    statement. A statement that would write raises ``PermissionError`` before anything runs."""
    with connect() as con:
        statements = duckdb_config.refuse_writes(con, sql)
        if not statements:
            return [], []
        for statement in statements[:-1]:
            con.execute(statement)
        cur = con.execute(statements[-1], params) if params else con.execute(statements[-1])
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall()
