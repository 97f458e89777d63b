"""The result cache: keys, time-to-live policy, and surviving a cache outage.

* Keys contain the warehouse data version, so a successful ``strata transform`` (which writes a
  new version) invalidates every cached result at once, in Redis and in-process alike.
* A result whose date range ends within the last ``STRATA_CACHE_HOT_DAYS`` days (or that has no
  range, such as a user's latest events) is *hot* and lives ``STRATA_CACHE_HOT_TTL_S``; older,
  *historical* ranges live ``STRATA_CACHE_HISTORICAL_TTL_S``.
* When the cache backend fails (Redis down), :class:`SafeCache` logs one warning, answers
  "miss" for ``STRATA_CACHE_RETRY_S`` seconds without touching Redis, then tries again. The API
  keeps answering from the warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time

import orjson
from django.conf import settings
from django.core.cache import caches

log = logging.getLogger("graphql_site.cache")

MISSING = object()


class SafeCache:
    """Django's default cache with every failure turned into a miss, and a warning logged once
    per outage."""

    def __init__(self, alias: str = "default"):
        self.alias = alias
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    @property
    def backend(self):
        return caches[self.alias]

    @property
    def available(self) -> bool:
        return not self._down or time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            if not self._down:
                log.warning("cache unavailable (%s: %s); serving from the warehouse without a cache "
                            "until it is back", type(exc).__name__, exc)
            self._down = True
            self._down_until = time.monotonic() + settings.STRATA_CACHE_RETRY_S

    def _ok(self) -> None:
        if self._down:
            with self._lock:
                if self._down:
                    log.warning("cache available again")
                self._down = False

    def get(self, key: str, default=MISSING):
        if not self.available:
            return default
        try:
            value = self.backend.get(key, default)
        except Exception as exc:  # noqa: BLE001 - any backend failure means "no cache"
            self._failed(exc)
            return default
        self._ok()
        return value

    def set(self, key: str, value, ttl_s: int) -> bool:
        if not self.available:
            return False
        try:
            self.backend.set(key, value, ttl_s)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return False
        self._ok()
        return True

    def count_and_get(self, counter_key: str | None, ttl_s: int, get_key: str | None):
        """Bump a window counter and read a cached value in one Redis round trip.

        Returns (counter value, or ``None`` when not counted/unavailable; cached value or
        ``MISSING``). On other backends it is :meth:`incr` then :meth:`get`.
        """
        wrapper = getattr(self.backend, "client", None)
        if not (hasattr(wrapper, "get_client") and hasattr(wrapper, "decode")):
            count = self.incr(counter_key, ttl_s) if counter_key else None
            return count, (self.get(get_key) if get_key else MISSING)
        if not self.available:
            return None, MISSING
        try:
            pipe = wrapper.get_client(write=True).pipeline(transaction=False)
            if counter_key:
                raw_counter = wrapper.make_key(counter_key)
                pipe.set(raw_counter, 0, ex=ttl_s, nx=True)
                pipe.incr(raw_counter)
            if get_key:
                pipe.get(wrapper.make_key(get_key))
            replies = pipe.execute()
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return None, MISSING
        self._ok()
        count = replies[1] if counter_key else None
        raw = replies[-1] if get_key else None
        return count, (MISSING if raw is None else wrapper.decode(raw))

    def incr(self, key: str, ttl_s: int) -> int | None:
        """Increment a counter that expires ``ttl_s`` after creation; ``None`` if unavailable."""
        if not self.available:
            return None
        try:
            backend = self.backend
            backend.add(key, 0, ttl_s)
            value = backend.incr(key)
        except ValueError:  # expired between add and incr
            try:
                self.backend.add(key, 1, ttl_s)
                value = 1
            except Exception as exc:  # noqa: BLE001
                self._failed(exc)
                return None
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)
            return None
        self._ok()
        return value


cache = SafeCache()

_seen_version: str | None = None
_seen_lock = threading.Lock()
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def note_version(version: str) -> None:
    """Called per request with the data version it reads. When this worker first sees a new
    version, entries of the one before are deleted from Redis in the background (once per
    version across workers); they could never be read again and would only wait for their TTL."""
    global _seen_version
    if version == _seen_version:
        return
    with _seen_lock:
        old, _seen_version = _seen_version, version
    if old is not None and old != version:
        threading.Thread(target=purge_version, args=(old,), name="purge-cache", daemon=True).start()


def purge_version(version: str) -> int:
    """Delete the cached results of ``version`` (Redis only; the in-process cache ages out)."""
    backend = cache.backend
    if not hasattr(backend, "delete_pattern") or not cache.available:
        return 0
    try:
        if not backend.add(f"purge:{version}", 1, 3600):
            return 0  # another worker is doing it
        escaped = version.translate(_GLOB_SPECIAL)
        return sum(backend.delete_pattern(f"{kind}:{escaped}:*") or 0 for kind in ("r", "f"))
    except Exception as exc:  # noqa: BLE001 - best effort: entries expire anyway
        log.info("could not purge cache entries of data version %s: %s", version, exc)
        return 0


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def ttl_for(end: dt.date | None, today: dt.date | None = None) -> int:
    """Seconds to keep a result whose date range ends on ``end`` (``None``: no range = hot)."""
    today = today or today_utc()
    if end is None or end >= today - dt.timedelta(days=settings.STRATA_CACHE_HOT_DAYS - 1):
        return settings.STRATA_CACHE_HOT_TTL_S
    return settings.STRATA_CACHE_HISTORICAL_TTL_S


def _digest(*parts) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:40]


def field_key(version: str, field: str, args: dict) -> str:
    return f"f:{version}:{field}:{_digest(args)}"


def response_key(version: str, query: str, variables, operation_name, policy=()) -> str:
    return f"r:{version}:{_digest(query, variables, operation_name, policy)}"
