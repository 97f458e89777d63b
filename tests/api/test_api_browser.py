"""GraphiQL in real headless Chromium, with no network but loopback: the page renders the editor
from this server's own static files, and a query typed into it returns data (issue 9, section 5)."""

from __future__ import annotations

import json
import time

import pytest
from django.test.utils import override_settings

from api import expected
from conftest import need_service
from fakes import browser

pytestmark = pytest.mark.services


def _editor(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"{css} > :not(.hidden) > .CodeMirror, {css} > .CodeMirror")


def _type_into(driver, css: str, text: str) -> None:
    """Click into a CodeMirror editor, select everything, and type ``text`` key by key."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    editor = _editor(driver, css)
    editor.click()
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(Keys.DELETE).perform()
    ActionChains(driver).send_keys(text).perform()


def _value(driver, css: str) -> str:
    return driver.execute_script("return arguments[0].CodeMirror.getValue()", _editor(driver, css))


def _wait(predicate, timeout_s: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_graphiql_works_offline_and_runs_a_typed_query(api, token, accepted_events):
    need_service(browser.available(), browser.WHY)
    import datetime as dt

    with override_settings(STRATA_GRAPHIQL=True), browser.serve_wsgi(api.app) as base, \
            browser.chromium() as driver:
        driver.get(base + "/graphql")
        _wait(lambda: driver.execute_script("return document.querySelectorAll('.CodeMirror').length >= 3"),
              what="GraphiQL's editors")
        assert "Strata GraphiQL" in driver.title
        _type_into(driver, ".graphiql-editor-tool", '{"Authorization": "Bearer ' + token + '"}')
        assert json.loads(_value(driver, ".graphiql-editor-tool")) == {"Authorization": f"Bearer {token}"}
        _type_into(driver, ".graphiql-query-editor", '{ dailyActiveUsers(date: "2026-03-04") { date activeUsers } }')
        driver.find_element("css selector", ".graphiql-execute-button").click()
        result = _wait(lambda: (lambda text: text if '"data"' in text else None)(_value(driver, ".graphiql-response")),
                       what="the query's result")
        data = json.loads(result)["data"]
        assert data["dailyActiveUsers"] == {"date": "2026-03-04",
                                            "activeUsers": expected.dau(accepted_events, dt.date(2026, 3, 4))}
        assert browser.outside_requests(driver) == []
        # the only console errors allowed: GraphiQL's first schema fetch, before the token was typed
        errors = [e for e in browser.console_errors(driver) if "401" not in e]
        assert errors == []
