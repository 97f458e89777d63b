"""Row codecs: raw rows and dead letters in the JSON forms BigQuery takes.

* :func:`to_insert_row` – a raw row as insertAll (streaming insert) JSON;
* :func:`to_load_row` – a raw row as one line of a newline-delimited JSON load file;
* :func:`dead_letter_to_bigquery_row` – a dead-letter record as either;
* :func:`failed_insert_to_dead_letter` – a row BigQuery refused as a dead-letter record.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json

from beam_pipelines.deadletters import dead_letter
from strata_core import contract as c
from strata_core import schemas


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def error_list(errors) -> list[dict]:
    """BigQuery's errors for one row as a list of dicts. Beam gives a list of error dicts, or a
    plain string for rows over its size limit."""
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
    errors = error_list(errors)
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
        return rfc3339(value)
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


def _json_columns(table: str) -> frozenset[str]:
    return frozenset(f.name for f in schemas.RAW_TABLES[table] if f.kind == "json")


def to_load_row(table: str, row: dict) -> str:
    """One line of a newline-delimited JSON load file for raw table ``table``.

    As :func:`to_insert_row`, except that JSON columns are embedded as JSON values rather than
    JSON text: in a load file a string is loaded into a JSON column as a JSON *string*, whereas
    insertAll parses it. Only contract columns are written.
    """
    json_columns = _json_columns(table)
    line = {}
    for field in schemas.RAW_TABLES[table]:
        value = _json_value(row.get(field.name))
        if field.name in json_columns and isinstance(value, str):
            value = json.loads(value)
        line[field.name] = value
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False)


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
            value = rfc3339(value)
        row[field.name] = value
    return row
