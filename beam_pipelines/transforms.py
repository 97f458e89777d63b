"""The business steps of the ingest jobs, one composite ``PTransform`` each.

    events:  ReadRecordChunks | ReadFromPubSub → ParseEvents → ValidateEvents → EnrichEvents → WriteRaw*
    users:   ReadRecordChunks → ParseEvents → ValidateUsers → EnrichUsers → WriteRaw*

Every step works on a :class:`~beam_pipelines.records.RecordBatch` at a time (Beam's per-element
overhead is paid once per batch), from files and from Pub/Sub alike: the batch's origin supplies
row keys, dead-letter attributes and the raw tables' origin columns, so no step branches on where
records came from. Events and users have steps of their own.

Each step has a ``dead_letters`` output: a rejected record leaves as a :class:`DeadLetterBatch`
with its original bytes and a stable ``error_type`` (which carries its stage, see
``contract.ERROR_TYPES``), and a ``Metrics`` counter per error type. Nothing is dropped: for every
batch, ``records in = records out + dead letters out``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import traceback
from typing import Iterator, NamedTuple

import apache_beam as beam
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from strata_core import contract as c
from strata_core import schemas
from beam_pipelines.coders import register as register_coders
from beam_pipelines.deadletters import dead_letter
from beam_pipelines.records import RecordBatch
from beam_pipelines.validation import Event, Rejected, UserRecord, decode, validate, validate_user

DEAD_LETTERS = "dead_letters"
USERS = "users"


class DeadLetterBatch(NamedTuple):
    """Dead letters of one batch from one step; ``rows`` follow ``contract.DEAD_LETTER_FIELDS``.

    ``step`` (``parse``, ``validate``, ``enrich``) only names the part the local sink writes; each
    row's ``stage`` comes from its error type.
    """

    batch_id: str
    step: str
    rows: list[dict]


class ParsedChunk(NamedTuple):
    batch: RecordBatch
    positions: list
    raws: list[bytes]
    objects: list[dict]


class ValidChunk(NamedTuple):
    batch: RecordBatch
    positions: list
    raws: list[bytes]
    records: list  # Event or UserRecord


class RowsPart(NamedTuple):
    """Raw-table rows of one chunk, as an Arrow table in ``schemas.arrow_schema(table)``."""

    table: str
    part: str
    rows: pa.Table


register_coders(RecordBatch, ParsedChunk, ValidChunk, RowsPart, DeadLetterBatch)


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic GC while a chunk's records are built.

    A chunk keeps tens of thousands of fresh dicts and tuples alive, and the collector would walk
    them again and again: measured, this doubled the cost of parsing and validating, and pausing
    it around Enrich too cut the whole job by a further ~20 %. The objects
    made here hold no reference cycles, so nothing is leaked meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _StageFn(beam.DoFn):
    """Shared plumbing: dead-letter construction and per-error-type counters.

    ``kind`` (``events`` or ``users``) names the counters (``events.dead_letter.<type>``);
    ``source`` is the dead letters' ``source`` column (``batch``, ``stream``, ``replay``).
    """

    step = "validate"

    def __init__(self, source: str = "batch", kind: str = "events"):
        self.source = source
        self.kind = kind
        self._counters: dict[str, object] = {}

    def count(self, name: str, n: int = 1) -> None:
        if n:
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = Metrics.counter("strata", name)
            counter.inc(n)

    def reject(self, batch: RecordBatch, position, raw: bytes, error_type: str, message: str,
               event_id: str | None = None, stacktrace: str | None = None) -> dict:
        self.count(f"{self.kind}.dead_letter.{error_type}")
        origin = batch.origin
        return dead_letter(
            error_type=error_type, error_message=message, raw_payload=raw, source=self.source,
            attributes=origin.attributes(position), row_key=origin.row_key(position),
            failed_at=dt.datetime.now(dt.timezone.utc), event_id=event_id, stacktrace=stacktrace)

    def emit_dead(self, batch: RecordBatch, rows: list[dict]):
        if rows:
            return [beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetterBatch(batch.batch_id, self.step, rows))]
        return []


# ---- ParseEvents --------------------------------------------------------------------------------

def _from_typed_record(record: dict) -> tuple[bytes, dict]:
    """An Avro/Parquet row → (its JSON bytes for the dead-letter table, the event object).

    Typed formats carry ``properties``/``context``/``traits`` as JSON text; nulls mean absent.
    """
    raw = orjson.dumps(record, default=str)
    obj = {k: v for k, v in record.items() if v is not None}
    for name in ("properties", "context", "traits"):
        value = obj.get(name)
        if type(value) is str:
            try:
                obj[name] = orjson.loads(value)
            except orjson.JSONDecodeError:
                pass  # left as a string: validation rejects it as invalid_properties
    return raw, obj


class ParseFn(_StageFn):
    """Bytes of one JSON object per record (NDJSON lines, message data), or typed rows → objects."""

    step = "parse"

    def process(self, batch: RecordBatch) -> Iterator:
        with no_gc():
            parsed, dead = self.parse(batch)
        yield parsed
        yield from self.emit_dead(batch, dead)

    def parse(self, batch: RecordBatch) -> tuple[ParsedChunk, list[dict]]:
        positions, raws, objects, dead = [], [], [], []
        typed = batch.origin.typed
        for position, record in zip(batch.positions, batch.records):
            try:
                if typed:
                    raw, obj = _from_typed_record(record)
                else:
                    raw, obj = record, decode(record)
            except Rejected as exc:
                dead.append(self.reject(batch, position, record, exc.error_type, exc.message))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must dead-letter, never crash the job
                raw = record if isinstance(record, bytes) else repr(record).encode()
                dead.append(self.reject(batch, position, raw, "unreadable_record",
                                        f"record could not be read: {exc!r}",
                                        stacktrace=traceback.format_exc()))
                continue
            positions.append(position)
            raws.append(raw)
            objects.append(obj)
        return ParsedChunk(batch, positions, raws, objects), dead


class ParseEvents(beam.PTransform):
    """:class:`RecordBatch` es of raw records → :class:`ParsedChunk` (JSON objects) + ``dead_letters``.

    The same step parses user files (``kind="users"``, which only names the counters).
    """

    def __init__(self, source: str = "batch", kind: str = "events"):
        super().__init__()
        self.source = source
        self.kind = kind

    def expand(self, batches):
        return batches | "Parse" >> beam.ParDo(ParseFn(self.source, self.kind)).with_output_types(
            ParsedChunk).with_outputs(DEAD_LETTERS, main="parsed")


# ---- ValidateEvents / ValidateUsers -------------------------------------------------------------

class _ValidateFn(_StageFn):
    """Parsed objects → contract-valid records (``check(obj, received_us)``) + dead letters."""

    step = "validate"

    def check(self, obj: dict, received_us: int):
        raise NotImplementedError

    def process(self, parsed: ParsedChunk) -> Iterator:
        with no_gc():
            valid, dead = self.validate(parsed)
        yield valid
        yield from self.emit_dead(parsed.batch, dead)

    def validate(self, parsed: ParsedChunk) -> tuple[ValidChunk, list[dict]]:
        batch = parsed.batch
        check = self.check
        received_us = batch.received_us
        positions, raws, records, dead = [], [], [], []
        for position, raw, obj in zip(parsed.positions, parsed.raws, parsed.objects):
            try:
                record = check(obj, received_us)
            except Rejected as exc:
                dead.append(self.reject(batch, position, raw, exc.error_type, exc.message, exc.event_id))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must dead-letter, never crash the job
                event_id = obj.get("event_id") if type(obj.get("event_id")) is str else None
                dead.append(self.reject(batch, position, raw, "unexpected_error", repr(exc), event_id,
                                        traceback.format_exc()))
                continue
            positions.append(position)
            raws.append(raw)
            records.append(record)
        self.count(f"{self.kind}_valid", len(records))
        return ValidChunk(batch, positions, raws, records), dead


class ValidateFn(_ValidateFn):
    """Events: ``validation.validate``."""

    def check(self, obj: dict, received_us: int) -> Event:
        return validate(obj, received_us)


class ValidateUsersFn(_ValidateFn):
    """User master rows: ``validation.validate_user``."""

    def __init__(self, source: str = "batch"):
        super().__init__(source, USERS)

    def check(self, obj: dict, received_us: int) -> UserRecord:
        return validate_user(obj, received_us)


class ValidateEvents(beam.PTransform):
    """:class:`ParsedChunk` → :class:`ValidChunk` of contract-valid events + ``dead_letters``."""

    def __init__(self, source: str = "batch"):
        super().__init__()
        self.source = source

    def expand(self, parsed):
        return parsed | "Validate" >> beam.ParDo(ValidateFn(self.source)).with_output_types(
            ValidChunk).with_outputs(DEAD_LETTERS, main="valid")


class ValidateUsers(beam.PTransform):
    """:class:`ParsedChunk` of user-file lines → :class:`ValidChunk` of user records + ``dead_letters``."""

    def __init__(self, source: str = "batch"):
        super().__init__()
        self.source = source

    def expand(self, parsed):
        return parsed | "Validate" >> beam.ParDo(ValidateUsersFn(self.source)).with_output_types(
            ValidChunk).with_outputs(DEAD_LETTERS, main="valid")


# ---- EnrichEvents / EnrichUsers -----------------------------------------------------------------

def _timestamps(values) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def events_table(batch: RecordBatch, positions: list, events: list[Event]) -> pa.Table:
    """Valid events of a batch → an Arrow table in the ``raw.events`` schema."""
    n = len(events)
    cols = list(zip(*events)) if events else [[] for _ in Event._fields]
    col = dict(zip(Event._fields, cols))
    ts = _timestamps(col["event_ts_us"])
    data = {
        "event_id": col["event_id"], "event_type": col["event_type"], "user_id": col["user_id"],
        "anonymous_id": col["anonymous_id"], "session_id": col["session_id"], "event_timestamp": ts,
        "platform": col["platform"], "amount": col["amount"], "currency": col["currency"],
        "properties": col["properties"], "context": col["context"], "schema_version": col["schema_version"],
        "event_date": pc.cast(ts, pa.date32()), "received_at": _timestamps([batch.received_us] * n),
        "pipeline_version": [c.PIPELINE_VERSION] * n, "extra": col["extra"],
        **batch.origin.origin_columns(positions),
    }
    schema = schemas.arrow_schema("events")
    return pa.Table.from_arrays([pa.array(data[f.name], f.type) if not isinstance(data[f.name], pa.Array)
                                 else data[f.name] for f in schema], schema=schema)


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


def signup_users(events: list[Event], positions: list) -> tuple[list, list[UserRecord]]:
    """``signup`` events with a ``user_id`` → user rows (plan and country from ``properties``)."""
    out_pos, out = [], []
    for position, event in zip(positions, events):
        if event.event_type == "signup" and event.user_id:
            props = orjson.loads(event.properties) if event.properties else {}
            country = props.get("country")
            country = country if type(country) is str and len(country) == 2 and country.isupper() else None
            plan = props.get("plan") if type(props.get("plan")) is str else None
            out_pos.append(position)
            out.append(UserRecord(event.user_id, event.event_ts_us, country, plan, event.properties))
    return out_pos, out


class EnrichFn(_StageFn):
    """Valid events → ``raw.events`` rows; ``signup`` events also → ``raw.users`` rows."""

    step = "enrich"

    def process(self, valid: ValidChunk) -> Iterator:
        with no_gc():
            outputs = list(self.enrich(valid))
        yield from outputs

    def enrich(self, valid: ValidChunk) -> Iterator:
        batch = valid.batch
        positions, events, raws, dead = valid.positions, valid.records, valid.raws, []
        try:
            table = events_table(batch, positions, events)
        except Exception:  # noqa: BLE001 - isolate the record that breaks conversion
            keep = []
            for i, event in enumerate(events):
                try:
                    events_table(batch, [positions[i]], [event])
                    keep.append(i)
                except Exception as exc:  # noqa: BLE001
                    dead.append(self.reject(batch, positions[i], raws[i], "enrich_failed", repr(exc),
                                            event.event_id, traceback.format_exc()))
            positions = [positions[i] for i in keep]
            events = [events[i] for i in keep]
            table = events_table(batch, positions, events)
        self.count("events_enriched", table.num_rows)
        yield RowsPart("events", batch.batch_id, table)
        user_pos, users = signup_users(events, positions)
        if users:
            yield beam.pvalue.TaggedOutput(USERS, RowsPart(
                "users", f"signup-{batch.batch_id}", users_table(batch, user_pos, users, "signup_event")))
        yield from self.emit_dead(batch, dead)


class EnrichUsersFn(_StageFn):
    """Valid user-file records → ``raw.users`` rows."""

    step = "enrich"

    def __init__(self, source: str = "batch"):
        super().__init__(source, USERS)

    def process(self, valid: ValidChunk) -> Iterator[RowsPart]:
        with no_gc():
            table = users_table(valid.batch, valid.positions, valid.records, "user_file")
        yield RowsPart("users", f"file-{valid.batch.batch_id}", table)


class EnrichEvents(beam.PTransform):
    """:class:`ValidChunk` → ``raw.events`` rows (:class:`RowsPart`), ``users`` rows, ``dead_letters``.

    Adds ``event_date`` (UTC), ``received_at``, the origin columns (``ingest_source``,
    ``source_file``/``source_line`` or ``message_id``, ``row_key``) and ``pipeline_version``;
    ``signup`` events also yield ``raw.users`` rows.
    """

    def __init__(self, source: str = "batch"):
        super().__init__()
        self.source = source

    def expand(self, valid):
        return valid | "Enrich" >> beam.ParDo(EnrichFn(self.source)).with_output_types(RowsPart).with_outputs(
            USERS, DEAD_LETTERS, main="events")


class EnrichUsers(beam.PTransform):
    """:class:`ValidChunk` of user records → ``raw.users`` rows (:class:`RowsPart`)."""

    def __init__(self, source: str = "batch"):
        super().__init__()
        self.source = source

    def expand(self, valid):
        return valid | "Enrich" >> beam.ParDo(EnrichUsersFn(self.source)).with_output_types(RowsPart)


def dead_letters_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schemas.arrow_schema("dead_letters"))
