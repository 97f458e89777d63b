"""BigQuery, Arrow and Avro schemas, all derived from ``contract.py``.

Nothing here names a field: add one to the contract and every schema follows.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from strata_core import contract as c

if TYPE_CHECKING:  # pyarrow is imported where Arrow schemas are built: the API image has none
    import pyarrow as pa

RAW_TABLES = {
    "events": c.FIELDS,
    "dead_letters": c.DEAD_LETTER_FIELDS,
    "users": c.USER_FIELDS,
    "event_counts_per_minute": c.EVENT_COUNT_FIELDS,
    "dead_letter_replays": c.DEAD_LETTER_REPLAY_FIELDS,
}

_BQ_TYPES = {
    "string": "STRING", "enum": "STRING", "timestamp": "TIMESTAMP", "decimal": "NUMERIC",
    "integer": "INT64", "json": "JSON", "date": "DATE", "bytes": "BYTES", "float": "FLOAT64",
    "boolean": "BOOL",
}


def _arrow_type(field: c.Field) -> pa.DataType:
    import pyarrow as pa

    return {
        "string": pa.string(), "enum": pa.string(), "json": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "decimal": pa.decimal128(c.AMOUNT_PRECISION, c.AMOUNT_SCALE),
        "integer": pa.int64(), "date": pa.date32(), "bytes": pa.binary(),
        "float": pa.float64(), "boolean": pa.bool_(),
    }[field.kind]


def bigquery_schema(table: str) -> dict:
    """``{"fields": [...]}`` in the JSON form that ``WriteToBigQuery`` and ``bq mk`` accept."""
    return bigquery_schema_for(RAW_TABLES[table])


def bigquery_schema_for(fields: tuple[c.Field, ...]) -> dict:
    """The BigQuery schema (JSON form) of any declared column list (raw or monitoring tables)."""
    return {"fields": [
        {"name": f.name, "type": _BQ_TYPES[f.kind], "mode": "REQUIRED" if f.required else "NULLABLE",
         "description": f.description}
        for f in fields
    ]}


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """Arrow/Parquet schema of a raw table. JSON columns are stored as JSON text."""
    return arrow_schema_for(RAW_TABLES[table])


def arrow_schema_for(fields: tuple[c.Field, ...]) -> pa.Schema:
    """The Arrow/Parquet schema of any declared column list (raw or monitoring tables)."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _arrow_type(f), nullable=not f.required) for f in fields])


#: BigQuery physical layout of the raw tables.
BIGQUERY_LAYOUT = {
    "events": {"partition_field": "event_date", "cluster_fields": ["user_id", "event_type"],
               "partition_expiration_days": 7 * 365},
    "dead_letters": {"partition_field": "failed_at", "cluster_fields": ["error_type"],
                     "partition_expiration_days": 7 * 365},
    "users": {"partition_field": None, "cluster_fields": ["user_id"], "partition_expiration_days": None},
    "event_counts_per_minute": {"partition_field": "window_start", "cluster_fields": ["event_type"],
                                "partition_expiration_days": 7 * 365},
    "dead_letter_replays": {"partition_field": "replayed_at", "cluster_fields": ["row_key"],
                            "partition_expiration_days": 7 * 365},
}


def avro_input_schema() -> dict:
    """Avro schema for *input* event files (what a producer writes, not the raw table).

    ``event_timestamp`` is a union of RFC 3339 string and epoch milliseconds, as in NDJSON;
    ``properties`` and ``context`` travel as JSON text because Avro has no free-form object.
    """
    def avro(field: c.Field):
        base = {"string": "string", "enum": "string", "json": "string", "integer": "long",
                "decimal": "double"}[field.kind] if field.kind != "timestamp" else ["string", "long"]
        types = base if isinstance(base, list) else [base]
        return ["null", *types]

    return {
        "type": "record", "name": "Event", "namespace": "io.strata.v1",
        "doc": f"Strata event contract v{c.CONTRACT_VERSION}",
        "fields": [{"name": f.name, "type": avro(f), "default": None, "doc": f.description}
                   for f in c.CONTRACT_FIELDS],
    }


def arrow_input_schema() -> pa.Schema:
    """Parquet schema for *input* event files; mirrors :func:`avro_input_schema`."""
    import pyarrow as pa

    def arrow(field: c.Field) -> pa.DataType:
        if field.kind == "timestamp":
            return pa.string()  # RFC 3339 text; epoch-ms producers write an int64 column instead
        return {"string": pa.string(), "enum": pa.string(), "json": pa.string(), "integer": pa.int64(),
                "decimal": pa.float64()}[field.kind]

    return pa.schema([pa.field(f.name, arrow(f)) for f in c.CONTRACT_FIELDS])
