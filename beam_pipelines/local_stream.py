"""The streaming job on the embedded default: Pub/Sub (the emulator) → micro-batches → the lake.

Why not a Beam runner: the Python DirectRunner pulls 10 messages per call and runs one bundle at
a time (50–150 msg/s); the FnApiRunner runs only bounded pipelines, at ~0.25 s fixed cost per run
(measured in ``bench/stream.py --candidates``). So this runner keeps Beam's *steps* and replaces
the runner loop:

1. a puller thread does synchronous ``Pull`` s (the emulator serves ~9k msg/s that way against
   ~2k msg/s for StreamingPull) under flow control: at most ``max_outstanding_messages`` pulled
   and not yet acknowledged;
2. a micro-batch closes ``max_batch_delay_ms`` after its first message arrived, or at
   ``max_batch_messages``: under load batches grow and amortise their fixed cost, when idle a
   single event still leaves within the delay;
3. the batch, a :class:`RecordBatch` of the subscription's messages, runs through the *same*
   ``ParseEvents → ValidateEvents → EnrichEvents`` composites as on Dataflow (``stream.ingest_steps``)
   and the lake writer ``WriteRawLocal``, executed in-process by ``microbatch.MicroBatchGraph``;
   every part is fsynced;
4. its dead letters are published to the dead-letter topic (and acknowledged by Pub/Sub), the
   per-minute counts' panes are written, and only then are the messages acknowledged.

A crash anywhere before step 4's ack means redelivery, never loss; a redelivered message is
written again (raw keeps copies, as the batch job does for duplicated events) and staging keeps
one row per ``event_id``. SIGINT/SIGTERM stop the puller, finish and acknowledge what was pulled,
and return.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import pathlib
import queue
import secrets
import sys
import threading
import time

import apache_beam as beam
import pyarrow as pa

from beam_pipelines.microbatch import MicroBatchGraph
from beam_pipelines.options import StreamIngestOptions
from beam_pipelines.records import Message, RecordBatch, SubscriptionOrigin
from beam_pipelines.stream import EARLY_FIRING_SEC, dead_letter_message, ingest_steps, pane_row
from strata_core import schemas
from strata_core.lake import write_part

log = logging.getLogger(__name__)
_US = 1_000_000
#: Pull RPC deadline: how long an idle pull waits for messages (and at most how long a stop waits).
PULL_TIMEOUT_S = 2.0
#: Concurrent Pull RPCs: the emulator returns about 100 messages per pull, so one puller is
#: bound by the round trip; two keep one in flight while the other's messages are queued.
PULL_THREADS = 2
#: Most ack ids per Acknowledge request (the API caps requests at 512 KiB).
ACK_CHUNK = 1000


def _publish_us(message) -> int:
    """A raw ``PubsubMessage`` 's publish time, UTC epoch microseconds."""
    return message.publish_time.seconds * _US + message.publish_time.nanos // 1000


def _ack_request(subscription: str, ack_ids: list[str]):
    """An ``AcknowledgeRequest`` built as raw protobuf and wrapped: proto-plus would convert each
    ack id in Python (measured: ~12 µs per id)."""
    from google.pubsub_v1.types import AcknowledgeRequest

    return AcknowledgeRequest.wrap(AcknowledgeRequest.pb()(subscription=subscription, ack_ids=ack_ids))


class LostRecords(RuntimeError):
    """A micro-batch broke ``messages = accepted + dead-lettered``: it is not acknowledged."""


# ---- per-minute counts --------------------------------------------------------------------------

