"""Settings shared by every environment. Everything that differs comes from the environment.

Environment variables (all optional locally):

* ``DJANGO_SECRET_KEY``      required in production;
* ``DATABASE_URL``           Django's own database (tokens, metric definitions, admin);
                             default SQLite at ``$STRATA_HOME/django.sqlite3``;
* ``REDIS_URL``              e.g. ``redis://127.0.0.1:6379/0``; ``rediss://`` for TLS (add
                             ``?ssl_ca_certs=/path/ca.pem`` for a private CA), a password as
                             ``redis://:PASSWORD@host:6379/0`` (or ``user:PASSWORD@``);
                             default: the in-process cache only;
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


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected a number") from None


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
    "graphql_site.querylayer",
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
    """Django's own cache (the API's result cache is ``gateway.caching``, on the same Redis).

    django-redis with its JSON serializer: nothing in this project ever unpickles a cache value.
    Short socket timeouts: when Redis is down the API answers without it.
    """
    url = os.environ.get("REDIS_URL")
    if url and os.environ.get("STRATA_CACHE", "on") != "off":
        return {"default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": os.environ.get("STRATA_CACHE_KEY_PREFIX", "strata"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
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
#: How often a worker looks for a newly published warehouse (seconds; two stat() calls).
STRATA_VERSION_RECHECK_S = env_float("STRATA_VERSION_RECHECK_S", 0.1)
#: DuckDB memory per server process (DuckDB's own default is 80% of RAM, per process).
STRATA_DUCKDB_MEMORY_LIMIT = os.environ.get("STRATA_DUCKDB_MEMORY_LIMIT", "1GB")
#: Estimate what each DuckDB query would scan on BigQuery, for the per-query cost history
#: (monitoring.costs): DuckDB's profiler on every API connection, about 0.1-0.2 ms a statement.
STRATA_API_COST_ESTIMATE = env_bool("STRATA_API_COST_ESTIMATE", True)
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

#: Request bounds, checked before the work they protect (``gateway.pipeline``, ``documents``).
STRATA_MAX_BODY_BYTES = env_int("STRATA_MAX_BODY_BYTES", 64 * 1024)
STRATA_MAX_JSON_DEPTH = env_int("STRATA_MAX_JSON_DEPTH", 10)
STRATA_GRAPHQL_MAX_TOKENS = env_int("STRATA_GRAPHQL_MAX_TOKENS", 2000)
STRATA_GRAPHQL_MAX_FIELDS = env_int("STRATA_GRAPHQL_MAX_FIELDS", 500)
STRATA_GRAPHQL_MAX_ALIASES = env_int("STRATA_GRAPHQL_MAX_ALIASES", 50)
STRATA_GRAPHQL_MAX_DIRECTIVES = env_int("STRATA_GRAPHQL_MAX_DIRECTIVES", 50)
#: Nesting of fields with selections (graphene's depth_limit_validator counts; introspection not).
STRATA_GRAPHQL_MAX_DEPTH = env_int("STRATA_GRAPHQL_MAX_DEPTH", 5)
#: The price of a request (``gateway.planning``); any one field within its argument limits fits.
STRATA_GRAPHQL_MAX_COST = env_int("STRATA_GRAPHQL_MAX_COST", 5000)
STRATA_GRAPHQL_INTROSPECTION = env_bool("STRATA_GRAPHQL_INTROSPECTION", False)
#: "Did you mean ...?" in error messages (they name fields, so off where introspection is off).
STRATA_GRAPHQL_SUGGESTIONS = env_bool("STRATA_GRAPHQL_SUGGESTIONS", False)
STRATA_GRAPHIQL = env_bool("STRATA_GRAPHIQL", False)
#: Validated documents kept per process, by estimated bytes of syntax tree.
STRATA_PARSE_CACHE_BYTES = env_int("STRATA_PARSE_CACHE_BYTES", 32 * 1024 ** 2)

#: Requests per token per minute unless the token sets its own (0 = unlimited).
STRATA_RATE_LIMIT_PER_MINUTE = env_int("STRATA_RATE_LIMIT_PER_MINUTE", 6000)
#: Counting in batches (``gateway.ratelimit``): requests a worker counts before adding them to
#: Redis, the longest it waits, and how close to the limit every request is counted at once.
STRATA_RATE_LIMIT_BATCH = env_int("STRATA_RATE_LIMIT_BATCH", 20)
STRATA_RATE_LIMIT_FLUSH_S = env_float("STRATA_RATE_LIMIT_FLUSH_S", 0.25)
STRATA_RATE_LIMIT_EXACT_MARGIN = env_int("STRATA_RATE_LIMIT_EXACT_MARGIN", 200)
#: Failed authentications per client address per minute before it is refused (0 = no limit).
STRATA_AUTH_FAILURES_PER_MINUTE = env_int("STRATA_AUTH_FAILURES_PER_MINUTE", 20)
#: Proxies in front of the server that append to X-Forwarded-For (0: use the peer address).
STRATA_TRUSTED_PROXIES = env_int("STRATA_TRUSTED_PROXIES", 0)
#: How long a worker trusts a token lookup (seconds): revocation takes effect within this time.
STRATA_TOKEN_CACHE_S = env_int("STRATA_TOKEN_CACHE_S", 30)

#: Persisted queries (``gateway.persisted``): ``apq`` (Apollo's automatic persisted queries),
#: ``allowlist`` (only the operations of STRATA_PERSISTED_QUERY_MANIFEST), or ``off``.
STRATA_PERSISTED_QUERY_MANIFEST = os.environ.get("STRATA_PERSISTED_QUERY_MANIFEST", "")
STRATA_PERSISTED_QUERIES = os.environ.get("STRATA_PERSISTED_QUERIES", "apq")
STRATA_PERSISTED_QUERY_TTL_S = env_int("STRATA_PERSISTED_QUERY_TTL_S", 7 * 24 * 3600)
#: ``Cache-Control: public, max-age`` of GET responses (``Vary: Authorization``; ETag per data version).
STRATA_HTTP_MAX_AGE_S = env_int("STRATA_HTTP_MAX_AGE_S", 30)

#: The result cache (``gateway.caching``).
STRATA_CACHE = os.environ.get("STRATA_CACHE", "on")
STRATA_REDIS_URL = os.environ.get("REDIS_URL", "")
STRATA_CACHE_KEY_PREFIX = os.environ.get("STRATA_CACHE_KEY_PREFIX", "strata")
#: Per-process level in front of Redis: bytes, and the longest an entry stays there (seconds).
STRATA_CACHE_LOCAL_BYTES = env_int("STRATA_CACHE_LOCAL_BYTES", 64 * 1024 ** 2)
STRATA_CACHE_LOCAL_TTL_S = env_int("STRATA_CACHE_LOCAL_TTL_S", 60)
#: Results whose date range ends within the last ``HOT_DAYS`` days (or have no range) are "hot".
STRATA_CACHE_HOT_DAYS = env_int("STRATA_CACHE_HOT_DAYS", 7)
STRATA_CACHE_HOT_TTL_S = env_int("STRATA_CACHE_HOT_TTL_S", 60)
STRATA_CACHE_HISTORICAL_TTL_S = env_int("STRATA_CACHE_HISTORICAL_TTL_S", 24 * 3600)
#: After a cache failure, skip the cache this long before trying again (seconds).
STRATA_CACHE_RETRY_S = env_int("STRATA_CACHE_RETRY_S", 5)
#: Serve /static/ from Django (local only; production puts static files behind a CDN).
STRATA_SERVE_STATIC = env_bool("STRATA_SERVE_STATIC", False)
