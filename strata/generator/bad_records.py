"""Bad records, one recipe per error type: each breaks exactly one rule of the validator.

A recipe starts from a valid event and changes the one thing its error type is about, taking
the validator's check order into account (``beam_pipelines/validation.py``), so
``parse_and_validate`` rejects it with exactly that ``error_type``. ``tests/test_generator.py``
checks this record by record.

A recipe returns either raw bytes (an NDJSON line that is not a valid JSON object) or a dict.
Typed formats (Avro, Parquet) can only carry dicts whose values fit the input schema, so they use
the ``typed`` subset of variants; error types with no typed variant are never generated there.
In typed records ``properties``/``context`` travel as JSON text; :class:`RawJson` marks text
that must be written verbatim (e.g. ``[1, 2]``), which a reader that parses the JSON-text columns
hands to the validator as a non-object. NDJSON embeds it verbatim too, as a JSON value.
"""

from __future__ import annotations

import random
from typing import Callable

import orjson

from strata_core import contract as c
from strata.generator.timestamps import rfc3339_utc


class RawJson(str):
    """JSON text a typed writer puts into a JSON-text column as is."""


#: Error types of the contract the generator never produces, and why.
NOT_GENERATED = {
    "unreadable_record": "an Avro/Parquet row the reader cannot convert; a valid typed file has none",
    **{name: "a file-level error: generated files are complete (tests damage files themselves)"
       for name in c.FILE_ERROR_TYPES},
    "invalid_country": "a users-file rule; users.jsonl is kept clean so event counts stay exact",
    "unexpected_error": "a validator bug by definition",
}
#: Decode/parse/validate error types of the contract, minus ``NOT_GENERATED``: each has a recipe.
GENERATED_ERROR_TYPES = tuple(e.name for e in c.ERROR_TYPES
                              if e.stage in ("decode", "parse", "validate") and e.name not in NOT_GENERATED)
#: error types that a typed (Avro/Parquet) input file cannot carry
UNTYPED_ONLY = frozenset({"invalid_encoding", "record_too_large", "malformed_json", "not_an_object",
                          "invalid_type"})


def base(event_id: str, ts_ms: int, user_id: str | None, anon_id: str | None,
         purchase: bool = False) -> dict:
    """A valid event (ASCII only) to break."""
    obj = {"event_id": event_id, "event_type": "purchase" if purchase else "page_view"}
    if user_id is not None:
        obj["user_id"] = user_id
    if anon_id is not None or user_id is None:
        obj["anonymous_id"] = anon_id or "anon_bad"
    obj["session_id"] = f"sess_{event_id}"
    obj["event_timestamp"] = rfc3339_utc(ts_ms)
    obj["platform"] = "web"
    if purchase:
        obj["amount"] = 19.99
        obj["currency"] = "USD"
        obj["properties"] = {"order_id": f"ord_{event_id}", "item_count": 1}
    else:
        obj["properties"] = {"page": "/checkout", "referrer": "https://www.example.com/"}
    obj["context"] = {"locale": "en-US"}
    return obj


def _deep(levels: int) -> dict:
    """A dict nested ``levels`` deep by the validator's measure (``{}`` is 1)."""
    d: dict = {}
    for _ in range(levels - 1):
        d = {"child": d}
    return d


def _deep_list(levels: int) -> dict:
    inner: list = []
    for _ in range(levels - 2):
        inner = [inner]
    return {"path": inner}


def _set(**changes) -> Callable[[dict], dict]:
    def apply(obj: dict) -> dict:
        for key, value in changes.items():
            obj[key] = value
        return obj
    return apply


def _drop(*keys: str) -> Callable[[dict], dict]:
    def apply(obj: dict) -> dict:
        for key in keys:
            obj.pop(key, None)
        return obj
    return apply


def _dumps(obj: dict) -> bytes:
    return orjson.dumps(obj)


def _latin1(obj: dict) -> bytes:
    obj["properties"] = {"page": "/caf\u00e9", "referrer": None}
    return _dumps(obj).replace("/café".encode(), b"/caf\xe9")  # Latin-1 é: not UTF-8


def _stray_bytes(obj: dict) -> bytes:
    obj["properties"] = {"query": "MARK"}
    return _dumps(obj).replace(b"MARK", b"\xff\xfe\xc3(")


def _too_large(obj: dict) -> bytes:
    obj["properties"] = {"page": "/upload", "blob": "x" * (c.MAX_RECORD_BYTES + 50_000)}
    return _dumps(obj)


