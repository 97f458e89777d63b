"""The row builder: valid records → Arrow tables of the raw tables, column by column.

The contract's fields are converted by kind (``strata_core/contract.py``), so a new contract field
reaches ``raw.events`` with no change here; the pipeline's own columns each have a provider below
(an import-time check fails if one is missing).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from beam_pipelines.records import RecordBatch
from beam_pipelines.validation import Event, UserRecord
from strata_core import contract as c
from strata_core import schemas

_UTC_US = pa.timestamp("us", tz="UTC")


def _json_text(values) -> pa.Array:
    return pa.array(values, pa.binary()).cast(pa.string())


_BY_KIND: dict[str, Callable[[list], pa.Array]] = {
    "string": lambda values: pa.array(values, pa.string()),
    "enum": lambda values: pa.array(values, pa.string()),
    "timestamp": lambda values: pa.array(values, pa.int64()).cast(_UTC_US),
    "decimal": lambda values: pa.array(values, pa.decimal128(c.AMOUNT_PRECISION, c.AMOUNT_SCALE)),
    "integer": lambda values: pa.array(values, pa.int64()),
    "json": _json_text,
}


def contract_table(events: list[Event]) -> pa.Table:
    """Events from the validator → their contract columns and ``extra``
    (``fastpath.contract_schema``)."""
    from beam_pipelines.fastpath import contract_schema

    cols = list(zip(*events)) if events else [()] * len(Event._fields)
    return pa.Table.from_arrays([_BY_KIND[f.kind](values) for f, values in zip(c.CONTRACT_FIELDS, cols)]
                                + [_json_text(cols[-1])], schema=contract_schema())


class _Context(NamedTuple):
    batch: RecordBatch
    contract: pa.Table
    origin: dict


#: How each pipeline column of ``raw.events`` is made.
_PIPELINE: dict[str, Callable[[_Context], object]] = {
    "event_date": lambda ctx: pc.cast(ctx.contract.column("event_timestamp"), pa.date32()),
    "received_at": lambda ctx: pa.array([ctx.batch.received_us] * ctx.contract.num_rows, pa.int64()).cast(_UTC_US),
    "ingest_source": lambda ctx: ctx.origin["ingest_source"],
    "source_file": lambda ctx: ctx.origin["source_file"],
    "source_line": lambda ctx: ctx.origin["source_line"],
    "message_id": lambda ctx: ctx.origin["message_id"],
    "row_key": lambda ctx: ctx.origin["row_key"],
    "pipeline_version": lambda ctx: pa.array([c.PIPELINE_VERSION] * ctx.contract.num_rows, pa.string()),
}
_missing = {f.name for f in c.FIELDS if f.origin == "pipeline" and f.name != "extra"} ^ set(_PIPELINE)
assert not _missing, f"pipeline columns without a provider (or providers without a column): {sorted(_missing)}"


def events_table(batch: RecordBatch, positions: list, contract: pa.Table) -> pa.Table:
    """Contract columns and ``extra`` of valid events (one row per position) → a table in
    ``raw.events``' schema."""
    ctx = _Context(batch, contract, batch.origin.origin_columns(positions))
    schema = schemas.arrow_schema("events")
    arrays = []
    for field in schema:
        if field.name in contract.schema.names:
            arrays.append(contract.column(field.name))
        else:
            value = _PIPELINE[field.name](ctx)
            arrays.append(value if isinstance(value, (pa.Array, pa.ChunkedArray)) else pa.array(value, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _timestamps(values) -> pa.Array:
    return pa.array(values, pa.int64()).cast(_UTC_US)


def users_table(batch: RecordBatch, positions: list, users: list[UserRecord], user_source: str) -> pa.Table:
    """User rows → an Arrow table in the ``raw.users`` schema (``user_source``: the contract's choices)."""
    n = len(users)
    cols = list(zip(*users)) if users else [[] for _ in UserRecord._fields]
    col = dict(zip(UserRecord._fields, cols))
    origin = batch.origin.origin_columns(positions)
    data = {
        "user_id": col["user_id"], "created_at": _timestamps(col["created_us"]),
        "country": col["country"], "plan": col["plan"], "traits": col["traits"],
        "user_source": [user_source] * n, "source_file": origin["source_file"],
        "source_line": origin["source_line"], "row_key": origin["row_key"],
        "received_at": _timestamps([batch.received_us] * n),
        "pipeline_version": [c.PIPELINE_VERSION] * n,
    }
    schema = schemas.arrow_schema("users")
    return pa.Table.from_arrays([data[f.name] if isinstance(data[f.name], pa.Array)
                                 else pa.array(data[f.name], f.type) for f in schema], schema=schema)


def signup_users(events: pa.Table, positions: list) -> tuple[list, list[UserRecord]]:
    """``signup`` events with a ``user_id`` → user rows (plan and country from ``properties``)."""
    if events.num_rows == 0:
        # pyarrow 25's indices_nonzero segfaults on a chunked array whose chunks are all empty
        # (a batch the fast path and the validator both took nothing from).
        return [], []
    signups = pc.and_(pc.equal(events.column("event_type"), "signup"), pc.is_valid(events.column("user_id")))
    where = pc.indices_nonzero(pc.fill_null(signups, False)).to_pylist()
    if not where:
        return [], []
    picked = events.take(where)
    user_ids = picked.column("user_id").to_pylist()
    created = picked.column("event_timestamp").cast(pa.int64()).to_pylist()
    texts = picked.column("properties").to_pylist()
    out_pos, out = [], []
    for i, user_id, created_us, text in zip(where, user_ids, created, texts):
        props = orjson.loads(text) if text else {}
        country = props.get("country")
        country = country if type(country) is str and len(country) == 2 and country.isupper() else None
        plan = props.get("plan") if type(props.get("plan")) is str else None
        out_pos.append(positions[i])
        out.append(UserRecord(user_id, created_us, country, plan, text.encode() if text else None))
    return out_pos, out


def dead_letters_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schemas.arrow_schema("dead_letters"))
