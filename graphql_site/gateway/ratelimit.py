"""Request limits counted in fixed one-minute windows: requests per token, and failed
authentications per client address.

Counting every request in Redis would cost a network round trip per request, more than a
cached answer itself costs. So each worker counts locally and adds its count to the shared
Redis counter in batches (:class:`WindowCounter`): when ``STRATA_RATE_LIMIT_BATCH`` requests are
pending, when ``STRATA_RATE_LIMIT_FLUSH_S`` has passed, and on *every* request once the token is
within ``STRATA_RATE_LIMIT_EXACT_MARGIN`` requests of its limit. Every request is counted. Far
from the limit another worker's count may lag by at most one batch; so with a margin of at
least (workers x batch) the limit holds exactly (defaults: batch 20, margin 200).

When Redis is down each worker counts on its own (the limit then holds per worker rather than
per service), so an outage neither blocks clients nor removes the limit.

Failed authentications are rare, so each one is counted in Redis at once; an address over
``STRATA_AUTH_FAILURES_PER_MINUTE`` is refused (429) before its token is even looked up, by
every worker that has seen it over the limit.
"""

from __future__ import annotations

import threading
import time

from . import caching
from .conf import conf

WINDOW_S = 60


def _window(now: float) -> int:
    return int(now // WINDOW_S)


def retry_after(now: float) -> int:
    return max(1, int(WINDOW_S - now % WINDOW_S))


class WindowCounter:
    """Per-key request counts in the current window, shared through Redis in batches."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._lock = threading.Lock()
        #: key -> [window, shared count last seen, pending (not yet added to Redis), last flush]
        self._state: dict[str, list] = {}

    def hit(self, key: str, limit: int, now: float | None = None) -> int:
        """Count one request for ``key``; the estimated count in this window, this one included."""
        now = time.time() if now is None else now
        window = _window(now)
        with self._lock:
            state = self._state.get(key)
            if state is None or state[0] != window:
                if len(self._state) > 100_000:
                    self._state = {k: v for k, v in self._state.items() if v[0] == window}
                state = self._state[key] = [window, 0, 0, now]
            state[2] += 1
            estimate = state[1] + state[2]
            due = (state[2] >= conf().STRATA_RATE_LIMIT_BATCH
                   or now - state[3] >= conf().STRATA_RATE_LIMIT_FLUSH_S
                   or estimate + conf().STRATA_RATE_LIMIT_EXACT_MARGIN >= limit)
            if not due:
                return estimate
            pending, state[2], state[3] = state[2], 0, now
        shared = caching.get_cache().shared
        total = shared.incrby(f"{self.prefix}:{key}:{window}", pending, WINDOW_S + 5) if shared else None
        with self._lock:
            if total is None:  # no Redis: this worker's count is the count
                state[1] += pending
            else:
                state[1] = max(state[1], total)
            return state[1] + state[2]


_requests = WindowCounter("rl")


def check_token(principal, now: float | None = None) -> int:
    """0 when the request may proceed, else the seconds until the window resets."""
    limit = principal.rate_limit_per_minute
    if not limit:
        return 0
    now = time.time() if now is None else now
    return retry_after(now) if _requests.hit(str(principal.token_id), limit, now) > limit else 0


class AuthFailures:
    """Failed authentications per client address, and the addresses currently refused."""

    def __init__(self):
        self._blocked: dict[str, float] = {}
        self._local: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def blocked(self, address: str, now: float | None = None) -> int:
        """Seconds until ``address`` may try again, or 0."""
        until = self._blocked.get(address)
        if until is None:
            return 0
        now = time.time() if now is None else now
        if until <= now:
            self._blocked.pop(address, None)
            return 0
        return max(1, int(until - now))

    def failed(self, address: str, now: float | None = None) -> None:
        """Count a failure; from the limit on, ``address`` is refused until the window ends."""
        limit = conf().STRATA_AUTH_FAILURES_PER_MINUTE
        if not limit:
            return
        now = time.time() if now is None else now
        window = _window(now)
        shared = caching.get_cache().shared
        count = shared.incrby(f"af:{address}:{window}", 1, WINDOW_S + 5) if shared else None
        if count is None:
            with self._lock:
                for key in [k for k in self._local if k[1] != window]:
                    del self._local[key]
                count = self._local[(address, window)] = self._local.get((address, window), 0) + 1
        if count >= limit:
            with self._lock:
                if len(self._blocked) > 100_000:
                    self._blocked = {a: t for a, t in self._blocked.items() if t > now}
                self._blocked[address] = (window + 1) * WINDOW_S


auth_failures = AuthFailures()


def reset() -> None:
    """Forget every count (tests)."""
    global _requests, auth_failures
    _requests = WindowCounter("rl")
    auth_failures = AuthFailures()
