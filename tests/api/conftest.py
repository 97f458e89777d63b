"""Django set-up for the API tests (no pytest-django: a session fixture creates the test DB).

* Django's database: SQLite in memory, or PostgreSQL when ``DATABASE_URL`` is set (CI).
* Cache: the real Redis on 127.0.0.1:6379 when it is up (with a key prefix of its own, so
  nothing else in that Redis is touched), else Django's in-process cache; tests that need Redis
  say so with ``need_service``.
* Warehouse: a DuckDB file built from ``events.make_events()`` by ``fixture_warehouse``.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import sys
import urllib.parse
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
    from graphql_site.gateway import caching, documents, ratelimit

    if REDIS_UP:
        import redis

        r = redis.Redis(host="127.0.0.1", port=6379)
        keys = list(r.scan_iter(match=f"{os.environ['STRATA_CACHE_KEY_PREFIX']}:*", count=1000))
        if keys:
            r.delete(*keys)  # only keys under our test prefix
    caches["default"].clear() if not REDIS_UP else None
    caching.reset()
    documents.cache.clear()
    ratelimit.reset()


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield


@pytest.fixture(scope="session")
def token(django_test_db):
    from graphql_site.tokens.models import ApiToken

    _row, value = ApiToken.issue(f"tests-{uuid.uuid4().hex[:6]}", rate_limit_per_minute=0)
    return value


class Api:
    """Requests through the real WSGI application (``graphql_site.wsgi``): the gateway in front of
    /graphql, Django (middleware, URLs, views) behind it. ``client`` is Django's test client, for
    pages that need a logged-in session (the admin)."""

    def __init__(self, token: str | None):
        from graphql_site.wsgi import application

        self.app = application
        self.client = Client()
        self.token = token

    def request(self, method: str, path: str, body: bytes = b"", query_string: str = "",
                headers: dict | None = None, remote_addr: str = "127.0.0.1"):
        """(status, headers dict, body bytes)."""
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query_string,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": remote_addr, "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)) if body else "",
        }
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
        captured = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"] = int(status.split()[0])
            captured["headers"] = {k.lower(): v for k, v in response_headers}

        chunks = self.app(environ, start_response)
        content = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        return captured["status"], captured["headers"], content

    def _auth(self, token) -> dict:
        token = self.token if token == "default" else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def post(self, query: str | None, variables: dict | None = None, token: str | None = "default",
             extensions: dict | None = None, headers: dict | None = None, **body_extra):
        body = {"query": query, "variables": variables or {}, **body_extra}
        if extensions is not None:
            body["extensions"] = extensions
        status, _headers, content = self.request(
            "POST", "/graphql", json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **self._auth(token), **(headers or {})})
        return status, json.loads(content)

    def get(self, params: dict, token: str | None = "default", headers: dict | None = None):
        """(status, headers, parsed body or None)."""
        query_string = urllib.parse.urlencode(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()})
        status, response_headers, content = self.request(
            "GET", "/graphql", query_string=query_string, headers={**self._auth(token), **(headers or {})})
        return status, response_headers, json.loads(content) if content else None

    def data(self, query: str, variables: dict | None = None) -> dict:
        status, body = self.post(query, variables)
        assert status == 200 and "errors" not in body, body
        return body["data"]


@pytest.fixture
def api(token):
    return Api(token)
