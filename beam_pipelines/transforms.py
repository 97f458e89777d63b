"""The business steps of the ingest jobs, one composite ``PTransform`` each.

    events:  ReadRecordChunks | ReadFromPubSub → ParseEvents → ValidateEvents → EnrichEvents → WriteRaw*
    users:   ReadRecordChunks → ParseEvents → ValidateUsers → EnrichUsers → WriteRaw*

Every step works on a :class:`~beam_pipelines.records.RecordBatch` at a time (Beam's per-element
overhead is paid once per batch), from files and from Pub/Sub alike: the batch's origin supplies
row keys, dead-letter attributes and the raw tables' origin columns, so no step branches on where
records came from. Events and users have steps of their own.

Events take the compiled fast path (``fastpath.py``: one msgspec decode per record, then columnar
checks and Arrow columns for the whole batch); every record it does not accept whole goes through
the rule-by-rule validator (``validation.py``), which alone decides rejections, their
``error_type`` and message. Typed records (Avro, Parquet) and user files take the validator only.

Each step has a ``dead_letters`` output: a rejected record leaves as a :class:`DeadLetterBatch`
with its original bytes and a stable ``error_type`` (which carries its stage, see
``contract.ERROR_TYPES``), and a ``Metrics`` counter per error type. Nothing is dropped: for every
batch, ``records in = records out + dead letters out``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import operator
import os
import traceback
from typing import Iterator, NamedTuple

import apache_beam as beam
import numpy as np
import orjson
import pyarrow as pa
from apache_beam.metrics import Metrics

from strata_core import contract as c
from beam_pipelines import fastpath
from beam_pipelines.coders import register as register_coders
from beam_pipelines.deadletters import dead_letter
from beam_pipelines.records import RecordBatch
from beam_pipelines.rows import contract_table, events_table, signup_users, users_table
from beam_pipelines.rows import dead_letters_table  # noqa: F401  (the sinks' import of it)
from beam_pipelines.validation import (Event, Rejected, UserRecord, decode, duplicate_key, json_texts, validate,
                                       validate_user)

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


class FastRecords(NamedTuple):
    """Records the compiled decoder took whole: their indices in the batch, positions and decoded
    columns."""

    indices: np.ndarray
    positions: list
    decoded: fastpath.Decoded


class ParsedChunk(NamedTuple):
    """A batch after parsing: the fast path's records, and the validator's (JSON objects, with
    the JSON text of their top-level values)."""

    batch: RecordBatch
    positions: list
    raws: list[bytes]
    objects: list[dict]
    texts: list[dict | None]
    fast: FastRecords | None = None


class ValidChunk(NamedTuple):
    """Valid records of a batch: ``table`` holds the contract columns of those the fast path
    accepted, ``records`` the validator's ones; ``positions`` are the table's rows, then the
    records; ``raws`` are the records' original bytes."""

    batch: RecordBatch
    positions: list
    raws: list[bytes]
    records: list  # Event or UserRecord
    table: pa.Table | None = None


class RowsPart(NamedTuple):
    """Raw-table rows of one chunk, as an Arrow table in ``schemas.arrow_schema(table)``."""

    table: str
    part: str
    rows: pa.Table


register_coders(RecordBatch, ParsedChunk, ValidChunk, RowsPart, DeadLetterBatch)


def _pick(items: list, indices: np.ndarray) -> list:
    """``[items[i] for i in indices]``, gathered in C."""
    if len(indices) == 0:
        return []
    picked = operator.itemgetter(*indices.tolist())(items)
    return list(picked) if len(indices) > 1 else [picked]


_JSON_FIELDS = tuple(f.name for f in (*c.CONTRACT_FIELDS, *c.USER_FIELDS) if f.kind == "json")


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

def _from_typed_record(record: dict) -> tuple[bytes, dict, dict]:
    """An Avro/Parquet row → (its JSON bytes for the dead-letter table, the event object, the JSON
    text of its JSON fields).

    Typed formats carry ``properties``/``context``/``traits`` as JSON text; nulls mean absent.
    """
    raw = orjson.dumps(record, default=str)
    obj = {k: v for k, v in record.items() if v is not None}
    texts = {}
    for name in _JSON_FIELDS:
        value = obj.get(name)
        if type(value) is str:
            text = value.encode()
            try:
                obj[name] = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue  # left as a string: validation rejects it as invalid_properties
            duplicate = duplicate_key(text)
            if duplicate is not None:
                raise Rejected("duplicate_key", f"`{name}` holds key {duplicate!r} twice in one object; send "
                               "each key once (readers disagree on which value wins)")
            texts[name] = text
    return raw, obj, texts


