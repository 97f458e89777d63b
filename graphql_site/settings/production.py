"""Production (Cloud Run): DEBUG off, secret from the environment, no introspection, no GraphiQL."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import env_bool, env_int, env_list

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production (a long random string)")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list the service's host names in production")
STRATA_GRAPHQL_INTROSPECTION = env_bool("STRATA_GRAPHQL_INTROSPECTION", False)
# Suggestions name fields: off with introspection, whatever the environment says.
STRATA_GRAPHQL_SUGGESTIONS = STRATA_GRAPHQL_INTROSPECTION
STRATA_GRAPHIQL = False
# Cloud Run's front end appends the client's address to X-Forwarded-For.
STRATA_TRUSTED_PROXIES = env_int("STRATA_TRUSTED_PROXIES", 1)
# With a manifest, only its operations run (trusted documents); APQ otherwise.
STRATA_PERSISTED_QUERIES = os.environ.get(
    "STRATA_PERSISTED_QUERIES", "allowlist" if STRATA_PERSISTED_QUERY_MANIFEST else "apq")  # noqa: F405
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