def _truncated(obj: dict) -> bytes:
    return _dumps(obj)[:-9]


def _single_quotes(obj: dict) -> bytes:
    return _dumps(obj).replace(b'"', b"'")


def _trailing_comma(obj: dict) -> bytes:
    return _dumps(obj)[:-1] + b",}"


def _unquoted(obj: dict) -> bytes:
    return _dumps(obj).replace(b'"page_view"', b"page_view")


def _nan(obj: dict) -> bytes:
    obj["properties"] = {"price": 1}
    return _dumps(obj).replace(b'"price":1', b'"price":NaN')


def _deep_bytes(levels: int) -> Callable[[dict], bytes]:
    """``properties`` nested ``levels`` deep, written by hand: JSON encoders refuse such depth."""
    def apply(obj: dict) -> bytes:
        obj["properties"] = "DEEP"
        deep = b'{"child":' * (levels - 1) + b"{}" + b"}" * (levels - 1)
        return _dumps(obj).replace(b'"DEEP"', deep)
    return apply


def _repeat_top_level_key(obj: dict) -> bytes:
    return _dumps(obj)[:-1] + b',"event_type":"purchase"}'  # the last value would have won


def _repeat_nested_key(obj: dict) -> bytes:
    obj["properties"] = {"page": "/checkout", "referrer": None}
    return _dumps(obj).replace(b'"page":"/checkout"', b'"page":"/checkout","page":"/cart"')


def _raw(data: bytes) -> Callable[[dict], bytes]:
    return lambda obj: data


def _in_array(obj: dict) -> bytes:
    return b"[" + _dumps(obj) + b"]"