def fast_path_enabled() -> bool:
    """``STRATA_FAST_PATH=off`` sends every record through the validator: a kill switch should the
    compiled path ever be suspected, and the per-record baseline of ``bench/ingest_batch.py``."""
    return os.environ.get("STRATA_FAST_PATH", "on").lower() not in ("0", "off", "false", "no")


class ParseFn(_StageFn):
    """Bytes of one JSON object per record (NDJSON lines, message data), or typed rows → objects.

    Events' bytes go through the compiled decoder first (:mod:`beam_pipelines.fastpath`); what it
    does not take whole is decoded by ``validation.decode``, which names what is wrong.
    """

    step = "parse"

    def __init__(self, source: str = "batch", kind: str = "events"):
        super().__init__(source, kind)
        self.fast = kind == "events" and fast_path_enabled()  # decided where the job is built

    def process(self, batch: RecordBatch) -> Iterator:
        if batch.failure is not None:
            yield self.file_dead_letter(batch)
            return
        with no_gc():
            parsed, dead = self.parse(batch)
        yield parsed
        yield from self.emit_dead(batch, dead)

    def file_dead_letter(self, batch: RecordBatch) -> beam.pvalue.TaggedOutput:
        """A file that could not be read to its end → one dead letter (stage ``decode``) with the
        file, the byte offset reached and the reason; counted apart from records (it is none)."""
        failure, origin = batch.failure, batch.origin
        self.count(f"{self.kind}.file_error.{failure.error_type}")
        Metrics.string_set("strata", f"{self.kind}.failed_files").add(orjson.dumps(
            {"file": origin.path, "error_type": failure.error_type, "offset": failure.offset,
             "reason": failure.reason}).decode())
        row = dead_letter(
            error_type=failure.error_type, error_message=failure.reason, raw_payload=b"", source=self.source,
            attributes={"source_file": origin.path, "format": origin.fmt, "offset": failure.offset},
            row_key=f"{origin.key}-file", failed_at=dt.datetime.now(dt.timezone.utc))
        return beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetterBatch(batch.batch_id, "decode", [row]))

    def parse(self, batch: RecordBatch) -> tuple[ParsedChunk, list[dict]]:
        if batch.origin.typed or not self.fast:
            return self._parse_slowly(batch, range(len(batch.records)))
        records = batch.records
        decoded_batch = fastpath.decode(records)
        decoded = fastpath.columns(decoded_batch)
        taken = np.asarray(decoded_batch.taken, np.int64)
        suspect = fastpath.parse_suspects(records, taken, decoded)
        kept = taken[~suspect]
        fast = FastRecords(kept, _pick(batch.positions, kept), decoded.filter(~suspect))
        parsed, dead = self._parse_slowly(batch, sorted(decoded_batch.refused + taken[suspect].tolist()))
        return parsed._replace(fast=fast), dead

    def _parse_slowly(self, batch: RecordBatch, indices) -> tuple[ParsedChunk, list[dict]]:
        positions, raws, objects, texts, dead = [], [], [], [], []
        typed = batch.origin.typed
        for i in indices:
            position, record = batch.positions[i], batch.records[i]
            try:
                if typed:
                    raw, obj, text = _from_typed_record(record)
                else:
                    raw, obj = record, decode(record)
                    text = json_texts(record)
            except Rejected as exc:
                raw = record if isinstance(record, bytes) else orjson.dumps(record, default=str)
                dead.append(self.reject(batch, position, raw, exc.error_type, exc.message))
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
            texts.append(text)
        return ParsedChunk(batch, positions, raws, objects, texts), dead


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
    """Parsed objects → contract-valid records (``check(obj, received_us, texts)``) + dead letters."""

    step = "validate"

    def check(self, obj: dict, received_us: int, texts: dict | None):
        raise NotImplementedError

    def process(self, parsed: ParsedChunk) -> Iterator:
        with no_gc():
            valid, dead = self.validate(parsed)
        yield valid
        yield from self.emit_dead(parsed.batch, dead)

    def validate(self, parsed: ParsedChunk) -> tuple[ValidChunk, list[dict]]:
        batch = parsed.batch
        table, positions, objects = None, list(parsed.positions), list(zip(parsed.raws, parsed.objects, parsed.texts))
        if parsed.fast is not None:
            # The fast path's verdicts; whatever it cannot vouch for joins the validator's queue.
            fast = parsed.fast
            table, suspect = fastpath.validate(fast.decoded, batch.received_us)
            table = table.filter(~suspect)
            rows = np.flatnonzero(suspect)
            positions += _pick(fast.positions, rows)
            objects += [(batch.records[i], None, None) for i in fast.indices[rows].tolist()]
            fast_positions = list(itertools.compress(fast.positions, (~suspect).tolist()))
        records, valid_positions, raws, dead = self._validate_slowly(batch, positions, objects)
        if table is not None:
            valid_positions = fast_positions + valid_positions
        self.count(f"{self.kind}_valid", len(records) + (table.num_rows if table is not None else 0))
        return ValidChunk(batch, valid_positions, raws, records, table), dead

    def _validate_slowly(self, batch: RecordBatch, positions: list, objects: list) -> tuple:
        check = self.check
        received_us = batch.received_us
        records, valid_positions, raws, dead = [], [], [], []
        for position, (raw, obj, texts) in zip(positions, objects):
            try:
                if obj is None:  # a fast-path suspect: the validator decodes it itself
                    obj, texts = decode(raw), json_texts(raw)
                record = check(obj, received_us, texts)
            except Rejected as exc:
                dead.append(self.reject(batch, position, raw, exc.error_type, exc.message, exc.event_id))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must dead-letter, never crash the job
                event_id = obj.get("event_id") if type(obj) is dict and type(obj.get("event_id")) is str else None
                dead.append(self.reject(batch, position, raw, "unexpected_error", repr(exc), event_id,
                                        traceback.format_exc()))
                continue
            valid_positions.append(position)
            raws.append(raw)
            records.append(record)
        return records, valid_positions, raws, dead


