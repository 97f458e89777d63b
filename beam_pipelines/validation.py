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
import re
from typing import Any, NamedTuple

import orjson

from strata_core import contract as c

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
assert all(limit == _ID_MAX for _, limit in _STRING_LIMITS), "the fast path assumes one id length"
_EVENT_TYPE_FULL = re.compile(c.FIELDS_BY_NAME["event_type"].pattern.strip("^$"))
_CURRENCY_FULL = re.compile(c.FIELDS_BY_NAME["currency"].pattern.strip("^$"))


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
    properties: bytes | None  # JSON text (UTF-8)
    context: bytes | None  # JSON text (UTF-8)
    schema_version: int
    extra: bytes | None  # JSON text (UTF-8) of unknown top-level fields


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
    24 h after it are rejected. The common, valid case runs straight through; every rule's
    precise error lives in the ``_reject_*`` helpers, which run only on the way out.
    """
    get = obj.get
    event_id = get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= _ID_MAX:
        _reject_event_id(event_id)
    event_type = get("event_type")
    if type(event_type) is not str or event_type not in _SEEN_EVENT_TYPES:
        _check_event_type(event_type, event_id)

    user_id = get("user_id")
    anonymous_id = get("anonymous_id")
    session_id = get("session_id")
    if ((user_id is not None and (type(user_id) is not str or len(user_id) > _ID_MAX))
            or (anonymous_id is not None and (type(anonymous_id) is not str or len(anonymous_id) > _ID_MAX))
            or (session_id is not None and (type(session_id) is not str or len(session_id) > _ID_MAX))):
        _reject_strings(obj, event_id)
    if not user_id:
        user_id = None
        if not anonymous_id:
            raise Rejected("missing_identity", "neither `user_id` nor `anonymous_id` is present; "
                           "send at least one non-empty id", event_id)
    anonymous_id = anonymous_id or None

    value = get("event_timestamp")
    if type(value) is str and len(value) >= 20 and value[10] in "Tt ":  # fast path; else explain
        try:
            moment = _fromisoformat(value)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            event_ts_us = _timestamp_us(value, received_us, event_id)
        else:
            delta = moment - _EPOCH
            event_ts_us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
            if event_ts_us < _MIN_US or event_ts_us > received_us + _MAX_SKEW_US:
                _timestamp_us(value, received_us, event_id)
    else:
        event_ts_us = _timestamp_us(value, received_us, event_id)

    platform = get("platform")
    if platform is not None and (type(platform) is not str or platform not in _PLATFORMS):
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
    if currency is not None and (type(currency) is not str or currency not in _SEEN_CURRENCIES):
        _check_currency(currency, event_id)

    properties = get("properties")
    if properties is not None:
        properties = _json_object(properties, "properties", event_id)
    context = get("context")
    if context is not None:
        context = _json_object(context, "context", event_id)

    schema_version = get("schema_version")
    if schema_version is None:
        schema_version = 1
    elif type(schema_version) is not int or schema_version < 1:
        raise Rejected("invalid_schema_version",
                       f"`schema_version` must be a positive integer, got {schema_version!r}", event_id)

    extra = None
    if not _KNOWN.issuperset(obj):
        extra = _dumps({k: v for k, v in obj.items() if k not in _KNOWN})

    return Event(event_id, event_type, user_id, anonymous_id, session_id or None, event_ts_us,
                 platform, amount, currency, properties, context, schema_version, extra)


_fromisoformat = dt.datetime.fromisoformat
_dumps = orjson.dumps
#: Event types / currencies already seen valid. Bounded so hostile input can't grow it forever.
_SEEN_EVENT_TYPES: set = set()
_SEEN_CURRENCIES: set = set()
_SEEN_LIMIT = 10_000


def _reject_event_id(event_id: Any) -> None:
    if event_id is None:
        raise Rejected("missing_field", "required field `event_id` is missing or null; "
                       "send a unique string id of 1-128 characters")
    if type(event_id) is not str:
        raise Rejected("invalid_type", f"`event_id` must be a string, got {_json_kind(event_id)}")
    if not event_id:
        raise Rejected("empty_field", "`event_id` is empty; send a unique string id of 1-128 characters")
    raise Rejected("field_too_long", f"`event_id` has {len(event_id)} characters; the maximum is {_ID_MAX}")


def _check_event_type(event_type: Any, event_id: str) -> None:
    if event_type is None:
        raise Rejected("missing_field", "required field `event_type` is missing or null", event_id)
    if type(event_type) is not str:
        raise Rejected("invalid_type", f"`event_type` must be a string, got {_json_kind(event_type)}", event_id)
    if not _EVENT_TYPE_FULL.fullmatch(event_type):
        raise Rejected("invalid_event_type",
                       f"`event_type` {event_type[:80]!r} must match ^[a-z][a-z0-9_]{{0,63}}$ "
                       "(lower-case snake case, at most 64 characters)", event_id)
    if len(_SEEN_EVENT_TYPES) < _SEEN_LIMIT:
        _SEEN_EVENT_TYPES.add(event_type)


def _check_currency(currency: Any, event_id: str) -> None:
    if type(currency) is not str or not _CURRENCY_FULL.fullmatch(currency):
        raise Rejected("invalid_currency", f"`currency` {currency!r} must be three upper-case letters "
                       "(ISO 4217, e.g. \"USD\")", event_id)
    if len(_SEEN_CURRENCIES) < _SEEN_LIMIT:
        _SEEN_CURRENCIES.add(currency)


def _reject_strings(obj: dict, event_id: str) -> None:
    for name, limit in _STRING_LIMITS:
        value = obj.get(name)
        if value is not None:
            if type(value) is not str:
                raise Rejected("invalid_type", f"`{name}` must be a string or null, got {_json_kind(value)}",
                               event_id)
            if len(value) > limit:
                raise Rejected("field_too_long", f"`{name}` has {len(value)} characters; the maximum is {limit}",
                               event_id)


def _timestamp_us(value: Any, received_us: int, event_id: str | None, name: str = "event_timestamp") -> int:
    if value is None:
        raise Rejected("missing_field", f"required field `{name}` is missing or null; send an "
                       "RFC 3339 string with offset (2026-01-31T12:00:00+01:00) or epoch milliseconds",
                       event_id)
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
        raise Rejected("timestamp_out_of_range", f"`{name}` {value!r} is outside "
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


def _json_object(value: Any, name: str, event_id: str | None) -> bytes:
    """A ``properties``-like value → its JSON text, if it is an object nesting <= 10 levels."""
    if type(value) is not dict:
        raise Rejected("invalid_properties", f"`{name}` must be a JSON object, got {_json_kind(value)}",
                       event_id)
    text = _dumps(value)
    # Nesting depth can't exceed the number of brackets that open a container, and counting bytes
    # is C-fast: the exact (Python) walk only runs for the rare deeply bracketed value.
    if text.count(b"{") + text.count(b"[") > c.MAX_NESTING_LEVELS:
        depth = _depth(value)
        if depth > c.MAX_NESTING_LEVELS:
            raise Rejected("nesting_too_deep", f"`{name}` nests {depth} levels; the maximum is "
                           f"{c.MAX_NESTING_LEVELS}", event_id)
    return text


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


class UserRecord(NamedTuple):
    """A valid user master row. ``created_us`` is UTC epoch microseconds."""

    user_id: str
    created_us: int
    country: str | None
    plan: str | None
    traits: bytes | None  # JSON text (UTF-8)


_COUNTRY_RE = re.compile(next(f.pattern for f in c.USER_FIELDS if f.name == "country"))


def validate_user(obj: dict, received_us: int) -> UserRecord:
    """Check one line of a user master file: ``user_id``, ``created_at``, ``country``, ``plan``, ``traits``."""
    user_id = obj.get("user_id")
    if user_id is None or user_id == "":
        raise Rejected("missing_field", "required field `user_id` is missing or empty")
    if type(user_id) is not str:
        raise Rejected("invalid_type", f"`user_id` must be a string, got {_json_kind(user_id)}")
    if len(user_id) > 128:
        raise Rejected("field_too_long", f"`user_id` has {len(user_id)} characters; the maximum is 128")
    created_us = _timestamp_us(obj.get("created_at"), received_us, user_id, "created_at")
    country = obj.get("country")
    if country is not None and (type(country) is not str or not _COUNTRY_RE.match(country) or len(country) != 2):
        raise Rejected("invalid_country", f"`country` {country!r} must be an ISO 3166-1 alpha-2 code such as \"DE\"")
    plan = obj.get("plan")
    if plan is not None and type(plan) is not str:
        raise Rejected("invalid_type", f"`plan` must be a string or null, got {_json_kind(plan)}")
    traits = obj.get("traits")
    if traits is not None:
        traits = _json_object(traits, "traits", user_id)
    return UserRecord(user_id, created_us, country, plan, traits)
