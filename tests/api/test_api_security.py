"""Issue 9, section 1: the API under abuse. Each test is one finding; each failed before the
gateway rewrite (it ran the pickle, took seconds, answered 500, leaked a path or a field name)."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import time

import pytest
from django.core.exceptions import ValidationError
from django.test.utils import override_settings

from api import fixture_warehouse
from api.conftest import REDIS_UP
from api.test_api_cache import _free_port, _start_redis
from conftest import need_service, port_open

DAU = '{ dailyActiveUsers(date: "2026-03-03") { activeUsers } }'


# ---- the cache never runs what it finds ---------------------------------------------------------

class _Planted:
    """Unpickling this creates a file: proof that code from the cache ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _redis():
    import redis

    return redis.Redis(host="127.0.0.1", port=6379)


def _keys_for(api, query: str) -> list[str]:
    """Every key a request for ``query`` reads: the response, and its root field."""
    from graphql_site.gateway import caching, persisted, pipeline
    from graphql_site.querylayer.engine import get_warehouse

    version = get_warehouse().snapshot().version
    request = pipeline.GraphQLRequest(query, persisted.sha256_hex(query), None, None)
    response = request.response_key(version, "read:all", pipeline._policy())
    field = caching.field_key(version, "dailyActiveUsers", {"date": dt.date(2026, 3, 3)})
    return [response, field]


@pytest.mark.services
def test_a_pickle_planted_in_redis_does_not_run(api, tmp_path, accepted_events):
    need_service(REDIS_UP, "Redis on 127.0.0.1:6379 (a value planted in the shared cache)")
    from django.conf import settings

    from api import expected

    marker = tmp_path / "ran"
    planted = pickle.dumps(_Planted(str(marker)))
    r = _redis()
    for key in _keys_for(api, DAU):
        r.set(f"{settings.STRATA_CACHE_KEY_PREFIX}:{key}", planted)
    status, body = api.post(DAU)
    assert not marker.exists(), "a pickled value from Redis was executed"
    assert status == 200 and body["extensions"]["cache"] == "miss"
    assert body["data"]["dailyActiveUsers"]["activeUsers"] == expected.dau(accepted_events, dt.date(2026, 3, 3))


@pytest.mark.services
def test_forged_entries_are_misses_not_answers(api):
    """Without the secret, a value written to Redis (even in the cache's own format) is ignored."""
    need_service(REDIS_UP, "Redis on 127.0.0.1:6379 (a value planted in the shared cache)")
    from django.conf import settings

    from graphql_site.gateway import caching

    response_key, field_key = _keys_for(api, DAU)
    r = _redis()
    forged = b'{"dailyActiveUsers":{"activeUsers":999999}}'
    r.set(f"{settings.STRATA_CACHE_KEY_PREFIX}:{response_key}", b"S1" + b"\0" * 16 + forged)
    # a genuine entry of another key, moved under this one
    other = caching.seal("r:elsewhere", forged)
    r.set(f"{settings.STRATA_CACHE_KEY_PREFIX}:{field_key}", other)
    status, body = api.post(DAU)
    assert status == 200 and body["data"]["dailyActiveUsers"]["activeUsers"] != 999999
    assert body["extensions"]["cache"] == "miss"


def test_cached_values_round_trip_exactly_and_refuse_code():
    import decimal

    from graphql_site.gateway import caching

    value = {"a": [decimal.Decimal("123456789.120000000"), dt.date(2026, 3, 1),
                   dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)], "b": None, "c": 1.5}
    assert caching.decode_value(caching.encode_value(value)) == value
    with pytest.raises(TypeError):
        caching.encode_value({"x": object()})
    assert caching.unseal("k", caching.seal("k", b"x")) == b"x"
    assert caching.unseal("k2", caching.seal("k", b"x")) is None
    assert caching.unseal("k", pickle.dumps("x")) is None


# ---- small queries that cost minutes ------------------------------------------------------------

def _timed(api, query, variables=None):
    started = time.perf_counter()
    status, body = api.post(query, variables)
    return status, body, time.perf_counter() - started


def test_fragment_bomb_is_refused_at_once(api):
    """20 fragments, each spreading the next twice: 826 bytes that took 11.9 s."""
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(20))
    query = "query { ...F0 } " + fragments + " fragment F20 on Query { __typename }"
    assert len(query) < 1000
    status, body, elapsed = _timed(api, query)
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert "fragments are expanded" in body["errors"][0]["message"]
    assert elapsed < 1.0


