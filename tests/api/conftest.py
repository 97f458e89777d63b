"""Django set-up for the API tests (no pytest-django: a session fixture creates the test DB).

* Django's database: SQLite in memory, or PostgreSQL when ``DATABASE_URL`` is set (CI).
* Cache: the real Redis on 127.0.0.1:6379 when it is up (with a key prefix of its own, so
  nothing else in that Redis is touched), else Django's in-process cache; tests that need Redis
  say so with ``need_service``.
* Warehouse: a DuckDB file built from ``events.make_events()`` by ``fixture_warehouse``.
"""

from __future__ import annotations

import os
import pathlib
import sys
import uuid

import pytest

# ``graphql_site`` is a project directory, not an installed package.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from conftest import port_open

REDIS_UP = port_open("127.0.0.1", 6379)
if REDIS_UP:
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    os.environ["STRATA_CACHE_KEY_PREFIX"] = f"strata-test-{uuid.uuid4().hex[:8]}"
else:
    os.environ.pop("REDIS_URL", None)
os.environ["DJANGO_SETTINGS_MODULE"] = "graphql_site.settings.test"

import django  # noqa: E402

django.setup()

from django.core.cache import caches  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings, setup_test_environment, teardown_test_environment  # noqa: E402

from api import events as event_data  # noqa: E402
from api import fixture_warehouse  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def django_test_db():
    from django.db import connection

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    yield
    connection.creation.destroy_test_db(old_name, verbosity=0)
    teardown_test_environment()


@pytest.fixture(scope="session")
def raw_events():
    return event_data.make_events()


@pytest.fixture(scope="session")
def accepted_events(raw_events):
    return event_data.accepted(raw_events)


@pytest.fixture(scope="session")
def warehouse_home(tmp_path_factory, raw_events):
    home = tmp_path_factory.mktemp("api-warehouse")
    fixture_warehouse.build(home, raw_events, version="fixture-v1")
    return home


@pytest.fixture(autouse=True)
def use_warehouse(warehouse_home):
    with override_settings(STRATA_WAREHOUSE_PATH=str(warehouse_home / "warehouse.duckdb")):
        yield


def clear_cache() -> None:
    backend = caches["default"]
    if hasattr(backend, "delete_pattern"):
        backend.delete_pattern("*")  # only keys under our test prefix
    else:
        backend.clear()


@pytest.fixture(autouse=True)
def fresh_cache():
    from graphql_site.gateway import caching

    clear_cache()
    caching.cache._down = False
    caching.cache._down_until = 0.0
    yield


@pytest.fixture(scope="session")
def token(django_test_db):
    from graphql_site.tokens.models import ApiToken

    _row, value = ApiToken.issue(f"tests-{uuid.uuid4().hex[:6]}", rate_limit_per_minute=0)
    return value


class Api:
    """POSTs GraphQL through Django's full request handling (middleware, URLs, view)."""

    def __init__(self, token: str | None):
        self.client = Client()
        self.token = token

    def post(self, query: str, variables: dict | None = None, token: str | None = "default", **extra):
        token = self.token if token == "default" else token
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        body = {"query": query, "variables": variables or {}}
        response = self.client.post("/graphql", body, content_type="application/json", **headers, **extra)
        return response.status_code, response.json()

    def data(self, query: str, variables: dict | None = None) -> dict:
        status, body = self.post(query, variables)
        assert status == 200 and "errors" not in body, body
        return body["data"]


@pytest.fixture
def api(token):
    return Api(token)
