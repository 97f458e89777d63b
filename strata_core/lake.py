"""The local Parquet lake's writer: atomic, idempotent parts of the raw tables.

Shared by the ingest jobs' local sink (``beam_pipelines.sinks.local``) and the CLI
(``strata.warehouse`` registers the parts as DuckDB views), so it lives in the dependency-free
core: Dataflow workers never import the CLI package.

Layout: ``<lake>/<schema>/<table>/[<partition>/]<part>.parquet``, where ``schema`` is ``raw``
(the contract's tables) or ``monitoring`` (run facts, ``strata_core.monitoring``).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

from strata_core import monitoring, paths, schemas

_PART_RE = re.compile(r"^[A-Za-z0-9_.=-]+$")


#: The lake's schemas and, per schema, how to get a table's Arrow schema.
SCHEMAS = {"raw": (schemas.RAW_TABLES, schemas.arrow_schema),
           monitoring.SCHEMA: (monitoring.RECORDED, monitoring.arrow_schema)}


def table_dir(table: str, lake: pathlib.Path | None = None, schema: str = "raw") -> pathlib.Path:
    tables = SCHEMAS[schema][0]
    if table not in tables:
        raise ValueError(f"unknown {schema} table {table!r}; expected one of {sorted(tables)}")
    return (lake or paths.lake_dir()) / schema / table


def arrow_schema(table: str, schema: str = "raw") -> pa.Schema:
    return SCHEMAS[schema][1](table)


def parquet_options(table: str) -> dict:
    """How a raw table's parts are written (measured in ``bench/ingest_batch.py``: 40 % cheaper
    than pyarrow's defaults for 10 % more bytes).

    A dictionary page of at most 64 KiB keeps dictionaries for the columns that repeat (types,
    platforms, the origin columns, most ``context`` values) and gives up early on the ones that
    don't (ids, ``properties``) instead of hashing a whole row group first; JSON text and payload
    bytes get no min/max statistics, which no reader can filter on.
    """
    return {"compression": "snappy", "dictionary_pagesize_limit": 64 * 1024,
            "write_statistics": [f.name for f in schemas.RAW_TABLES[table] if f.kind not in ("json", "bytes")]}


def write_part(table: str, part: str, rows: pa.Table, partition: str | None = None,
               lake: pathlib.Path | None = None, schema: str = "raw", durable: bool = False) -> pathlib.Path:
    """Atomically write (or replace) one Parquet part of a raw (or monitoring) table.

    ``part`` must be a stable name derived from the input; ``partition`` is a hive directory
    such as ``event_date=2026-01-31``. ``durable``: fsync the file and its directory before
    returning, so the part survives a power loss, not only a crash of this process. The stream
    needs it (it acknowledges Pub/Sub messages once their part is written, and the ack removes
    the only other copy); a batch rerun replaces its parts, so batch writes skip the cost.
    """
    if not _PART_RE.match(part) or (partition and not _PART_RE.match(partition)):
        raise ValueError(f"part/partition names must match {_PART_RE.pattern}: {part!r} {partition!r}")
    directory = table_dir(table, lake, schema)
    if partition:
        directory = directory / partition
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{part}.parquet"
    # The temporary name must not match the readers' `*.parquet` glob.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet-partial", dir=directory)
    os.close(fd)
    try:
        options = parquet_options(table) if schema == "raw" else {"compression": "snappy"}
        pq.write_table(rows.cast(arrow_schema(table, schema)), tmp, **options)
        if durable:
            _fsync(tmp)
        os.replace(tmp, target)
        if durable:
            _fsync(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