def test_alias_bomb_is_bounded_by_body_tokens_and_aliases(api, token):
    # 70k aliases of __typename: 1.5 MB, refused by the body bound before it is even parsed
    huge = "{" + " ".join(f"a{i}: __typename" for i in range(70_000)) + "}"
    status, headers, content = api.request("POST", "/graphql", json.dumps({"query": huge}).encode(),
                                           headers={"Authorization": f"Bearer {token}"})
    assert status == 413 and json.loads(content)["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    # under the body bound, the parser stops at the token bound
    many = "{" + " ".join(f"a{i}: __typename" for i in range(3000)) + "}"
    status, body, elapsed = _timed(api, many)
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "QUERY_TOO_LARGE" and elapsed < 1.0
    # and under that, the alias bound
    some = "{" + " ".join(f"a{i}: __typename" for i in range(51)) + "}"
    status, body = api.post(some)
    assert status == 400 and body["errors"][0]["extensions"]["maxAliases"] == 50


def test_hundreds_of_aliased_year_long_funnels_are_refused(api):
    year = '{start: "2025-03-02", end: "2026-03-02"}'
    funnels = " ".join(f'f{i}: conversionFunnel(dateRange: {year}) {{ steps {{ users }} }}' for i in range(40))
    status, body, elapsed = _timed(api, "{ " + funnels + " }")
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert body["errors"][0]["extensions"]["cost"] == 40 * (10 + 366 * 4) and elapsed < 1.0


def test_directive_repetition_is_bounded(api):
    query = "{ __typename " + "@include(if: true) " * 100 + "}"  # 600 tokens: under the token bound
    status, body, elapsed = _timed(api, query)
    assert status == 400 and len(body["errors"]) == 1 and elapsed < 1.0
    assert body["errors"][0]["extensions"] == {"code": "QUERY_TOO_COMPLEX", "maxDirectives": 50}


def test_parse_cache_is_bounded_by_bytes(api):
    from graphql_site.gateway import documents

    with override_settings(STRATA_PARSE_CACHE_BYTES=1_000_000):
        for n in range(40):
            fields = " ".join(f"f{k}_{n}: __typename" for k in range(40))  # ~800 bytes each, all distinct
            assert api.post("{ " + fields + " }")[0] == 200
        assert 0 < documents.cache.bytes <= 1_000_000
        assert len(documents.cache._entries) < 40


def test_long_tokens_are_refused_before_hashing(api):
    status, body = api.post(DAU, token="x" * 10_000)
    assert status == 401 and "over 200 characters" in body["errors"][0]["message"]


# ---- errors that skipped the rate limit -------------------------------------------------------

def test_deeply_nested_variables_are_400_and_counted(api):
    from graphql_site.tokens.models import ApiToken

    _row, limited = ApiToken.issue("nested-variables", rate_limit_per_minute=3)
    nested: dict = {}
    for _ in range(400):
        nested = {"x": nested}
    for _ in range(3):
        status, body = api.post(DAU, {"v": nested}, token=limited)
        assert status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST", body
        assert "nest at most" in body["errors"][0]["message"]
    assert api.post(DAU, token=limited)[0] == 429  # the refused requests were counted


def test_failed_authentications_are_limited_per_address(api, token):
    with override_settings(STRATA_AUTH_FAILURES_PER_MINUTE=5):
        for _ in range(5):
            status, _h, _b = api.request("POST", "/graphql", json.dumps({"query": DAU}).encode(),
                                         headers={"Authorization": "Bearer strata_guess"}, remote_addr="10.9.8.7")
            assert status == 401
        # now even a good token from that address waits, before any lookup
        status, headers, content = api.request("POST", "/graphql", json.dumps({"query": DAU}).encode(),
                                               headers={"Authorization": f"Bearer {token}"}, remote_addr="10.9.8.7")
        assert status == 429 and json.loads(content)["errors"][0]["extensions"]["code"] == "AUTH_RATE_LIMITED"
        assert int(headers["retry-after"]) >= 1
        # other addresses are not affected
        assert api.request("POST", "/graphql", json.dumps({"query": DAU}).encode(),
                           headers={"Authorization": f"Bearer {token}"}, remote_addr="10.9.8.8")[0] == 200


def test_client_address_behind_a_proxy_cannot_be_spoofed(api, token):
    """Behind one proxy (Cloud Run), the address is the one the proxy appended, not what the
    client wrote into X-Forwarded-For."""
    with override_settings(STRATA_AUTH_FAILURES_PER_MINUTE=2, STRATA_TRUSTED_PROXIES=1):
        for spoof in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
            api.request("POST", "/graphql", b"{}", headers={"Authorization": "Bearer bad",
                                                           "X-Forwarded-For": f"{spoof}, 10.1.1.1"})
        status, _h, _b = api.request("POST", "/graphql", json.dumps({"query": DAU}).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "X-Forwarded-For": "4.4.4.4, 10.1.1.1"})
        assert status == 429


