"""Dead-letter records: one shape for every stage, modelled on Google's PubSubToBigQuery error table."""

from __future__ import annotations

import datetime as dt

import orjson

from strata_core import contract as c


def dead_letter(*, error_type: str, error_message: str, raw_payload: bytes, source: str,
                attributes: dict | None, row_key: str, failed_at: dt.datetime,
                event_id: str | None = None, stacktrace: str | None = None,
                replay_count: int = 0) -> dict:
    """A row of ``raw.dead_letters``. ``raw_payload`` is the exact original bytes."""
    attrs = dict(attributes or {})
    if stacktrace:
        attrs["stacktrace"] = stacktrace
    return {
        "failed_at": failed_at,
        "source": source,
        "stage": c.ERROR_TYPES_BY_NAME[error_type].stage,
        "error_type": error_type,
        "error_message": error_message,
        "raw_payload": raw_payload,
        "attributes": orjson.dumps(attrs).decode() if attrs else None,
        "event_id": event_id,
        "row_key": row_key,
        "pipeline_version": c.PIPELINE_VERSION,
        "replay_count": replay_count,
    }
