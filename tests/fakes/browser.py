"""Real headless Chromium for page tests, driven by Selenium through Debian's chromedriver, and a
loopback server for the WSGI application under test. Shared by every page test (GraphiQL, the
dashboards).

    from fakes import browser

    need_service(browser.available(), browser.WHY)
    with browser.serve_wsgi(application) as base_url, browser.chromium() as driver:
        driver.get(base_url + "/graphql")
        ...
        assert browser.outside_requests(driver) == []

* ``chromium()`` starts ``/usr/bin/chromium`` headless with the flags from shared/ENVIRONMENT.md,
  and resolves every host name but 127.0.0.1/localhost to nothing: a page that reaches for a
  CDN fails visibly instead of leaving the machine. Selenium is given the driver and the browser
  paths, so Selenium Manager never downloads anything.
* ``outside_requests(driver)`` lists the URLs the page requested that were not on loopback (from
  Chromium's performance log); ``console_errors(driver)`` the page's severe console messages.
* ``Browser(artefacts)``: a session on ``chromium()`` with the page-test steps (log in to the
  admin, wait for a condition, console errors, loaded resources, load time, screenshots).
* ``serve_wsgi(app)`` serves a WSGI app on a free loopback port from a thread (many threads: a
  page loads its scripts in parallel), and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socketserver
import tempfile
import threading
import time
import urllib.parse
from typing import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WHY = "headless Chromium and chromedriver (apt-get install chromium chromium-driver) and selenium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--disable-default-apps", "--disable-extensions",
         # Nothing but loopback resolves: a CDN reference fails instead of reaching out.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost")


def available() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator:
    """A Selenium driver of a fresh headless Chromium (its own empty profile), quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="strata-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download a driver
    os.environ.setdefault("SE_AVOID_STATS", "true")
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Browser:
    """A page-test session on :func:`chromium`, with artefacts (screenshots) in a directory.

        with Browser(artefacts) as b:
            b.login_admin(url, "admin", password)
            b.open(f"{url}/dashboards/")
            b.wait_for("document.body.dataset.charts !== undefined")
            assert not b.console_errors()
            b.screenshot("business")
    """

    def __init__(self, artefacts: pathlib.Path, *, width: int = 1440, height: int = 900):
        self.artefacts = pathlib.Path(artefacts)
        self.artefacts.mkdir(parents=True, exist_ok=True)
        self._session = chromium(width, height)
        self.driver = self._session.__enter__()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._session.__exit__(None, None, None)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait_for(self, condition_js: str, timeout_s: float = 20.0) -> None:
        """Until ``condition_js`` (an expression) is truthy in the page."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.js(f"return !!({condition_js});"):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{condition_js!r} not true within {timeout_s} s at {self.driver.current_url}")

    def login_admin(self, base_url: str, username: str, password: str) -> None:
        """Log in through Django's admin login form."""
        from selenium.webdriver.common.by import By

        self.open(f"{base_url}/admin/login/")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
        self.wait_for("!location.pathname.startsWith('/admin/login')")

    def console_errors(self) -> list[str]:
        return console_errors(self.driver)

    def outside_requests(self) -> list[str]:
        return outside_requests(self.driver)

    def resources(self) -> list[str]:
        """Every URL the page loaded (the document and its resources)."""
        return self.js("return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));")

    def load_ms(self) -> float:
        """Navigation start to the end of the load event, in ms."""
        return float(self.js("const n = performance.getEntriesByType('navigation')[0];"
                             " return n.loadEventEnd - n.startTime;"))

    def screenshot(self, name: str) -> pathlib.Path:
        path = self.artefacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def requested_urls(driver) -> list[str]:
    """Every URL the page has requested so far (drains Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def outside_requests(driver) -> list[str]:
    """Requested URLs that were not on loopback (data: and blob: URLs are in-page)."""
    outside = []
    for url in requested_urls(driver):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme in ("data", "blob", "about", "chrome", "devtools"):
            continue
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            outside.append(url)
    return outside


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # keep test output readable
        pass


@contextlib.contextmanager
def serve_wsgi(app) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="wsgi-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
