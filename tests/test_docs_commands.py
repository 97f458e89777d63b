"""The documentation's commands are copy-paste true: this runs them.

Every fenced ``sh`` block of README.md, docs/*.md, graphql_site/README.md, transforms_sql/README.md
and BENCHMARKS.md runs with bash, in order, on a fresh ``$STRATA_HOME``, from a directory that
looks like a clone (``.venv`` and ``graphql_site`` linked in), as one terminal session would:
a variable a block sets (``TOKEN=...``) is there in the next block. Two rewrites only: each file
gets free loopback ports for the ``8000`` its commands use, and a line in :data:`EXEMPT` is not
run (each entry says why, and must still match a line, so the list cannot go stale).

Where README.md says ``<!-- docs-check: ... admin steps ... -->``, the test first does what the
numbered steps above it tell a person to do in the admin (log in, add the metric), over HTTP.

The CLI table of README.md is checked against the parser: every flag it shows exists.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from strata import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "graphql_site" / "README.md",
        REPO / "transforms_sql" / "README.md", REPO / "BENCHMARKS.md"]

#: Command prefix → why the test does not run it.
EXEMPT = {
    "make demo": "runs the whole platform, then waits for Ctrl-C; its steps are the walk-through's, "
                 "run below, and `strata demo` is exercised by `make demo` itself",
    "make test": "is this test suite",
    "make venv": "the suite runs inside the venv `make venv` built",
    ".venv/bin/python bench/": "benchmarks take minutes at 1M-10M events; `make bench*` runs them "
                               "(the lead reruns them on a quiet machine)",
    "make bench": "the same benchmarks, through the Makefile",
    ".venv/bin/strata transform --target bigquery": "needs a Google Cloud project and credentials; the "
                                                    "BigQuery target is tested offline by tests/test_dbt_bigquery*.py",
}
ADMIN_MARKER = "<!-- docs-check:"
#: What README.md's numbered admin steps say to type (the test checks README still says it).
ADMIN_LOGIN = ("admin", "change-me")
METRIC = {"name": "add_to_cart_events", "aggregation": "count", "expression": "event_id",
          "event_types": "add_to_cart", "owner": "me"}

#: A block preceded by ``<!-- docs-check: skip: REASON -->`` is not run (it needs something no
#: machine here has, such as a Google Cloud project); the reason is required.
SKIP_MARKER = re.compile(r"<!-- docs-check: skip: (?P<reason>\S[^>]*?) -->")
_FENCE = re.compile(r"(?P<marker><!-- docs-check:[^>]*-->\n)?```sh\n(?P<body>.*?)```", re.S)


def blocks(path: pathlib.Path) -> list[tuple[str | None, str]]:
    """(the docs-check marker before it or None, body) of every fenced sh block of ``path``."""
    return [(m.group("marker"), m.group("body")) for m in _FENCE.finditer(path.read_text())]


def commands(body: str) -> list[str]:
    """Logical command lines of a block (continuations joined, comment-only lines dropped)."""
    out, current = [], ""
    for line in body.splitlines():
        current += line
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip() and not current.strip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def exemption(command: str) -> str | None:
    return next((prefix for prefix in EXEMPT if command.startswith(prefix)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Session:
    """One terminal: bash per block, with the variables earlier blocks set."""

    def __init__(self, cwd: pathlib.Path, home: pathlib.Path):
        self.cwd, self.home = cwd, home
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STRATA_HOME")}
        self.env.update(STRATA_HOME=str(home), PATH=os.environ["PATH"])
        self.pids: set[int] = set()
        self.state = cwd / ".docs-check-env"

    def run(self, script: str, where: str) -> str:
        wrapped = f"set -euo pipefail\nset -a\n{script}\nenv -0 > {shlex.quote(str(self.state))}\n"
        done = subprocess.run(["bash", "-c", wrapped], cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=900)
        self._remember_server()
        assert done.returncode == 0, f"{where} failed (exit {done.returncode}):\n{script}\n" \
                                     f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        for item in self.state.read_text().split("\0"):
            if "=" in item:
                key, value = item.split("=", 1)
                if not key.startswith(("BASH_", "SHLVL", "_")) and key not in ("PWD", "OLDPWD"):
                    self.env[key] = value
        return done.stdout

    def _remember_server(self) -> None:
        pid_file = self.home / "serve.pid"
        if pid_file.exists():
            self.pids.add(int(pid_file.read_text()))

    def close(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def admin_steps(base: str) -> None:
    """README.md's numbered admin steps, over HTTP: log in, add the metric definition."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def csrf_form(url: str) -> tuple[str, str]:
        with opener.open(url, timeout=30) as r:
            page = r.read().decode()
        return page, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def post(url: str, fields: dict) -> tuple[int, str]:
        page, token = csrf_form(url)
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        request = urllib.request.Request(url, data=data, headers={"Referer": url})
        with opener.open(request, timeout=30) as r:
            return r.status, r.read().decode()

    user, password = ADMIN_LOGIN
    _, page = post(f"{base}/admin/login/?next=/admin/", {"username": user, "password": password,
                                                          "next": "/admin/"})
    assert "Log out" in page or "logout" in page, "admin login failed"
    add = f"{base}/admin/strata_metrics/metricdefinition/add/"
    status, page = post(add, {**METRIC, "description": "", "property_key": "", "property_filters": "{}",
                              "unit": "", "_save": "Save"})
    assert status == 200 and "was added successfully" in page, page[-3000:]
    # The admin cannot add tokens, on purpose, and says so on the token list.
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(f"{base}/admin/strata_tokens/apitoken/add/", timeout=30)
    assert refused.value.code == 403
    with opener.open(f"{base}/admin/strata_tokens/apitoken/", timeout=30) as r:
        assert "strata token create" in r.read().decode()


