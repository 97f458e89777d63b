"""The streaming job's steps without Pub/Sub: per-minute counts (TestStream, watermark moved by
hand), the local runner's windowing against Beam's, the micro-batch graph against a Beam runner,
dead-letter messages, and the Dataflow graph's shape."""

from __future__ import annotations

import time

import apache_beam as beam
import orjson
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from beam_pipelines.local_stream import LocalEventCounts, local_graph
from beam_pipelines.microbatch import MicroBatchGraph, UnsupportedStep
from beam_pipelines.records import Message, RecordBatch, SubscriptionOrigin
from beam_pipelines.stream import CountEventsPerMinute, dead_letter_message, ingest_steps
from beam_pipelines.transforms import RowsPart
from tests.stream_helpers import event

US = 1_000_000


def part(*events) -> RowsPart:
    """A RowsPart with just the columns the counts read: (event_type, event time in seconds)."""
    return RowsPart("events", "p", pa.table({
        "event_type": [e for e, _ in events],
        "event_timestamp": pa.array([int(t * US) for _, t in events], pa.timestamp("us", tz="UTC"))}))


# One timeline for both implementations: (action, argument).
TIMELINE = [
    ("watermark", 0),
    ("events", [("purchase", 5), ("purchase", 20), ("signup", 30)]),
    ("processing_time", 11),                # early pane: 10 s of processing time passed
    ("events", [("purchase", 50)]),
    ("watermark", 61),                      # window [0, 60) is on time
    ("events", [("purchase", 40)]),         # late, within the allowed lateness of 100 s
    ("events", [("refund", 70)]),           # on time for window [60, 120)
    ("watermark", 200),                     # [0, 60) closes for good (60 + 100 <= 200)
    ("events", [("purchase", 10)]),         # later than the allowed lateness: not counted
]
EXPECTED = [
    (0, "purchase", 2, "EARLY", 0), (0, "signup", 1, "EARLY", 0),
    (0, "purchase", 3, "ON_TIME", 1), (0, "signup", 1, "ON_TIME", 1),
    (0, "purchase", 4, "LATE", 2),
    (60, "refund", 1, "ON_TIME", 0),
]


def pane_tuple(row: dict) -> tuple:
    return (int(row["window_start"].timestamp()), row["event_type"], row["count_events"], row["pane_timing"],
            row["pane_index"])


def test_per_minute_counts_fire_early_on_time_and_late_panes_with_test_stream():
    stream = BeamTestStream()
    watermark = 0
    for action, arg in TIMELINE:
        if action == "watermark":
            stream = stream.advance_watermark_to(arg)
            watermark = arg
        elif action == "processing_time":
            stream = stream.advance_processing_time(arg)
        else:
            stream = stream.add_elements([TimestampedValue(part(*arg), max(watermark, 0))])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(runner=BundleBasedDirectRunner(), options=options) as p:
        rows = p | stream | CountEventsPerMinute(window_sec=60, allowed_lateness_sec=100)
        assert_that(rows | beam.Map(pane_tuple), equal_to(EXPECTED))


def test_the_local_runner_counts_like_beam():
    counts = LocalEventCounts(window_sec=60, allowed_lateness_sec=100)
    watermark_us, now_us, rows = 0, 0, []
    for action, arg in TIMELINE:
        if action == "watermark":
            watermark_us = arg * US
        elif action == "processing_time":
            now_us += arg * US
        else:
            counts.add([part(*arg)], watermark_us)
        rows += counts.fire(watermark_us, now_us)
    assert sorted(map(pane_tuple, rows)) == sorted(EXPECTED)
    assert counts.dropped_late == 1
    assert not any(start == 0 for start, _ in counts.state), "state of a closed window is dropped"


def _batch(payloads):
    origin = SubscriptionOrigin("projects/strata-local/subscriptions/s-test")
    now_us = time.time_ns() // 1000
    positions = [Message(f"m-{i}", now_us, {"source": "collector"}) for i in range(len(payloads))]
    return RecordBatch(origin, "b-1", positions, payloads, now_us)


def steps_and_dead_letters(batches) -> dict:
    steps = ingest_steps(batches)
    return {"events": steps["events"], "dead": steps["dead_letters"] | "AllDeadLetters" >> beam.Flatten()}


