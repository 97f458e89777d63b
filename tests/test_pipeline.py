"""The batch job's steps: DoFns without a pipeline, composites in a TestPipeline."""

from __future__ import annotations

import datetime as dt
import pathlib

import apache_beam as beam
import orjson
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import reading
from strata_core import schemas
from beam_pipelines.reading import PlanRangesFn, ReadRangeFn
from beam_pipelines.records import FileOrigin, RecordBatch, source_key
from beam_pipelines.transforms import (DEAD_LETTERS, EnrichEvents, EnrichFn, ParseEvents, ParseFn, RowsPart,
                                       ValidateEvents, ValidateFn)

NOW_US = int(dt.datetime.now(dt.timezone.utc).timestamp()) * 1_000_000


def line(**fields) -> bytes:
    base = {"event_id": "e-1", "event_type": "page_view", "user_id": "u-1", "event_timestamp": "2026-06-15T10:00:00Z"}
    base.update(fields)
    return orjson.dumps(base)


def chunk(records: list, fmt: str = "ndjson") -> RecordBatch:
    origin = FileOrigin("/data/in.jsonl", fmt)
    return RecordBatch(origin, f"{origin.key}-0000000", list(range(1, len(records) + 1)), records, NOW_US)


def split(outputs):
    main = [o for o in outputs if not isinstance(o, beam.pvalue.TaggedOutput)]
    dead = [o.value for o in outputs if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == DEAD_LETTERS]
    return main, dead


# ---- reading ------------------------------------------------------------------------------------

def _read_file(path: pathlib.Path, range_bytes: int) -> list[tuple[int, bytes]]:
    ranges = list(PlanRangesFn(range_bytes=range_bytes).process(str(path)))
    out = []
    reader = ReadRangeFn()
    for r in ranges:
        for ch in reader.process(r):
            out.extend(zip(ch.positions, ch.records))
    return out


def test_ranges_keep_file_line_numbers_blank_lines_and_crlf(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [line(event_id=f"e-{i}") for i in range(1, 41)]
    body = b""
    for i, ln in enumerate(lines, 1):
        body += ln + (b"\r\n" if i % 3 == 0 else b"\n")
        if i % 7 == 0:
            body += b"   \n"  # a blank line still counts as a line
    path.write_bytes(body + lines[0])  # last line without a line break
    expected, number = [], 0
    for i, ln in enumerate(lines, 1):
        number += 1
        expected.append((number, ln))
        if i % 7 == 0:
            number += 1
    expected.append((number + 1, lines[0]))
    for range_bytes in (50, 333, 10_000):  # many ranges, some ranges, one range
        assert _read_file(path, range_bytes) == expected


def test_gzip_and_byte_order_mark_are_read(tmp_path):
    import gzip

    body = b"\xef\xbb\xbf" + line(event_id="e-1") + b"\r\n\n" + line(event_id="e-2") + b"\n"
    (tmp_path / "bom.jsonl").write_bytes(body)
    with gzip.open(tmp_path / "bom.jsonl.gz", "wb") as f:
        f.write(body)
    expected = [(1, line(event_id="e-1")), (3, line(event_id="e-2"))]
    assert _read_file(tmp_path / "bom.jsonl", 10_000) == expected
    assert _read_file(tmp_path / "bom.jsonl.gz", 10_000) == expected


def test_ranges_split_only_at_line_breaks(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(line(event_id=f"e-{i}") for i in range(100)) + b"\n")
    ranges = list(PlanRangesFn(range_bytes=500).process(str(path)))
    assert len(ranges) > 5
    data = path.read_bytes()
    for r in ranges:
        assert data[r.end - 1:r.end] == b"\n"
        assert data[:r.start].count(b"\n") + 1 == r.first_line


def test_unknown_extension_is_refused_before_launch():
    with pytest.raises(ValueError, match="--input_format"):
        reading.detect_format("events.csv")
    assert reading.detect_format("x/events.jsonl.gz") == "ndjson"
    assert reading.detect_format("x/e.avro") == "avro"


def test_glob_matching_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="matched no files"):
        reading.expand_inputs([str(tmp_path / "*.jsonl")])


# ---- ParseFn / ValidateFn / EnrichFn without a pipeline -----------------------------------------

def parsed_positions(parsed) -> list:
    """Positions of the records a ParsedChunk carries on, by either path."""
    return sorted(parsed.positions + (parsed.fast.positions if parsed.fast else []))


def test_parse_sends_undecodable_records_to_dead_letters_with_original_bytes():
    raws = [line(), b"{broken", b"[1,2]", b'{"a":"\xff"}']
    (parsed,), dead = split(list(ParseFn().process(chunk(raws))))
    assert parsed_positions(parsed) == [1]
    (batch,) = dead
    assert [(r["error_type"], r["raw_payload"], r["stage"]) for r in batch.rows] == [
        ("malformed_json", b"{broken", "parse"), ("not_an_object", b"[1,2]", "parse"),
        ("invalid_encoding", b'{"a":"\xff"}', "decode")]
    attrs = orjson.loads(batch.rows[0]["attributes"])
    assert attrs == {"source_file": "/data/in.jsonl", "source_line": 2, "format": "ndjson"}