def test_readme_states_the_admin_steps_the_test_performs():
    readme = (REPO / "README.md").read_text()
    steps = " ".join(readme[:readme.index(ADMIN_MARKER)].split())
    assert f"`{ADMIN_LOGIN[0]}` / `{ADMIN_LOGIN[1]}`" in steps
    assert f"DJANGO_SUPERUSER_PASSWORD='{ADMIN_LOGIN[1]}'" in steps
    for key in ("name", "aggregation", "expression", "event_types", "owner"):
        assert f"{key.replace('_', ' ')} `{METRIC[key]}`" in steps, key


def test_every_exemption_still_matches_a_documented_command():
    documented = [c for path in DOCS for _, body in blocks(path) for c in commands(body)]
    assert documented
    for prefix in EXEMPT:
        assert any(c.startswith(prefix) for c in documented), f"stale exemption: {prefix!r}"


def test_the_cli_table_shows_only_flags_that_exist():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## The CLI"):readme.index("**Mistakes are refused")]
    parser = cli.build_parser()
    checked = 0
    for span in re.findall(r"`(strata [^`]+)`", table):
        words, leaf = span.split()[1:], parser
        for word in words:
            action = cli._subparsers(leaf)
            if action is None or word not in action.choices:
                break
            leaf = action.choices[word]
        action = cli._subparsers(leaf)
        assert action is None or not action.required, f"{span!r} does not name a whole command"
        known = {s for a in leaf._actions for s in a.option_strings}
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span.split(" -- ")[0]):
            assert flag in known, f"README's {span!r}: {flag} is not a flag of `strata {' '.join(words[:2])}`"
            checked += 1
    assert checked > 20


@pytest.mark.slow
def test_documented_commands_run_on_a_fresh_home(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in (".venv", "graphql_site"):
        (clone / name).symlink_to(REPO / name)
    session = Session(clone, tmp_path / "home")
    outputs: dict[str, list[str]] = {}
    try:
        for path in DOCS:
            ports = {"8000": str(free_port())}
            for index, (marker, body) in enumerate(blocks(path)):
                where = f"{path.relative_to(REPO)} block {index + 1}"
                if marker and SKIP_MARKER.search(marker):
                    continue
                if marker:
                    admin_steps(f"http://127.0.0.1:{ports['8000']}")
                lines = [f": exempt: {c}" if exemption(c) else c for c in commands(body)]
                script = "\n".join(lines)
                for documented, free in ports.items():
                    script = re.sub(rf"(127\.0\.0\.1:|--port ){documented}\b", rf"\g<1>{free}", script)
                outputs.setdefault(str(path.relative_to(REPO)), []).append(session.run(script, where))
    finally:
        session.close()
    readme = outputs["README.md"]
    assert any('"totalRevenue"' in out for out in readme)
    metric = next(json.loads(line) for out in readme for line in out.splitlines() if '"metric"' in line)
    points = metric["data"]["metric"]["points"]
    assert metric["data"]["metric"]["name"] == METRIC["name"] and points and all(p["value"] > 0 for p in points)
    assert any('"activeUsers"' in out for out in outputs["graphql_site/README.md"])
    # everything the walk-through left in the home (lake, warehouse, dbt files, Django's SQLite,
    # serve.log) is private to its owner
    loose = [str(p) for p in [session.home, *session.home.rglob("*")]
             if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert not loose, loose
