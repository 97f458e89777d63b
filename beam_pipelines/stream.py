"""The streaming ingest job: Pub/Sub messages → the batch job's steps → raw tables + dead letters.

On Dataflow (``build_pipeline``, the ``ingest_stream`` Flex Template's ``main``)::

    ReadFromPubSub(with_attributes=True) → BatchMessages → ParseEvents → ValidateEvents → EnrichEvents
        → WriteRaw (WriteRawBigQuery: raw.events, raw.users, raw.dead_letters)
        → CountEventsPerMinute (event-time windows) → WriteEventCounts (raw.event_counts_per_minute)
        → dead letters → PublishDeadLetters (the dead-letter topic, original bytes + attributes)

Locally the same three steps run per micro-batch in ``beam_pipelines.local_stream`` (see its doc
for why); :func:`ingest_steps` is the one place both wire them. Step labels are stable:
Dataflow ``--update`` matches on them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import apache_beam as beam
import orjson
import pyarrow as pa
from apache_beam.transforms import trigger, window

from beam_pipelines.options import StreamIngestOptions, validate_stream_options
from beam_pipelines.records import Message, RecordBatch, SubscriptionOrigin
from beam_pipelines.transforms import DeadLetterBatch, EnrichEvents, ParseEvents, RowsPart, ValidateEvents
from strata_core import contract as c

log = logging.getLogger(__name__)

#: Messages per RecordBatch on Dataflow (bounded by the bundle: a batch never waits for more).
MAX_BATCH_MESSAGES = 500
#: Early panes of the per-minute counts fire this often (processing time) before the window closes.
EARLY_FIRING_SEC = 10
_US = 1_000_000


def ingest_steps(batches, source: str = "stream") -> dict:
    """``RecordBatch`` es → ``{"events", "users", "dead_letters": (3 PCollections)}``: the steps of
    both jobs, wired once."""
    parsed = batches | "ParseEvents" >> ParseEvents(source)
    valid = parsed.parsed | "ValidateEvents" >> ValidateEvents(source)
    enriched = valid.valid | "EnrichEvents" >> EnrichEvents(source)
    return {"events": enriched.events, "users": enriched.users,
            "dead_letters": (parsed.dead_letters, valid.dead_letters, enriched.dead_letters)}


# ---- messages → record batches ------------------------------------------------------------------

def _publish_time_us(message) -> int:
    """``PubsubMessage.publish_time`` (a datetime, set by ReadFromPubSub) in UTC epoch microseconds."""
    published = getattr(message, "publish_time", None)
    if isinstance(published, dt.datetime):
        return int(published.timestamp() * _US)
    return time.time_ns() // 1000


class MessagesToBatchFn(beam.DoFn):
    """A list of ``PubsubMessage`` s (from ``BatchElements``) → one :class:`RecordBatch`."""

    def __init__(self, subscription: str):
        self.subscription = subscription

    def setup(self):
        self.origin = SubscriptionOrigin(self.subscription)

    def process(self, messages):
        positions = [Message(m.message_id, _publish_time_us(m), dict(m.attributes or {})) for m in messages]
        batch_id = f"{self.origin.key}-{positions[0].message_id}"
        yield RecordBatch(self.origin, batch_id, positions, [m.data for m in messages], time.time_ns() // 1000)


class BatchMessages(beam.PTransform):
    """``PubsubMessage`` s → :class:`RecordBatch` es of up to ``MAX_BATCH_MESSAGES`` (one bundle's worth)."""

    def __init__(self, subscription: str, max_batch_size: int = MAX_BATCH_MESSAGES):
        super().__init__()
        self.subscription = subscription
        self.max_batch_size = max_batch_size

    def expand(self, messages):
        return (messages
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.max_batch_size)
                | "ToRecordBatch" >> beam.ParDo(MessagesToBatchFn(self.subscription)).with_output_types(RecordBatch))


