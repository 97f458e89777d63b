"""Headless Chromium for page tests: Debian's ``chromium`` and ``chromedriver``, driven by Selenium.

    with Browser(artefacts) as b:
        b.login_admin(url, "admin", password)
        b.open(f"{url}/dashboards/")
        b.wait_for("document.body.dataset.charts !== undefined")
        assert not b.console_errors()
        b.screenshot("business")

Nothing is downloaded: the driver is the system's chromedriver (Selenium Manager is never asked
to find one) and Chromium starts with its background networking, component updates and sync off.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-first-run",
         "--disable-extensions", "--disable-dev-shm-usage", "--window-size=1440,900")


def available() -> tuple[bool, str]:
    """(usable, why not): the binaries and the selenium package."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False, "selenium is not installed (make venv installs it from requirements.txt)"
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not os.access(binary, os.X_OK):
            return False, f"{binary} not found: apt-get install -y chromium chromium-driver"
    return True, ""


class Browser:
    def __init__(self, artefacts: pathlib.Path, *, width: int = 1440, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        os.environ.setdefault("SE_AVOID_STATS", "true")
        self.artefacts = pathlib.Path(artefacts)
        self.artefacts.mkdir(parents=True, exist_ok=True)
        self._profile = tempfile.mkdtemp(prefix="strata-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--user-data-dir={self._profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

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
        """Console messages at error level (and uncaught exceptions) since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

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
