"""Per-request state shared by resolvers: one warehouse snapshot, the plan, cache bookkeeping."""

from __future__ import annotations

import logging
from typing import Any, Callable

import sqlalchemy as sa
from graphql import GraphQLError

from graphql_site.querylayer.engine import QueryStats, Snapshot, WarehouseUnavailable

from . import caching

log = logging.getLogger("graphql_site.gateway")


class RequestContext:
    """``info.context`` for every resolver of one request."""

    def __init__(self, principal, snapshot: Snapshot | None, unavailable: WarehouseUnavailable | None = None):
        self.principal = principal
        self._snapshot = snapshot
        self._unavailable = unavailable
        self.stats = QueryStats()
        self.hits = 0
        self.misses = 0
        #: The checked arguments of every root field (``planning.plan``), set before execution.
        self.plan = None
        #: Shortest time-to-live among the results in this response (for the response cache).
        self.ttl_s: int | None = None

    @property
    def warehouse_available(self) -> bool:
        return self._snapshot is not None

    @property
    def snapshot(self) -> Snapshot:
        """The data version this whole response reads (taken once, at the start of the request)."""
        if self._snapshot is None:
            raise GraphQLError(f"warehouse unavailable: {self._unavailable}",
                               extensions={"code": "WAREHOUSE_UNAVAILABLE"})
        return self._snapshot

    def note_ttl(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s if self.ttl_s is None else min(self.ttl_s, ttl_s)


def resolve_cached(info, field: str, args: dict, end, compute: Callable[[Snapshot, QueryStats], Any]):
    """Serve ``compute(snapshot, stats)`` from the cache under (data version, field, args)."""
    ctx: RequestContext = info.context
    snap = ctx.snapshot
    key = caching.field_key(snap.version, field, args)
    ttl_s = caching.ttl_for(end)
    ctx.note_ttl(ttl_s)
    cache = caching.get_cache()
    payload = cache.get(key)
    if payload is not None:
        try:
            value = caching.decode_value(payload)
        except Exception:  # noqa: BLE001 - a value that does not decode is a miss
            log.warning("ignoring an undecodable cache entry for %s", field)
        else:
            ctx.hits += 1
            return value
    ctx.misses += 1
    value = run_warehouse(lambda: compute(snap, ctx.stats))
    cache.set(key, caching.encode_value(value), ttl_s)
    return value


def run_warehouse(fn: Callable[[], Any]):
    """Turn warehouse failures into GraphQL errors that say what to do, without leaking SQL."""
    try:
        return fn()
    except WarehouseUnavailable as exc:
        raise GraphQLError(f"warehouse unavailable: {exc}", extensions={"code": "WAREHOUSE_UNAVAILABLE"}) from None
    except sa.exc.DBAPIError as exc:
        text = str(exc.orig) if exc.orig is not None else str(exc)
        log.exception("warehouse query failed")
        if "Catalog Error" in text or "does not exist" in text or "Not found" in text:
            raise GraphQLError("warehouse table missing: the marts are not built yet "
                               "(run `strata transform`)", extensions={"code": "WAREHOUSE_NOT_BUILT"}) from None
        raise GraphQLError("warehouse query failed (details in the server log)",
                           extensions={"code": "WAREHOUSE_ERROR"}) from None
