"""The contract, compiled: one C decode per record, then columnar checks, then Arrow columns.

At import time the event contract (``strata_core/contract.py``) becomes

* a msgspec ``Struct`` (:data:`EventStruct`) with each field's type, length, enum and integer-range
  rules, unknown fields forbidden, and ``msgspec.Raw`` (the exact JSON text) for timestamps,
  decimals and JSON objects. Decoding a line with it is one pass in C;
* per-kind columnar checks over a chunk of decoded records (Arrow compute and numpy), for the rules
  a Struct cannot say: patterns, the id rule, the timestamp and amount formats and bounds, the
  duplicate-key rule, nesting, and the cross-field rules (identity, ``requires``, event types'
  required fields);
* the Arrow columns of ``raw.events``, built in bulk from the decoded records, with
  ``properties``/``context`` kept as the producer's JSON text.

The fast path only ever *accepts*: a record it cannot take whole -- the decoder refuses it, or any
columnar check finds it suspect -- goes to the rule-by-rule validator (``validation.py``), which
decides its fate and, if it rejects it, its ``error_type`` and message. So every accepted record
is one the validator accepts too, with the same values (the tests check this field by field),
and dead letters do not depend on which path saw a record.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal, NamedTuple

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_pipelines import validation
from strata_core import contract as c
from strata_core import schemas

#: Default of absent optional strings and enums. A well-formed record can only hold it as the
#: escaped ``"\u0000"``, which the duplicate-key accounting below always sends to the validator.
ABSENT = "\x00"
_RAW_KINDS = frozenset({"timestamp", "decimal", "json"})
_NO_RAW = msgspec.Raw(b"")


def _lowest(f: c.Field) -> int:
    # The fast decoder leaves INT64's very lowest value to the validator, so that one below the
    # range is free to mark an absent integer.
    return f.minimum if f.minimum is not None else -c.INT64_MAX


def _struct_field(f: c.Field) -> tuple:
    """(name, type, default) of one contract field in the compiled Struct."""
    if f.kind in _RAW_KINDS:
        # The exact JSON text: checked and converted column-wise, stored as sent.
        return (f.name, msgspec.Raw) if f.required else (f.name, msgspec.Raw, _NO_RAW)
    if f.kind == "string":
        meta = {}
        if f.max_length:
            meta["max_length"] = f.max_length
        if f.required and not f.pattern:
            meta["min_length"] = 1
        typ = Annotated[str, msgspec.Meta(**meta)] if meta else str
        absent = ABSENT
    elif f.kind == "enum":
        typ = Literal[f.choices]
        absent = ABSENT
    elif f.kind == "integer":
        typ = Annotated[int, msgspec.Meta(ge=_lowest(f), le=c.INT64_MAX)]
        absent = _lowest(f) - 1
    else:
        raise TypeError(f"contract field {f.name!r}: no fast decoding for kind {f.kind!r}")
    return (f.name, typ) if f.required else (f.name, typ | None, absent)


_FIELDS = [_struct_field(f) for f in c.CONTRACT_FIELDS]
#: The compiled decoder's record type: the contract's fields in contract order. Its values are
#: scalars and raw text, never containers, so it can't be part of a cycle: ``gc=False`` spares the
#: collector tens of thousands of objects per batch.
EventStruct = msgspec.defstruct("EventStruct", _FIELDS, forbid_unknown_fields=True, kw_only=True, gc=False)
#: The same, for records with fields the contract doesn't know (kept in ``extra``).
_LenientStruct = msgspec.defstruct("LenientEventStruct", _FIELDS, kw_only=True, gc=False)
_decode = msgspec.json.Decoder(EventStruct).decode
_decode_lenient = msgspec.json.Decoder(_LenientStruct).decode
_decode_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_KNOWN = c.CONTRACT_FIELD_NAMES
_astuple = msgspec.structs.astuple
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
_UNKNOWN_FIELD = "Object contains unknown field"


class Batch(NamedTuple):
    """What the compiled decoder made of a list of records: ``structs`` of the records at
    ``taken`` (their indices), with the ``extra`` JSON text and count of unknown fields of each,
    and the indices of the records it ``refused``."""

    structs: list
    taken: list[int]
    extras: list
    unknown: list[int]
    refused: list[int]


def decode(records: list[bytes]) -> Batch:
    """Decode each record with the compiled Struct.

    Records with unknown fields are decoded again, leniently, and their unknown fields' JSON text
    gathered into ``extra`` as sent. The records it refuses -- malformed, wrong types, too long,
    ... -- are left to the validator, which says why.
    """
    structs, refused, unknown_fields = [], [], []
    keep = structs.append
    too_large = c.MAX_RECORD_BYTES
    if records and max(map(len, records)) > too_large:
        refused = [i for i, record in enumerate(records) if len(record) > too_large]
        records = [b"" if len(record) > too_large else record for record in records]  # b"" never decodes
    for i, record in enumerate(records):
        try:
            keep(_decode(record))
        except _DECODE_ERRORS as exc:
            if str(exc).startswith(_UNKNOWN_FIELD):
                unknown_fields.append(i)
            elif record:
                refused.append(i)
    decoded_whole = np.ones(len(records), bool)
    decoded_whole[refused + unknown_fields] = False
    taken = np.flatnonzero(decoded_whole).tolist()
    extras, unknown = [None] * len(structs), [0] * len(structs)
    for i in unknown_fields:
        decoded = _with_unknown_fields(records[i])
        if decoded is None:
            refused.append(i)
        else:
            keep(decoded[0])
            taken.append(i)
            extras.append(decoded[1])
            unknown.append(decoded[2])
    refused.sort()
    return Batch(structs, taken, extras, unknown, refused)


def _with_unknown_fields(record: bytes) -> tuple | None:
    """(struct, ``extra`` JSON text, number of unknown fields) of a record with unknown fields, or
    ``None`` when the validator should look at it (malformed, a comma in an unknown key, invalid
    UTF-8 or a repeated key inside an unknown value)."""
    try:
        struct = _decode_lenient(record)
        top = _decode_top_level(record)
    except _DECODE_ERRORS:
        return None
    unknown = [(k, v) for k, v in top.items() if k not in _KNOWN]
    if any("," in k for k, _ in unknown):
        return None  # the duplicate-key count below could not tell its commas from separators
    extra = b"{" + b",".join(_encode_key(k) + b":" + v for k, v in unknown) + b"}"
    try:
        extra.decode("utf-8")
        if validation.duplicate_key(extra) is not None:
            return None
    except (UnicodeDecodeError, RecursionError):
        return None
    return struct, extra, len(unknown)


_encode_key = msgspec.json.Encoder().encode


# ---- columns --------------------------------------------------------------------------------------

def raw_column(raws) -> pa.Array:
    """``msgspec.Raw`` values (or bytes) → one binary array, copied once (no Python objects)."""
    n = len(raws)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, raws), np.int64, n), out=offsets[1:])
    return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raws))])


class Decoded(NamedTuple):
    """Decoded records of a chunk, column-wise, as the Struct gave them (``ABSENT`` / empty raw
    for absent fields, ``extra`` for the unknown ones), plus how many top-level fields each record
    had and how many of them were unknown."""

    columns: dict[str, pa.Array]
    present: np.ndarray
    unknown: np.ndarray

    def filter(self, keep: np.ndarray) -> Decoded:
        return Decoded({k: v.filter(keep) for k, v in self.columns.items()}, self.present[keep], self.unknown[keep])


def columns(batch: Batch) -> Decoded:
    """The decoded records' fields as Arrow columns (one conversion per field, raw JSON text
    joined in one copy), and how many fields each record had."""
    structs = batch.structs
    cols = list(zip(*map(_astuple, structs))) if structs else [()] * len(c.CONTRACT_FIELDS)
    unknown = np.array(batch.unknown, np.int64)
    out, present = {"extra": pa.array(batch.extras, pa.binary())}, unknown.copy()
    for f, col in zip(c.CONTRACT_FIELDS, cols):
        if f.kind in _RAW_KINDS:
            arr = raw_column(col)
            present += pc.greater(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False)
        else:
            arr = pa.array(col, pa.int64() if f.kind == "integer" else pa.string())
            absent = ABSENT if f.kind != "integer" else _lowest(f) - 1
            present += pc.fill_null(pc.not_equal(arr, absent), True).to_numpy(zero_copy_only=False)
        out[f.name] = arr
    return Decoded(out, present, unknown)


def _mask(arr) -> np.ndarray:
    """A boolean Arrow array (nulls false) → numpy."""
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


# ---- parse-level checks: JSON objects, duplicate keys ---------------------------------------------

_JSON_FIELDS = tuple(f.name for f in c.CONTRACT_FIELDS if f.kind == "json")
_STRING_FIELDS = tuple(f.name for f in c.CONTRACT_FIELDS if f.kind in ("string", "enum"))


def _json_verdicts(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """For distinct JSON texts of a ``json`` field: (can the fast path take it, its commas).

    Takeable: absent or null, or valid UTF-8 (``msgspec.Raw`` does not look inside strings), an
    object, few enough brackets to be within the nesting limit, and no key twice in one object.
    The last is settled column-wise for texts in which no key *name* repeats anywhere (the usual
    case); the others get the exact check (:func:`validation.duplicate_key`).
    """
    m = len(texts)
    values = texts.to_pylist()
    ok = np.ones(m, bool)
    for i, text in enumerate(values):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            ok[i] = False
    absent = _mask(pc.or_(pc.equal(pc.binary_length(texts), 0), pc.equal(texts, b"null")))
    text = _text(pc.if_else(pa.array(ok), texts, pa.scalar(b"{}", texts.type)))
    ok &= absent | _mask(pc.starts_with(text, "{"))
    brackets = (pc.count_substring(text, "{").to_numpy(zero_copy_only=False)
                + pc.count_substring(text, "[").to_numpy(zero_copy_only=False))
    ok &= brackets <= c.MAX_NESTING_LEVELS
    commas = pc.count_substring(text, ",").to_numpy(zero_copy_only=False)
    exact = ok & ~absent & (commas > 0) & (_mask(pc.match_substring(text, "\\")) | _names_repeat(text))
    for i in np.flatnonzero(exact).tolist():
        ok[i] = validation.duplicate_key(values[i]) is None
    return ok, commas


def _names_repeat(text: pa.Array) -> np.ndarray:
    """Texts (JSON without backslashes) in which some key name appears twice, in any objects.

    Without backslashes every ``"`` delimits a string, so splitting at them alternates structure
    and string contents; a string is a key when the structure after it starts with ``:``.
    """
    parts = pc.split_pattern(text, '"')
    flat = pc.list_flatten(parts)
    parent = pc.list_parent_indices(parts).to_numpy()
    index = np.arange(len(flat)) - parts.offsets.to_numpy()[parent]
    after = np.append(_mask(pc.match_substring_regex(flat, r"^\s*:")), False)[1:]
    is_key = (index % 2 == 1) & after
    keys = pa.table({"row": parent[is_key], "key": flat.filter(pa.array(is_key))})
    counts = keys.group_by(["row", "key"]).aggregate([("key", "count")])
    repeated = counts.filter(pc.greater(counts["key_count"], 1))["row"].to_numpy()
    out = np.zeros(len(text), bool)
    out[repeated] = True
    return out


def parse_suspects(records: list[bytes], taken: np.ndarray, decoded: Decoded) -> np.ndarray:
    """Which of the decoded records (``records[taken]``) the fast path can't vouch for: the
    validator decodes those itself.

    JSON objects (``properties``, ``context``) are checked once per distinct text in the chunk:
    an object, UTF-8, nesting, no duplicate key. Duplicate *top-level* keys are found by counting:
    every record's keys are contract fields (the Struct forbids others, and their names hold no
    comma), so a record without duplicates has exactly ``commas + 1`` fields once the commas inside
    its values are taken off; a repeated key adds a comma, and a value the Struct dropped for its
    repetition keeps its commas in the count. String values holding a comma (maybe escaped), and
    timestamps and amounts in unusual forms (checked in :func:`validate`), go to the validator.
    """
    cols = decoded.columns
    n = len(taken)
    suspect = np.zeros(n, bool)
    value_commas = np.zeros(n, np.int64)
    for name in _JSON_FIELDS:
        encoded = pc.dictionary_encode(cols[name])
        ok, commas = _json_verdicts(encoded.dictionary)
        index = encoded.indices.to_numpy()
        suspect |= ~ok[index]
        value_commas += commas[index]
    for name in _STRING_FIELDS:
        suspect |= _mask(pc.match_substring(cols[name], ","))
    # ``extra`` holds the unknown fields' values as sent, joined by one comma each.
    extra_commas = pc.fill_null(pc.count_substring(cols["extra"], ","), 0).to_numpy(zero_copy_only=False)
    value_commas += extra_commas - np.maximum(decoded.unknown - 1, 0)
    commas = np.fromiter(map(bytes.count, records, itertools.repeat(b",")), np.int64, len(records))[taken]
    suspect |= commas - value_commas + 1 != decoded.present
    return suspect


# ---- validate-level checks and the final columns -------------------------------------------------

_MIN_US = validation._MIN_US
_MAX_SKEW_US = validation._MAX_SKEW_US
_EPOCH_MS = r"^[0-9]{1,15}$"
#: The RFC 3339 form the fast path converts itself (Arrow and ``datetime.fromisoformat`` agree on
#: it; ``tests/test_fastpath.py`` checks that). Others -- lower-case ``t``/``z``, commas, more
#: than 6 fraction digits, missing seconds -- go to the validator.
_RFC3339 = (r'^"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]'
            r'(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"$')
#: An exact amount: below ``AMOUNT_LIMIT``, at most ``AMOUNT_SCALE`` places, no sign or exponent.
_AMOUNT = rf"^(0|[1-9][0-9]{{0,{c.AMOUNT_LIMIT_EXPONENT - 1}}})(\.[0-9]{{1,{c.AMOUNT_SCALE}}})?$"
_VISIBLE_ASCII = "[!-~]"
_PATTERNS = {f.name: re.compile(f.pattern.removeprefix("^").removesuffix("$"))
             for f in c.CONTRACT_FIELDS if f.pattern}
_EVENT_TYPE_REQUIRES = tuple((t.name, t.requires) for t in c.EVENT_TYPES if t.requires)
_UTC_US = pa.timestamp("us", tz="UTC")
_DECIMAL = pa.decimal128(c.AMOUNT_PRECISION, c.AMOUNT_SCALE)


def _text(arr: pa.Array) -> pa.Array:
    return arr.cast(pa.large_string()).cast(pa.string())


def _timestamps(raw: pa.Array, suspect: np.ndarray, received_us: int) -> pa.Array:
    """JSON text of timestamps → UTC timestamps; marks what the fast path can't convert."""
    n = len(raw)
    us = np.zeros(n, np.int64)
    epoch_ms = _mask(pc.match_substring_regex(raw, _EPOCH_MS))
    if epoch_ms.any():
        us[epoch_ms] = _text(raw.filter(epoch_ms)).cast(pa.int64()).to_numpy() * 1000
    rfc3339 = _mask(pc.match_substring_regex(raw, _RFC3339))
    if rfc3339.any():
        where = np.flatnonzero(rfc3339)
        converted, bad = _parse_rfc3339(_text(pc.binary_slice(raw.filter(rfc3339), 1, -1)))
        us[where] = converted
        suspect[where[bad]] = True
    suspect |= ~(epoch_ms | rfc3339)
    suspect |= (us < _MIN_US) | (us > received_us + _MAX_SKEW_US)
    return pa.array(us, pa.int64()).cast(_UTC_US)