class ValidateFn(_ValidateFn):
    """Events: the fast path's columnar checks, then ``validation.validate`` for the rest."""

    def check(self, obj: dict, received_us: int, texts: dict | None) -> Event:
        return validate(obj, received_us, texts)


class ValidateUsersFn(_ValidateFn):
    """User master rows: ``validation.validate_user``."""

    def __init__(self, source: str = "batch"):
        super().__init__(source, USERS)

    def check(self, obj: dict, received_us: int, texts: dict | None) -> UserRecord:
        return validate_user(obj, received_us, texts)


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

class EnrichFn(_StageFn):
    """Valid events → ``raw.events`` rows; ``signup`` events also → ``raw.users`` rows."""

    step = "enrich"

    def process(self, valid: ValidChunk) -> Iterator:
        with no_gc():
            outputs = list(self.enrich(valid))
        yield from outputs

    def enrich(self, valid: ValidChunk) -> Iterator:
        batch = valid.batch
        fast = valid.table if valid.table is not None else fastpath.contract_schema().empty_table()
        n_fast = fast.num_rows
        positions, events, raws, dead = valid.positions[n_fast:], valid.records, valid.raws, []
        try:
            slow = contract_table(events)
        except Exception:  # noqa: BLE001 - isolate the record that breaks conversion
            keep = []
            for i, event in enumerate(events):
                try:
                    contract_table([event])
                    keep.append(i)
                except Exception as exc:  # noqa: BLE001
                    dead.append(self.reject(batch, positions[i], raws[i], "enrich_failed", repr(exc),
                                            event.event_id, traceback.format_exc()))
            positions = [positions[i] for i in keep]
            slow = contract_table([events[i] for i in keep])
        positions = valid.positions[:n_fast] + positions
        table = events_table(batch, positions, pa.concat_tables([fast, slow]))
        self.count("events_enriched", table.num_rows)
        yield RowsPart("events", batch.batch_id, table)
        user_pos, users = signup_users(table, positions)
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

