"""The Strata event contract, v1: the single declaration every other schema derives from.

Everything that knows what an event looks like reads this module:

* ``beam_pipelines.validation``  – the rule-by-rule validator (rules come from ``FIELDS``,
  ``EVENT_TYPES`` and the cross-field rules below), the authority on every error type;
* ``beam_pipelines.fastpath``    – the compiled decoder (msgspec Structs with the same length,
  range and enum rules) and the columnar checks and row builder of the fast path;
* ``strata_core.schemas``     – BigQuery, Avro and Arrow schemas of the raw tables;
* ``strata.docs``                – ``docs/events.md`` (generated, checked in, tested for drift);
* ``strata.generator``           – the synthetic event generator.

Add a field or an event type here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

CONTRACT_VERSION = 1
PIPELINE_VERSION = "strata-0.1.0"

#: Records larger than this (encoded bytes) are rejected with ``record_too_large``.
MAX_RECORD_BYTES = 1024 * 1024
#: A rejected record's bytes are kept whole up to this size; of a longer NDJSON line (a 10 GB line
#: of a gzip bomb) only the first this many bytes are held, read and dead-lettered.
MAX_KEPT_RECORD_BYTES = 16 * 1024 * 1024
#: ``properties`` / ``context`` may nest at most this many levels (the object itself is level 1).
MAX_NESTING_LEVELS = 10
#: Earliest accepted ``event_timestamp`` (inclusive), UTC.
MIN_EVENT_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
#: Latest accepted ``event_timestamp`` relative to the receive time.
MAX_FUTURE_SKEW = dt.timedelta(hours=24)
#: Money is exact: NUMERIC(38, 9) on BigQuery, DECIMAL(38, 9) in DuckDB/Arrow.
AMOUNT_PRECISION = 38
AMOUNT_SCALE = 9
#: Amounts must be below this. NUMERIC(38, 9) stores values below 10^29, but the marts add amounts
#: up (a day's revenue) and scale them by 10^9 for exact division (``money_divide``), so one amount
#: near the storage limit would overflow every later ``strata transform``. 10^15 leaves room for
#: sums of 10^5 maximal amounts even after that scaling, far beyond any real day.
AMOUNT_LIMIT_EXPONENT = 15
AMOUNT_LIMIT = 10 ** AMOUNT_LIMIT_EXPONENT
#: ``integer`` fields are INT64 in every sink.
INT64_MAX = 2 ** 63 - 1
#: The duplicate-key rule. RFC 8259 leaves duplicate keys' meaning open and readers disagree (Python
#: keeps the last value, DuckDB's JSON functions find the first, Snowflake refuses the object), so a
#: record in which any object -- the record itself, ``properties``, ``context`` or anything nested --
#: holds the same key twice is rejected as ``duplicate_key``: no reader downstream can see a value
#: the validator did not check.
DUPLICATE_KEYS = "reject"


@dataclasses.dataclass(frozen=True)
class Field:
    """One top-level field of an event, or one column the pipeline adds.

    ``kind`` is the logical type: ``string``, ``enum``, ``timestamp``, ``decimal``, ``integer``,
    ``json`` (a JSON object, stored as JSON text), ``date``, ``bytes``. Each kind has its rules
    (see ``beam_pipelines/validation.py``); the attributes below parameterise them, and both the
    validator and the compiled fast decoder read them, so a field declared here is checked,
    stored and documented with no other change.
    """

    name: str
    kind: str
    description: str
    required: bool = False
    max_length: int | None = None
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    default: object = None
    #: ``contract`` fields arrive in the event; ``pipeline`` fields are added by Strata.
    origin: str = "contract"
    #: An id: rejected (``invalid_id``) when it is only whitespace or holds a NUL character.
    identifier: bool = False
    #: ``integer`` / ``decimal``: smallest accepted value (inclusive).
    minimum: int | None = None
    #: The error type of a value that breaks this field's own rule (pattern, choices, range,
    #: format); ``invalid_type`` when unset.
    error_type: str | None = None
    #: The error type of a value of the wrong JSON type, when it is not ``invalid_type``.
    type_error: str | None = None
    #: What is accepted, in words, for error messages.
    hint: str | None = None
    #: Fields that must be present whenever this one is (``missing_<name>`` otherwise).
    requires: tuple[str, ...] = ()


FIELDS: tuple[Field, ...] = (
    Field("event_id", "string", "Producer-assigned id; the dedupe key downstream.",
          required=True, max_length=128, identifier=True, hint="a unique string id of 1-128 characters"),
    Field("event_type", "string", "Snake-case event name, e.g. `purchase`.",
          required=True, pattern=r"^[a-z][a-z0-9_]{0,63}$", error_type="invalid_event_type",
          hint="lower-case snake case, at most 64 characters"),
    Field("user_id", "string", "Known user id. At least one of `user_id` / `anonymous_id` is present.",
          max_length=128, identifier=True),
    Field("anonymous_id", "string", "Device or cookie id for users not (yet) identified.",
          max_length=128, identifier=True),
    Field("session_id", "string", "Producer session id (Strata also derives its own sessions).",
          max_length=128, identifier=True),
    Field("event_timestamp", "timestamp",
          "RFC 3339 string with an offset, or integer epoch milliseconds. Normalised to UTC; "
          "must lie in [2000-01-01, receive time + 24 h].", required=True, error_type="invalid_timestamp",
          hint="an RFC 3339 string with offset (2026-01-31T12:00:00+01:00) or epoch milliseconds"),
    Field("platform", "enum", "Where the event came from.",
          choices=("web", "ios", "android", "server"), error_type="invalid_platform"),
    Field("amount", "decimal", f"Money amount, >= 0, below 10^{AMOUNT_LIMIT_EXPONENT}, at most "
          f"{AMOUNT_SCALE} decimal places. Required for `purchase` and `refund`.",
          minimum=0, error_type="invalid_amount", requires=("currency",)),
    Field("currency", "string", "ISO 4217 code; required when `amount` is present.",
          pattern=r"^[A-Z]{3}$", error_type="invalid_currency", type_error="invalid_currency",
          hint="three upper-case letters, ISO 4217, e.g. \"USD\""),
    Field("properties", "json", f"Event-specific JSON object, nesting <= {MAX_NESTING_LEVELS} levels.",
          error_type="invalid_properties"),
    Field("context", "json", "Client context JSON object (device, page, campaign ...).",
          error_type="invalid_properties"),
    Field("schema_version", "integer", "Contract version the producer targeted.", default=1, minimum=1,
          error_type="invalid_schema_version"),
    # ---- added by the pipeline -------------------------------------------------------------
    Field("event_date", "date", "UTC date of `event_timestamp`; the partition column.",
          origin="pipeline", required=True),
    Field("received_at", "timestamp", "When Strata received the record (UTC).",
          origin="pipeline", required=True),
    Field("ingest_source", "enum", "Which path ingested the record.", origin="pipeline",
          required=True, choices=("batch", "stream", "api")),
    Field("source_file", "string", "Input file (batch) or subscription (stream).", origin="pipeline"),
    Field("source_line", "integer", "1-based line / record number in `source_file`.",
          origin="pipeline"),
    Field("message_id", "string", "Pub/Sub message id (stream).", origin="pipeline"),
    Field("row_key", "string", "Stable hash of (source, position): re-ingesting the same input "
          "rewrites the same rows instead of adding new ones.", origin="pipeline", required=True),
    Field("pipeline_version", "string", "Strata version that wrote the row.", origin="pipeline",
          required=True),
    Field("extra", "json", "Unknown top-level fields, kept verbatim as a JSON object.",
          origin="pipeline"),
)

FIELDS_BY_NAME = {f.name: f for f in FIELDS}
CONTRACT_FIELDS = tuple(f for f in FIELDS if f.origin == "contract")
CONTRACT_FIELD_NAMES = frozenset(f.name for f in CONTRACT_FIELDS)
#: At least one of these must be a non-empty string (``missing_identity``); checked once the last
#: of them has been checked.
IDENTITY_FIELDS = ("user_id", "anonymous_id")


@dataclasses.dataclass(frozen=True)
class EventType:
    """A known event type. Unknown types matching the pattern are accepted too (open schema)."""

    name: str
    description: str
    requires: tuple[str, ...] = ()
    #: Critical events also flow through the streaming job.
    critical: bool = False
    #: ``properties`` keys the generator emits and the dbt layer extracts.
    properties: tuple[str, ...] = ()


EVENT_TYPES: tuple[EventType, ...] = (
    EventType("page_view", "A page or screen was shown.", properties=("page", "referrer")),
    EventType("view_item", "A product detail was viewed.", properties=("item_id", "category", "price")),
    EventType("add_to_cart", "An item was added to the cart.", properties=("item_id", "quantity", "price")),
    EventType("begin_checkout", "Checkout started.", properties=("cart_value", "item_count")),
    EventType("purchase", "An order was paid.", requires=("amount", "currency"), critical=True,
              properties=("order_id", "item_count")),
    EventType("refund", "An order was (partly) refunded.", requires=("amount", "currency"),
              critical=True, properties=("order_id", "reason")),
    EventType("signup", "A user account was created.", critical=True, properties=("plan", "country", "method")),
    EventType("error", "A client or server error.", critical=True, properties=("code", "message")),
    EventType("search", "A search was run.", properties=("query", "results")),
)
EVENT_TYPES_BY_NAME = {t.name: t for t in EVENT_TYPES}
CRITICAL_EVENT_TYPES = frozenset(t.name for t in EVENT_TYPES if t.critical)


# ---- dead letters ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ErrorType:
    name: str
    stage: str
    description: str


#: Stable error types. Never rename one: dashboards and replays key on them.
ERROR_TYPES: tuple[ErrorType, ...] = (
    ErrorType("invalid_encoding", "decode", "Bytes are not valid UTF-8."),
    ErrorType("record_too_large", "decode", f"Record is over {MAX_RECORD_BYTES} bytes."),
    ErrorType("malformed_json", "parse", "Not parseable as JSON."),
    ErrorType("not_an_object", "parse", "Valid JSON, but not an object."),
    ErrorType("duplicate_key", "parse", "An object in the record (the record itself or any nested one) "
              "holds the same key twice."),
    ErrorType("unreadable_record", "decode", "An Avro/Parquet record could not be converted."),
    ErrorType("missing_field", "validate", "A required field is absent or null."),
    ErrorType("missing_identity", "validate", "Neither `user_id` nor `anonymous_id` is present."),
    ErrorType("invalid_type", "validate", "A field has the wrong JSON type."),
    ErrorType("field_too_long", "validate", "A string field is over its maximum length."),
    ErrorType("empty_field", "validate", "A required string field is empty."),
    ErrorType("invalid_id", "validate", "An id is only whitespace or holds a NUL character."),
    ErrorType("invalid_event_type", "validate", "`event_type` does not match ^[a-z][a-z0-9_]{0,63}$."),
    ErrorType("invalid_timestamp", "validate", "`event_timestamp` is not RFC 3339 with offset or epoch ms."),
    ErrorType("timestamp_out_of_range", "validate", "`event_timestamp` is before 2000-01-01 or > 24 h ahead."),
    ErrorType("invalid_platform", "validate", "`platform` is not one of web, ios, android, server."),
    ErrorType("missing_amount", "validate", "A purchase/refund has no `amount`."),
    ErrorType("negative_amount", "validate", "`amount` is below zero."),
    ErrorType("invalid_amount", "validate", f"`amount` is not a number below 10^{AMOUNT_LIMIT_EXPONENT} "
              f"with <= {AMOUNT_SCALE} decimals."),
    ErrorType("missing_currency", "validate", "`amount` is present without `currency`."),
    ErrorType("invalid_currency", "validate", "`currency` does not match ^[A-Z]{3}$."),
    ErrorType("invalid_properties", "validate", "`properties` or `context` is not a JSON object."),
    ErrorType("nesting_too_deep", "validate", f"`properties`/`context` nest deeper than {MAX_NESTING_LEVELS} levels."),
    ErrorType("invalid_schema_version", "validate", "`schema_version` is not an integer in [1, 2^63 - 1]."),
    ErrorType("invalid_country", "validate", "A user's `country` is not two upper-case letters."),
    ErrorType("unexpected_error", "validate", "A bug: the record raised an unexpected exception (see stacktrace)."),
    ErrorType("enrich_failed", "enrich", "The record passed validation but could not be converted to a raw row."),
    ErrorType("truncated_file", "decode", "A file ends before its compression or container format does "
              "(cut short): the records before the cut are ingested, the file is reported."),
    ErrorType("corrupt_file", "decode", "A file is not what its extension or `--format` says, or its "
              "compressed data is damaged (not gzip, random bytes, Avro read as Parquet)."),
    ErrorType("unreadable_file", "decode", "A file could not be opened or read (missing, permission "
              "denied, I/O error)."),
    ErrorType("bigquery_insert_error", "write", "BigQuery refused the row."),
    ErrorType("write_failed", "write", "The sink could not write the row."),
)
ERROR_TYPES_BY_NAME = {e.name: e for e in ERROR_TYPES}
STAGES = ("decode", "parse", "validate", "enrich", "write")
#: Error types of a whole input file (one dead letter per file, not per record).
FILE_ERROR_TYPES = ("truncated_file", "corrupt_file", "unreadable_file")

#: Dead-letter table columns, modelled on Google's PubSubToBigQuery error table.
DEAD_LETTER_FIELDS: tuple[Field, ...] = (
    Field("failed_at", "timestamp", "When the record failed.", required=True, origin="pipeline"),
    Field("source", "enum", "Which path saw the record.", required=True, origin="pipeline",
          choices=("batch", "stream", "api", "replay")),
    Field("stage", "enum", "Pipeline stage that rejected it.", required=True, origin="pipeline",
          choices=STAGES),
    Field("error_type", "string", "Stable error type, see the table below.", required=True,
          origin="pipeline"),
    Field("error_message", "string", "Human-readable: the field, the rule, what is accepted.",
          required=True, origin="pipeline"),
    Field("raw_payload", "bytes", "The exact original bytes.", required=True, origin="pipeline"),
    Field("attributes", "json", "File and line, or Pub/Sub message attributes.", origin="pipeline"),
    Field("event_id", "string", "The event id when it could be read.", origin="pipeline"),
    Field("row_key", "string", "Stable hash of (source, position).", required=True, origin="pipeline"),
    Field("pipeline_version", "string", "Strata version that wrote the row.", required=True,
          origin="pipeline"),
    Field("replay_count", "integer", "How many times this payload was replayed.", required=True,
          origin="pipeline", default=0),
)

#: User master rows, from ``signup`` events and optional user files.
USER_FIELDS: tuple[Field, ...] = (
    Field("user_id", "string", "User id.", required=True, max_length=128, identifier=True),
    Field("created_at", "timestamp", "Account creation time (UTC).", required=True,
          hint="an RFC 3339 string with offset (2026-01-31T12:00:00+01:00) or epoch milliseconds"),
    Field("country", "string", "ISO 3166-1 alpha-2 country code.", pattern=r"^[A-Z]{2}$"),
    Field("plan", "string", "Subscription plan."),
    Field("traits", "json", "Other user traits.", error_type="invalid_properties"),
    Field("user_source", "enum", "Where the row came from.", origin="pipeline", required=True,
          choices=("signup_event", "user_file")),
    Field("source_file", "string", "Input file.", origin="pipeline"),
    Field("source_line", "integer", "1-based line in `source_file`.", origin="pipeline"),
    Field("row_key", "string", "Stable hash of (source, position).", origin="pipeline", required=True),
    Field("received_at", "timestamp", "When Strata received the record (UTC).", origin="pipeline",
          required=True),
    Field("pipeline_version", "string", "Strata version that wrote the row.", origin="pipeline",
          required=True),
)

#: The replay log: one row per dead letter per replay that changed something. The lake is
#: append-only, so a replay does not rewrite ``raw.dead_letters``: it marks a dead letter
#: replayed here (``outcome`` accepted: its event is now in ``raw.events`` under the same
#: ``row_key``), and a dead letter that still fails gets a new ``raw.dead_letters`` row with
#: ``replay_count + 1``. The current state of a dead letter is its highest ``replay_count`` row.
REPLAY_OUTCOMES = ("accepted", "failed")
DEAD_LETTER_REPLAY_FIELDS: tuple[Field, ...] = (
    Field("row_key", "string", "The dead letter's `row_key` (and the accepted event's).", required=True,
          origin="pipeline"),
    Field("replayed_at", "timestamp", "When the replay ran (UTC).", required=True, origin="pipeline"),
    Field("replay_id", "string", "Id of the replay run (a hash of the dead letters it replayed).",
          required=True, origin="pipeline"),
    Field("outcome", "enum", "accepted, or failed (again).", required=True, origin="pipeline",
          choices=REPLAY_OUTCOMES),
    Field("error_type", "string", "The new error type when it failed again.", origin="pipeline"),
    Field("replay_count", "integer", "The dead letter's replay count after this replay.", required=True,
          origin="pipeline"),
    Field("event_id", "string", "The event id when it could be read.", origin="pipeline"),
    Field("pipeline_version", "string", "Strata version that replayed it.", required=True, origin="pipeline"),
)

#: Per-minute counts of accepted events by ``event_type``, from the streaming job's event-time
#: windows. Each firing of a window (a *pane*) writes the window's full count so far
#: (accumulating panes); a later pane supersedes an earlier one for the same
#: ``(window_start, event_type)``: read the row with the highest ``pane_index``.
PANE_TIMINGS = ("EARLY", "ON_TIME", "LATE")
EVENT_COUNT_FIELDS: tuple[Field, ...] = (
    Field("window_start", "timestamp", "Start of the event-time window (inclusive, UTC).", required=True,
          origin="pipeline"),
    Field("window_end", "timestamp", "End of the event-time window (exclusive, UTC).", required=True,
          origin="pipeline"),
    Field("event_type", "string", "Event type counted.", required=True, origin="pipeline"),
    Field("count_events", "integer", "Accepted events of this type in the window, as of this pane.",
          required=True, origin="pipeline"),
    Field("pane_timing", "enum", "EARLY (before the watermark passed the window's end), ON_TIME "
          "(when it did) or LATE (late data within the allowed lateness).", required=True,
          origin="pipeline", choices=PANE_TIMINGS),
    Field("pane_index", "integer", "0, 1, 2 ... per window and event type; the highest is current.",
          required=True, origin="pipeline"),
    Field("emitted_at", "timestamp", "When the pane was emitted (processing time, UTC).", required=True,
          origin="pipeline"),
    Field("pipeline_version", "string", "Strata version that wrote the row.", origin="pipeline",
          required=True),
)

EVENT_TYPE_RE = re.compile(FIELDS_BY_NAME["event_type"].pattern)
#: Lower snake case, 1 to 64 characters: event types, metric names, property and feature keys.
#: Use ``fullmatch`` (a ``$`` anchor would also accept a trailing newline).
SNAKE_CASE_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
CURRENCY_RE = re.compile(FIELDS_BY_NAME["currency"].pattern)