def _parse_rfc3339(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Arrow's ISO 8601 cast of well-formed text; text it refuses (30 February) is bisected out."""
    try:
        return text.cast(_UTC_US).cast(pa.int64()).to_numpy(), np.zeros(len(text), bool)
    except pa.ArrowInvalid:
        if len(text) == 1:
            return np.zeros(1, np.int64), np.ones(1, bool)
    half = len(text) // 2
    (us1, bad1), (us2, bad2) = _parse_rfc3339(text[:half]), _parse_rfc3339(text[half:])
    return np.concatenate([us1, us2]), np.concatenate([bad1, bad2])


def _decimals(raw: pa.Array, suspect: np.ndarray) -> pa.Array:
    present = _mask(pc.greater(pc.binary_length(raw), 0)) & ~_mask(pc.equal(raw, b"null"))
    exact = _mask(pc.match_substring_regex(raw, _AMOUNT))
    suspect |= present & ~exact
    values = pa.nulls(len(raw), _DECIMAL)
    if exact.any():
        values = pc.replace_with_mask(values, pa.array(exact), _text(raw.filter(exact)).cast(_DECIMAL))
    return values


def _strings(f: c.Field, arr: pa.Array, suspect: np.ndarray) -> pa.Array:
    absent = pc.equal(arr, ABSENT)
    if f.kind == "string" and not f.pattern:
        absent = pc.or_(absent, pc.equal(arr, ""))
    values = pc.if_else(pc.fill_null(absent, True), pa.scalar(None, pa.string()), arr)
    present = _mask(pc.is_valid(values))
    if f.identifier:
        suspect |= present & ~_mask(pc.match_substring_regex(values, _VISIBLE_ASCII))
        suspect |= _mask(pc.match_substring(values, "\x00"))
    if f.pattern:
        unique = pc.unique(values).drop_null().to_pylist()
        bad = [u for u in unique if not _PATTERNS[f.name].fullmatch(u)]
        if bad:
            suspect |= _mask(pc.is_in(values, pa.array(bad, pa.string())))
    return values


def _json_text(raw: pa.Array) -> pa.Array:
    present = pc.and_(pc.greater(pc.binary_length(raw), 0), pc.not_equal(raw, b"null"))
    return pc.if_else(present, _text(raw), pa.scalar(None, pa.string()))


def validate(decoded: Decoded, received_us: int) -> tuple[pa.Table, np.ndarray]:
    """Contract rules over decoded columns → (the contract columns of ``raw.events``, suspects).

    Rows marked suspect are left to the validator; the others are valid and final.
    """
    cols = decoded.columns
    n = len(decoded.present)
    suspect = np.zeros(n, bool)
    out = {}
    for f in c.CONTRACT_FIELDS:
        arr = cols[f.name]
        if f.kind in ("string", "enum"):
            out[f.name] = _strings(f, arr, suspect)
        elif f.kind == "timestamp":
            out[f.name] = _timestamps(arr, suspect, received_us)
        elif f.kind == "decimal":
            out[f.name] = _decimals(arr, suspect)
        elif f.kind == "json":
            out[f.name] = _json_text(arr)
        elif f.kind == "integer":
            out[f.name] = pc.if_else(pc.fill_null(pc.equal(arr, _lowest(f) - 1), True),
                                     pa.scalar(f.default, pa.int64()), arr)
    # ---- cross-field rules
    identified = np.zeros(n, bool)
    for name in c.IDENTITY_FIELDS:
        identified |= _mask(pc.is_valid(out[name]))
    suspect |= ~identified
    for f in c.CONTRACT_FIELDS:
        for companion in f.requires:
            suspect |= _mask(pc.is_valid(out[f.name])) & ~_mask(pc.is_valid(out[companion]))
    for event_type, required in _EVENT_TYPE_REQUIRES:
        of_type = _mask(pc.equal(out["event_type"], event_type))
        for name in required:
            suspect |= of_type & ~_mask(pc.is_valid(out[name]))
    schema = contract_schema()
    table = pa.Table.from_arrays([out[f.name].cast(schema.field(f.name).type) for f in c.CONTRACT_FIELDS]
                                 + [cols["extra"].cast(pa.string())], schema=schema)
    return table, suspect


def contract_schema() -> pa.Schema:
    """The columns of ``raw.events`` a record gives: its contract fields and ``extra``, all
    nullable (the validator enforces ``required``)."""
    events = schemas.arrow_schema("events")
    return pa.schema([events.field(f.name).with_nullable(True) for f in c.CONTRACT_FIELDS]
                     + [events.field("extra")])
