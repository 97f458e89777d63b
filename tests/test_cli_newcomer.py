"""A newcomer's first hour, through the real entry point (``python -m strata``, a subprocess).

Mistakes are refused with exit status 2 and a precise message (unknown flags, selections that
match nothing, empty inputs, missing homes); the query path is read-only and offline through
DuckDB's own settings; a home can be copied and moved, and holds private files only.

One module fixture builds a home whose path has a space, a quote and a comma (generate →
ingest → transform); tests that change a home work on a copy of it.
"""

from __future__ import annotations

import json
import os
import pathlib
import pty
import shutil
import socket
import stat
import subprocess
import sys
import time

import duckdb
import pytest

from strata import cli
from strata_core import duckdb_config

REPO = pathlib.Path(__file__).resolve().parents[1]
#: The dbt models a build runs: one .sql file each under transforms_sql/models.
MODELS = len(list((REPO / "transforms_sql" / "models").rglob("*.sql")))
START = "2026-01-05"


def strata(*args: str, home: pathlib.Path, cwd: pathlib.Path | None = None, timeout: float = 600,
           **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "STRATA_HOME": str(home)}
    env.pop("DATABASE_URL", None)  # Django's own database: SQLite under the home
    return subprocess.run([sys.executable, "-m", "strata", *args], cwd=cwd or REPO, env=env, text=True,
                          capture_output="stderr" not in popen, timeout=timeout, **popen)


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def query(home: pathlib.Path, sql: str) -> list[dict]:
    return json.loads(ok(strata("query", sql, "--json", home=home)).stdout)