# ---- dead letters → the dead-letter topic -------------------------------------------------------

#: Attributes Strata adds to a dead-letter message (beside the original message's own).
DEAD_LETTER_ATTRIBUTES = ("error_type", "stage", "error_message", "original_message_id", "row_key",
                          "subscription", "failed_at")


def dead_letter_message(row: dict) -> tuple[bytes, dict[str, str]]:
    """A dead-letter row → (data, attributes) of its dead-letter-topic message.

    The data are the record's original bytes; the attributes are the original message's
    attributes plus :data:`DEAD_LETTER_ATTRIBUTES` (Pub/Sub limits: 100 attributes, 1024 bytes a value).
    """
    origin = orjson.loads(row["attributes"]) if row.get("attributes") else {}
    failed_at = row["failed_at"]
    ours = {
        "error_type": row["error_type"], "stage": row["stage"],
        "error_message": row["error_message"].encode()[:1024].decode(errors="ignore"),
        "original_message_id": str(origin.get("message_id") or ""), "row_key": row["row_key"],
        "subscription": str(origin.get("subscription") or origin.get("source_file") or ""),
        "failed_at": failed_at.isoformat() if isinstance(failed_at, dt.datetime) else str(failed_at),
    }
    original = {str(k): str(v).encode()[:1024].decode(errors="ignore")
                for k, v in (origin.get("attributes") or {}).items() if k not in ours}
    attributes = dict(list(original.items())[:100 - len(ours)])
    attributes.update(ours)
    return row["raw_payload"], attributes


def _dead_letter_pubsub_messages(batch: DeadLetterBatch):
    for row in batch.rows:
        data, attributes = dead_letter_message(row)
        yield beam.io.PubsubMessage(data, attributes)


# ---- per-minute counts by event_type ------------------------------------------------------------

def pane_row(window_start_us: int, window_end_us: int, event_type: str, count: int, timing: str,
             index: int, emitted_at: dt.datetime | None = None) -> dict:
    """One row of ``raw.event_counts_per_minute`` (``contract.EVENT_COUNT_FIELDS``)."""
    to_dt = dt.datetime.fromtimestamp
    return {"window_start": to_dt(window_start_us / _US, dt.timezone.utc),
            "window_end": to_dt(window_end_us / _US, dt.timezone.utc),
            "event_type": event_type, "count_events": int(count), "pane_timing": timing,
            "pane_index": int(index), "emitted_at": emitted_at or dt.datetime.now(dt.timezone.utc),
            "pipeline_version": c.PIPELINE_VERSION}


def event_times(part: RowsPart):
    """Accepted events → ``event_type`` s timestamped with their event time (seconds)."""
    rows = part.rows
    types = rows.column("event_type").to_pylist()
    micros = rows.column("event_timestamp").cast(pa.int64()).to_pylist()
    for event_type, ts_us in zip(types, micros):
        yield window.TimestampedValue(event_type, ts_us / _US)


