"""Decode, parse and validate single records against the contract in ``strata_core/contract.py``.

This is the rule-by-rule validator: the single authority on what is accepted, and on the
``error_type`` and message of every rejection. The batch and streaming jobs run most records
through the compiled fast path instead (``fastpath.py``: the same rules, compiled into msgspec
Structs and columnar checks), and send every record the fast path does not accept here, so a
record gets the same verdict and the same dead letter whichever path looked at it.

Nothing here names an event field: each field is checked by the rules of its ``kind``, with the
limits its ``Field`` declares, and the cross-field rules (identity, ``requires``, the time bounds)
come from the contract too. Add a field to the contract and it is validated, normalised and
stored with no change here.

A rejected record raises :class:`Rejected` carrying a stable ``error_type`` (see
``contract.ERROR_TYPES``) and a message that names the field, the rule and what is accepted.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import json
import math
import re
from typing import Any, NamedTuple

import msgspec
import orjson

from strata_core import contract as c

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MIN_US = int((c.MIN_EVENT_TIME - _EPOCH).total_seconds()) * 1_000_000
_MAX_SKEW_US = int(c.MAX_FUTURE_SKEW.total_seconds()) * 1_000_000
_US_PER_DAY = 86_400 * 1_000_000
_AMOUNT_QUANTUM = decimal.Decimal(1).scaleb(-c.AMOUNT_SCALE)
_AMOUNT_LIMIT = decimal.Decimal(c.AMOUNT_LIMIT)
#: Exact decimal arithmetic for any amount a record can carry (1 MiB of digits at most).
_DECIMALS = decimal.Context(prec=c.MAX_RECORD_BYTES + 64, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_KNOWN = c.CONTRACT_FIELD_NAMES
_PATTERNS = {f.name: re.compile(f.pattern.removeprefix("^").removesuffix("$"))
             for f in (*c.FIELDS, *c.USER_FIELDS) if f.pattern}
_EVENT_TYPE_REQUIRES = {t.name: frozenset(t.requires) for t in c.EVENT_TYPES if t.requires}

#: A normalised, valid event: one value per contract field, in contract order, plus ``extra``.
#: Strings are ``str``, timestamps UTC epoch microseconds, decimals ``Decimal``, integers ``int``,
#: JSON values their JSON text (``bytes``, UTF-8); an absent optional field is ``None``.
Event = collections.namedtuple("Event", [f.name for f in c.CONTRACT_FIELDS] + ["extra"])


class Rejected(Exception):
    """A record broke the contract. ``error_type`` is stable; ``message`` is for humans."""

    def __init__(self, error_type: str, message: str, event_id: str | None = None):
        super().__init__(f"{error_type}: {message}")
        assert error_type in c.ERROR_TYPES_BY_NAME, error_type
        self.error_type = error_type
        self.message = message
        self.event_id = event_id

    @property
    def stage(self) -> str:
        return c.ERROR_TYPES_BY_NAME[self.error_type].stage


def to_epoch_us(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def event_date(ts_us: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=ts_us // _US_PER_DAY)


# ---- decode + parse -----------------------------------------------------------------------------

#: JSON numbers with a fraction or exponent become exact ``Decimal`` s, never floats: an amount is
#: taken exactly as the producer wrote it.
_decode_json = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
_decode_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def decode(raw: bytes) -> dict:
    """Bytes of one record (an NDJSON line or Pub/Sub data) to a JSON object.

    Raises ``record_too_large``, ``invalid_encoding``, ``malformed_json``, ``nesting_too_deep``
    (beyond what a parser can follow), ``duplicate_key`` or ``not_an_object``.
    """
    if len(raw) > c.MAX_RECORD_BYTES:
        size = (f"{len(raw)} bytes" if len(raw) < c.MAX_KEPT_RECORD_BYTES else
                f"over {c.MAX_KEPT_RECORD_BYTES} bytes (its first {c.MAX_KEPT_RECORD_BYTES} are kept)")
        raise Rejected("record_too_large", f"record is {size}; the limit is {c.MAX_RECORD_BYTES} bytes (1 MiB)")
    try:
        obj = _decode_json(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise Rejected("invalid_encoding",
                           f"record is not valid UTF-8 at byte {uexc.start}; send UTF-8 JSON") from None
        raise Rejected("malformed_json", f"record is not valid JSON: {exc}; send one JSON object per line") from None
    except RecursionError:
        raise Rejected("nesting_too_deep", "record nests deeper than a JSON parser follows; `properties` "
                       f"and `context` may nest at most {c.MAX_NESTING_LEVELS} levels") from None
    duplicate = duplicate_key(raw)
    if duplicate is not None:
        raise Rejected("duplicate_key", f"key {duplicate!r} appears twice in one object; send each key once "
                       "(readers disagree on which value wins)")
    if type(obj) is not dict:
        raise Rejected("not_an_object",
                       f"record is a JSON {_json_kind(obj)}; each record must be one JSON object")
    return obj


def json_texts(raw: bytes) -> dict[str, bytes]:
    """The exact JSON text of each top-level value of an object ``raw`` (already decoded once)."""
    return {k: bytes(v) for k, v in _decode_top_level(raw).items()}


_decode_any = msgspec.json.Decoder().decode
_encode_any = msgspec.json.Encoder().encode


def duplicate_key(text: bytes) -> str | None:
    """A key that some object in the valid JSON ``text`` holds twice, or ``None``.

    Re-encoding the parsed value writes each key once and keeps every string's bytes, so without
    backslashes (escapes could spell the same key two ways) the text is free of duplicates exactly
    when re-encoding keeps its number of commas: each key beyond the first in an object adds one.
    The exact, slower walk runs only for texts with escapes or an extra comma.
    """
    if b"," not in text:
        return None  # no object holds two keys
    if b"\\" not in text and _encode_any(_decode_any(text)).count(b",") == text.count(b","):
        return None
    found: list[str] = []

    def pairs(items: list) -> dict:
        seen = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None  # not JSON the stdlib reads; the decoder that accepted it had no duplicates to see
    return found[0] if found else None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", decimal.Decimal: "number", str: "string",
            list: "array", dict: "object"}.get(type(value), type(value).__name__)


# ---- the rules of each field kind -----------------------------------------------------------------

def _hint(f: c.Field) -> str:
    if f.hint:
        return f.hint
    if f.max_length:
        return f"a string of 1-{f.max_length} characters"
    return f"a {f.kind}"


def _missing(f: c.Field, event_id: str | None):
    raise Rejected("missing_field", f"required field `{f.name}` is missing or null; send {_hint(f)}", event_id)


def _string(f: c.Field, value: Any, received_us: int, event_id: str | None, text: bytes | None = None) -> str | None:
    """Strings: type, length, the id rule, the pattern. An empty optional string without a
    pattern means absent (``""`` ids are as good as none)."""
    if type(value) is not str:
        raise Rejected(f.type_error or "invalid_type",
                       f"`{f.name}` must be a string{'' if f.required else ' or null'}, got {_json_kind(value)}",
                       event_id)
    if not value and not f.pattern:
        if f.required:
            raise Rejected("empty_field", f"`{f.name}` is empty; send {_hint(f)}", event_id)
        return None
    if f.max_length and len(value) > f.max_length:
        raise Rejected("field_too_long", f"`{f.name}` has {len(value)} characters; the maximum is {f.max_length}",
                       event_id)
    if f.identifier and (value.isspace() or "\x00" in value):
        raise Rejected("invalid_id", f"`{f.name}` {value[:64]!r} is only whitespace or holds a NUL character; "
                       "send a printable id", event_id)
    if f.pattern and not _PATTERNS[f.name].fullmatch(value):
        raise Rejected(f.error_type or "invalid_type",
                       f"`{f.name}` {value[:80]!r} must match {f.pattern} ({_hint(f)})", event_id)
    return value


def _enum(f: c.Field, value: Any, received_us: int, event_id: str | None, text: bytes | None = None) -> str:
    if type(value) is not str or value not in f.choices:
        raise Rejected(f.error_type or "invalid_type",
                       f"`{f.name}` {value!r} is not one of {', '.join(f.choices)}", event_id)
    return value


def _timestamp(f: c.Field, value: Any, received_us: int, event_id: str | None, text: bytes | None = None) -> int:
    """RFC 3339 text with an offset, or integer epoch milliseconds → UTC epoch microseconds."""
    name = f.name
    kind = type(value)
    if kind is int:
        ts_us = value * 1000
    elif kind is str:
        try:
            if len(value) < 16 or value[10] not in "Tt ":
                raise ValueError("not a date-time")
            moment = dt.datetime.fromisoformat(value)
        except (ValueError, IndexError):
            raise Rejected("invalid_timestamp", f"`{name}` {value[:64]!r} is not an RFC 3339 "
                           "date-time; send e.g. 2026-01-31T12:00:00.123+01:00 or epoch milliseconds",
                           event_id) from None
        if moment.tzinfo is None:
            raise Rejected("invalid_timestamp", f"`{name}` {value[:64]!r} has no UTC offset; "
                           "append Z or +HH:MM", event_id)
        ts_us = to_epoch_us(moment)
    else:
        raise Rejected("invalid_timestamp", f"`{name}` must be an RFC 3339 string or integer epoch "
                       f"milliseconds, got {_json_kind(value)}", event_id)
    if ts_us < _MIN_US or ts_us > received_us + _MAX_SKEW_US:
        raise Rejected("timestamp_out_of_range", f"`{name}` {str(value)[:64]!r} is outside "
                       "[2000-01-01T00:00:00Z, receive time + 24 h]", event_id)
    return ts_us


def _decimal(f: c.Field, value: Any, received_us: int, event_id: str | None, text: bytes | None = None) -> decimal.Decimal:
    """A JSON number → an exact ``Decimal`` in [minimum, AMOUNT_LIMIT) with <= AMOUNT_SCALE places."""
    kind = type(value)
    if kind is decimal.Decimal or kind is int:
        amount = decimal.Decimal(value)
    elif kind is float:  # typed inputs (Avro/Parquet doubles)
        if not math.isfinite(value):
            raise Rejected(f.error_type or "invalid_type", f"`{f.name}` {value!r} is not finite", event_id)
        # repr() is the shortest string that round-trips, i.e. the literal the producer sent.
        amount = decimal.Decimal(repr(value))
    else:
        raise Rejected("invalid_type", f"`{f.name}` must be a JSON number, got {_json_kind(value)}", event_id)
    if f.minimum is not None and amount < f.minimum:
        raise Rejected("negative_amount" if f.minimum == 0 else f.error_type or "invalid_type",
                       f"`{f.name}` {value!s} is below {f.minimum}; send refunds as a `refund` event with a "
                       "positive amount", event_id)
    if amount >= _AMOUNT_LIMIT or _DECIMALS.quantize(amount, _AMOUNT_QUANTUM) != amount:
        raise Rejected(f.error_type or "invalid_type", f"`{f.name}` {str(value)[:64]} must have at most "
                       f"{c.AMOUNT_SCALE} decimal places and be below 10^{c.AMOUNT_LIMIT_EXPONENT}", event_id)
    return amount


def _integer(f: c.Field, value: Any, received_us: int, event_id: str | None, text: bytes | None = None) -> int:
    low = -c.INT64_MAX - 1 if f.minimum is None else f.minimum
    if type(value) is not int or not low <= value <= c.INT64_MAX:
        raise Rejected(f.error_type or "invalid_type", f"`{f.name}` must be an integer in [{low}, 2^63 - 1], "
                       f"got {str(value)[:64]}", event_id)
    return value


def _json(f: c.Field, value: Any, received_us: int, event_id: str | None, text: bytes | None = None) -> bytes:
    """A JSON object nesting <= MAX_NESTING_LEVELS levels → its JSON text: ``text``, as sent, when
    there is one (the other kinds' rules ignore ``text``)."""
    if type(value) is not dict:
        raise Rejected(f.error_type or "invalid_type", f"`{f.name}` must be a JSON object, got {_json_kind(value)}",
                       event_id)
    if text is None:
        text = _dumps(value)
    # Nesting depth can't exceed the number of brackets that open a container, and counting bytes
    # is C-fast: the exact walk only runs for the rare deeply bracketed value.
    if text.count(b"{") + text.count(b"[") > c.MAX_NESTING_LEVELS:
        if _depth(value) > c.MAX_NESTING_LEVELS:
            raise Rejected("nesting_too_deep", f"`{f.name}` nests more than {c.MAX_NESTING_LEVELS} levels; "
                           f"the maximum is {c.MAX_NESTING_LEVELS}", event_id)
    return text


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value: a scalar is 0, ``{}`` is 1, ``{"a": {}}`` is 2.

    Stops one level past the limit, so hostile input costs no more than a legal record.
    """
    stack = [(value, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > c.MAX_NESTING_LEVELS:
                break
        children = node.values() if type(node) is dict else node
        stack.extend((child, depth + 1) for child in children if type(child) is dict or type(child) is list)
    return deepest


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_exact_number)


def _exact_number(value: Any):
    if type(value) is decimal.Decimal:
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


_KIND_RULES = {"string": _string, "enum": _enum, "timestamp": _timestamp, "decimal": _decimal,
               "integer": _integer, "json": _json}
_CHECKS = tuple((f, _KIND_RULES[f.kind]) for f in c.CONTRACT_FIELDS)
#: The cross-field rules, each run right after the field it hangs on has been checked.
_IDENTITY_AFTER = c.IDENTITY_FIELDS[-1]


# ---- validate -----------------------------------------------------------------------------------

def validate(obj: dict, received_us: int, texts: dict[str, bytes] | None = None) -> Event:
    """Check one parsed record against the contract; return the normalised :class:`Event`.

    ``received_us`` is the receive time in UTC epoch microseconds: timestamps more than 24 h after
    it are rejected. ``texts`` holds the record's top-level values as the producer wrote them
    (:func:`json_texts`): ``properties``, ``context`` and unknown fields keep that text instead of
    being re-serialised. Fields are checked in contract order; the first broken rule is reported.
    """
    values = []
    event_id = None
    event_type = None
    get = obj.get
    for f, rule in _CHECKS:
        value = get(f.name)
        if value is None:
            if f.required:
                _missing(f, event_id)
            normalised = f.default if f.kind == "integer" else None
        else:
            normalised = rule(f, value, received_us, event_id, texts.get(f.name) if texts else None)
        values.append(normalised)
        if f.name == "event_id":
            event_id = normalised
        elif f.name == "event_type":
            event_type = normalised
        # ---- cross-field rules, each right after the field it hangs on
        if f.name == _IDENTITY_AFTER and not any(values[_INDEX[name]] for name in c.IDENTITY_FIELDS):
            raise Rejected("missing_identity", f"neither `{'` nor `'.join(c.IDENTITY_FIELDS)}` is present; "
                           "send at least one non-empty id", event_id)
        if normalised is not None:
            for companion in f.requires:
                if get(companion) is None:
                    raise Rejected(f"missing_{companion}", f"`{f.name}` is present but `{companion}` is missing; "
                                   f"send {_hint(c.FIELDS_BY_NAME[companion])}", event_id)
        elif f.name in _EVENT_TYPE_REQUIRES.get(event_type, ()):
            needed = " and ".join(f"`{n}`" for n in sorted(_EVENT_TYPE_REQUIRES[event_type]))
            raise Rejected(f"missing_{f.name}", f"a `{event_type}` event requires {needed}", event_id)

    extra = None
    if not _KNOWN.issuperset(obj):
        unknown = [k for k in obj if k not in _KNOWN]
        texts = texts or {}
        extra = b"{" + b",".join(orjson.dumps(k) + b":" + (texts.get(k) or _dumps(obj[k])) for k in unknown) + b"}"
    return Event(*values, extra)


_INDEX = {f.name: i for i, f in enumerate(c.CONTRACT_FIELDS)}


def parse_and_validate(raw: bytes, received_us: int) -> Event:
    """``decode`` then ``validate``: one NDJSON line or Pub/Sub payload to an :class:`Event`."""
    return validate(decode(raw), received_us, json_texts(raw))


# ---- user master rows -----------------------------------------------------------------------------

class UserRecord(NamedTuple):
    """A valid user master row. ``created_us`` is UTC epoch microseconds."""

    user_id: str
    created_us: int
    country: str | None
    plan: str | None
    traits: bytes | None  # JSON text (UTF-8)


_USER_FIELDS = {f.name: f for f in c.USER_FIELDS}


def validate_user(obj: dict, received_us: int, texts: dict[str, bytes] | None = None) -> UserRecord:
    """Check one line of a user master file: ``user_id``, ``created_at``, ``country``, ``plan``, ``traits``."""
    user_id = obj.get("user_id")
    if user_id is None or user_id == "":
        raise Rejected("missing_field", "required field `user_id` is missing or empty")
    user_id = _string(_USER_FIELDS["user_id"], user_id, received_us, None)
    created_us = _timestamp(_USER_FIELDS["created_at"], obj.get("created_at"), received_us, user_id) \
        if obj.get("created_at") is not None else _missing(_USER_FIELDS["created_at"], user_id)
    country = obj.get("country")
    if country is not None and (type(country) is not str or not _PATTERNS["country"].fullmatch(country)):
        raise Rejected("invalid_country", f"`country` {country!r} must be an ISO 3166-1 alpha-2 code such as \"DE\"")
    plan = obj.get("plan")
    if plan is not None and type(plan) is not str:
        raise Rejected("invalid_type", f"`plan` must be a string or null, got {_json_kind(plan)}")
    traits = obj.get("traits")
    if traits is not None:
        traits = _json(_USER_FIELDS["traits"], traits, received_us, user_id, texts.get("traits") if texts else None)
    return UserRecord(user_id, created_us, country, plan, traits)
