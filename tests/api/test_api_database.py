"""CI runs the Django tests on PostgreSQL (``DATABASE_URL`` set by ``.ci/run``)."""

from __future__ import annotations

import os

import pytest


def test_django_database_is_postgresql_when_configured():
    from django.db import connection

    from conftest import REQUIRE_SERVICES

    if not os.environ.get("DATABASE_URL"):
        if REQUIRE_SERVICES:
            pytest.fail("STRATA_REQUIRE_SERVICES=1 but DATABASE_URL is unset: CI must run Django on PostgreSQL")
        pytest.skip("DATABASE_URL unset: Django tests run on SQLite here (CI uses PostgreSQL)")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("select current_database()")
        assert cursor.fetchone()[0].startswith("test_")  # Django's throwaway test database
