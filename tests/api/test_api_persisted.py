"""Issue 9, section 4: the cached path. Apollo's persisted queries (APQ) over POST and GET, the
allow-list mode, HTTP caching (ETag by data version, Cache-Control, 304), and a response cache
in front of Django that still authenticates and counts every request."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.test.utils import override_settings

from api import fixture_warehouse

QUERY = 'query($d: Date!) { dailyActiveUsers(date: $d) { date activeUsers } }'
HASH = hashlib.sha256(QUERY.encode()).hexdigest()
PQ = {"persistedQuery": {"version": 1, "sha256Hash": HASH}}
VARS = {"d": "2026-03-03"}


def test_apq_register_then_run_by_hash(api):
    status, body = api.post(None, VARS, extensions=PQ)
    assert status == 200 and body["errors"] == [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]
    status, body = api.post(QUERY, VARS, extensions=PQ)  # the retry with the text registers it
    assert status == 200 and body["data"]["dailyActiveUsers"]["date"] == "2026-03-03"
    status, body = api.post(None, VARS, extensions=PQ)
    assert status == 200 and body["data"]["dailyActiveUsers"]["date"] == "2026-03-03"


def test_apq_refuses_a_hash_that_is_not_the_query(api):
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    status, body = api.post(QUERY, VARS, extensions=wrong)
    assert status == 400 and body["errors"][0]["message"] == "provided sha does not match query"
    status, body = api.post(None, VARS, extensions={"persistedQuery": {"version": 2, "sha256Hash": HASH}})
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_a_stored_text_is_checked_against_its_hash(api):
    """A text planted under a hash it does not have is never run."""
    from graphql_site.gateway import caching

    caching.get_cache().set(f"q:{HASH}", b"{ __typename }", 60)
    status, body = api.post(None, VARS, extensions=PQ)
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"


def test_get_persisted_query_with_etag_cache_control_and_304(api):
    api.post(QUERY, VARS, extensions=PQ)
    status, headers, body = api.get({"variables": VARS, "extensions": PQ})
    assert status == 200 and body["data"]["dailyActiveUsers"]["date"] == "2026-03-03"
    etag = headers["etag"]
    assert etag.startswith('W/"') and headers["vary"] == "Authorization"
    assert headers["cache-control"].startswith("public, max-age=")
    status, headers2, body = api.get({"variables": VARS, "extensions": PQ}, headers={"If-None-Match": etag})
    assert status == 304 and body is None and headers2["etag"] == etag
    # another variable value is another representation
    status, headers3, _body = api.get({"variables": {"d": "2026-03-04"}, "extensions": PQ},
                                      headers={"If-None-Match": etag})
    assert status == 200 and headers3["etag"] != etag
    # GET with the query text works too, with the same validators as the hash
    status, headers4, _body = api.get({"query": QUERY, "variables": VARS})
    assert status == 200 and headers4["etag"] == etag


def test_etag_follows_the_data_version(api, tmp_path, raw_events):
    home = tmp_path / "home"
    fixture_warehouse.build(home, raw_events, version="etag-v1")
    with override_settings(STRATA_WAREHOUSE_PATH=str(home / "warehouse.duckdb")):
        _s, headers, _b = api.get({"query": QUERY, "variables": VARS})
        fixture_warehouse.build(home, raw_events[:200], version="etag-v2")
        status, headers2, body = api.get({"query": QUERY, "variables": VARS},
                                         headers={"If-None-Match": headers["etag"]})
    assert status == 200 and headers2["etag"] != headers["etag"] and body["extensions"]["dataVersion"] == "etag-v2"


def test_uncacheable_or_failed_responses_carry_no_validators(api, tmp_path):
    status, headers, body = api.get({"query": '{ metric(name: "events", dateRange: {start: "2026-03-01", '
                                              'end: "2026-03-02"}) { name } }'})
    assert status == 200 and "etag" not in headers  # admin-defined: changes without a new version
    with override_settings(STRATA_WAREHOUSE_PATH=str(tmp_path / "none.duckdb")):
        status, headers, body = api.get({"query": QUERY, "variables": VARS})
    assert status == 200 and body["errors"] and "etag" not in headers


def test_hits_and_304s_are_authenticated_and_counted(api):
    from graphql_site.tokens.models import ApiToken

    _row, limited = ApiToken.issue("counted-hits", rate_limit_per_minute=4)
    assert api.post(QUERY, VARS, token=limited)[1]["extensions"]["cache"] == "miss"
    assert api.post(QUERY, VARS, token=limited)[1]["extensions"]["cache"] == "hit"
    _s, headers, _b = api.get({"query": QUERY, "variables": VARS}, token=limited)
    assert api.get({"query": QUERY, "variables": VARS}, token=limited,
                   headers={"If-None-Match": headers["etag"]})[0] == 304
    assert api.post(QUERY, VARS, token=limited)[0] == 429
    assert api.get({"query": QUERY, "variables": VARS}, token=limited, headers={"If-None-Match": headers["etag"]})[0] == 429
    # a cached answer is never given without a valid token
    assert api.post(QUERY, VARS, token="strata_wrong")[0] == 401
    assert api.get({"query": QUERY, "variables": VARS}, token=None, headers={"If-None-Match": headers["etag"]})[0] == 401


def test_a_hit_never_enters_djangos_stack(api, monkeypatch):
    """The response cache sits in front of Django: with Django's handler broken, hits still answer."""
    assert api.post(QUERY, VARS)[0] == 200

    def broken(environ, start_response):
        raise AssertionError("Django was called for a cached /graphql request")

    monkeypatch.setattr(api.app, "django_app", broken)
    status, body = api.post(QUERY, VARS)
    assert status == 200 and body["extensions"]["cache"] == "hit"


def test_allow_list_mode_runs_only_the_manifest(api, tmp_path):
    manifest = tmp_path / "persisted-query-manifest.json"
    manifest.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": HASH, "body": QUERY, "name": "Dau", "type": "query"}]}))
    with override_settings(STRATA_PERSISTED_QUERIES="allowlist", STRATA_PERSISTED_QUERY_MANIFEST=str(manifest)):
        status, body = api.post(None, VARS, extensions=PQ)  # by hash, never registered: from the manifest
        assert status == 200 and body["data"]["dailyActiveUsers"]["date"] == "2026-03-03"
        assert api.post(QUERY, VARS)[0] == 200  # the identical text is allowed
        status, body = api.post("{ __typename }")
        assert status == 400 and body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
        other = "{ __typename }"
        other_pq = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(other.encode()).hexdigest()}}
        assert api.post(other, extensions=other_pq)[0] == 400  # nothing is registered
        assert api.post(None, extensions=other_pq)[1]["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"


def test_a_manifest_with_a_wrong_id_is_refused(tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    from graphql_site.gateway import persisted

    manifest = tmp_path / "bad.json"
    manifest.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": "0" * 64, "body": QUERY, "name": "Dau", "type": "query"}]}))
    with pytest.raises(ImproperlyConfigured, match="not the SHA-256"):
        persisted.load_manifest(str(manifest))
