"""The result cache against a real Redis: hit, miss, partial, invalidation by data version,
time-to-live policy, and Redis dying (and coming back) in the middle of a test."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import socket
import subprocess
import time

import pytest
from django.conf import settings
from django.test.utils import override_settings

from api import expected, fixture_warehouse
from graphql_site.gateway import caching
from api.conftest import REDIS_UP
from conftest import need_service, port_open

DAU = 'query($d: Date!) { dailyActiveUsers(date: $d) { activeUsers } }'
REVENUE = 'query { revenueMetrics(dateRange: {start: "2026-03-01", end: "2026-03-14"}) { orders } }'


def _ext(api, query, variables=None):
    status, body = api.post(query, variables)
    assert status == 200 and "errors" not in body, body
    return body["data"], body["extensions"]


@pytest.fixture
def own_warehouse(tmp_path, raw_events):
    home = tmp_path / "home"
    fixture_warehouse.build(home, raw_events, version="cache-v1")
    with override_settings(STRATA_WAREHOUSE_PATH=str(home / "warehouse.duckdb")):
        yield home


def _redis_keys(pattern: str) -> list[bytes]:
    import redis

    prefix = os.environ["STRATA_CACHE_KEY_PREFIX"]
    return redis.Redis(host="127.0.0.1", port=6379).keys(f"{prefix}:{pattern}")


@pytest.mark.services
def test_hit_miss_partial_and_invalidation_on_redis(api, own_warehouse, raw_events):
    need_service(REDIS_UP, "Redis on 127.0.0.1:6379 (tests of the Redis cache)")
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    v = {"d": "2026-03-03"}
    data1, ext1 = _ext(api, DAU, v)
    assert ext1 == {"cacheHit": False, "cache": "miss", "dataVersion": "cache-v1", "warehouse": "duckdb"}
    data2, ext2 = _ext(api, DAU, v)
    assert data2 == data1 and ext2["cacheHit"] is True and ext2["cache"] == "hit"
    assert _redis_keys("r:cache-v1:*") and _redis_keys("f:cache-v1:dailyActiveUsers:*")

    # A new query that shares one field with the cached one: partial.
    _data, ext3 = _ext(api, DAU.replace("activeUsers }", "activeUsers } " + REVENUE[8:-2]), v)
    assert ext3["cache"] == "partial" and ext3["cacheHit"] is False

    # A transform publishes a new build (here: without u01..u05); old entries are not served.
    survivors = [e for e in raw_events if e["user_id"] not in {"u01", "u02", "u03", "u04", "u05"}]
    fixture_warehouse.build(own_warehouse, survivors, version="cache-v2")
    data4, ext4 = _ext(api, DAU, v)
    assert ext4["dataVersion"] == "cache-v2" and ext4["cacheHit"] is False
    want = expected.dau(fixture_warehouse_events(survivors), dt.date(2026, 3, 3))
    assert data4["dailyActiveUsers"]["activeUsers"] == want != data1["dailyActiveUsers"]["activeUsers"]
    assert _ext(api, DAU, v)[1]["cache"] == "hit"
    # entries of the old version are deleted in the background, not left to their TTL
    for _ in range(50):
        if not _redis_keys("r:cache-v1:*") and not _redis_keys("f:cache-v1:*"):
            break
        time.sleep(0.05)
    assert not _redis_keys("r:cache-v1:*") and not _redis_keys("f:cache-v1:*")
    assert _redis_keys("r:cache-v2:*")


def fixture_warehouse_events(raw):
    from api.events import accepted

    return accepted(raw)


@pytest.mark.services
def test_ttl_hot_and_historical(api, own_warehouse):
    from graphql_site.gateway.caching import ttl_for

    today = dt.date(2026, 11, 26)
    assert ttl_for(today, today) == settings.STRATA_CACHE_HOT_TTL_S
    assert ttl_for(today - dt.timedelta(days=6), today) == settings.STRATA_CACHE_HOT_TTL_S
    assert ttl_for(today - dt.timedelta(days=7), today) == settings.STRATA_CACHE_HISTORICAL_TTL_S
    assert ttl_for(None, today) == settings.STRATA_CACHE_HOT_TTL_S
    need_service(REDIS_UP, "Redis on 127.0.0.1:6379 (TTL of Redis entries)")
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379)
    _ext(api, DAU, {"d": dt.datetime.now(dt.timezone.utc).date().isoformat()})
    hot = [r.ttl(k) for k in _redis_keys("r:cache-v1:*")]
    assert hot and all(0 < t <= settings.STRATA_CACHE_HOT_TTL_S for t in hot)
    _ext(api, DAU, {"d": "2026-03-02"})
    ttls = sorted(r.ttl(k) for k in _redis_keys("f:cache-v1:dailyActiveUsers:*"))
    assert ttls[0] <= settings.STRATA_CACHE_HOT_TTL_S < settings.STRATA_CACHE_HISTORICAL_TTL_S - 60 < ttls[-1]


def test_in_process_cache_without_redis(api, own_warehouse):
    with override_settings(STRATA_REDIS_URL=""):
        assert _ext(api, REVENUE)[1]["cache"] == "miss"
        assert _ext(api, REVENUE)[1]["cache"] == "hit"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if port_open("127.0.0.1", port, 0.1):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


@pytest.mark.services
def test_redis_stopped_in_the_middle(api, own_warehouse, accepted_events, caplog):
    need_service(shutil.which("redis-server") is not None, "redis-server binary (to start a private Redis)")
    port = _free_port()
    proc = _start_redis(port)
    private = f"redis://127.0.0.1:{port}/0"
    want = expected.dau(accepted_events, dt.date(2026, 3, 4))
    try:
        with override_settings(STRATA_REDIS_URL=private, STRATA_CACHE_RETRY_S=1):
            assert _ext(api, DAU, {"d": "2026-03-03"})[1]["cache"] == "miss"
            assert _ext(api, DAU, {"d": "2026-03-03"})[1]["cache"] == "hit"
            proc.kill()
            proc.wait(10)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="graphql_site.cache"):
                started = time.perf_counter()
                # a worker's own level still answers what it has seen
                assert _ext(api, DAU, {"d": "2026-03-03"})[1]["cache"] == "hit"
                # anything else comes from the warehouse, marked so, and fast
                for _ in range(5):
                    data, ext = _ext(api, DAU, {"d": "2026-03-04"})
                    assert data["dailyActiveUsers"]["activeUsers"] == want
                    assert ext["cache"] in ("unavailable", "hit") and ext["cacheHit"] is (ext["cache"] == "hit")
                for _ in range(3):
                    caching.get_cache().local.clear()
                    data, ext = _ext(api, DAU, {"d": "2026-03-04"})
                    assert data["dailyActiveUsers"]["activeUsers"] == want
                    assert ext["cache"] == "unavailable" and ext["cacheHit"] is False
                assert time.perf_counter() - started < 5
                # rate limiting keeps working without Redis (per worker)
                assert api.post('{ dailyActiveUsers(date: "2026-03-05") { activeUsers } }')[0] == 200
            warnings = [r for r in caplog.records if "cache unavailable" in r.getMessage()]
            assert len(warnings) == 1, [r.getMessage() for r in caplog.records]

            proc = _start_redis(port)
            time.sleep(1.1)
            assert _ext(api, DAU, {"d": "2026-03-07"})[1]["cache"] == "miss"
            import redis

            assert redis.Redis(host="127.0.0.1", port=port).keys(f"{settings.STRATA_CACHE_KEY_PREFIX}:r:*")  # stored in Redis again
    finally:
        proc.kill()
        proc.wait(10)


def test_a_request_keeps_its_snapshot_while_a_new_build_is_published(tmp_path, raw_events):
    """One response = one data version: a snapshot taken before a publish keeps reading the old
    file; the next snapshot reads the new one (DuckDB caches instances per path, see engine)."""
    import sqlalchemy as sa

    from graphql_site.querylayer import engine, tables

    home = tmp_path / "swap"
    fixture_warehouse.build(home, raw_events, version="swap-v1")
    count = sa.select(sa.func.count()).select_from(tables.stg_events)
    warehouse = engine.DuckDBWarehouse()
    try:
        with override_settings(STRATA_WAREHOUSE_PATH=str(home / "warehouse.duckdb")):
            old = warehouse.snapshot()
            n_old = old.rows(count)[0][0]
            fixture_warehouse.build(home, raw_events[:100], version="swap-v2")
            new = warehouse.snapshot()
            assert (old.version, new.version) == ("swap-v1", "swap-v2")
            assert new.rows(count)[0][0] < n_old
            assert old.rows(count)[0][0] == n_old  # a request still on the old version finishes on it
            assert warehouse.snapshot() is new  # unchanged files: same snapshot, no reopen
    finally:
        warehouse.close()