# ---- disclosure --------------------------------------------------------------------------------

def test_no_field_name_suggestions_in_production(api):
    q = '{ dailyActiveUser(date: "2026-03-03") { activeUsers } }'
    with override_settings(STRATA_GRAPHQL_SUGGESTIONS=True):
        assert "Did you mean" in api.post(q)[1]["errors"][0]["message"]
    with override_settings(STRATA_GRAPHQL_SUGGESTIONS=False, STRATA_GRAPHQL_INTROSPECTION=False):
        status, body = api.post(q)
        assert status == 400 and "Did you mean" not in json.dumps(body) and "dailyActiveUsers" not in json.dumps(body)
        status, body = api.post('query($g: MetricGrain) { metric(name: "events", dateRange: '
                                '{start: "2026-03-01", end: "2026-03-02"}, grain: $g) { name } }', {"g": "DAYY"})
        assert status == 400 and "Did you mean" not in json.dumps(body)


def test_production_settings_turn_suggestions_off(monkeypatch):
    import importlib
    import sys

    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "api.example.com")
    monkeypatch.setenv("STRATA_GRAPHQL_SUGGESTIONS", "true")
    sys.modules.pop("graphql_site.settings.production", None)
    try:
        prod = importlib.import_module("graphql_site.settings.production")
        assert prod.STRATA_GRAPHQL_SUGGESTIONS is False and prod.STRATA_TRUSTED_PROXIES == 1
    finally:
        sys.modules.pop("graphql_site.settings.production", None)


# ---- the admin's metric definitions ------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("name", "events\n"), ("property_key", "price\n")])
def test_metric_names_with_a_trailing_newline_are_refused(field, value):
    from graphql_site.metrics.models import MetricDefinition

    kw = {"name": "nl_test", "aggregation": "sum", "expression": "property_number", "property_key": "price",
          "owner": "tests", field: value}
    with pytest.raises(ValidationError) as info:
        MetricDefinition(**kw).save()
    assert field in info.value.message_dict


def test_property_filter_keys_with_a_trailing_newline_are_refused():
    from graphql_site.metrics.models import MetricDefinition

    with pytest.raises(ValidationError) as info:
        MetricDefinition(name="nl_filter", aggregation="count", expression="event_id", owner="tests",
                         property_filters={"category\n": "books"}).save()
    assert "property_filters" in info.value.message_dict


def test_a_property_that_is_not_a_number_is_skipped_and_counted(api, tmp_path, raw_events):
    """One `"price": "abc"` used to fail every range covering its day (CAST); now it is skipped."""
    from graphql_site.metrics.models import MetricDefinition

    from api.events import _event, _ts

    bad = _event(99_001, "view_item", _ts(4, 100), "u01", properties={"category": "books", "price": "abc"})
    home = tmp_path / "home"
    fixture_warehouse.build(home, [*raw_events, bad], version="skip-v1")
    MetricDefinition.objects.update_or_create(name="price_total", defaults=dict(
        aggregation="sum", expression="property_number", property_key="price", event_types="view_item",
        owner="tests"))
    with override_settings(STRATA_WAREHOUSE_PATH=str(home / "warehouse.duckdb")):
        data = api.data('{ metric(name: "price_total", dateRange: {start: "2026-03-01", end: "2026-03-14"}) '
                        '{ skipped points { date exactValue skipped } } }')["metric"]
    assert data["skipped"] == 1
    day = {p["date"]: p for p in data["points"]}["2026-03-05"]
    assert day["skipped"] == 1 and day["exactValue"] is not None
    want = sum(json.loads(e["properties"])["price"] for e in raw_events
               if e["event_type"] == "view_item" and e["event_date"] == dt.date(2026, 3, 5)
               and e["received_at"] == min(x["received_at"] for x in raw_events if x["event_id"] == e["event_id"]))
    assert float(day["exactValue"]) == want


