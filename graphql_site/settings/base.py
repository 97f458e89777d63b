"""Settings shared by every environment. Everything that differs comes from the environment.

Environment variables (all optional locally):

* ``DJANGO_SECRET_KEY``      required in production;
* ``DATABASE_URL``           Django's own database (tokens, metric definitions, admin);
                             default SQLite at ``$STRATA_HOME/django.sqlite3``;
* ``REDIS_URL``              e.g. ``redis://127.0.0.1:6379/0``; default: in-process cache;
* ``STRATA_CACHE=off``       no result cache at all (to measure the uncached path);
* ``STRATA_WAREHOUSE``       ``duckdb`` (default) or ``bigquery``;
* ``STRATA_BIGQUERY_PROJECT``, ``STRATA_BIGQUERY_LOCATION``, ``STRATA_BIGQUERY_DATASETS``
  (``staging=strata_staging,curated=...``), ``STRATA_MAX_BYTES_BILLED`` (bytes, per query);
* ``DJANGO_ALLOWED_HOSTS``   comma-separated.
"""

from __future__ import annotations

import os
import pathlib

from strata_core import paths as strata_paths

# Before anything can import a Google client (sqlalchemy-bigquery, google-auth).
if os.environ.get("STRATA_WAREHOUSE", "duckdb") != "bigquery":
    strata_paths.use_offline_env()

BASE_DIR = pathlib.Path(__file__).resolve().parents[1]


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [v.strip() for v in value.split(",") if v.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "graphene_django",
    "graphql_site.tokens",
    "graphql_site.metrics",
    "graphql_site.gateway",
    "graphql_site.monitoring",
    "graphql_site.dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # What each POST /graphql costs, per query name (graphql_site/monitoring/costs.py).
    "graphql_site.monitoring.costs.CostMiddleware",
]

ROOT_URLCONF = "graphql_site.urls"
WSGI_APPLICATION = "graphql_site.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]


def database_config() -> dict:
    """PostgreSQL (or anything dj-database-url parses) when ``DATABASE_URL`` is set, else SQLite."""
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        return dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(strata_paths.home() / "django.sqlite3")}


DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def cache_config() -> dict:
    """Redis through django-redis when ``REDIS_URL`` is set, else Django's in-process cache.

    Short socket timeouts: when Redis is down the API answers from the warehouse, and a request
    must not wait long to find out (``gateway.caching`` then skips Redis for a while).
    """
    if os.environ.get("STRATA_CACHE", "on") == "off":  # benchmarks of the uncached path
        return {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    url = os.environ.get("REDIS_URL")
    if url:
        return {"default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": os.environ.get("STRATA_CACHE_KEY_PREFIX", "strata"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.25,
                "SOCKET_TIMEOUT": 0.5,
            },
        }}
    return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                        "LOCATION": "strata-api", "OPTIONS": {"MAX_ENTRIES": 10000}}}


CACHES = cache_config()

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = str(strata_paths.home() / "static")

GRAPHENE = {
    "SCHEMA": "graphql_site.schema.schema",
    "SCHEMA_OUTPUT": str(BASE_DIR / "schema.graphql"),
    "SCHEMA_INDENT": 2,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "graphql_site": {"handlers": ["console"], "level": os.environ.get("STRATA_LOG_LEVEL", "INFO")},
        "django": {"handlers": ["console"], "level": "WARNING"},
    },
}

# ---- Strata API ------------------------------------------------------------------------------

#: ``duckdb`` (local file, opened read-only) or ``bigquery``.
STRATA_WAREHOUSE = os.environ.get("STRATA_WAREHOUSE", "duckdb")
#: DuckDB file; ``None`` means ``$STRATA_HOME/warehouse.duckdb``, resolved per request.
STRATA_WAREHOUSE_PATH = os.environ.get("STRATA_WAREHOUSE_PATH") or None
#: DuckDB threads per server process (0 = DuckDB's default, one per core). gunicorn runs one
#: process per core, so one thread each runs concurrent requests in parallel without
#: oversubscribing the cores.
STRATA_DUCKDB_THREADS = env_int("STRATA_DUCKDB_THREADS", 1)
#: DuckDB memory per server process (DuckDB's own default is 80% of RAM, per process).
STRATA_DUCKDB_MEMORY_LIMIT = os.environ.get("STRATA_DUCKDB_MEMORY_LIMIT", "1GB")
STRATA_BIGQUERY_PROJECT = os.environ.get("STRATA_BIGQUERY_PROJECT", "")
STRATA_BIGQUERY_LOCATION = os.environ.get("STRATA_BIGQUERY_LOCATION", "")
#: Layer name -> BigQuery dataset, e.g. ``staging=strata_staging,mart=strata_mart``.
STRATA_BIGQUERY_DATASETS = dict(
    item.split("=", 1) for item in env_list("STRATA_BIGQUERY_DATASETS", []) if "=" in item)
#: Every BigQuery job carries this ``maximum_bytes_billed`` (bytes). 10 GiB by default.
STRATA_MAX_BYTES_BILLED = env_int("STRATA_MAX_BYTES_BILLED", 10 * 1024 ** 3)

#: Argument limits (a request over them gets a GraphQL error naming the argument).
STRATA_MAX_DATE_RANGE_DAYS = env_int("STRATA_MAX_DATE_RANGE_DAYS", 366)
STRATA_USER_EVENTS_MAX_LIMIT = env_int("STRATA_USER_EVENTS_MAX_LIMIT", 500)
STRATA_TRAINING_PAGE_MAX = env_int("STRATA_TRAINING_PAGE_MAX", 1000)
STRATA_FUNNEL_MAX_STEPS = env_int("STRATA_FUNNEL_MAX_STEPS", 10)

#: Query shape limits, enforced at validation time.
STRATA_GRAPHQL_MAX_DEPTH = env_int("STRATA_GRAPHQL_MAX_DEPTH", 6)
STRATA_GRAPHQL_MAX_COMPLEXITY = env_int("STRATA_GRAPHQL_MAX_COMPLEXITY", 3000)
STRATA_GRAPHQL_INTROSPECTION = env_bool("STRATA_GRAPHQL_INTROSPECTION", False)
STRATA_GRAPHIQL = env_bool("STRATA_GRAPHIQL", False)

#: Requests per token per minute unless the token sets its own (0 = unlimited).
STRATA_RATE_LIMIT_PER_MINUTE = env_int("STRATA_RATE_LIMIT_PER_MINUTE", 6000)
#: How long a worker trusts a token lookup (seconds): revocation takes effect within this time.
STRATA_TOKEN_CACHE_S = env_int("STRATA_TOKEN_CACHE_S", 30)

#: Results whose date range ends within the last ``HOT_DAYS`` days (or have no range) are "hot".
STRATA_CACHE_HOT_DAYS = env_int("STRATA_CACHE_HOT_DAYS", 7)
STRATA_CACHE_HOT_TTL_S = env_int("STRATA_CACHE_HOT_TTL_S", 60)
STRATA_CACHE_HISTORICAL_TTL_S = env_int("STRATA_CACHE_HISTORICAL_TTL_S", 24 * 3600)
#: After a cache failure, skip the cache this long before trying again (seconds).
STRATA_CACHE_RETRY_S = env_int("STRATA_CACHE_RETRY_S", 5)
#: Serve /static/ from Django (local only; production puts static files behind a CDN).
STRATA_SERVE_STATIC = env_bool("STRATA_SERVE_STATIC", False)
