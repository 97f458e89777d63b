"""Streaming end to end on the real emulator: generated events → collector → Pub/Sub →
`strata ingest stream` → raw → `strata transform` → staging; and a SIGKILL mid-stream."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest

from strata import cli
from strata_core import writekeys
from tests.fakes.pubsub import pubsub_emulator  # noqa: F401  (pytest fixture)
from tests.stream_helpers import REPO, collector, event, post, pull_all, query

pytestmark = [pytest.mark.slow, pytest.mark.services]


@contextlib.contextmanager
def ingest_stream(topology, *extra: str):
    proc = subprocess.Popen([sys.executable, "-m", "strata", "ingest", "stream", "--subscription",
                             topology.subscription, "--dead-letter-topic", topology.dead_letter_topic,
                             "--max-batch-delay-ms", "300", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


def handled() -> int:
    """Messages with a durable outcome: accepted (raw.events) or dead-lettered, once each."""
    return query("select (select count(distinct message_id) from raw.events) + "
                 "(select count(distinct row_key) from raw.dead_letters)")[0][0]


def generated(tmp_path, n: int) -> tuple[list[dict], list[bytes], set[int]]:
    """``n`` generated events (2 % bad, 2 % duplicated lines): the objects, their exact lines, and
    the indexes of the bad ones.

    Lines that are not JSON objects (broken JSON, invalid UTF-8) are left out: the collector
    refuses those with a 400 before they become messages (tested in test_collector.py).
    """
    out = tmp_path / "gen"
    assert cli.main(["generate", "--out", str(out), "--users", "400", "--days", "3", "--events", str(int(n * 1.1)),
                     "--bad-rate", "0.02", "--duplicate-rate", "0.02", "--seed", "11", "--json"]) == 0
    bad_lines = {(e["file"], e["line"]) for e in map(orjson.loads, (out / "expected_errors.jsonl").read_bytes().splitlines())}
    events, lines, bad = [], [], set()
    for path in sorted(out.glob("events-*.ndjson")):
        for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
            line = line.removesuffix(b"\r")
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                if (path.name, number) in bad_lines:
                    bad.add(len(events))
                events.append(obj)
                lines.append(line)
            if len(events) == n:
                return events, lines, bad
    raise AssertionError(f"the generator gave only {len(events)} event objects")


def test_20000_events_through_the_collector_exactly_once_in_staging(pubsub_emulator, strata_home, tmp_path):  # noqa: F811
    events, lines, bad = generated(tmp_path, 20_000)
    good_ids = {e["event_id"] for i, e in enumerate(events) if i not in bad}
    assert 300 < len(bad) < 500 and len(good_ids) < len(events) - len(bad), "2 % bad and duplicates expected"
    topology = pubsub_emulator.topology()
    key = writekeys.create("e2e", strata_home / "write_keys.json")
    order = list(range(len(events)))
    random.Random(3).shuffle(order)
    published = 0
    with collector(topology.events_topic, strata_home / "write_keys.json") as url, ingest_stream(topology) as proc:
        # Each event as the exact line the generator wrote (a repeated key and all), in batches of 100.
        batch: list[bytes] = []
        for i in order:
            if len(lines[i]) > 1024 * 1024:  # a record over 1 MiB goes alone (5 MiB per request)
                status, body, _ = post(url, lines[i], key)
                assert status == 202, body
                published += body["accepted"]
                continue
            batch.append(lines[i])
            if len(batch) == 100:
                status, body, _ = post(url, b'{"batch": [' + b", ".join(batch) + b"]}", key)
                assert status == 202, body
                published += body["accepted"]
                batch = []
        if batch:
            published += post(url, b'{"batch": [' + b", ".join(batch) + b"]}", key)[1]["accepted"]
        assert published == len(events)
        wait_until(lambda: handled() >= published, 180, f"{published} messages in raw")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-3000:]

    # accepted + dead-lettered = published, each once
    accepted = query("select count(distinct message_id) from raw.events")[0][0]
    dead = query("select count(distinct row_key) from raw.dead_letters")[0][0]
    assert accepted + dead == published and dead == len(bad)
    # every invalid one is in the table with its bytes ...
    payloads = {bytes(r[0]) for r in query("select raw_payload from raw.dead_letters")}
    assert payloads == {lines[i] for i in bad}
    # ... and on the dead-letter topic
    on_topic = pull_all(topology.dead_letter_subscription, expected=len(bad), timeout_s=60)
    assert {m.data for m in on_topic} == payloads
    # every valid event exactly once in staging (full dbt build with its tests)
    assert cli.main(["transform", "--json"]) == 0
    rows = query("select event_id from staging.stg_events")
    assert len(rows) == len(good_ids) and {r[0] for r in rows} == good_ids


def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(pubsub_emulator, strata_home):  # noqa: F811
    from strata_core.pubsub import publisher_client

    topology = pubsub_emulator.topology(ack_deadline_s=10)
    publisher = publisher_client()
    futures = [publisher.publish(topology.events_topic, orjson.dumps(event(i))) for i in range(20_000)]
    ids = {f.result(timeout=60) for f in futures}
    with ingest_stream(topology, "--max-batch-messages", "2000") as first:
        wait_until(lambda: query("select count(*) from raw.events")[0][0] >= 4000, 120, "the first micro-batches")
        first.send_signal(signal.SIGKILL)  # no chance to finish or acknowledge anything in flight
        first.wait(10)
    killed_at = query("select count(distinct message_id) from raw.events")[0][0]
    assert killed_at < len(ids), "the kill came too late to test anything"
    with ingest_stream(topology) as second:
        wait_until(lambda: query("select count(distinct message_id) from raw.events")[0][0] == len(ids), 180,
                   "every message after the restart")
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    assert {r[0] for r in query("select distinct message_id from raw.events")} == ids
    assert cli.main(["transform", "--json", "--no-tests"]) == 0
    assert query("select count(*), count(distinct event_id) from staging.stg_events")[0] == (20_000, 20_000)