def test_the_sql_uses_try_cast_and_safe_cast():
    from graphql_site.metrics.models import MetricDefinition

    m = MetricDefinition(name="cast_check", aggregation="avg", expression="property_number", property_key="price",
                         owner="tests")
    assert "TRY_CAST(" in m.compiled_sql("duckdb") and "SAFE_CAST(" in m.compiled_sql("bigquery")
    assert " CAST(" not in m.compiled_sql("duckdb").replace("TRY_CAST(", "")


# ---- Redis AUTH and TLS through REDIS_URL -------------------------------------------------------

def _redis_server(*args: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args,
                             *([] if "--tls-port" in args else ["--port", str(port)])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def _wait_port(port: int) -> None:
    for _ in range(100):
        if port_open("127.0.0.1", port, 0.1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.mark.services
def test_redis_auth_through_redis_url(api):
    need_service(shutil.which("redis-server") is not None, "redis-server binary (a private Redis with AUTH)")
    import redis

    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--requirepass", "s3cret-pw"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        with override_settings(STRATA_REDIS_URL=f"redis://:s3cret-pw@127.0.0.1:{port}/0"):
            assert api.post(DAU)[1]["extensions"]["cache"] == "miss"
            from graphql_site.gateway import caching

            caching.get_cache().local.clear()
            assert api.post(DAU)[1]["extensions"]["cache"] == "hit"  # from that Redis
        assert redis.Redis(host="127.0.0.1", port=port, password="s3cret-pw").dbsize() > 0
        with override_settings(STRATA_REDIS_URL=f"redis://:wrong@127.0.0.1:{port}/0"):
            status, body = api.post(DAU)
            assert status == 200 and body["extensions"]["cache"] == "unavailable"
    finally:
        proc.kill()
        proc.wait(10)


def _self_signed(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (PEM paths); the certificate is its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return str(cert_path), str(key_path)


@pytest.mark.services
def test_redis_tls_through_rediss_url(api, tmp_path):
    need_service(shutil.which("redis-server") is not None, "redis-server binary (a private Redis over TLS)")
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
                             "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert,
                             "--tls-auth-clients", "no", "--requirepass", "tls-pw", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if port_open("127.0.0.1", port, 0.1) or proc.poll() is not None:
                break
            time.sleep(0.05)
        need_service(proc.poll() is None, "redis-server built with TLS support")
        url = f"rediss://:tls-pw@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        with override_settings(STRATA_REDIS_URL=url):
            from graphql_site.gateway import caching

            assert api.post(DAU)[1]["extensions"]["cache"] == "miss"
            caching.get_cache().local.clear()
            assert api.post(DAU)[1]["extensions"]["cache"] == "hit"
            assert caching.get_cache().shared.ping()
    finally:
        proc.kill()
        proc.wait(10)


# ---- the API's DuckDB connections are read-only and offline (issue 12, section 1) ---------------

@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1 AS x) TO '{tmp}/out.csv'",
    "SELECT * FROM read_csv('{tmp}/in.csv')",
    "INSTALL httpfs",
    "SET enable_external_access = true",
    "ATTACH '{tmp}/other.duckdb' AS other",
    "CREATE TABLE mart.planted AS SELECT 1 AS x",
])
def test_the_api_warehouse_connection_is_read_only_and_offline(tmp_path, statement):
    import sqlalchemy as sa

    from graphql_site.querylayer import engine

    (tmp_path / "in.csv").write_text("x\n1\n")
    warehouse = engine.DuckDBWarehouse()
    try:
        snap = warehouse.snapshot()
        with pytest.raises(sa.exc.DBAPIError):
            snap.rows(sa.text(statement.format(tmp=tmp_path)))
        assert not (tmp_path / "out.csv").exists()
        assert snap.rows(sa.text("select count(*) from mart.business_metrics"))[0][0] > 0
    finally:
        warehouse.close()
