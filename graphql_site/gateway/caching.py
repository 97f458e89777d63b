"""The result cache: what is stored, where, for how long, and what happens when Redis fails.

What is stored is never executable:

* whole responses are the JSON bytes sent to the client;
* root-field results are MessagePack, with extension types for ``Decimal``, ``date`` and
  ``datetime`` only (:func:`encode_value` / :func:`decode_value`);
* every entry in Redis is sealed with an HMAC of its key and bytes (key derived from
  ``SECRET_KEY``), so a value planted in Redis by someone without the secret, or moved from
  another key, is treated as a miss. Nothing is ever unpickled.

Where: two levels.

* A per-process LRU (:class:`LocalStore`), bounded by bytes (``STRATA_CACHE_LOCAL_BYTES``): a
  hit costs a dictionary lookup and no network round trip.
* Redis (``REDIS_URL``; ``rediss://`` for TLS, ``redis://:password@...`` or
  ``redis://user:password@...`` for AUTH), shared by every worker. Without ``REDIS_URL`` the
  local level is the whole cache.

Keys contain the warehouse data version, so a successful ``strata transform`` (a new version)
invalidates every cached result at once. A result whose date range ends within the last
``STRATA_CACHE_HOT_DAYS`` days (or that has no range) is *hot* and lives
``STRATA_CACHE_HOT_TTL_S``; older ranges live ``STRATA_CACHE_HISTORICAL_TTL_S``.

When Redis fails, :class:`RedisStore` logs one warning, answers "miss" for
``STRATA_CACHE_RETRY_S`` seconds without touching Redis, then tries again. The API keeps
answering from the warehouse (and the local level).
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import hashlib
import hmac
import logging
import threading
import time

import msgpack
import orjson
from django.core.signals import setting_changed

from .conf import conf

log = logging.getLogger("graphql_site.cache")

# ---- sealed, non-executable values -------------------------------------------------------------

_MAGIC = b"S1"
_TAG_BYTES = 16
_EXT_DECIMAL, _EXT_DATE, _EXT_DATETIME = 1, 2, 3


def _mac_key() -> bytes:
    return hashlib.sha256(b"strata-cache-seal|" + conf().SECRET_KEY.encode()).digest()


def seal(key: str, payload: bytes) -> bytes:
    tag = hmac.digest(_mac_key(), key.encode() + b"\0" + payload, "sha256")[:_TAG_BYTES]
    return _MAGIC + tag + payload


def unseal(key: str, value) -> bytes | None:
    """The payload, or ``None`` for anything this process did not seal under ``key``."""
    if not isinstance(value, bytes) or not value.startswith(_MAGIC) or len(value) < 2 + _TAG_BYTES:
        return None
    tag, payload = value[2:2 + _TAG_BYTES], value[2 + _TAG_BYTES:]
    want = hmac.digest(_mac_key(), key.encode() + b"\0" + payload, "sha256")[:_TAG_BYTES]
    return payload if hmac.compare_digest(tag, want) else None


def _ext_default(value):
    if isinstance(value, decimal.Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, format(value, "f").encode())
    if isinstance(value, dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, value.isoformat().encode())
    if isinstance(value, dt.date):
        return msgpack.ExtType(_EXT_DATE, value.isoformat().encode())
    raise TypeError(f"cannot cache a {type(value).__name__}")


def _ext_hook(code: int, data: bytes):
    text = data.decode()
    if code == _EXT_DECIMAL:
        return decimal.Decimal(text)
    if code == _EXT_DATE:
        return dt.date.fromisoformat(text)
    if code == _EXT_DATETIME:
        return dt.datetime.fromisoformat(text)
    raise ValueError(f"unknown extension type {code}")


def encode_value(value) -> bytes:
    """A root field's result (dicts, lists, numbers, text, Decimal, date, datetime) as bytes."""
    return msgpack.packb(value, default=_ext_default, datetime=False)


def decode_value(data: bytes):
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=True)


# ---- stores ------------------------------------------------------------------------------------

class LocalStore:
    """A thread-safe LRU of bytes with expiry, bounded by the bytes it holds."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            with self._lock:
                self._drop(key)
            return None
        try:
            self._entries.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile
            pass
        return entry[1]

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        size = len(key) + len(value)
        if size > self.max_bytes // 4:
            return  # one entry never takes a large share of the budget
        with self._lock:
            self._drop(key)
            self._entries[key] = (time.monotonic() + ttl_s, value)
            self.bytes += size
            while self.bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= len(key) + len(entry[1])

    def clear(self, keep_prefix: str | None = None) -> None:
        with self._lock:
            if keep_prefix is None:
                self._entries.clear()
                self.bytes = 0
                return
            for key in [k for k in self._entries if not k.startswith(keep_prefix)]:
                self._drop(key)


class RedisStore:
    """Redis through redis-py, raw bytes only, every failure turned into a miss."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.prefix = prefix + ":"
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.5,
                                           health_check_interval=30)
        self._down = False
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return not self._down or time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            if not self._down:
                log.warning("cache unavailable (%s: %s); serving from the warehouse without the shared "
                            "cache until it is back", type(exc).__name__, exc)
            self._down = True
            self._down_until = time.monotonic() + conf().STRATA_CACHE_RETRY_S

    def _ok(self) -> None:
        if self._down:
            with self._lock:
                if self._down:
                    log.warning("cache available again")
                self._down = False

    def _call(self, fn, default=None):
        if not self.available:
            return default
        try:
            result = fn(self.client)
        except Exception as exc:  # noqa: BLE001 - any Redis failure means "no shared cache"
            self._failed(exc)
            return default
        self._ok()
        return result

    def get(self, key: str) -> bytes | None:
        return self._call(lambda c: c.get(self.prefix + key))

    def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        return self._call(lambda c: c.set(self.prefix + key, value, ex=max(1, int(ttl_s))), False)

    def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        return bool(self._call(lambda c: c.set(self.prefix + key, value, ex=max(1, int(ttl_s)), nx=True), False))

    def incrby(self, key: str, amount: int, ttl_s: int) -> int | None:
        """Add to a counter that expires ``ttl_s`` after its creation; ``None`` if unavailable."""
        def run(c):
            pipe = c.pipeline(transaction=False)
            pipe.set(self.prefix + key, 0, ex=ttl_s, nx=True)
            pipe.incrby(self.prefix + key, amount)
            return pipe.execute()[1]
        return self._call(run)

    def delete_matching(self, pattern: str) -> int:
        def run(c):
            n = 0
            for batch in _batches(c.scan_iter(match=self.prefix + pattern, count=500), 500):
                n += c.delete(*batch)
            return n
        return self._call(run, 0)

    def ping(self) -> bool:
        return bool(self._call(lambda c: c.ping(), False))