def test_validate_routes_each_rule_breach_and_keeps_the_rest():
    raws = [line(), line(event_id="e-2", event_type="purchase"), line(event_id="e-3", platform="tv")]
    (parsed,), _ = split(list(ParseFn().process(chunk(raws))))
    (valid,), dead = split(list(ValidateFn().process(parsed)))
    assert valid.positions == [1] and valid.table.column("event_id").to_pylist() == ["e-1"]
    assert sorted((r["error_type"], r["event_id"], r["raw_payload"]) for r in dead[0].rows) == [
        ("invalid_platform", "e-3", raws[2]), ("missing_amount", "e-2", raws[1])]


def test_hostile_records_are_typed_dead_letters_on_the_fast_path_too():
    deep = line(event_id="e-deep").replace(b'"event_id"', b'"properties":' + b'{"a":' * 299 + b'{}' + b'}' * 299
                                           + b',"event_id"')
    raws = [line(event_id="e-ok"), deep, line(event_id="e-v", schema_version=2**64 - 1),
            line(event_id="e-ws", user_id=" \t "), line(event_id="e-nul", anonymous_id="a\x00"),
            line(event_id="e-amt", event_type="purchase", amount=1e20, currency="USD"),
            line(event_id="e-dup")[:-1] + b',"user_id":"u-2"}']
    (parsed,), dead_p = split(list(ParseFn().process(chunk(raws))))
    (valid,), dead_v = split(list(ValidateFn().process(parsed)))
    assert valid.table.column("event_id").to_pylist() == ["e-ok"] and not valid.records
    got = {r["row_key"].rsplit("-", 1)[1]: r["error_type"] for b in dead_p + dead_v for r in b.rows}
    assert got == {"2": "nesting_too_deep", "3": "invalid_schema_version", "4": "invalid_id", "5": "invalid_id",
                   "6": "invalid_amount", "7": "duplicate_key"}


def test_a_validator_bug_dead_letters_instead_of_crashing(monkeypatch):
    from beam_pipelines import transforms

    def boom(obj, received_us, texts=None):
        raise KeyError("bug")

    monkeypatch.setattr(transforms, "validate", boom)
    (parsed,), _ = split(list(ParseFn().process(chunk([line(user_id="ユーザー")]))))
    (valid,), dead = split(list(ValidateFn().process(parsed)))
    assert valid.records == [] and dead[0].rows[0]["error_type"] == "unexpected_error"
    assert "KeyError" in orjson.loads(dead[0].rows[0]["attributes"])["stacktrace"]


def test_enrich_builds_raw_rows_and_signup_users():
    raws = [line(event_timestamp="2026-06-14T23:30:00-08:00", amount=3.5, currency="USD", event_type="purchase",
                 utm="x"),
            line(event_id="e-2", event_type="signup", properties={"plan": "pro", "country": "FR"})]
    (parsed,), _ = split(list(ParseFn().process(chunk(raws))))
    (valid,), _ = split(list(ValidateFn().process(parsed)))
    outputs = list(EnrichFn().process(valid))
    (events,) = [o for o in outputs if isinstance(o, RowsPart)]
    users = [o.value for o in outputs if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == "users"]
    assert events.rows.schema == schemas.arrow_schema("events")
    rows = sorted(events.rows.to_pylist(), key=lambda r: r["source_line"])
    assert rows[0]["event_date"] == dt.date(2026, 6, 15)  # UTC date, not the producer's local date
    assert str(rows[0]["amount"]) == "3.500000000" and orjson.loads(rows[0]["extra"]) == {"utm": "x"}
    assert rows[0]["row_key"] == f"{source_key('/data/in.jsonl')}-1" and rows[0]["source_line"] == 1
    assert rows[0]["ingest_source"] == "batch" and rows[0]["pipeline_version"]
    (user_part,) = users
    assert user_part.rows.to_pylist()[0]["plan"] == "pro" and user_part.rows.to_pylist()[0]["country"] == "FR"


def test_typed_records_from_avro_or_parquet_are_parsed():
    record = {"event_id": "e-1", "event_type": "page_view", "user_id": "u", "anonymous_id": None,
              "event_timestamp": "2026-06-15T10:00:00Z", "properties": '{"page": "/"}', "amount": None}
    (parsed,), dead = split(list(ParseFn().process(chunk([record], fmt="avro"))))
    assert not dead and parsed.objects[0]["properties"] == {"page": "/"} and "anonymous_id" not in parsed.objects[0]


# ---- composites in a TestPipeline ----------------------------------------------------------------

def _pipeline():
    return TestPipeline(runner=FnApiRunner(), options=PipelineOptions([]))


