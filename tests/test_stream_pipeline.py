"""The local streaming job against Google's Pub/Sub emulator: dead letters (table and topic),
redelivery, an outage, a clean stop on SIGTERM, replay, publish, and exactly once downstream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipelines.local_stream import LocalStreamRunner
from strata import cli
from strata_core import contract as c
from strata_core import schemas
from strata_core.pubsub import publisher_client, subscriber_client
from tests.fakes.pubsub import pubsub_emulator  # noqa: F401  (pytest fixture)
from tests.stream_helpers import REPO, RunnerThread, event, pull_all, query, stream_argv

pytestmark = pytest.mark.services


def publish(topic: str, payloads: list[bytes], **attributes) -> list[str]:
    publisher = publisher_client()
    futures = [publisher.publish(topic, data, source="test", **attributes) for data in payloads]
    return [f.result(timeout=60) for f in futures]


def staging_counts() -> tuple[int, int]:
    assert cli.main(["transform", "--json", "--no-tests"]) == 0
    return query("select count(*), count(distinct event_id) from staging.stg_events")[0]


def test_valid_events_reach_raw_and_bad_ones_the_dead_letter_table_and_topic(pubsub_emulator, strata_home):  # noqa: F811
    topology = pubsub_emulator.topology()
    good = [orjson.dumps(event(i)) for i in range(300)]
    bad = [b"{broken", orjson.dumps(event(1000, platform="tv")), orjson.dumps(event(1001, amount=-5)), b"[]"]
    ids = publish(topology.events_topic, good + bad)
    with RunnerThread(stream_argv(topology, strata_home)) as runner:
        runner.wait_for(len(ids))
    summary = runner.runner.summary
    assert (summary.accepted, summary.dead_lettered, summary.acked) == (300, 4, 304)
    assert summary.by_error_type == {"malformed_json": 1, "invalid_platform": 1, "negative_amount": 1,
                                     "not_an_object": 1}
    rows = query("select event_id, message_id, ingest_source, source_file from raw.events order by event_id")
    assert len(rows) == 300 and {r[2] for r in rows} == {"stream"} and {r[3] for r in rows} == {topology.subscription}
    assert {r[1] for r in rows} == set(ids[:300])
    dead = query("select raw_payload, error_type, attributes from raw.dead_letters")
    assert sorted(bytes(d[0]) for d in dead) == sorted(bad)
    attrs = orjson.loads(dead[0][2])
    assert attrs["subscription"] == topology.subscription and attrs["attributes"]["source"] == "test"
    assert attrs["message_id"] in ids[300:]
    on_topic = pull_all(topology.dead_letter_subscription, expected=4)
    assert sorted(m.data for m in on_topic) == sorted(bad)
    by_data = {m.data: m.attributes for m in on_topic}
    assert by_data[b"{broken"]["error_type"] == "malformed_json"
    assert by_data[b"{broken"]["original_message_id"] == ids[300] and by_data[b"{broken"]["source"] == "test"
    assert pull_all(topology.subscription) == []  # everything was acknowledged


class CrashBeforeSomeAcks(LocalStreamRunner):
    """Writes every micro-batch but 'crashes' before acknowledging every third message: those
    are redelivered once the ack deadline passes, as after a crash between write and ack."""

    def _ack(self, ack_ids):
        self.skipped = getattr(self, "skipped", 0)
        keep = [a for i, a in enumerate(ack_ids) if i % 3 or self.skipped > 200]
        self.skipped += len(ack_ids) - len(keep)
        super()._ack(keep)
        with self._cond:
            self._outstanding -= len(ack_ids) - len(keep)


def test_redelivered_messages_count_once_downstream(pubsub_emulator, strata_home):  # noqa: F811
    topology = pubsub_emulator.topology(ack_deadline_s=10)
    ids = publish(topology.events_topic, [orjson.dumps(event(i)) for i in range(600)])
    # Another consumer takes a share first: nacks some (redelivered at once), lets some expire.
    subscriber = subscriber_client()
    taken = subscriber.pull(subscription=topology.subscription, max_messages=100, timeout=10).received_messages
    subscriber.modify_ack_deadline(subscription=topology.subscription, ack_ids=[m.ack_id for m in taken[:50]],
                                   ack_deadline_seconds=0)
    with RunnerThread(stream_argv(topology, strata_home), CrashBeforeSomeAcks) as runner:
        runner.wait_for(len(ids) + 200, timeout_s=90)  # every message once, 200 twice
        deadline = time.time() + 30
        while pull_all(topology.subscription) and time.time() < deadline:
            time.sleep(1)
    raw_rows, raw_unique = query("select count(*), count(distinct event_id) from raw.events")[0]
    assert raw_unique == 600 and raw_rows > 600, "redelivery should have left copies in raw"
    assert staging_counts() == (600, 600)


def test_the_pipeline_waits_through_an_outage_and_resumes(pubsub_emulator, strata_home):  # noqa: F811
    topology = pubsub_emulator.topology()
    first = publish(topology.events_topic, [orjson.dumps(event(i)) for i in range(100)])
    with RunnerThread(stream_argv(topology, strata_home)) as runner:
        runner.wait_for(100)
        process = pubsub_emulator.emulator.process
        os.kill(process.pid, signal.SIGSTOP)
        try:
            time.sleep(PULL_OUTAGE_S := 4)  # pulls time out meanwhile; the runner keeps trying
            assert runner.thread.is_alive() and runner.error is None
        finally:
            os.kill(process.pid, signal.SIGCONT)
        second = publish(topology.events_topic, [orjson.dumps(event(i)) for i in range(100, 250)])
        runner.wait_for(250, timeout_s=30 + PULL_OUTAGE_S)
    assert query("select count(distinct message_id) from raw.events")[0][0] == len(set(first + second)) == 250


def test_sigterm_finishes_the_micro_batch_in_flight_and_acknowledges_it(pubsub_emulator, strata_home):  # noqa: F811
    topology = pubsub_emulator.topology()
    ids = publish(topology.events_topic, [orjson.dumps(event(i)) for i in range(2000)])
    proc = subprocess.Popen([sys.executable, "-m", "strata", "ingest", "stream", "--subscription",
                             topology.subscription, "--max-batch-delay-ms", "2000", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 60
    while not list((strata_home / "lake" / "raw" / "events").glob("*/*.parquet")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    summary = orjson.loads(out.strip().splitlines()[-1])
    assert summary["balanced"] and summary["acked"] == summary["received"] > 0
    written = query("select count(distinct message_id) from raw.events")[0][0]
    assert written == summary["accepted"]
    # What it acknowledged is written; what it had not pulled is still on the subscription.
    assert len(pull_all(topology.subscription, expected=len(ids) - written)) == len(ids) - written


def test_replay_accepts_what_a_relaxed_rule_now_passes_exactly_once(pubsub_emulator, strata_home, tmp_path,  # noqa: F811
                                                                    monkeypatch):
    topology = pubsub_emulator.topology()
    big = [orjson.dumps(event(i, properties={"blob": "x" * (c.MAX_RECORD_BYTES + 10)})) for i in range(3)]
    hopeless = [orjson.dumps(event(10, platform="tv"))]
    publish(topology.events_topic, big + hopeless + [orjson.dumps(event(20))])
    with RunnerThread(stream_argv(topology, strata_home)) as runner:
        runner.wait_for(5)
    # The same kind of record from a file, through the batch job.
    file_big = tmp_path / "events.jsonl"
    file_big.write_bytes(orjson.dumps(event(30, properties={"blob": "y" * (c.MAX_RECORD_BYTES + 10)})) + b"\n")
    assert cli.main(["ingest", "batch", "--input", str(file_big), "--json"]) == 0
    assert query("select error_type, count(*) from raw.dead_letters group by 1 order by 1") == [
        ("invalid_platform", 1), ("record_too_large", 4)]

    monkeypatch.setattr(c, "MAX_RECORD_BYTES", 4 * c.MAX_RECORD_BYTES)  # the "fix": a relaxed rule
    assert cli.main(["replay", "--json"]) == 0
    accepted = query("select event_id, ingest_source, row_key from raw.events where event_id in "
                     "('ev-0', 'ev-1', 'ev-2', 'ev-30') order by event_id")
    assert [r[:2] for r in accepted] == [("ev-0", "stream"), ("ev-1", "stream"), ("ev-2", "stream"), ("ev-30", "batch")]
    dead_keys = {r[0] for r in query("select row_key from raw.dead_letters where error_type = 'record_too_large'")}
    assert {r[2] for r in accepted} == dead_keys  # the event has the row key its dead letter had
    assert query("select outcome, count(*) from raw.dead_letter_replays group by 1 order by 1") == [
        ("accepted", 4), ("failed", 1)]
    assert query("select max(replay_count) from raw.dead_letters where event_id = 'ev-10'") == [(1,)]

    parts = sorted(p for p in (strata_home / "lake").rglob("*.parquet"))
    assert cli.main(["replay", "--json"]) == 0  # again: changes nothing
    assert sorted(p for p in (strata_home / "lake").rglob("*.parquet")) == parts
    assert staging_counts() == (5, 5)  # ev-0, 1, 2, 20, 30: each once


def test_publish_sends_ndjson_avro_and_parquet_events_one_message_each(pubsub_emulator, strata_home, tmp_path):  # noqa: F811
    topology = pubsub_emulator.topology()
    events = [event(i, properties={"order_id": f"o-{i}"}) for i in range(30)]
    ndjson = tmp_path / "a.jsonl"
    ndjson.write_bytes(b"\n".join(orjson.dumps(e) for e in events[:10]) + b"\n\n")
    flat = [{**e, "properties": orjson.dumps(e["properties"]).decode()} for e in events[10:]]
    avro = tmp_path / "b.avro"
    with open(avro, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schemas.avro_input_schema()), flat[:10])
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(flat[10:]), parquet)
    out = subprocess.run([sys.executable, "-m", "strata", "publish", str(ndjson), str(avro), str(parquet),
                          "--topic", topology.events_topic, "--rate", "500"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert "published 30 events" in out.stdout
    messages = pull_all(topology.subscription, expected=30)
    assert sorted(orjson.loads(m.data)["event_id"] for m in messages) == sorted(e["event_id"] for e in events)
    by_id = {orjson.loads(m.data)["event_id"]: m for m in messages}
    assert orjson.loads(by_id["ev-15"].data)["properties"] == {"order_id": "o-15"}  # an object again
    assert by_id["ev-3"].data == orjson.dumps(events[3])  # NDJSON lines go byte for byte
    assert by_id["ev-25"].attributes["event_type"] == "purchase"
