"""Decode, parse and validate single events against the contract in ``contract.py``.

This is the hot path of both ingest jobs, so it is plain, branch-light Python over
``orjson`` and works on one record at a time; the Beam transforms call it on batches
(``transforms.py``) so the per-element framework overhead is paid once per batch.

A rejected record raises :class:`Rejected` carrying a stable ``error_type`` (see
``contract.ERROR_TYPES``) and a message that names the field, the rule and what is accepted.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any, NamedTuple

import orjson

from beam_pipelines import contract as c

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MIN_US = int((c.MIN_EVENT_TIME - _EPOCH).total_seconds()) * 1_000_000
_MAX_SKEW_US = int(c.MAX_FUTURE_SKEW.total_seconds()) * 1_000_000
_US_PER_DAY = 86_400 * 1_000_000
_AMOUNT_QUANTUM = decimal.Decimal(1).scaleb(-c.AMOUNT_SCALE)
_AMOUNT_MAX = decimal.Decimal(10) ** (c.AMOUNT_PRECISION - c.AMOUNT_SCALE)
_PLATFORMS = frozenset(c.FIELDS_BY_NAME["platform"].choices)
_KNOWN = c.CONTRACT_FIELD_NAMES
_STRING_LIMITS = tuple(
    (f.name, f.max_length) for f in c.CONTRACT_FIELDS
    if f.kind == "string" and f.max_length and f.name not in ("event_id",)
)
_REQUIRES = {t.name: t.requires for t in c.EVENT_TYPES if t.requires}
_ID_MAX = c.FIELDS_BY_NAME["event_id"].max_length


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


class Event(NamedTuple):
    """A valid event, normalised. Timestamps are UTC epoch microseconds."""

    event_id: str
    event_type: str
    user_id: str | None
    anonymous_id: str | None
    session_id: str | None
    event_ts_us: int
    platform: str | None
    amount: decimal.Decimal | None
    currency: str | None
    properties: str | None  # JSON text
    context: str | None  # JSON text
    schema_version: int
    extra: str | None  # JSON text of unknown top-level fields

    @property
    def event_date_days(self) -> int:
        return self.event_ts_us // _US_PER_DAY


def to_epoch_us(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---- decode + parse -----------------------------------------------------------------------------

def decode(raw: bytes) -> dict:
    """Bytes of one record (an NDJSON line or Pub/Sub data) to a JSON object.

    Raises ``record_too_large``, ``invalid_encoding``, ``malformed_json`` or ``not_an_object``.
    """
    if len(raw) > c.MAX_RECORD_BYTES:
        raise Rejected("record_too_large",
                       f"record is {len(raw)} bytes; the limit is {c.MAX_RECORD_BYTES} bytes (1 MiB)")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise Rejected("invalid_encoding",
                           f"record is not valid UTF-8 at byte {uexc.start}; send UTF-8 JSON") from None
        raise Rejected("malformed_json", f"record is not valid JSON: {exc}; send one JSON object per line") from None
    if type(obj) is not dict:
        raise Rejected("not_an_object",
                       f"record is a JSON {_json_kind(obj)}; each record must be one JSON object")
    return obj


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


# ---- validate -----------------------------------------------------------------------------------

def validate(obj: dict, received_us: int) -> Event:
    """Check one parsed record against the contract; return the normalised :class:`Event`.

    ``received_us`` is the receive time in UTC epoch microseconds: timestamps more than
    24 h after it are rejected.
    """
    get = obj.get
    event_id = get("event_id")
    if event_id is None:
        raise Rejected("missing_field", "required field `event_id` is missing or null; "
                       "send a unique string id of 1-128 characters")
    if type(event_id) is not str:
        raise Rejected("invalid_type", f"`event_id` must be a string, got {_json_kind(event_id)}")
    if not event_id:
        raise Rejected("empty_field", "`event_id` is empty; send a unique string id of 1-128 characters")
    if len(event_id) > _ID_MAX:
        raise Rejected("field_too_long", f"`event_id` has {len(event_id)} characters; the maximum is {_ID_MAX}")

    event_type = get("event_type")
    if event_type is None:
        raise Rejected("missing_field", "required field `event_type` is missing or null", event_id)
    if type(event_type) is not str:
        raise Rejected("invalid_type", f"`event_type` must be a string, got {_json_kind(event_type)}", event_id)
    if not c.EVENT_TYPE_RE.match(event_type) or event_type.endswith("\n"):
        raise Rejected("invalid_event_type",
                       f"`event_type` {event_type[:80]!r} must match ^[a-z][a-z0-9_]{{0,63}}$ "
                       "(lower-case snake case, at most 64 characters)", event_id)

    for name, limit in _STRING_LIMITS:
        value = get(name)
        if value is not None:
            if type(value) is not str:
                raise Rejected("invalid_type", f"`{name}` must be a string or null, got {_json_kind(value)}",
                               event_id)
            if len(value) > limit:
                raise Rejected("field_too_long", f"`{name}` has {len(value)} characters; the maximum is {limit}",
                               event_id)
    user_id = get("user_id") or None
    anonymous_id = get("anonymous_id") or None
    if user_id is None and anonymous_id is None:
        raise Rejected("missing_identity", "neither `user_id` nor `anonymous_id` is present; "
                       "send at least one non-empty id", event_id)

    event_ts_us = _timestamp_us(get("event_timestamp"), received_us, event_id)

    platform = get("platform")
    if platform is not None and platform not in _PLATFORMS:
        raise Rejected("invalid_platform", f"`platform` {platform!r} is not one of web, ios, android, server",
                       event_id)

    amount = get("amount")
    currency = get("currency")
    if amount is not None:
        amount = _amount(amount, event_id)
        if currency is None:
            raise Rejected("missing_currency", "`amount` is present but `currency` is missing; "
                           "send an ISO 4217 code such as \"USD\"", event_id)
    elif event_type in _REQUIRES:
        raise Rejected("missing_amount", f"a `{event_type}` event requires `amount` (a number >= 0) "
                       "and `currency`", event_id)
    if currency is not None:
        if type(currency) is not str or not c.CURRENCY_RE.match(currency) or len(currency) != 3:
            raise Rejected("invalid_currency", f"`currency` {currency!r} must be three upper-case letters "
                           "(ISO 4217, e.g. \"USD\")", event_id)

    properties = _json_object(obj, "properties", event_id)
    context = _json_object(obj, "context", event_id)

    schema_version = get("schema_version", 1)
    if schema_version is None:
        schema_version = 1
    elif type(schema_version) is not int or schema_version < 1:
        raise Rejected("invalid_schema_version",
                       f"`schema_version` must be a positive integer, got {schema_version!r}", event_id)

    extra = None
    if len(obj) > 3 and not _KNOWN.issuperset(obj):
        extra = orjson.dumps({k: v for k, v in obj.items() if k not in _KNOWN}).decode()

    return Event(event_id, event_type, user_id, anonymous_id, get("session_id") or None, event_ts_us,
                 platform, amount, currency, properties, context, schema_version, extra)


def _timestamp_us(value: Any, received_us: int, event_id: str) -> int:
    if value is None:
        raise Rejected("missing_field", "required field `event_timestamp` is missing or null; send an "
                       "RFC 3339 string with offset (2026-01-31T12:00:00+01:00) or epoch milliseconds",
                       event_id)
    kind = type(value)
    if kind is int:
        ts_us = value * 1000
    elif kind is str:
        try:
            if len(value) < 20 or value[10] not in "Tt ":
                raise ValueError("not a date-time")
            moment = dt.datetime.fromisoformat(value)
        except (ValueError, IndexError):
            raise Rejected("invalid_timestamp", f"`event_timestamp` {value[:64]!r} is not an RFC 3339 "
                           "date-time; send e.g. 2026-01-31T12:00:00.123+01:00 or epoch milliseconds",
                           event_id) from None
        if moment.tzinfo is None:
            raise Rejected("invalid_timestamp", f"`event_timestamp` {value[:64]!r} has no UTC offset; "
                           "append Z or +HH:MM", event_id)
        ts_us = to_epoch_us(moment)
    else:
        raise Rejected("invalid_timestamp", f"`event_timestamp` must be an RFC 3339 string or integer epoch "
                       f"milliseconds, got {_json_kind(value)}", event_id)
    if ts_us < _MIN_US or ts_us > received_us + _MAX_SKEW_US:
        raise Rejected("timestamp_out_of_range", f"`event_timestamp` {value!r} is outside "
                       "[2000-01-01T00:00:00Z, receive time + 24 h]", event_id)
    return ts_us


def _amount(value: Any, event_id: str) -> decimal.Decimal:
    kind = type(value)
    if kind is int:
        amount = decimal.Decimal(value)
    elif kind is float:
        if not math.isfinite(value):
            raise Rejected("invalid_amount", f"`amount` {value!r} is not finite", event_id)
        # repr() is the shortest string that round-trips, i.e. the literal the producer sent.
        amount = decimal.Decimal(repr(value))
    else:
        raise Rejected("invalid_type", f"`amount` must be a JSON number, got {_json_kind(value)}", event_id)
    if amount < 0:
        raise Rejected("negative_amount", f"`amount` {value!r} is negative; send refunds as a `refund` "
                       "event with a positive amount", event_id)
    if amount >= _AMOUNT_MAX or amount.as_tuple().exponent < -c.AMOUNT_SCALE:
        raise Rejected("invalid_amount", f"`amount` {value!r} must have at most {c.AMOUNT_SCALE} decimal "
                       f"places and be below 10^{c.AMOUNT_PRECISION - c.AMOUNT_SCALE}", event_id)
    return amount


def _json_object(obj: dict, name: str, event_id: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not dict:
        raise Rejected("invalid_properties", f"`{name}` must be a JSON object, got {_json_kind(value)}",
                       event_id)
    depth = _depth(value)
    if depth > c.MAX_NESTING_LEVELS:
        raise Rejected("nesting_too_deep", f"`{name}` nests {depth} levels; the maximum is "
                       f"{c.MAX_NESTING_LEVELS}", event_id)
    return orjson.dumps(value).decode()


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value: a scalar is 0, ``{}`` is 1, ``{"a": {}}`` is 2."""
    if type(value) is dict:
        children = value.values()
    elif type(value) is list:
        children = value
    else:
        return 0
    deepest = 0
    for child in children:
        if type(child) is dict or type(child) is list:
            d = _depth(child)
            if d > deepest:
                deepest = d
                if deepest > c.MAX_NESTING_LEVELS:  # stop early on hostile input
                    break
    return deepest + 1


def parse_and_validate(raw: bytes, received_us: int) -> Event:
    """``decode`` then ``validate``: one NDJSON line or Pub/Sub payload to an :class:`Event`."""
    return validate(decode(raw), received_us)


def event_date(ts_us: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=ts_us // _US_PER_DAY)
