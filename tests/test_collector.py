"""The collector against Google's Pub/Sub emulator: what it accepts, what it refuses, and that a
202 means published (and a 503 means retry) when Pub/Sub is slow or down."""

from __future__ import annotations

import base64
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import orjson
import pytest

from strata_core import writekeys
from tests.fakes.pubsub import pubsub_emulator  # noqa: F401  (pytest fixture)
from tests.stream_helpers import collector, event, post, pull_all

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def setup(pubsub_emulator, tmp_path_factory):  # noqa: F811
    keys = tmp_path_factory.mktemp("keys") / "write_keys.json"
    key = writekeys.create("web", keys)
    topology = pubsub_emulator.topology()
    with collector(topology.events_topic, keys) as url:
        yield url, key, topology


def test_write_key_is_printed_once_and_only_its_hash_is_stored(strata_home):
    out = subprocess.run([sys.executable, "-m", "strata", "write-key", "create", "ios"], capture_output=True,
                         text=True, check=True)
    key = out.stdout.strip()
    assert key.startswith("swk_") and len(key) > 40
    path = strata_home / "write_keys.json"
    stored = path.read_text()
    assert key not in stored and writekeys.digest(key) in stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = subprocess.run([sys.executable, "-m", "strata", "write-key", "create", "ios"], capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_one_event_and_a_batch_are_published_one_message_each_with_attributes(setup):
    url, key, topology = setup
    single = orjson.dumps(event(1))
    status, body, _ = post(url, single, key)
    assert status == 202 and body["accepted"] == 1
    batch = [event(2), event(3, event_type="signup"), {"no": "event_type"}]
    status, body2, _ = post(url, orjson.dumps({"batch": batch}), key)
    assert status == 202 and body2["accepted"] == 3 and len(body2["message_ids"]) == 3
    messages = {m.message_id: m for m in pull_all(topology.subscription, expected=4)}
    assert set(messages) == set(body["message_ids"] + body2["message_ids"])
    first = messages[body["message_ids"][0]]
    assert first.data == single  # a single event keeps its exact bytes
    assert dict(first.attributes).keys() == {"event_type", "received_at", "source", "write_key_name"}
    assert first.attributes["source"] == "collector" and first.attributes["write_key_name"] == "web"
    by_id = [messages[i] for i in body2["message_ids"]]
    assert [orjson.loads(m.data) for m in by_id] == batch
    assert by_id[1].attributes["event_type"] == "signup" and "event_type" not in by_id[2].attributes


def test_batch_members_are_published_with_the_exact_bytes_sent(setup):
    """Not re-serialised: spacing, key order and a repeated key (which the pipeline dead-letters
    as ``duplicate_key``) reach Pub/Sub as the client wrote them."""
    url, key, topology = setup
    members = [b'{ "event_id" : "e-1", "event_type": "page_view", "user_id": "u", "event_timestamp": 1 }',
               b'{"event_id": "e-2", "event_id": "e-3", "event_type": "page_view"}']
    status, body, _ = post(url, b'{"batch": [' + b",\n  ".join(members) + b"]}", key)
    assert status == 202 and body["accepted"] == 2
    messages = {m.message_id: m for m in pull_all(topology.subscription, expected=2)}
    assert [messages[i].data for i in body["message_ids"]] == members


def test_http_basic_with_the_key_as_user_name_is_accepted(setup):
    url, key, topology = setup
    basic = base64.b64encode(f"{key}:".encode()).decode()
    status, body, _ = post(url, orjson.dumps(event(10)), None, headers={"Authorization": f"Basic {basic}"})
    assert status == 202
    pull_all(topology.subscription, expected=1)


@pytest.mark.parametrize("body, auth, status, error", [
    (b"{not json", "good", 400, "invalid_json"),
    (b"[1, 2]", "good", 400, "not_an_object"),
    (b'"text"', "good", 400, "not_an_object"),
    (b'{"batch": [{"event_id": "1"}, 7]}', "good", 400, "not_an_object"),
    (b'{"batch": []}', "good", 400, "invalid_batch"),
    (orjson.dumps({"batch": [{"event_id": str(i)} for i in range(501)]}), "good", 413, "too_many_events"),
    (b'{"event_id": "1"}', "wrong", 401, "unauthorized"),
    (b'{"event_id": "1"}', None, 401, "unauthorized"),
])
def test_bad_requests_are_refused_with_an_error_that_names_the_problem(setup, body, auth, status, error):
    url, key, topology = setup
    got, payload, headers = post(url, body, {"good": key, "wrong": "swk_wrong"}.get(auth) if auth else None)
    assert (got, payload["error"]) == (status, error)
    assert payload["message"]
    if status == 401:
        assert "Bearer" in headers.get("www-authenticate", "")
    assert pull_all(topology.subscription) == []  # nothing was published


def _raw_request(url: str, head: str, body_chunks=()) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(head.encode())
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:
            pass  # the server may close as soon as it has answered
        return _response(s)


def _response(s: socket.socket) -> bytes:
    """Read one HTTP response (headers and a Content-Length body) from ``s``."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
            next((line.split(b":")[1] for line in data.split(b"\r\n") if line.lower().startswith(b"content-length")),
                 b"0")):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_an_over_size_body_is_refused_before_and_while_it_is_read(setup):
    url, key, topology = setup
    auth = f"Authorization: Bearer {key}\r\n"
    # Declared too large: refused from the headers, before a byte of the body is read.
    response = _raw_request(url, f"POST /v1/events HTTP/1.1\r\nHost: x\r\n{auth}"
                                 f"Content-Length: {5 * 1024 * 1024 + 1}\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 413") and b"body_too_large" in response
    # Chunked, no Content-Length: refused once the limit is crossed while reading.
    chunk = b"x" * (1024 * 1024)
    response = _raw_request(url, f"POST /v1/events HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n",
                            [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 6)
    assert response.startswith(b"HTTP/1.1 413") and b"body_too_large" in response
    assert pull_all(topology.subscription) == []


def test_a_slow_client_gets_408_and_does_not_hold_up_others(setup):
    url, key, topology = setup
    host, port = url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)))
    try:
        slow.sendall(f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"event_id\"".encode())
        started = time.monotonic()
        status, _, _ = post(url, orjson.dumps(event(20)), key)  # served while the slow one trickles
        assert status == 202 and time.monotonic() - started < 2
        slow.settimeout(20)
        response = _response(slow)
        assert response.startswith(b"HTTP/1.1 408") and b"request_timeout" in response
        assert time.monotonic() - started < 15  # the body deadline is 10 s
    finally:
        slow.close()
    assert len(pull_all(topology.subscription, expected=1)) == 1


def test_health_and_readiness(setup):
    import urllib.request

    url, _, _ = setup
    assert orjson.loads(urllib.request.urlopen(f"{url}/healthz").read()) == {"status": "ok"}
    assert orjson.loads(urllib.request.urlopen(f"{url}/readyz").read())["status"] == "ready"


def test_when_pubsub_is_frozen_or_down_the_collector_answers_503_in_bounded_time(pubsub_emulator, tmp_path):  # noqa: F811
    keys = tmp_path / "keys.json"
    key = writekeys.create("web", keys)
    topology = pubsub_emulator.topology()
    with collector(topology.events_topic, keys, "--publish-timeout-s", "1") as url:
        assert post(url, orjson.dumps(event(30)), key)[0] == 202
        process = pubsub_emulator.emulator.process
        os.kill(process.pid, signal.SIGSTOP)  # slow: the emulator stops answering
        try:
            started = time.monotonic()
            status, payload, headers = post(url, orjson.dumps(event(31)), key)
            elapsed = time.monotonic() - started
            assert (status, payload["error"]) == (503, "unavailable") and headers["retry-after"] == "2"
            assert elapsed < 3, f"503 took {elapsed:.1f} s; the bound is the 1 s publish timeout"
        finally:
            os.kill(process.pid, signal.SIGCONT)
        pubsub_emulator.emulator.stop()  # down: connection refused
        status, payload, headers = post(url, orjson.dumps(event(32)), key)
        assert status == 503 and "retry-after" in headers
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"{url}/readyz", timeout=10)
        assert not_ready.value.code == 503
    pubsub_emulator.restart()  # same port, empty state: keep this test last in the module