def _batches(iterable, n):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


class Cache:
    """The two levels behind one interface. The local level holds payloads (only this process
    writes it); Redis holds sealed payloads, checked on every read."""

    def __init__(self, local: LocalStore, shared: RedisStore | None):
        self.local = local
        self.shared = shared

    @property
    def available(self) -> bool:
        return self.shared is None or self.shared.available

    def get(self, key: str) -> bytes | None:
        """The payload under ``key``, or ``None``."""
        payload = self.local.get(key)
        if payload is not None or self.shared is None:
            return payload
        sealed = self.shared.get(key)
        if sealed is None:
            return None
        payload = unseal(key, sealed)
        if payload is None:
            log.warning("ignoring a cache entry that is not sealed by this service (key %s)", key[:60])
            return None
        self.local.set(key, payload, conf().STRATA_CACHE_LOCAL_TTL_S)
        return payload

    def set(self, key: str, payload: bytes, ttl_s: float) -> None:
        self.local.set(key, payload, min(ttl_s, conf().STRATA_CACHE_LOCAL_TTL_S))
        if self.shared is not None:
            self.shared.set(key, seal(key, payload), ttl_s)


_cache: Cache | None = None
_cache_lock = threading.Lock()


def get_cache() -> Cache:
    global _cache
    if _cache is None:
        with _cache_lock:
            if _cache is None:
                if conf().STRATA_CACHE == "off":
                    local = LocalStore(0)  # stores nothing: every request runs its SQL
                else:
                    local = LocalStore(conf().STRATA_CACHE_LOCAL_BYTES)
                shared = None
                if conf().STRATA_REDIS_URL and conf().STRATA_CACHE != "off":
                    shared = RedisStore(conf().STRATA_REDIS_URL, conf().STRATA_CACHE_KEY_PREFIX)
                _cache = Cache(local, shared)
    return _cache


def reset(**_kwargs) -> None:
    """Forget the stores (tests change the settings they are built from)."""
    global _cache, _seen_version
    with _cache_lock:
        _cache = None
        _seen_version = None


def _on_setting_changed(setting, **kwargs):
    if setting.startswith("STRATA_CACHE") or setting in ("STRATA_REDIS_URL", "SECRET_KEY"):
        reset()


setting_changed.connect(_on_setting_changed)

# ---- data versions -----------------------------------------------------------------------------

_seen_version: str | None = None
_seen_lock = threading.Lock()
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def note_version(version: str) -> None:
    """Called per request with the data version it reads. When this worker first sees a new
    version it empties its local level, and the entries of the version before are deleted from
    Redis in the background (once per version across workers): they could never be read again."""
    global _seen_version
    if version == _seen_version:
        return
    with _seen_lock:
        old, _seen_version = _seen_version, version
    if old is None or old == version:
        return
    cache = get_cache()
    cache.local.clear(keep_prefix="q:")  # persisted query texts are not versioned
    if cache.shared is not None:
        threading.Thread(target=purge_version, args=(old,), name="purge-cache", daemon=True).start()


def purge_version(version: str) -> int:
    """Delete the cached results of ``version`` from Redis."""
    shared = get_cache().shared
    if shared is None or not shared.add(f"purge:{version}", b"1", 3600):
        return 0  # no Redis, or another worker is doing it
    escaped = version.translate(_GLOB_SPECIAL)
    return sum(shared.delete_matching(f"{kind}:{escaped}:*") for kind in ("r", "f"))


# ---- time to live and keys ---------------------------------------------------------------------

def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def ttl_for(end: dt.date | None, today: dt.date | None = None) -> int:
    """Seconds to keep a result whose date range ends on ``end`` (``None``: no range = hot)."""
    today = today or today_utc()
    if end is None or end >= today - dt.timedelta(days=conf().STRATA_CACHE_HOT_DAYS - 1):
        return conf().STRATA_CACHE_HOT_TTL_S
    return conf().STRATA_CACHE_HISTORICAL_TTL_S


def digest(*parts) -> str:
    """Keys of whole responses: ``r:<version>:<digest of query hash, variables, operation, token
    scope and limits>`` (``pipeline.GraphQLRequest.response_key``)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:40]


def field_key(version: str, field: str, args: dict) -> str:
    return f"f:{version}:{field}:{digest(args)}"