def test_micro_batch_graph_gives_what_a_beam_runner_gives():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    payloads = [orjson.dumps(event(i)) for i in range(50)] + [b"{nope", orjson.dumps(event(99, platform="tv"))]
    batch = _batch(payloads)
    out = MicroBatchGraph(steps_and_dead_letters).run([batch])
    local_rows = sorted(r["event_id"] for p in out["events"] for r in p.rows.to_pylist())
    local_dead = sorted((r["error_type"], r["raw_payload"]) for b in out["dead"] for r in b.rows)

    with beam.Pipeline(runner=FnApiRunner()) as p:
        steps = steps_and_dead_letters(p | beam.Create([batch]))
        rows = steps["events"] | beam.FlatMap(lambda part: [r["event_id"] for r in part.rows.to_pylist()])
        dead = steps["dead"] | beam.FlatMap(lambda b: [(r["error_type"], r["raw_payload"]) for r in b.rows])
        assert_that(rows, equal_to(local_rows), label="SameRows")
        assert_that(dead, equal_to(local_dead), label="SameDeadLetters")
    assert len(local_rows) == 50 and [t for t, _ in local_dead] == ["invalid_platform", "malformed_json"]


def test_micro_batch_graph_refuses_steps_that_need_a_runner():
    with pytest.raises(UnsupportedStep, match="GroupByKey"):
        MicroBatchGraph(lambda pc: {"out": pc | beam.Map(lambda x: (x, 1)) | beam.GroupByKey()})


def test_local_graph_writes_fsynced_parts_named_after_the_micro_batch(tmp_path):
    graph = MicroBatchGraph(local_graph(tmp_path / "lake"))
    out = graph.run([_batch([orjson.dumps(event(1)), b"[1]"])])
    parts = sorted(p.relative_to(tmp_path / "lake").as_posix() for p in (tmp_path / "lake").rglob("*.parquet"))
    assert parts == ["raw/dead_letters/b-1-parse.parquet", "raw/events/event_date=" +
                     out["events"][0].rows.column("event_date")[0].as_py().isoformat() + "/b-1.parquet"]


def test_dead_letter_messages_carry_the_original_bytes_attributes_and_error():
    from beam_pipelines.stream import DEAD_LETTER_ATTRIBUTES

    (dead_batch,) = MicroBatchGraph(steps_and_dead_letters).run([_batch([b'{"event_id": "x"}'])])["dead"]
    data, attributes = dead_letter_message(dead_batch.rows[0])
    assert data == b'{"event_id": "x"}'
    assert attributes["source"] == "collector"  # the original message's attribute, kept
    assert attributes["error_type"] == "missing_field" and attributes["original_message_id"] == "m-0"
    assert set(DEAD_LETTER_ATTRIBUTES) <= set(attributes)
    assert all(isinstance(v, str) and len(v.encode()) <= 1024 for v in attributes.values())


def test_dataflow_graph_reads_pubsub_with_attributes_then_the_shared_steps_then_write_raw_bigquery():
    from apache_beam.pipeline import PipelineVisitor

    from beam_pipelines.options import StreamIngestOptions
    from beam_pipelines.stream import build_pipeline

    opts = PipelineOptions(["--subscription=projects/strata-local/subscriptions/s-test",
                            "--dead_letter_topic=projects/strata-local/topics/dead", "--sink=bigquery",
                            "--bq_project=strata-local"], streaming=True)
    p = beam.Pipeline(options=opts)
    build_pipeline(p, opts.view_as(StreamIngestOptions))
    labels, reads = [], []

    class Visit(PipelineVisitor):
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            labels.append(node.full_label)
            if isinstance(node.transform, beam.io.ReadFromPubSub):
                reads.append(node.transform)

    p.visit(Visit())
    top = [label for label in labels if label and "/" not in label]
    assert top[:6] == ["ReadFromPubSub", "BatchMessages", "ParseEvents", "ValidateEvents", "EnrichEvents",
                       "CollectDeadLetters"]
    assert {"WriteRaw", "CountEventsPerMinute", "WriteEventCounts", "PublishDeadLetters"} <= set(top)
    assert reads and reads[0].with_attributes
