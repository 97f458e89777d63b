"""The collector: a plain ASGI app that turns HTTP event posts into Pub/Sub messages.

Routes:

* ``POST /v1/events`` – one event object, or ``{"batch": [object, ...]}`` (at most
  ``MAX_EVENTS`` events and ``MAX_BODY_BYTES`` bytes). Auth: ``Authorization: Bearer <key>`` or
  HTTP Basic with the key as the user name (Segment's and RudderStack's convention).
  ``202 {"accepted": n, "message_ids": [...]}`` once Pub/Sub has acknowledged every message;
  ``400`` / ``401`` / ``408`` / ``413`` with ``{"error": code, "message": text}``;
  ``503`` with ``Retry-After`` when Pub/Sub does not acknowledge within ``publish_timeout_s``
  (or the collector is at its in-flight limit). Never a 2xx for an event that was not published.
* ``GET /healthz`` – the process is up. ``GET /readyz`` – Pub/Sub answers for the topic.

It checks only the envelope (auth, size, JSON, objects): the contract is the pipeline's job, so
one rule set decides, and a record the pipeline rejects still has its bytes in the dead letters.
Checks run cheapest first: auth and ``Content-Length`` before the body is read, size while it is
read, JSON last. Plain ASGI rather than a framework: three routes do not need a router, and
reading the body ourselves is what lets a request be refused at the limit instead of after it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import os
import pathlib
import time

import msgspec
import orjson

from strata_core import writekeys

MAX_EVENTS = 500
MAX_BODY_BYTES = 5 * 1024 * 1024
#: Pub/Sub attribute values are limited to 1024 bytes; a longer event_type is left to the pipeline.
_MAX_ATTRIBUTE_BYTES = 1024

_CHALLENGE = [(b"www-authenticate", b'Bearer realm="strata", Basic realm="strata"')]

log = logging.getLogger("collector")


class HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or []


class WriteKeys:
    """The key file's hashes, re-read when the file changes (checked at most every ``recheck_s``)."""

    def __init__(self, path: pathlib.Path, recheck_s: float = 2.0):
        self.path = pathlib.Path(path)
        self.recheck_s = recheck_s
        self._mtime = None
        self._checked = 0.0
        self._keys: dict[str, str] = {}
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.recheck_s:
            return
        self._checked = now
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if force or mtime != self._mtime:
            self._keys = writekeys.load(self.path) if mtime is not None else {}
            self._mtime = mtime

    def name_of(self, key: str) -> str | None:
        self._refresh()
        return self._keys.get(writekeys.digest(key))


def _key_from(headers: dict[bytes, bytes]) -> str:
    value = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, credentials = value.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme == "basic" and credentials.strip():
        try:
            user, _, _ = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    raise HTTPError(401, "unauthorized", "send a write key as `Authorization: Bearer <key>` or as the "
                    "user name of HTTP Basic auth (create one with `strata write-key create NAME`)",
                    _CHALLENGE)