#: error type -> purchase base?, [(typed ok?, recipe)]
RECIPES: dict[str, tuple[bool, list[tuple[bool, Callable[[dict], dict | bytes]]]]] = {
    "invalid_encoding": (False, [(False, _latin1), (False, _stray_bytes)]),
    "record_too_large": (False, [(False, _too_large)]),
    "malformed_json": (False, [(False, _truncated), (False, _single_quotes), (False, _trailing_comma),
                               (False, _unquoted), (False, _nan)]),
    "not_an_object": (False, [(False, _in_array), (False, _raw(b'"page_view"')), (False, _raw(b"null")),
                              (False, _raw(b"42")), (False, _raw(b"true"))]),
    "missing_field": (False, [(True, _drop("event_id")), (True, _set(event_id=None)),
                              (True, _drop("event_type")), (True, _set(event_type=None)),
                              (True, _drop("event_timestamp")), (True, _set(event_timestamp=None))]),
    "missing_identity": (False, [(True, _drop("user_id", "anonymous_id")),
                                 (True, _set(user_id=None, anonymous_id=None)),
                                 (True, _set(user_id="", anonymous_id=""))]),
    "invalid_type": (False, [(False, _set(event_id=12345)), (False, _set(event_type=7)),
                             (False, _set(user_id=42)), (False, _set(session_id=["s1"])),
                             (False, _set(event_type="purchase", amount="19.99", currency="USD")),
                             (False, _set(event_type="purchase", amount=True, currency="USD"))]),
    "field_too_long": (False, [(True, lambda o: _set(event_id=o["event_id"] + "_" + "x" * 200)(o)),
                               (True, _set(user_id="u" * 129)), (True, _set(anonymous_id="a" * 300)),
                               (True, _set(session_id="s" * 129))]),
    "empty_field": (False, [(True, _set(event_id=""))]),
    "duplicate_key": (False, [(False, _repeat_top_level_key), (False, _repeat_nested_key),
                              (True, _set(properties=RawJson('{"page": "/a", "page": "/b"}')))]),
    "invalid_id": (False, [(True, _set(event_id="   ")), (True, _set(user_id=" \t")),
                           (True, _set(anonymous_id="anon\u0000")), (True, _set(session_id="\u3000\u3000"))]),
    "invalid_event_type": (False, [(True, _set(event_type="Page View")), (True, _set(event_type="pageView")),
                                   (True, _set(event_type="1st_visit")),
                                   (True, _set(event_type="checkout.completed")),
                                   (True, _set(event_type="x" * 70)), (True, _set(event_type="")),
                                   (True, _set(event_type="page_view\n"))]),
    "invalid_timestamp": (False, [(True, _set(event_timestamp="2026-13-45T10:00:00Z")),
                                  (True, _set(event_timestamp="yesterday")),
                                  (True, _set(event_timestamp="2026-01-31")),
                                  (True, _set(event_timestamp="2026-01-31T12:00:00.000")),
                                  (True, _set(event_timestamp="31/01/2026 12:00:00 +01:00")),
                                  (False, _set(event_timestamp=1.7e12)),
                                  (False, _set(event_timestamp=True)),
                                  (False, _set(event_timestamp={"seconds": 1}))]),
    "timestamp_out_of_range": (False, [(True, _set(event_timestamp="1999-12-31T23:59:59Z")),
                                       (True, _set(event_timestamp=0)),
                                       (True, _set(event_timestamp=1_700_000_000)),  # seconds, not ms
                                       (True, _set(event_timestamp="2150-06-01T00:00:00+00:00")),
                                       (True, _set(event_timestamp=4_102_444_800_000))]),
    "invalid_platform": (False, [(True, _set(platform="Web")), (True, _set(platform="desktop")),
                                 (True, _set(platform="iOS")), (True, _set(platform="")),
                                 (False, _set(platform=5))]),
    "missing_amount": (True, [(True, _drop("amount", "currency")), (True, _set(amount=None)),
                              (True, _set(event_type="refund", amount=None))]),
    "negative_amount": (True, [(True, _set(amount=-19.99)), (True, _set(event_type="refund", amount=-5.0)),
                               (False, _set(amount=-1))]),
    "invalid_amount": (True, [(True, _set(amount=1e30)), (True, _set(amount=1e-10)),
                              (True, _set(amount=12.3456789012)), (True, _set(amount=1e29)),
                              (True, _set(amount=1e20)), (True, _set(amount=float(c.AMOUNT_LIMIT)))]),
    "missing_currency": (True, [(True, _drop("currency")), (True, _set(currency=None)),
                                (True, _set(event_type="page_view"))]),  # followed by a drop below
    "invalid_currency": (True, [(True, _set(currency="usd")), (True, _set(currency="US")),
                                (True, _set(currency="EURO")), (True, _set(currency="€")),
                                (True, _set(currency="Usd")), (False, _set(currency=840))]),
    "invalid_properties": (False, [(False, _set(properties="red shoes")), (False, _set(properties=[1, 2])),
                                   (False, _set(properties=42)), (False, _set(context="iPhone")),
                                   (True, _set(properties=RawJson('"red shoes"'))),
                                   (True, _set(properties=RawJson("[1, 2]"))),
                                   (True, _set(context=RawJson('"mobile"')))]),
    "nesting_too_deep": (False, [(True, _set(properties=_deep(c.MAX_NESTING_LEVELS + 1))),
                                 (True, _set(properties=_deep(c.MAX_NESTING_LEVELS + 4))),
                                 (True, _set(context=_deep(c.MAX_NESTING_LEVELS + 2))),
                                 (True, _set(properties=_deep_list(c.MAX_NESTING_LEVELS + 1))),
                                 # deep, but below the 128 levels past which DuckDB's read_json (the
                                 # benchmark's ceiling) refuses a whole file; 300 levels are tested apart
                                 (False, _deep_bytes(120))]),
    "invalid_schema_version": (False, [(True, _set(schema_version=0)), (True, _set(schema_version=-1)),
                                       (False, _set(schema_version="1")), (False, _set(schema_version=1.5)),
                                       (False, _set(schema_version=True)), (False, _set(schema_version=2**64 - 1))]),
}
_missing = set(GENERATED_ERROR_TYPES) - set(RECIPES)
assert not _missing, f"contract error types without a generator recipe: {sorted(_missing)}"


def types_for(typed: bool) -> tuple[str, ...]:
    """Error types a format can carry, in contract order."""
    return tuple(t for t in GENERATED_ERROR_TYPES if not (typed and t in UNTYPED_ONLY))


def make(error_type: str, rng: random.Random, event_id: str, ts_ms: int, user_id: str | None,
         anon_id: str | None, typed: bool) -> dict | bytes:
    """One bad record that the validator rejects with ``error_type``."""
    purchase, variants = RECIPES[error_type]
    choices = [recipe for typed_ok, recipe in variants if typed_ok or not typed]
    obj = base(event_id, ts_ms, user_id, anon_id, purchase)
    out = rng.choice(choices)(obj)
    if error_type == "missing_currency" and isinstance(out, dict) and out["event_type"] == "page_view":
        out.pop("currency", None)  # an amount on a non-money event, without currency
        out["amount"] = 5.0
    return out