class PaneToRowFn(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        event_type, count = element
        timing = {0: "EARLY", 1: "ON_TIME", 2: "LATE"}.get(pane.timing, "ON_TIME")
        yield pane_row(win.start.micros, win.end.micros, event_type, count, timing, pane.index)


def counts_windowing(window_sec: int, allowed_lateness_sec: int, early_firing_sec: int = EARLY_FIRING_SEC):
    """Fixed event-time windows; early panes every ``early_firing_sec``, the on-time pane when the
    watermark passes the window's end, a late pane per late element within the allowed lateness.
    Panes accumulate: each carries the window's whole count so far."""
    return beam.WindowInto(
        window.FixedWindows(window_sec),
        trigger=trigger.AfterWatermark(early=trigger.AfterProcessingTime(early_firing_sec),
                                       late=trigger.AfterCount(1)),
        accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
        allowed_lateness=allowed_lateness_sec)


class CountEventsPerMinute(beam.PTransform):
    """``raw.events`` :class:`RowsPart` s → ``raw.event_counts_per_minute`` rows (dicts).

    Event-time windows with explicit allowed lateness: an event later than that is not counted
    here (counter ``strata/counts_dropped_late`` locally; Beam drops it silently), but it still
    reaches ``raw.events``: counting never gates the raw write.
    """

    def __init__(self, window_sec: int = 60, allowed_lateness_sec: int = 3600,
                 early_firing_sec: int = EARLY_FIRING_SEC):
        super().__init__()
        self.window_sec, self.allowed_lateness_sec = window_sec, allowed_lateness_sec
        self.early_firing_sec = early_firing_sec

    def expand(self, events):
        return (events
                | "EventTimes" >> beam.FlatMap(event_times)
                | "Window" >> counts_windowing(self.window_sec, self.allowed_lateness_sec, self.early_firing_sec)
                | "Count" >> beam.combiners.Count.PerElement()
                | "ToRows" >> beam.ParDo(PaneToRowFn()))


def _bigquery_json(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


# ---- the Dataflow graph -------------------------------------------------------------------------

def build_pipeline(p: beam.Pipeline, opts: StreamIngestOptions):
    """Wire the streaming job onto ``p`` (Dataflow; BigQuery sink). Labels are stable."""
    from beam_pipelines import bigquery as bq
    from beam_pipelines.sinks.bigquery import WriteRawBigQuery

    messages = p | "ReadFromPubSub" >> beam.io.ReadFromPubSub(subscription=opts.subscription, with_attributes=True)
    batches = messages | "BatchMessages" >> BatchMessages(opts.subscription)
    steps = ingest_steps(batches, "stream")
    dead = steps["dead_letters"] | "CollectDeadLetters" >> beam.Flatten()
    client = bq.LoopbackClient(opts.bq_endpoint, opts.bq_project) if opts.bq_endpoint else None
    tables = {"events": steps["events"], "users": steps["users"], "dead_letters": dead}
    _ = tables | "WriteRaw" >> WriteRawBigQuery(opts.bq_project, opts.bq_dataset, client)
    _ = (steps["events"]
         | "CountEventsPerMinute" >> CountEventsPerMinute(opts.window_sec, opts.allowed_lateness_sec)
         | "CountsToJson" >> beam.Map(_bigquery_json)
         | "WriteEventCounts" >> beam.io.WriteToBigQuery(
             f"{opts.bq_project}:{opts.bq_dataset}.event_counts_per_minute",
             method=beam.io.WriteToBigQuery.Method.STREAMING_INSERTS,
             create_disposition=beam.io.BigQueryDisposition.CREATE_NEVER,
             write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND, test_client=client))
    if opts.dead_letter_topic:
        _ = (dead
             | "DeadLetterMessages" >> beam.FlatMap(_dead_letter_pubsub_messages)
             | "PublishDeadLetters" >> beam.io.WriteToPubSub(opts.dead_letter_topic, with_attributes=True))
    return steps


def main(argv: list[str] | None = None) -> None:
    """Flex Template entry point: Beam-style flags, ``--runner`` (default DataflowRunner), BigQuery sink."""
    import sys

    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from beam_pipelines.batch import prepare_sink

    logging.getLogger().setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--sink") for a in argv):
        argv.append("--sink=bigquery")
    options = PipelineOptions(argv, streaming=True, save_main_session=False)
    opts = options.view_as(StreamIngestOptions)
    validate_stream_options(opts)
    if opts.sink != "bigquery":
        raise ValueError("the Dataflow streaming job writes to BigQuery (--sink=bigquery); "
                         "run `strata ingest stream` for the local sink")
    options.view_as(StandardOptions).streaming = True
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = "DataflowRunner"
    prepare_sink(opts)
    p = beam.Pipeline(options=options)
    build_pipeline(p, opts)
    p.run()


if __name__ == "__main__":  # pragma: no cover
    main()