def _events_of(body: bytes) -> tuple[list, list[bytes]]:
    """The envelope: one object or ``{"batch": [objects]}`` → (events, message data of each)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPError(400, "invalid_json", f"the body is not JSON ({exc}); send one event object or "
                        "{\"batch\": [event, ...]}") from None
    if type(doc) is not dict:
        kind = "array" if type(doc) is list else type(doc).__name__
        raise HTTPError(400, "not_an_object", f"the body is a JSON {kind}; send one event object or "
                        "{\"batch\": [event, ...]}")
    if "batch" not in doc:
        return [doc], [body.strip()]  # a single event is published with exactly the bytes sent
    batch = doc["batch"]
    if type(batch) is not list or not batch:
        raise HTTPError(400, "invalid_batch", "`batch` must be a non-empty array of event objects")
    if len(batch) > MAX_EVENTS:
        raise HTTPError(413, "too_many_events", f"the batch has {len(batch)} events; the limit is "
                        f"{MAX_EVENTS} per request: split it")
    for i, event in enumerate(batch):
        if type(event) is not dict:
            raise HTTPError(400, "not_an_object", f"batch[{i}] is not a JSON object; every event must be one")
    # Each member is published with exactly the bytes sent, as a single event is: a dead letter
    # then holds what the client wrote (a repeated key, say, which parsing would have merged).
    return batch, [bytes(raw) for raw in _decode_batch(body).batch]


class _Batch(msgspec.Struct):
    batch: list[msgspec.Raw]


_decode_batch = msgspec.json.Decoder(_Batch).decode


class Collector:
    """The ASGI application. ``publisher``: a ``PublisherAsyncClient`` (made at start-up if None)."""

    def __init__(self, topic: str, keys_path: pathlib.Path, *, publisher=None,
                 publish_timeout_s: float = 5.0, body_timeout_s: float = 10.0, retry_after_s: int = 2,
                 max_in_flight: int = 512):
        self.topic = topic
        self.keys = WriteKeys(keys_path)
        self.publisher = publisher
        self.publish_timeout_s = publish_timeout_s
        self.body_timeout_s = body_timeout_s
        self.retry_after_s = retry_after_s
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path == "/v1/events":
                if method != "POST":
                    raise HTTPError(405, "method_not_allowed", "use POST /v1/events", [(b"allow", b"POST")])
                status, body = await self._events(scope, receive)
            elif path == "/healthz" and method in ("GET", "HEAD"):
                status, body = 200, {"status": "ok"}
            elif path == "/readyz" and method in ("GET", "HEAD"):
                status, body = await self._ready()
            else:
                raise HTTPError(404, "not_found", "routes: POST /v1/events, GET /healthz, GET /readyz")
            headers = []
        except HTTPError as exc:
            status, body, headers = exc.status, {"error": exc.code, "message": exc.message}, exc.headers
        payload = orjson.dumps(body)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            *headers]})
        await send({"type": "http.response.body", "body": payload})

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.publisher is None:
                    from strata_core.pubsub import async_publisher

                    self.publisher = async_publisher()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _unavailable(self, message: str) -> HTTPError:
        return HTTPError(503, "unavailable", message, [(b"retry-after", str(self.retry_after_s).encode())])

    async def _events(self, scope, receive) -> tuple[int, dict]:
        received_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        headers = dict(scope["headers"])
        key_name = self.keys.name_of(_key_from(headers))
        if key_name is None:
            raise HTTPError(401, "unauthorized", "unknown write key; create one with "
                            "`strata write-key create NAME`", _CHALLENGE)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            raise HTTPError(413, "body_too_large", f"the body is {length.decode('latin-1')} bytes; the limit "
                            f"is {MAX_BODY_BYTES} bytes (5 MiB) per request")
        if self.in_flight >= self.max_in_flight:
            raise self._unavailable(f"the collector is at its limit of {self.max_in_flight} requests in "
                                    "flight; retry after the Retry-After seconds")
        self.in_flight += 1
        try:
            body = await self._read_body(receive)
            events, datas = _events_of(body)
            base = {"received_at": received_at, "source": "collector", "write_key_name": key_name}
            messages = []
            for event, data in zip(events, datas):
                attributes = base
                event_type = event.get("event_type")
                if type(event_type) is str and 0 < len(event_type.encode()) <= _MAX_ATTRIBUTE_BYTES:
                    attributes = {**base, "event_type": event_type}
                messages.append({"data": data, "attributes": attributes})
            message_ids = await self._publish(messages)
        finally:
            self.in_flight -= 1
        return 202, {"accepted": len(message_ids), "message_ids": message_ids}

    async def _read_body(self, receive) -> bytes:
        """The request body, refused at ``MAX_BODY_BYTES`` or after ``body_timeout_s`` (slow clients)."""
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        more = True
        while more:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except asyncio.TimeoutError:
                raise HTTPError(408, "request_timeout", f"the body did not arrive within "
                                f"{self.body_timeout_s:g} s; send it at once") from None
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "client_disconnected", "the client went away before the body ended")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise HTTPError(413, "body_too_large", f"the body is over the limit of {MAX_BODY_BYTES} "
                                "bytes (5 MiB) per request")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _publish(self, messages: list[dict]) -> list[str]:
        """One Publish RPC, bounded by ``publish_timeout_s``; any failure is a 503, never a 2xx."""
        try:
            response = await asyncio.wait_for(
                self.publisher.publish(topic=self.topic, messages=messages, retry=None,
                                       timeout=self.publish_timeout_s),
                self.publish_timeout_s + 0.5)
        except asyncio.TimeoutError:
            log.warning("publish to %s timed out after %.1f s", self.topic, self.publish_timeout_s)
            raise self._unavailable(f"Pub/Sub did not acknowledge within {self.publish_timeout_s:g} s; "
                                    "nothing was accepted, retry later") from None
        except Exception as exc:  # noqa: BLE001 - every publish failure means "not accepted"
            log.warning("publish to %s failed: %r", self.topic, exc)
            raise self._unavailable(f"Pub/Sub refused or is unreachable ({type(exc).__name__}); nothing "
                                    "was accepted, retry later") from None
        if len(response.message_ids) != len(messages):  # never claim more than Pub/Sub acknowledged
            raise self._unavailable("Pub/Sub acknowledged only part of the batch; retry it")
        return list(response.message_ids)

    async def _ready(self) -> tuple[int, dict]:
        try:
            await asyncio.wait_for(self.publisher.get_topic(topic=self.topic, retry=None, timeout=2), 2.5)
        except Exception as exc:  # noqa: BLE001
            raise self._unavailable(f"Pub/Sub topic {self.topic} is not reachable ({type(exc).__name__})") from None
        return 200, {"status": "ready", "topic": self.topic}
