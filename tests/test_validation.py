"""Every contract rule, and every decode/parse/validate error type, at the function level."""

from __future__ import annotations

import datetime as dt
import decimal

import orjson
import pytest

from strata_core import contract as c
from beam_pipelines.validation import Rejected, decode, parse_and_validate, validate, validate_user

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.timezone.utc)
NOW_US = int(NOW.timestamp()) * 1_000_000


def event(**fields) -> dict:
    base = {"event_id": "e-1", "event_type": "page_view", "user_id": "u-1",
            "event_timestamp": "2026-06-15T10:00:00Z"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def reject(obj_or_raw, **kw) -> Rejected:
    with pytest.raises(Rejected) as info:
        if isinstance(obj_or_raw, bytes):
            parse_and_validate(obj_or_raw, NOW_US)
        else:
            validate(obj_or_raw, NOW_US)
    return info.value


# ---- accepted records ---------------------------------------------------------------------------

def test_minimal_event_is_normalised():
    ev = validate(event(), NOW_US)
    assert ev.event_id == "e-1" and ev.event_type == "page_view" and ev.user_id == "u-1"
    assert ev.event_timestamp == int(dt.datetime(2026, 6, 15, 10, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
    assert ev.schema_version == 1 and ev.extra is None and ev.amount is None


@pytest.mark.parametrize("stamp, expected_utc", [
    ("2026-06-15T10:00:00Z", "2026-06-15T10:00:00"),
    ("2026-06-15T10:00:00.123456+00:00", "2026-06-15T10:00:00.123456"),
    ("2026-06-15T01:30:00+05:30", "2026-06-14T20:00:00"),     # local date ahead of UTC
    ("2026-06-14T20:00:00-08:00", "2026-06-15T04:00:00"),     # crosses midnight forward
    ("2026-06-15 10:00:00+02:00", "2026-06-15T08:00:00"),     # RFC 3339 allows a space
    (1781517600000, "2026-06-15T10:00:00"),                    # epoch milliseconds
])
def test_timestamps_are_normalised_to_utc(stamp, expected_utc):
    ev = validate(event(event_timestamp=stamp), NOW_US)
    got = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ev.event_timestamp)
    assert got.isoformat() == expected_utc


def test_timestamp_range_bounds_are_inclusive():
    validate(event(event_timestamp="2000-01-01T00:00:00Z"), NOW_US)
    validate(event(event_timestamp="2026-06-16T12:00:00Z"), NOW_US)  # receive time + exactly 24 h


def test_anonymous_only_event_is_accepted():
    ev = validate(event(user_id=..., anonymous_id="anon-9"), NOW_US)
    assert ev.user_id is None and ev.anonymous_id == "anon-9"


def test_unknown_fields_are_kept_in_extra():
    ev = validate(event(utm_source="newsletter", nested={"a": [1, 2]}), NOW_US)
    assert orjson.loads(ev.extra) == {"utm_source": "newsletter", "nested": {"a": [1, 2]}}


def test_purchase_amount_is_exact_decimal():
    ev = validate(event(event_type="purchase", amount=19.99, currency="EUR"), NOW_US)
    assert ev.amount == decimal.Decimal("19.99") and ev.currency == "EUR"
    ev = validate(event(event_type="refund", amount=0, currency="USD"), NOW_US)
    assert ev.amount == 0


def test_utf8_everywhere():
    raw = '{"event_id":"é-1","event_type":"search","user_id":"ユーザー","event_timestamp":"2026-06-15T10:00:00Z","properties":{"query":"crème brûlée 🍮"}}'.encode()
    ev = parse_and_validate(raw, NOW_US)
    assert ev.user_id == "ユーザー" and orjson.loads(ev.properties) == {"query": "crème brûlée 🍮"}


def test_nesting_of_exactly_ten_levels_is_accepted():
    deep: dict = {}
    node = deep
    for _ in range(9):
        node["x"] = {}
        node = node["x"]
    validate(event(properties=deep), NOW_US)  # 10 levels including the outer object


def test_record_of_exactly_one_mib_is_accepted():
    base = orjson.dumps(event(properties={"pad": ""}))
    pad = c.MAX_RECORD_BYTES - len(base)
    raw = orjson.dumps(event(properties={"pad": "x" * pad}))
    assert len(raw) == c.MAX_RECORD_BYTES
    parse_and_validate(raw, NOW_US)


def test_largest_accepted_values():
    ev = validate(event(schema_version=2**63 - 1), NOW_US)
    assert ev.schema_version == 2**63 - 1
    ev = parse_and_validate(b'{"event_id":"e","event_type":"purchase","user_id":"u","event_timestamp":'
                            b'"2026-06-15T10:00:00Z","amount":999999999999999.999999999,"currency":"USD"}', NOW_US)
    assert ev.amount == decimal.Decimal("999999999999999.999999999")  # exact: never through a float
    ev = parse_and_validate(b'{"event_id":"e","event_type":"purchase","user_id":"u","event_timestamp":'
                            b'"2026-06-15T10:00:00Z","amount":1.50000000000,"currency":"USD"}', NOW_US)
    assert ev.amount == decimal.Decimal("1.5")  # trailing zeros are not decimal places of the value


def test_ids_that_only_look_odd_are_accepted():
    ev = validate(event(event_id=" e-1 ", user_id="ユーザー"), NOW_US)
    assert ev.event_id == " e-1 " and ev.user_id == "ユーザー"


def test_equal_keys_in_different_objects_are_not_duplicates():
    raw = (b'{"event_id":"e","event_type":"page_view","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
           b'"properties":{"page":"/a","items":[{"id":1},{"id":2}]},"context":{"page":{"page":"/a"}}}')
    assert orjson.loads(parse_and_validate(raw, NOW_US).properties)["items"] == [{"id": 1}, {"id": 2}]


def test_duplicate_key_message_names_the_key():
    err = reject(b'{"event_id":"e","event_type":"x","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
                 b'"properties":{"q":"a, b","q":"c"}}')
    assert err.error_type == "duplicate_key" and "'q'" in err.message and err.stage == "parse"


def test_schema_version_and_platform_and_session():
    ev = validate(event(schema_version=3, platform="ios", session_id="s-1"), NOW_US)
    assert (ev.schema_version, ev.platform, ev.session_id) == (3, "ios", "s-1")


# ---- every error type ---------------------------------------------------------------------------

def _deep(levels: int) -> dict:
    deep: dict = {}
    node = deep
    for _ in range(levels - 1):
        node["x"] = {}
        node = node["x"]
    return deep


BAD = [
    ("invalid_encoding", b'{"event_id":"e","event_type":"x\xff"}'),
    ("record_too_large", b'{"pad":"' + b"x" * c.MAX_RECORD_BYTES + b'"}'),
    ("malformed_json", b'{"event_id": "e-1",'),
    ("not_an_object", b'["event_id", "e-1"]'),
    ("not_an_object", b'"just a string"'),
    ("missing_field", event(event_id=...)),
    ("missing_field", event(event_type=None)),
    ("missing_field", event(event_timestamp=...)),
    ("missing_identity", event(user_id=...)),
    ("missing_identity", event(user_id="", anonymous_id="")),
    ("invalid_type", event(event_id=17)),
    ("invalid_type", event(user_id=42)),
    ("invalid_type", event(event_type=["purchase"])),
    ("invalid_type", event(event_type="purchase", amount="12.00", currency="USD")),
    ("field_too_long", event(event_id="e" * 129)),
    ("field_too_long", event(session_id="s" * 129)),
    ("empty_field", event(event_id="")),
    ("invalid_event_type", event(event_type="Page View")),
    ("invalid_event_type", event(event_type="1st_event")),
    ("invalid_event_type", event(event_type="a" * 65)),
    ("invalid_event_type", event(event_type="page_view\n")),
    ("invalid_timestamp", event(event_timestamp="2026-06-15T10:00:00")),  # no offset
    ("invalid_timestamp", event(event_timestamp="yesterday at noon")),
    ("invalid_timestamp", event(event_timestamp="2026-06-15")),
    ("invalid_timestamp", event(event_timestamp=1781517600000.5)),
    ("invalid_timestamp", event(event_timestamp=True)),
    ("timestamp_out_of_range", event(event_timestamp="1999-12-31T23:59:59Z")),
    ("timestamp_out_of_range", event(event_timestamp="2026-06-16T12:00:01Z")),
    ("timestamp_out_of_range", event(event_timestamp=10**16)),
    ("invalid_platform", event(platform="windows")),
    ("invalid_platform", event(platform={"os": "web"})),
    ("missing_amount", event(event_type="purchase", currency="USD")),
    ("missing_amount", event(event_type="refund")),
    ("negative_amount", event(event_type="purchase", amount=-1.5, currency="USD")),
    ("invalid_amount", event(event_type="purchase", amount=1.0123456789, currency="USD")),
    ("invalid_amount", b'{"event_id":"e","event_type":"purchase","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z","amount":100000000000000000000000000000,"currency":"USD"}'),
    ("missing_currency", event(event_type="purchase", amount=5)),
    ("invalid_currency", event(event_type="purchase", amount=5, currency="usd")),
    ("invalid_currency", event(event_type="purchase", amount=5, currency="USDX")),
    ("invalid_currency", event(event_type="purchase", amount=5, currency=["USD"])),
    ("invalid_properties", event(properties="not an object")),
    ("invalid_properties", event(properties=[1, 2])),
    ("invalid_properties", event(context=5)),
    ("nesting_too_deep", event(properties=_deep(11))),
    ("nesting_too_deep", event(context={"a": [[[[[[[[[[1]]]]]]]]]]})),
    ("invalid_schema_version", event(schema_version=0)),
    ("invalid_schema_version", event(schema_version="1")),
    # ---- what a demanding user tried (issue 8)
    ("nesting_too_deep", b'{"event_id":"e","event_type":"x","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
                         b'"properties":' + b'{"a":' * 299 + b'{}' + b'}' * 299 + b'}'),
    ("nesting_too_deep", b'{"event_id":"e","event_type":"x","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
                         b'"properties":{"a":' + b'[' * 100_000 + b']' * 100_000 + b'}}'),
    ("invalid_schema_version", event(schema_version=2**64 - 1)),
    ("invalid_schema_version", event(schema_version=2**63)),
    ("invalid_id", event(event_id="   ")),
    ("invalid_id", event(event_id="e\x00")),
    ("invalid_id", event(user_id="\t \n")),
    ("invalid_id", event(anonymous_id="\u3000")),  # an ideographic space is whitespace too
    ("invalid_id", event(session_id="\x00")),
    ("invalid_amount", event(event_type="purchase", amount=1e20, currency="USD")),
    ("invalid_amount", b'{"event_id":"e","event_type":"purchase","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
                       b'"amount":100000000000000000000.000000001,"currency":"USD"}'),
    ("invalid_amount", event(event_type="purchase", amount=10**15, currency="USD")),
    ("duplicate_key", b'{"event_id":"e","event_type":"page_view","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
                      b'"event_type":"purchase"}'),
    ("duplicate_key", b'{"event_id":"e","event_type":"page_view","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
                      b'"properties":{"page":"/a","referrer":{"x":1,"x":2}}}'),
    ("duplicate_key", b'{"event_id":"e","event_type":"page_view","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
                      b'"user_\\u0069d":"v"}'),  # the same key, spelt with an escape
]


@pytest.mark.parametrize("expected, record", BAD, ids=[f"{e}-{i}" for i, (e, _) in enumerate(BAD)])
def test_bad_record_gets_its_stable_error_type(expected, record):
    err = reject(record if isinstance(record, bytes) else orjson.dumps(record))
    assert err.error_type == expected, err.message
    assert err.stage == c.ERROR_TYPES_BY_NAME[expected].stage
    assert err.message  # never empty: names the field and the rule


def test_every_record_level_error_type_is_covered_here():
    covered = {e for e, _ in BAD}
    not_record_level = {"unreadable_record", "unexpected_error", "enrich_failed", "invalid_country",
                        "bigquery_insert_error", "write_failed", *c.FILE_ERROR_TYPES}
    assert {e.name for e in c.ERROR_TYPES} - not_record_level == covered


def test_messages_name_the_field_and_what_is_accepted():
    err = reject(event(event_type="purchase", amount=5, currency="usd"))
    assert "`currency`" in err.message and "ISO 4217" in err.message
    err = reject(event(event_timestamp="2026-06-15T10:00:00"))
    assert "`event_timestamp`" in err.message and "offset" in err.message


def test_rejected_event_keeps_its_event_id():
    assert reject(event(platform="tv")).event_id == "e-1"


def test_decode_returns_the_object():
    assert decode(b'{"a": 1}') == {"a": 1}


# ---- user master rows ---------------------------------------------------------------------------

def test_user_row_is_validated():
    row = validate_user({"user_id": "u-1", "created_at": "2026-01-02T03:04:05+01:00", "country": "DE",
                         "plan": "pro", "traits": {"beta": True}}, NOW_US)
    assert row.user_id == "u-1" and row.country == "DE" and orjson.loads(row.traits) == {"beta": True}


@pytest.mark.parametrize("expected, row", [
    ("missing_field", {"created_at": "2026-01-02T03:04:05Z"}),
    ("missing_field", {"user_id": "u-1"}),
    ("invalid_type", {"user_id": 5, "created_at": "2026-01-02T03:04:05Z"}),
    ("invalid_timestamp", {"user_id": "u", "created_at": "2026-01-02"}),
    ("invalid_country", {"user_id": "u", "created_at": "2026-01-02T03:04:05Z", "country": "Germany"}),
    ("invalid_properties", {"user_id": "u", "created_at": "2026-01-02T03:04:05Z", "traits": "x"}),
])
def test_bad_user_rows(expected, row):
    with pytest.raises(Rejected) as info:
        validate_user(row, NOW_US)
    assert info.value.error_type == expected