class LocalEventCounts:
    """``stream.CountEventsPerMinute`` 's windowing, for micro-batches: fixed event-time windows,
    accumulating panes, early panes about every ``early_firing_sec``, the on-time pane when the
    watermark passes the window's end, a late pane per micro-batch with late data, and state
    dropped once the watermark is past the end plus ``allowed_lateness_sec``. An event later
    than that is not counted (``dropped_late``) but reached ``raw.events`` all the same.

    The watermark is the caller's: like Dataflow's Pub/Sub watermark it is the publish time of the
    oldest message not yet processed (or now, when nothing is waiting).
    """

    def __init__(self, window_sec: int, allowed_lateness_sec: int, early_firing_sec: int = EARLY_FIRING_SEC):
        self.window_us = window_sec * _US
        self.lateness_us = allowed_lateness_sec * _US
        self.early_firing_us = early_firing_sec * _US
        self.state: dict[tuple[int, str], list] = {}  # key -> [count, next pane index, on-time fired, dirty]
        self.dropped_late = 0
        self._last_early_us = None

    def add(self, parts, watermark_us: int) -> None:
        for part in parts:
            rows = part.rows
            types = rows.column("event_type").to_pylist()
            micros = rows.column("event_timestamp").cast(pa.int64()).to_pylist()
            for event_type, ts_us in zip(types, micros):
                start = ts_us - ts_us % self.window_us
                if start + self.window_us + self.lateness_us <= watermark_us:
                    self.dropped_late += 1
                    continue
                entry = self.state.get((start, event_type))
                if entry is None:
                    entry = self.state[(start, event_type)] = [0, 0, False, False]
                entry[0] += 1
                entry[3] = True

    def fire(self, watermark_us: int, now_us: int) -> list[dict]:
        """The panes due at ``watermark_us`` (processing time ``now_us``) as ``raw.event_counts_per_minute`` rows."""
        if self._last_early_us is None:
            self._last_early_us = now_us
        early_due = now_us - self._last_early_us >= self.early_firing_us
        if early_due:
            self._last_early_us = now_us
        rows = []
        for key in sorted(self.state):
            start, event_type = key
            entry = self.state[key]
            count, index, on_time, dirty = entry
            end = start + self.window_us
            timing = None
            if not on_time and end <= watermark_us:
                timing, entry[2] = "ON_TIME", True
            elif on_time and dirty:
                timing = "LATE"
            elif not on_time and dirty and early_due:
                timing = "EARLY"
            if timing:
                rows.append(pane_row(start, end, event_type, count, timing, index))
                entry[1], entry[3] = index + 1, False
            if end + self.lateness_us <= watermark_us:
                del self.state[key]
        return rows


# ---- the runner ---------------------------------------------------------------------------------

@dataclasses.dataclass
class StreamSummary:
    received: int = 0
    accepted: int = 0
    dead_lettered: int = 0
    by_error_type: dict = dataclasses.field(default_factory=dict)
    batches: int = 0
    acked: int = 0
    count_panes: int = 0
    seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        return self.received == self.accepted + self.dead_lettered

    def as_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["by_error_type"] = dict(sorted(self.by_error_type.items()))
        out["seconds"] = round(self.seconds, 3)
        out["balanced"] = self.balanced
        return out


def local_graph(lake: pathlib.Path):
    """The local job's graph on a micro-batch: the shared steps, then the fsyncing lake writer."""
    from beam_pipelines.sinks.local import WriteRawLocal

    def build(batches):
        steps = ingest_steps(batches, "stream")
        writes = {"Events": steps["events"], "Users": steps["users"]}
        writes.update({f"DeadLetters{i}": pc for i, pc in enumerate(steps["dead_letters"])})
        _ = writes | "WriteRaw" >> WriteRawLocal(str(lake), durable=True)
        dead = steps["dead_letters"] | "CollectDeadLetters" >> beam.Flatten()
        return {"events": steps["events"], "dead_letters": dead}

    return build


