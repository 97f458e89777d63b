"""Records in flight, whatever they came from: a batch of records and where each one came from.

Every step of both ingest jobs (``ParseEvents → ValidateEvents → EnrichEvents``) works on a
:class:`RecordBatch`. The batch's *origin* is the only thing that knows whether its records came
from a file or from Pub/Sub, so the steps never branch on it:

* :class:`FileOrigin` – one input file; a record's *position* is its 1-based line (NDJSON) or
  record (Avro, Parquet) number;
* :class:`SubscriptionOrigin` – one Pub/Sub subscription; a record's position is a
  :class:`Message` (message id, publish time, attributes).

From an origin and a position come the record's ``row_key`` (stable: re-reading the same input,
or a redelivered message, gives the same key), its dead-letter ``attributes``, and the origin
columns of the raw tables (``ingest_source``, ``source_file``, ``source_line``, ``message_id``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple


def source_key(name: str) -> str:
    """Short stable id of an input path or subscription, used in part names and ``row_key``."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:16]


class Message(NamedTuple):
    """Where one Pub/Sub message came from. ``publish_time_us``: UTC epoch microseconds."""

    message_id: str
    publish_time_us: int
    attributes: dict


@dataclasses.dataclass(frozen=True)
class FileOrigin:
    """Records of one input file. ``fmt``: ``ndjson``, ``avro`` or ``parquet``."""

    path: str
    fmt: str
    key: str = ""
    ingest_source = "batch"

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", source_key(self.path))

    @property
    def typed(self) -> bool:
        """Avro and Parquet records arrive as dicts; NDJSON lines as the bytes of one object."""
        return self.fmt != "ndjson"

    def row_key(self, position: int) -> str:
        return f"{self.key}-{position}"

    def attributes(self, position: int) -> dict:
        return {"source_file": self.path, "source_line": position, "format": self.fmt}

    def origin_columns(self, positions: list) -> dict[str, list]:
        n = len(positions)
        return {"ingest_source": [self.ingest_source] * n, "source_file": [self.path] * n,
                "source_line": list(positions), "message_id": [None] * n,
                "row_key": [f"{self.key}-{p}" for p in positions]}


@dataclasses.dataclass(frozen=True)
class SubscriptionOrigin:
    """Messages pulled from one Pub/Sub subscription (``projects/P/subscriptions/S``).

    Message data is the UTF-8 JSON of one event, exactly as an NDJSON line is.
    """

    subscription: str
    key: str = ""
    fmt = "pubsub"
    typed = False
    ingest_source = "stream"

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", source_key(self.subscription))

    def row_key(self, position: Message) -> str:
        return f"{self.key}-{position.message_id}"

    def attributes(self, position: Message) -> dict:
        return {"subscription": self.subscription, "message_id": position.message_id,
                "publish_time_us": position.publish_time_us, "attributes": dict(position.attributes or {})}

    def origin_columns(self, positions: list) -> dict[str, list]:
        n = len(positions)
        return {"ingest_source": [self.ingest_source] * n, "source_file": [self.subscription] * n,
                "source_line": [None] * n, "message_id": [m.message_id for m in positions],
                "row_key": [f"{self.key}-{m.message_id}" for m in positions]}


Origin = FileOrigin | SubscriptionOrigin


class FileFailure(NamedTuple):
    """Why an input file could not be read to its end: ``error_type`` is one of
    ``contract.FILE_ERROR_TYPES``, ``offset`` the bytes of the file read when it failed."""

    error_type: str
    reason: str
    offset: int


class RecordBatch(NamedTuple):
    """Up to ``reading.CHUNK_RECORDS`` records of one origin, with one position per record.

    ``records`` hold the exact bytes of each record (an NDJSON line without its line ending, or
    a message's data), or dicts for Avro and Parquet rows (``origin.typed``). ``batch_id`` is
    unique per batch and stable for file input (``<source key>-<chunk number>``), so the local
    sink can name its parts after it and a rerun replaces them. ``received_us``: when the batch
    was read, UTC epoch microseconds.

    A batch with a ``failure`` (and no records) reports that its file could not be read to the
    end; ``ParseEvents`` turns it into the file's dead letter.
    """

    origin: Origin
    batch_id: str
    positions: list
    records: list
    received_us: int
    failure: FileFailure | None = None
