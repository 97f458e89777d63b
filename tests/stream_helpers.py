"""Helpers for the streaming tests: the collector as a subprocess, the local runner in a thread,
events to send, and reads of the local warehouse."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pathlib
import subprocess
import sys
import threading
import time

import orjson

REPO = pathlib.Path(__file__).resolve().parents[1]


def event(i: int, **overrides) -> dict:
    """A valid critical event (purchase) with a unique id, timestamped now."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    base = {"event_id": f"ev-{i}", "event_type": "purchase", "user_id": f"u-{i % 97}",
            "event_timestamp": now, "platform": "web", "amount": 9.99, "currency": "EUR",
            "properties": {"order_id": f"o-{i}", "item_count": 1}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@contextlib.contextmanager
def collector(topic: str, keys: pathlib.Path, *extra: str):
    """``python -m collector`` on a free port; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "collector", "--topic", topic, "--port", "0",
                             "--write-keys", str(keys), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = proc.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"collector did not start: {line!r} {proc.stderr.read().decode()[-2000:]}")
        yield line.split()[3]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(url: str, body: bytes, key: str | None, timeout: float = 30, headers: dict | None = None):
    """POST ``body`` to ``url``/v1/events; returns (status, JSON body, headers)."""
    import urllib.error
    import urllib.request

    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"{url}/v1/events", data=body, headers=all_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, orjson.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null"), dict(exc.headers)


def stream_argv(topology, home: pathlib.Path, *extra: str) -> list[str]:
    return [f"--subscription={topology.subscription}", f"--dead_letter_topic={topology.dead_letter_topic}",
            f"--strata_home={home}", "--max_batch_delay_ms=200", *extra]


class RunnerThread:
    """``LocalStreamRunner`` in a thread; ``wait_for(n)`` until it has processed ``n`` messages."""

    def __init__(self, argv: list[str], runner_class=None):
        from apache_beam.options.pipeline_options import PipelineOptions

        from beam_pipelines import local_stream
        from beam_pipelines.options import StreamIngestOptions

        opts = PipelineOptions(argv).view_as(StreamIngestOptions)
        self.runner = (runner_class or local_stream.LocalStreamRunner)(opts, status_every_s=3600)
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.runner.run(self.stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced by wait_for / close
            self.error = exc

    def __enter__(self):
        self.thread.start()
        return self

    def wait_for(self, messages: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.runner.summary.received < messages:
            if self.error:
                raise self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"runner processed {self.runner.summary.received} of {messages} "
                                     f"messages in {timeout_s} s")
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the runner did not stop within 30 s"
        if self.error and not exc[0]:
            raise self.error


def pull_all(subscription: str, expected: int | None = None, timeout_s: float = 30) -> list:
    """Pull (and ack) messages until ``expected`` arrived, or until a pull comes back empty."""
    from strata_core.pubsub import subscriber_client

    subscriber = subscriber_client()
    got: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (expected is None or len(got) < expected):
        response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=3)
        if not response.received_messages:
            if expected is None:
                break
            continue
        got.extend(m.message for m in response.received_messages)
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
    return got


def query(sql: str, params: list | None = None) -> list[tuple]:
    """Rows of ``sql`` on the local warehouse of ``$STRATA_HOME`` (raw views over the lake)."""
    from strata import warehouse

    warehouse.init()
    return warehouse.query(sql, params)[1]