class LocalStreamRunner:
    """Pull → micro-batch → steps → write → publish dead letters → ack, until ``stop`` is set."""

    def __init__(self, opts: StreamIngestOptions, *, status_every_s: float = 10.0):
        from strata_core.pubsub import publisher_client, subscriber_client

        self.opts = opts
        self.lake = pathlib.Path(opts.strata_home) / "lake"
        self.subscriber = subscriber_client()
        self.publisher = publisher_client() if opts.dead_letter_topic else None
        self.origin = SubscriptionOrigin(opts.subscription)
        self.graph = MicroBatchGraph(local_graph(self.lake))
        self.counts = LocalEventCounts(opts.window_sec, opts.allowed_lateness_sec)
        self.summary = StreamSummary()
        self.status_every_s = status_every_s
        self._run_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
        self._seq = 0
        self._queue: collections.deque = collections.deque()  # (monotonic arrival, ReceivedMessage)
        self._acks: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._outstanding = 0  # pulled, not yet acknowledged (approximate bound: pulls run in parallel)

    # -- pulling -----------------------------------------------------------------------------
    def _pull_loop(self, stop: threading.Event) -> None:
        from google.api_core.exceptions import DeadlineExceeded

        backoff, outage = 0.2, None
        max_outstanding = self.opts.max_outstanding_messages
        while not stop.is_set():
            with self._cond:
                while self._outstanding >= max_outstanding and not stop.is_set():
                    self._cond.wait(0.1)
                room = max_outstanding - self._outstanding
            if stop.is_set():
                break
            try:
                response = self.subscriber.pull(subscription=self.opts.subscription,
                                                max_messages=min(1000, room), timeout=PULL_TIMEOUT_S,
                                                retry=None)  # our loop retries; each call stays bounded
            except DeadlineExceeded:
                continue  # an idle long poll found nothing (or Pub/Sub is frozen): ask again
            except Exception as exc:  # noqa: BLE001 - an outage: wait and resume, never exit
                if outage is None:
                    outage = time.monotonic()
                    log.warning("Pub/Sub pull failed (%s: %s); retrying with back-off until it answers",
                                type(exc).__name__, str(exc).splitlines()[0][:200])
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if outage is not None:
                log.warning("Pub/Sub answers again after %.1f s", time.monotonic() - outage)
                outage, backoff = None, 0.2
            # The raw protobuf, not the proto-plus wrapper: its field access is C, the wrapper's
            # is Python (measured: the wrapper cost ~90 µs per message, more than the steps).
            received = type(response).pb(response).received_messages
            if received:
                now = time.monotonic()
                with self._cond:
                    self._queue.extend((now, m) for m in received)
                    self._outstanding += len(received)
                    self._cond.notify_all()

    # -- one micro-batch -----------------------------------------------------------------------
    def _next_batch(self, stop: threading.Event, pullers: list[threading.Thread]) -> list | None:
        delay = self.opts.max_batch_delay_ms / 1000
        limit = self.opts.max_batch_messages
        with self._cond:
            while not self._queue:
                if stop.is_set() and not any(p.is_alive() for p in pullers):
                    return None
                self._cond.wait(0.05)
            deadline = self._queue[0][0] + delay
            while len(self._queue) < limit and not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(limit, len(self._queue))
            return [self._queue.popleft()[1] for _ in range(n)]

    def _watermark_us(self) -> int:
        with self._cond:
            if self._queue:
                return _publish_us(self._queue[0][1].message)
        return time.time_ns() // 1000

    def process(self, received: list) -> None:
        """Run, write, publish dead letters, write count panes, then acknowledge ``received``."""
        self._seq += 1
        now_us = time.time_ns() // 1000
        positions, records = [], []
        for m in received:
            msg = m.message
            positions.append(Message(msg.message_id, _publish_us(msg), dict(msg.attributes)))
            records.append(msg.data)
        batch_id = f"{self.origin.key}-{self._run_id}-{self._seq:07d}"
        batch = RecordBatch(self.origin, batch_id, positions, records, now_us)
        out = self.graph.run([batch])
        accepted = sum(part.rows.num_rows for part in out["events"])
        dead = [row for b in out["dead_letters"] for row in b.rows]
        if accepted + len(dead) != len(records):
            raise LostRecords(f"micro-batch {batch_id}: {len(records)} messages but {accepted} accepted + "
                              f"{len(dead)} dead-lettered; not acknowledged (they will be redelivered)")
        if dead and self.publisher is not None:
            futures = [self.publisher.publish(self.opts.dead_letter_topic, data, **attributes)
                       for data, attributes in map(dead_letter_message, dead)]
            for future in futures:
                future.result(timeout=60)
        self.counts.add(out["events"], self._watermark_us())
        panes = self.counts.fire(self._watermark_us(), time.time_ns() // 1000)
        if panes:
            table = pa.Table.from_pylist(panes, schema=schemas.arrow_schema("event_counts_per_minute"))
            write_part("event_counts_per_minute", batch_id, table, lake=self.lake, durable=True)
        self._acks.put([m.ack_id for m in received])  # written: the acker thread acknowledges it
        s = self.summary
        s.received += len(records)
        s.accepted += accepted
        s.dead_lettered += len(dead)
        for row in dead:
            s.by_error_type[row["error_type"]] = s.by_error_type.get(row["error_type"], 0) + 1
        s.batches += 1
        s.count_panes += len(panes)

    def _ack(self, ack_ids: list[str]) -> None:
        """Acknowledge, retrying through an outage for up to the ack deadline (then Pub/Sub
        redelivers: the rows are already written, so that is a duplicate, never a loss)."""
        deadline = time.monotonic() + 60
        for i in range(0, len(ack_ids), ACK_CHUNK):
            chunk = ack_ids[i:i + ACK_CHUNK]
            delay = 0.2
            while True:
                try:
                    self.subscriber.acknowledge(request=_ack_request(self.opts.subscription, chunk), timeout=10,
                                                retry=None)
                    break
                except Exception as exc:  # noqa: BLE001
                    if time.monotonic() > deadline:
                        log.warning("could not acknowledge %d messages (%s); Pub/Sub will redeliver them",
                                    len(chunk), exc)
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 5)
            self.summary.acked += len(chunk)
        with self._cond:
            self._outstanding -= len(ack_ids)
            self._cond.notify_all()

    def _ack_loop(self) -> None:
        # Acks leave the micro-batch loop (they cost ~20 µs a message on the emulator), so the next
        # batch runs while the last one's acks are on the wire; order does not matter to Pub/Sub.
        while True:
            ack_ids = self._acks.get()
            if ack_ids is None:
                return
            self._ack(ack_ids)

    # -- the loop --------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> StreamSummary:
        started = time.perf_counter()
        pullers = [threading.Thread(target=self._pull_loop, args=(stop,), name=f"strata-pull-{i}", daemon=True)
                   for i in range(PULL_THREADS)]
        acker = threading.Thread(target=self._ack_loop, name="strata-ack", daemon=True)
        for puller in pullers:
            puller.start()
        acker.start()
        last_status = time.monotonic()
        try:
            while True:
                received = self._next_batch(stop, pullers)
                if received is None:
                    break
                if received:
                    self.process(received)
                if time.monotonic() - last_status >= self.status_every_s:
                    last_status = time.monotonic()
                    self._status(time.perf_counter() - started)
        finally:
            stop.set()
            for puller in pullers:
                puller.join(PULL_TIMEOUT_S + 5)
            self._acks.put(None)
            acker.join()  # every written micro-batch is acknowledged before run returns
            self.graph.close()
            self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _status(self, seconds: float) -> None:
        s = self.summary
        print(f"stream: {s.received:,} messages ({s.received / max(seconds, 1e-9):,.0f}/s), "
              f"{s.accepted:,} accepted, {s.dead_lettered:,} dead-lettered, {s.batches:,} micro-batches, "
              f"{self._outstanding:,} pulled not yet acked", file=sys.stderr, flush=True)


def run(argv: list[str], stop: threading.Event | None = None, **kwargs) -> StreamSummary:
    """Run the local streaming job with Beam-style ``argv`` until ``stop`` is set (or forever)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_pipelines.options import validate_stream_options

    opts = PipelineOptions(argv).view_as(StreamIngestOptions)
    validate_stream_options(opts)
    if opts.sink != "local":
        raise ValueError("the local streaming runner writes the local lake (--sink local); the BigQuery "
                         "sink runs on Dataflow: the ingest_stream Flex Template (beam_pipelines.stream.main)")
    os.makedirs(pathlib.Path(opts.strata_home) / "lake", exist_ok=True)
    return LocalStreamRunner(opts, **kwargs).run(stop or threading.Event())
