"""Tests: like local, with fast password hashing. ``DATABASE_URL`` selects PostgreSQL (CI)."""

from .local import *  # noqa: F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STRATA_TOKEN_CACHE_S = 0
STRATA_VERSION_RECHECK_S = 0.0  # tests publish a build and read it at once
# API query costs are flushed by the tests themselves (graphql_site/monitoring/costs.py).
STRATA_COST_FLUSH_THREAD = False
