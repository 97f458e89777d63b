"""Per-token rate limit: a fixed one-minute window counted in the shared cache.

When the cache is down each worker counts on its own (the limit then holds per worker rather
than per service), so an outage neither blocks clients nor removes the limit.
"""

from __future__ import annotations

import threading
import time

from graphql_site.gateway.caching import MISSING, cache

from .auth import Principal

WINDOW_S = 60
_local: dict[tuple[int, int], int] = {}
_lock = threading.Lock()


def check(principal: Principal) -> int:
    """0 when the request may proceed, else the seconds until the window resets."""
    return check_and_get(principal, None)[0]


def check_and_get(principal: Principal, cache_key: str | None):
    """(retry-after seconds or 0, cached value or ``caching.MISSING`` for ``cache_key``), in one
    round trip to Redis: the hot path of a cached response."""
    limit = principal.rate_limit_per_minute
    now = time.time()
    window = int(now // WINDOW_S)
    counter = f"rl:{principal.token_id}:{window}" if limit else None
    count, cached = cache.count_and_get(counter, WINDOW_S + 5, cache_key)
    if not limit:
        return 0, cached
    if count is None:
        with _lock:
            for key in [k for k in _local if k[1] != window]:
                del _local[key]
            count = _local[(principal.token_id, window)] = _local.get((principal.token_id, window), 0) + 1
    if count > limit:
        return max(1, int(WINDOW_S - now % WINDOW_S)), MISSING
    return 0, cached
