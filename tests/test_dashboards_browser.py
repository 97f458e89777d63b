"""The dashboards in headless Chromium against a real ``strata serve`` on the demo-like data:
log in through the admin, load every page, check that its charts rendered (canvas present, as
many as the page drew), that the console has no error and that nothing came from another
origin. Screenshots go to the directory printed at the start (``STRATA_TEST_ARTEFACTS``,
default ``.test-artefacts/dashboards`` in the repository; not committed)."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import pytest

from conftest import need_service
from tests.fakes import browser as chromium

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = {"business": "", "quality": "quality/", "pipeline": "pipeline/", "cost": "cost/", "lineage": "lineage/"}
#: Charts each page draws at least (the quality page draws every watched series in one).
MIN_CHARTS = {"business": 5, "quality": 3, "pipeline": 2, "cost": 3, "lineage": 1}

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(monitored_home, tmp_path_factory):
    from strata.commands import serve

    env = monitored_home.env()
    password = "browser-test-password"
    created = subprocess.run(
        [sys.executable, "graphql_site/manage.py", "migrate", "-v", "0"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, created.stderr
    admin = subprocess.run(
        [sys.executable, "graphql_site/manage.py", "createsuperuser", "--noinput", "--username", "browser",
         "--email", "browser@example.org"], cwd=REPO, env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
        capture_output=True, text=True, timeout=120)
    assert admin.returncode == 0 or "already taken" in admin.stderr, admin.stderr
    proc, url = serve.start_background("127.0.0.1", _free_port(), workers=1, threads=4,
                                       log_path=tmp_path_factory.mktemp("serve") / "serve.log",
                                       env={"STRATA_HOME": str(monitored_home.path), "DATABASE_URL": ""})
    try:
        yield url, "browser", password
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def artefacts() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("STRATA_TEST_ARTEFACTS", REPO / ".test-artefacts")) / "dashboards"
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {path}")
    return path


def test_every_page_renders_its_charts_in_chromium(site, artefacts):
    need_service(chromium.available(), chromium.WHY)
    url, user, password = site
    with chromium.Browser(artefacts) as browser:
        browser.open(f"{url}/dashboards/")
        assert "/admin/login/" in browser.driver.current_url  # the login comes first
        browser.login_admin(url, user, password)
        browser.console_errors()  # the admin's own pages (its favicon request) are not under test
        for name, path in PAGES.items():
            browser.open(f"{url}/dashboards/{path}")
            browser.wait_for("document.body.dataset.charts !== undefined")
            drawn = int(browser.js("return document.body.dataset.charts"))
            canvases = browser.js("return document.querySelectorAll('.chart canvas, .multiples canvas').length")
            shot = browser.screenshot(name)
            assert drawn >= MIN_CHARTS[name] and canvases >= drawn, (name, drawn, canvases, shot)
            assert browser.console_errors() == [], name
            foreign = [r for r in browser.resources() if not r.startswith(url)]
            assert foreign == [], (name, foreign)
            assert browser.js("return document.querySelector('.status').textContent") == "OK"
        # The quality page explains what it watches, the lineage names the layers.
        browser.open(f"{url}/dashboards/lineage/")
        assert "stg_events" in browser.driver.page_source and "business_metrics" in browser.driver.page_source