def test_composites_conserve_every_record():
    raws = [line(event_id=f"e-{i}") for i in range(10)] + [b"nope", line(event_id="x", platform="tv")]
    with _pipeline() as p:
        parsed = p | beam.Create([chunk(raws)]) | "ParseEvents" >> ParseEvents()
        valid = parsed.parsed | "ValidateEvents" >> ValidateEvents()
        enriched = valid.valid | "EnrichEvents" >> EnrichEvents()
        accepted = enriched.events | "CountRows" >> beam.Map(lambda part: part.rows.num_rows)
        dead = ((parsed.dead_letters, valid.dead_letters, enriched.dead_letters) | beam.Flatten()
                | beam.FlatMap(lambda b: [(r["error_type"], r["row_key"].rsplit("-", 1)[1]) for r in b.rows]))
        assert_that(accepted, equal_to([10]), label="Accepted")
        assert_that(dead, equal_to([("malformed_json", "11"), ("invalid_platform", "12")]), label="Dead")


# ---- one set of steps for files and messages -------------------------------------------------------

def _run_steps(batch):
    (parsed,), dead_p = split(list(ParseFn().process(batch)))
    (valid,), dead_v = split(list(ValidateFn().process(parsed)))
    outputs = list(EnrichFn().process(valid))
    (events,) = [o for o in outputs if isinstance(o, RowsPart)]
    dead = [r for b in dead_p + dead_v for r in b.rows]
    return events.rows.to_pylist(), dead


def test_messages_and_file_lines_run_through_the_same_steps_with_the_same_dead_letters():
    from beam_pipelines.records import Message, SubscriptionOrigin

    payloads = [line(event_id="e-1"), b"{broken", line(event_id="e-3", platform="tv"), line(event_id="e-4")]
    file_rows, file_dead = _run_steps(chunk(payloads))
    origin = SubscriptionOrigin("projects/strata-local/subscriptions/critical")
    messages = [Message(f"m-{i}", NOW_US, {"event_type": "page_view", "source": "collector"})
                for i in range(1, len(payloads) + 1)]
    msg_rows, msg_dead = _run_steps(RecordBatch(origin, "batch-1", messages, payloads, NOW_US))

    # The same records are accepted and the same ones dead-lettered, with the same types and bytes.
    msg_rows.sort(key=lambda r: r["message_id"])
    file_rows.sort(key=lambda r: r["source_line"])
    assert [r["event_id"] for r in msg_rows] == [r["event_id"] for r in file_rows] == ["e-1", "e-4"]
    assert ([(d["error_type"], d["stage"], d["raw_payload"]) for d in msg_dead]
            == [(d["error_type"], d["stage"], d["raw_payload"]) for d in file_dead]
            == [("malformed_json", "parse", b"{broken"), ("invalid_platform", "validate", payloads[2])])
    # Only the origin columns differ.
    assert file_rows[0]["ingest_source"] == "batch" and file_rows[0]["source_line"] == 1
    assert msg_rows[0]["ingest_source"] == "stream" and msg_rows[0]["message_id"] == "m-1"
    assert msg_rows[0]["source_line"] is None and msg_rows[0]["source_file"] == origin.subscription
    assert msg_rows[1]["row_key"] == f"{origin.key}-m-4"
    attrs = orjson.loads(msg_dead[0]["attributes"])
    assert attrs == {"subscription": origin.subscription, "message_id": "m-2", "publish_time_us": NOW_US,
                     "attributes": {"event_type": "page_view", "source": "collector"}}
    assert msg_dead[0]["row_key"] == f"{origin.key}-m-2"


def test_user_files_have_steps_of_their_own():
    from beam_pipelines.transforms import EnrichUsersFn, ValidateUsersFn

    users = [orjson.dumps({"user_id": "u-1", "created_at": "2026-01-02T03:04:05Z", "country": "DE"}),
             orjson.dumps({"user_id": "u-2", "created_at": "2026-01-02T03:04:05Z", "country": "Germany"})]
    (parsed,), _ = split(list(ParseFn(kind="users").process(chunk(users))))
    (valid,), dead = split(list(ValidateUsersFn().process(parsed)))
    assert [d["error_type"] for d in dead[0].rows] == ["invalid_country"]
    (part,) = list(EnrichUsersFn().process(valid))
    assert part.table == "users" and part.rows.to_pylist()[0]["user_source"] == "user_file"
    assert part.rows.schema == schemas.arrow_schema("users")


def test_a_batch_with_no_valid_event_goes_through_every_step():
    """Every record refused (here: over the size limit, so the fast path takes none): Enrich
    still runs on the empty result, and every record is a dead letter (pyarrow 25 crashed on the
    empty chunked columns this builds)."""
    from strata_core import contract as c

    big = line(properties={"blob": "x" * (c.MAX_RECORD_BYTES + 10)})
    rows, dead = _run_steps(chunk([big, big]))
    assert rows == [] and [d["error_type"] for d in dead] == ["record_too_large", "record_too_large"]
