"""Test-wide set-up: offline Google clients, an isolated STRATA_HOME, and service gating.

The offline variables are set at import time, before any test module imports a Google client.
"""

from __future__ import annotations

import os
import socket

import pytest

from strata_core import paths

paths.use_offline_env()

REQUIRE_SERVICES = os.environ.get("STRATA_REQUIRE_SERVICES") == "1"


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def need_service(available: bool, reason: str) -> None:
    """Skip on a developer machine without the service; fail in CI (STRATA_REQUIRE_SERVICES=1)."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable (STRATA_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


@pytest.fixture
def strata_home(tmp_path, monkeypatch):
    """A fresh, private $STRATA_HOME for one test."""
    home = tmp_path / "strata-home"
    monkeypatch.setenv("STRATA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def monitored_home(tmp_path_factory):
    """Five weeks of generated events, ingested and built (tests/monitoring_home.py); read-only."""
    from tests import monitoring_home

    return monitoring_home.build(tmp_path_factory.mktemp("monitored-home"))