def data_version(home: pathlib.Path) -> str:
    return (home / "data_version").read_text().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A home (an awkward path) with generated events ingested and the layers built."""
    root = tmp_path_factory.mktemp("newcomer")
    home = root / "o'home, one"
    data = root / "data"
    generated = ok(strata("generate", "--out", str(data), "--users", "120", "--days", "4", "--seed", "5",
                          "--start-date", START, home=home))
    ingested = ok(strata("ingest", "batch", "--input", str(data / "events-*.ndjson"),
                         "--users-input", str(data / "users.jsonl"), home=home))
    transformed = ok(strata("transform", home=home))
    return {"root": root, "home": home, "data": data, "generate": generated, "ingest": ingested,
            "transform": transformed, "truth": json.loads((data / "ground_truth.json").read_text())}


def copy_home(built, name: str) -> pathlib.Path:
    copy = built["root"] / name
    shutil.copytree(built["home"], copy)
    return copy


# ---- §1 only the pipeline writes the warehouse ------------------------------------------------

@pytest.mark.slow
def test_query_refuses_every_write_and_names_the_commands_that_write(built):
    home = built["home"]
    before = query(home, "select count(*) as n from raw.events")[0]["n"]
    target = home / "lake" / "raw" / "events" / f"event_date={START}" / "smuggled.parquet"
    for sql in (f"copy (select * from raw.events limit 1) to '{str(target).replace(chr(39), chr(39) * 2)}'",
                "insert into mart.business_metrics select * from mart.business_metrics",
                "create table mart.mine as select 1 as x",
                "drop view raw.events",
                "attach ':memory:' as scratch",
                "set enable_external_access = true",
                "install httpfs"):
        done = strata("query", sql, home=home)
        assert done.returncode == 2, (sql, done.stdout, done.stderr)
        assert "read-only here" in done.stderr and "strata ingest" in done.stderr \
            and "strata transform" in done.stderr, (sql, done.stderr)
    assert not target.exists()
    assert query(home, "select count(*) as n from raw.events")[0]["n"] == before


@pytest.mark.slow
def test_query_is_offline_and_confined_to_the_lake(built):
    home = built["home"]
    for sql in ("select * from read_csv('https://example.com/events.csv')",
                "select * from read_parquet('https://example.com/events.parquet')",
                "select * from read_text('/etc/hostname')",
                f"select * from read_text('{str(REPO / 'README.md')}')"):
        done = strata("query", sql, home=home)
        assert done.returncode == 2, (sql, done.stdout)
        assert "read the warehouse and its lake only, offline" in done.stderr, done.stderr
        assert "download" not in done.stderr.lower(), done.stderr  # refused before any fetch was tried
    # reading the lake directly is allowed: that is where raw.* comes from
    rows = query(home, "select count(*) as n from read_parquet(getvariable('strata_lake') || '/raw/events/**/*.parquet')")
    assert rows[0]["n"] == built["truth"]["accepted"]
    # several statements: all must read; the last one's rows are printed
    assert query(home, "select 1 as a; select 2 as b") == [{"b": 2}]


@pytest.mark.slow
def test_duckdb_settings_not_sql_inspection_keep_readers_in(built):
    """The settings alone refuse network, files outside the lake and config changes, on any
    connection opened the readers' way (the API's too), and the second connection of a process
    finds them already locked."""
    home = built["home"]
    for _ in range(2):
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True, config=duckdb_config.read_only_config())
        try:
            duckdb_config.secure(con, home / "lake")
            settings = dict(con.execute(
                "select name, value from duckdb_settings() where name in ('enable_external_access', "
                "'lock_configuration', 'autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
            assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                                "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
            outside = built["root"] / "outside.parquet"
            for sql in (f"copy (select 1 as x) to '{outside}'", "set enable_external_access = true",
                        "select * from read_text('/etc/hostname')", "load httpfs"):
                with pytest.raises(duckdb.Error):
                    con.execute(sql)
            assert not outside.exists()
            assert con.execute("select count(*) from raw.events").fetchone()[0] == built["truth"]["accepted"]
        finally:
            con.close()


# ---- §2 mistakes are refused, not run -------------------------------------------------------

def _parsers(parser, path=()):
    yield path, parser
    action = cli._subparsers(parser)
    for name, sub in (action.choices.items() if action else ()):
        yield from _parsers(sub, path + (name,))


def test_every_subcommand_is_strict_whoever_registers_it():
    leaves = dict(_parsers(cli.build_parser()))
    assert ("ingest", "batch") in leaves and ("query",) in leaves and ("lake", "drop") in leaves
    for path, parser in leaves.items():
        assert isinstance(parser, cli.StrictParser), path
        assert parser.allow_abbrev is False, path


@pytest.mark.parametrize("argv, suggestion", [
    (["ingest", "batch", "--input", "x.ndjson", "--dry_run"], "--dry-run"),
    (["ingest", "batch", "--input", "x.ndjson", "--input_format", "ndjson"], "--format"),
    (["ingest", "batch", "--input", "x.ndjson", "--bq_project", "p"], "--bq-project"),
    (["ingest", "batch", "--input", "x.ndjson", "--work", "2"], "--workers"),  # no abbreviations
    (["transform", "--selct", "stg_events"], "--select"),
    (["query", "select 1", "--jsn"], "--json"),
    (["generate", "--out", "d", "--user", "5"], "--users"),
    (["lake", "drop", "--sourc", "f"], "--source"),
    (["token", "create", "me", "--expires", "1d"], "--expires-in"),
    (["serve", "--prot", "1"], "--port"),
    (["docs", "--chek"], "--check"),
    (["demo", "--no-serv"], "--no-serve"),
])
def test_unknown_flags_exit_2_with_the_nearest_flag(tmp_path, argv, suggestion):
    home = tmp_path / "never-created"
    done = strata(*argv, home=home)
    assert done.returncode == 2, done.stderr
    assert f"did you mean {suggestion}?" in done.stderr, done.stderr
    assert not home.exists()


def test_stray_arguments_are_refused(tmp_path):
    done = strata("query", "select 1", "select 2", home=tmp_path / "h")
    assert done.returncode == 2 and "unexpected argument 'select 2'" in done.stderr


@pytest.mark.slow
def test_beam_options_go_after_a_bare_double_dash_and_are_checked(built, tmp_path):
    events = str(built["data"] / "events-*.ndjson")
    home = tmp_path / "beam-home"
    typo = strata("ingest", "batch", "--input", events, "--dry-run", "--", "--projcet", "p", home=home)
    assert typo.returncode == 2 and "unknown Beam option --projcet; did you mean --project?" in typo.stderr
    own = strata("ingest", "batch", "--input", events, "--dry-run", "--", "--input_format=avro", home=home)
    assert own.returncode == 2 and "use --format instead" in own.stderr
    fine = ok(strata("ingest", "batch", "--input", events, "--dry-run", "--json", "--",
                     "--project", "my-project", "--region", "europe-west1", home=home))
    assert json.loads(fine.stdout)["dry_run"] is True
    # other commands keep `--` as the end of the flags
    assert query(built["home"], "select 1 as one") == [{"one": 1}]
    assert ok(strata("query", "--", "-- a comment\nselect 2 as two", home=built["home"])).stdout.split()[:1] == ["two"]


@pytest.mark.slow
def test_ingest_dry_run_lists_files_formats_and_sizes_and_writes_nothing(built, tmp_path):
    home = tmp_path / "dry-home"
    data = built["data"]
    done = ok(strata("ingest", "batch", "--input", str(data / "events-*.ndjson"), "--users-input",
                     str(data / "users.jsonl"), "--dry-run", "--json", home=home))
    plan = json.loads(done.stdout)
    files = {f["path"]: f for f in plan["files"]}
    events = sorted(data.glob("events-*.ndjson"))
    assert set(files) == {str(p) for p in events} | {str(data / "users.jsonl")}
    for path, f in files.items():
        assert f["bytes"] == os.path.getsize(path) and f["format"] == "ndjson"
    assert {f["kind"] for f in plan["files"]} == {"events", "users"}
    assert not home.exists(), "a dry run wrote the home"
    text = ok(strata("ingest", "batch", "--input", str(data / "events-*.ndjson"), "--dry-run", home=home))
    assert "nothing was written" in text.stdout and f"{os.path.getsize(events[0]):,}" in text.stdout
    (tmp_path / "events.csv").write_text("event_id,event_type\n")
    bad = strata("ingest", "batch", "--input", str(tmp_path / "events.csv"), "--dry-run", home=home)
    assert bad.returncode == 2 and "--format ndjson|avro|parquet" in bad.stderr


@pytest.mark.slow
def test_transform_selection_typo_is_an_error_and_publishes_nothing(built):
    home = built["home"]
    version = data_version(home)
    done = strata("transform", "--select", "stg_evnts", home=home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--select stg_evnts matches no model" in done.stderr and "did you mean stg_events?" in done.stderr
    assert data_version(home) == version


@pytest.mark.slow
def test_a_build_that_changes_nothing_keeps_the_data_version_and_shows_progress(built):
    home = built["home"]
    version = data_version(home)
    inode = (home / "warehouse.duckdb").stat().st_ino
    # stderr on a terminal: progress rewrites one line, then prints a line per model
    leader, follower = pty.openpty()
    try:
        done = strata("transform", home=home, stderr=follower, stdout=subprocess.PIPE)
    finally:
        os.close(follower)
    tty_err = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty_err += chunk
    os.close(leader)
    assert done.returncode == 0, tty_err.decode(errors="replace")
    assert "nothing changed" in done.stdout and data_version(home) == version
    assert (home / "warehouse.duckdb").stat().st_ino == inode, "an unchanged build replaced the live file"
    assert b"\r" in tty_err and b"model staging.stg_events OK" in tty_err
    # the first build's progress, on a pipe: plain lines, one per model, no carriage returns
    log = built["transform"].stderr
    assert "\r" not in log
    models = [line for line in log.splitlines() if "] model " in line]
    assert len(models) == MODELS and all(line.startswith("strata transform: [") for line in models)
    assert any("model mart.business_metrics OK" in line for line in models)


@pytest.mark.slow
def test_transform_dry_run_lists_models_and_the_partitions_they_would_replace(built):
    home = copy_home(built, "dry-run-home")
    version = data_version(home)
    more = built["root"] / "more"
    ok(strata("generate", "--out", str(more), "--users", "15", "--days", "2", "--seed", "9",
              "--start-date", "2026-01-20", home=home))
    ok(strata("ingest", "batch", "--input", str(more / "events-*.ndjson"), home=home))
    new_dates = {r["d"] for r in query(home, "select distinct cast(event_date as varchar) as d from raw.events "
                                             "where received_at > (select max(received_high_water_at) from "
                                             "staging.base_raw__events)")}
    assert new_dates
    inode = (home / "warehouse.duckdb").stat().st_ino
    done = ok(strata("transform", "--dry-run", "--json", "--quiet", home=home))
    summary = json.loads(done.stdout)
    plan = summary["plan"]
    assert len(plan) == MODELS and set(plan["staging.base_raw__events"]["dates"]) == new_dates
    assert plan["mart.business_metrics"]["dates"], plan
    assert data_version(home) == version and (home / "warehouse.duckdb").stat().st_ino == inode
    assert not (home / "warehouse.build.duckdb").exists()
    from strata import transform

    text = transform.format_summary(summary)
    assert "would build staging.base_raw__events: replace" in text and "nothing was published" in text


def test_transform_before_any_ingest_says_raw_is_empty_and_what_to_run(tmp_path):
    missing = tmp_path / "no-home"
    done = strata("transform", home=missing)
    assert done.returncode == 2 and "does not exist" in done.stderr and not missing.exists()
    data = tmp_path / "data"
    data.mkdir()
    (data / "users.jsonl").write_text('{"user_id": "u1", "created_at": "2026-01-01T00:00:00Z"}\n')
    home = tmp_path / "home"
    ok(strata("ingest", "batch", "--input", str(data / "users.jsonl"), home=home))  # events: none
    done = strata("transform", home=home)
    assert done.returncode == 2, done.stdout
    assert "raw.events is empty" in done.stderr and "strata ingest batch --input" in done.stderr
    assert not (home / "data_version").exists()


def test_query_on_a_home_that_does_not_exist_says_so(tmp_path):
    home = tmp_path / "typo-home"
    done = strata("query", "select 1", home=home)
    assert done.returncode == 2 and f"STRATA_HOME {home} does not exist" in done.stderr
    assert not home.exists()


# ---- §3 the README's example, the wrong files, and taking them back out ----------------------

@pytest.mark.slow
def test_wrong_files_warn_and_can_be_dropped_from_raw(built, tmp_path):
    home = tmp_path / "mistake-home"
    work = tmp_path / "work"
    shutil.copytree(built["data"], work / "data")
    # the old README's glob: it matches users.jsonl and expected_errors.jsonl, not the events
    done = ok(strata("ingest", "batch", "--input", "data/*.jsonl", home=home, cwd=work))
    assert "WARNING: none of the" in done.stderr and "records read was accepted" in done.stderr
    assert "--users-input" in done.stderr and "strata lake drop --source" in done.stderr
    sources = json.loads(ok(strata("lake", "sources", "--json", home=home)).stdout)
    users = str(work / "data" / "users.jsonl")
    assert {s["source"] for s in sources} == {users, str(work / "data" / "expected_errors.jsonl")}
    rows = next(s["dead_letters"] for s in sources if s["source"] == users)
    assert rows > 0
    total = query(home, "select count(*) as n from raw.dead_letters")[0]["n"]
    # relative to where it was ingested from, as typed then
    dry = ok(strata("lake", "drop", "--source", "data/users.jsonl", "--dry-run", home=home, cwd=work))
    assert "would remove" in dry.stdout and "nothing was removed" in dry.stdout
    assert query(home, "select count(*) as n from raw.dead_letters")[0]["n"] == total
    gone = ok(strata("lake", "drop", "--source", users, home=home))
    assert f"{rows:,} dead_letters" in gone.stdout and "strata transform --full-refresh" in gone.stdout
    assert query(home, "select count(*) as n from raw.dead_letters")[0]["n"] == total - rows
    assert users not in {s["source"] for s in json.loads(ok(strata("lake", "sources", "--json", home=home)).stdout)}
    again = strata("lake", "drop", "--source", users, home=home)
    assert again.returncode == 2 and "no rows of" in again.stderr and "expected_errors.jsonl" in again.stderr


@pytest.mark.slow
def test_generate_prints_the_ingest_command_for_what_it_wrote(built, tmp_path):
    line = next(line for line in built["generate"].stdout.splitlines() if line.startswith("ingest with"))
    command, into = line.split(None, 2)[2].split("   (into home ")
    assert into == f"{built['home']})"
    assert command.startswith(".venv/bin/strata ingest batch --input ") and "--users-input" in command
    argv = __import__("shlex").split(command)[1:]  # the command, run with this venv's strata
    summary = ok(strata(*argv, "--json", home=tmp_path / "h"))
    assert json.loads(summary.stdout.splitlines()[-1])["accepted"] == built["truth"]["accepted"]


# ---- §4 a home is a place you can copy and move ---------------------------------------------

@pytest.mark.slow
def test_a_home_can_be_copied_and_moved(built):
    original = built["home"]
    views = duckdb.connect(str(original / "warehouse.duckdb"), read_only=True,
                           config=duckdb_config.read_only_config())
    try:
        sqls = [r[0] for r in views.execute("select sql from duckdb_views() where schema_name = 'raw'").fetchall()]
    finally:
        views.close()
    assert sqls and not any(str(original) in sql or "/lake/" in sql for sql in sqls)
    copy = copy_home(built, "copied home")
    n = built["truth"]["accepted"]
    assert query(copy, "select count(*) as n from raw.events")[0]["n"] == n
    # the copy's lake is its own: emptying it changes the copy only
    shutil.rmtree(copy / "lake" / "raw" / "events")
    (copy / "lake" / "raw" / "events").mkdir()
    shutil.copy(original / "lake" / "raw" / "events" / "_schema.parquet", copy / "lake" / "raw" / "events")
    assert query(copy, "select count(*) as n from raw.events")[0]["n"] == 0
    assert query(original, "select count(*) as n from raw.events")[0]["n"] == n
    moved = built["root"] / "moved"
    os.rename(copy_home(built, "to-move"), moved)
    assert query(moved, "select count(*) as n from mart.business_metrics")[0]["n"] > 0
    assert query(moved, "select count(*) as n from raw.events")[0]["n"] == n


def test_one_rule_for_the_default_home_whatever_the_directory():
    env = {k: v for k, v in os.environ.items() if k != "STRATA_HOME"}
    code = "from strata_core import paths; print(paths.home_path())"
    for cwd in (REPO, REPO / "graphql_site", pathlib.Path("/")):
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
        assert out.stdout.strip() == str(REPO / ".strata"), (cwd, out.stderr)


@pytest.mark.slow
def test_every_command_prints_its_home(built):
    home = str(built["home"])
    assert f"home              {home}" in built["ingest"].stdout
    assert f"home: {home}" in built["transform"].stdout
    assert f"home {home}" in strata("query", "select 1", home=built["home"]).stderr
    assert f"home {home}" in strata("lake", "sources", home=built["home"]).stderr
    copy = built["root"] / "json-home"
    summary = ok(strata("ingest", "batch", "--input", str(built["data"] / "events-*.ndjson"), "--json", home=copy))
    assert json.loads(summary.stdout.splitlines()[-1])["strata_home"] == str(copy)


def _private(home: pathlib.Path) -> list[str]:
    """Paths under ``home`` (itself included) that group or others may read, write or enter."""
    loose = []
    for path in [home, *home.rglob("*")]:
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            loose.append(f"{oct(stat.S_IMODE(path.stat().st_mode))} {path.relative_to(home.parent)}")
    return loose


@pytest.mark.slow
def test_the_home_is_private(built):
    home = built["root"] / "private-home"
    ok(strata("ingest", "batch", "--input", str(built["data"] / "events-*.ndjson"), home=home))
    ok(strata("token", "create", "private-check", home=home))  # Django's SQLite file
    assert (home / "django.sqlite3").exists()
    assert _private(built["home"]) == [] and _private(home) == []


# ---- §5 tokens -------------------------------------------------------------------------------

@pytest.mark.slow
def test_tokens_on_a_fresh_home_with_expiry_list_and_revoke(tmp_path):
    home = tmp_path / "token-home"
    made = ok(strata("token", "create", "dash", "--expires-in", "30d", "--rate-limit", "10", home=home))
    token = made.stdout.strip()
    assert token.startswith("strata_") and "shown once" in made.stderr and f"home {home}" in made.stderr
    rows = json.loads(ok(strata("token", "list", "--json", home=home)).stdout)
    assert [(r["name"], r["state"], r["rate_limit_per_minute"]) for r in rows] == [("dash", "active", 10)]
    assert rows[0]["expires_at"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 29 * 86400))
    assert token not in json.dumps(rows) and rows[0]["prefix"] == token[:12]
    twice = strata("token", "create", "dash", home=home)
    assert twice.returncode == 2 and "already exists" in twice.stderr
    bad = strata("token", "create", "x", "--expires-in", "0d", home=home)
    assert bad.returncode == 2 and "30d, 12h, 90m" in bad.stderr
    ok(strata("token", "revoke", "dash", home=home))
    assert json.loads(ok(strata("token", "list", "--json", home=home)).stdout)[0]["state"] == "revoked"
    missing = strata("token", "revoke", "nope", home=home)
    assert missing.returncode == 2 and "no token named 'nope'" in missing.stderr and "dash" in missing.stderr


# ---- §6 what users of dbt, Beam and GraphQL expect -----------------------------------------

def test_serve_on_a_busy_port_says_so_once_and_quickly(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        done = strata("serve", "--port", str(port), home=tmp_path / "h", timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "GraphQL on" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert elapsed < 5, elapsed


@pytest.mark.slow
def test_docs_builds_the_dbt_site_and_serves_it_offline(built):
    from tests.conftest import need_service

    home = copy_home(built, "docs-home")
    events_doc = (REPO / "docs" / "events.md").read_text()
    done = ok(strata("docs", home=home))
    assert (REPO / "docs" / "events.md").read_text() == events_doc  # regenerated, unchanged
    target = home / "dbt" / "target"
    assert "dbt docs site" in done.stdout and (target / "index.html").exists()
    catalog = json.loads((target / "catalog.json").read_text())
    assert "model.strata.business_metrics" in catalog["nodes"]
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["metadata"]["send_anonymous_usage_stats"] is False  # the page's tracker stays off
    assert not (home / "warehouse.docs.duckdb").exists()

    port = free_port()
    env = {**os.environ, "STRATA_HOME": str(home)}
    server = subprocess.Popen([sys.executable, "-m", "strata", "docs", "serve", "--port", str(port)], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        import urllib.request

        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog.json", timeout=2) as r:
                    assert json.loads(r.read())["nodes"]
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "docs server did not start"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b"dbt" in r.read(2_000_000)
        chromium = shutil.which("chromium")
        need_service(chromium is not None, "chromium is not installed (apt-get install chromium)")
        netlog = home / "netlog.json"
        shot = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--log-net-log={netlog}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000",
             "--dump-dom", f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=120)
        assert "business_metrics" in shot.stdout, shot.stderr[-2000:]
        # Every request the page made (the browser's own update and time checks have no origin).
        log = json.loads(netlog.read_text())
        start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        jobs = [e.get("params") or {} for e in log["events"] if e["type"] == start_job]
        urls = {job["url"] for job in jobs if "url" in job and job.get("initiator") != "not an origin"}
        assert any(u.startswith(f"http://127.0.0.1:{port}/manifest.json") for u in urls), sorted(urls)
        outside = sorted(u for u in urls if not u.startswith(f"http://127.0.0.1:{port}/"))
        assert not outside, outside
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
