"""End to end: ``strata generate`` → ``strata ingest batch`` → the local warehouse, against ground truth.

Ground truth comes from the generator's own intent (what it meant to write), not from the
validator, so these tests would catch a pipeline that loses, duplicates or misroutes records.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from strata import cli, warehouse
from tests.fakes.bigquery_server import FakeBigQuery
from tests.fakes.gcs import gcs_emulator  # noqa: F401  (pytest fixture)

START = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=5)).isoformat()


def generate(out: pathlib.Path, fmt: str = "ndjson", users: int = 250, days: int = 4, files: int = 2) -> dict:
    status = cli.main(["generate", "--out", str(out), "--users", str(users), "--days", str(days),
                       "--seed", "11", "--start-date", START, "--format", fmt, "--files", str(files)])
    assert status == 0
    return json.loads((out / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def ndjson_input(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "ndjson"
    return out, generate(out)


def ingest(capsys, *args: str) -> dict:
    capsys.readouterr()
    status = cli.main(["ingest", "batch", *args, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def assert_summary_matches(summary: dict, truth: dict) -> None:
    assert summary["read"] == truth["input_records"]
    assert summary["accepted"] == truth["accepted"]
    assert summary["dead_lettered"] == truth["dead_lettered"]
    assert summary["by_error_type"] == {k: v for k, v in truth["by_error_type"].items() if v}
    assert summary["read"] == summary["accepted"] + summary["dead_lettered"]
    assert summary["balanced"] is True


def table_snapshot() -> dict:
    _, events = warehouse.query("select count(*), count(distinct row_key), count(distinct event_id) from raw.events")
    _, dead = warehouse.query("select count(*), count(distinct row_key) from raw.dead_letters")
    _, users = warehouse.query("select count(*) from raw.users")
    return {"events": events[0], "dead": dead[0], "users": users[0][0]}


def test_ingest_matches_ground_truth_exactly(strata_home, ndjson_input, capsys):
    out, truth = ndjson_input
    summary = ingest(capsys, "--input", str(out / "events-*"), "--users-input", str(out / "users.jsonl"))
    assert_summary_matches(summary, truth)

    snap = table_snapshot()
    assert snap["events"] == (truth["accepted"], truth["accepted"], truth["accepted_unique_events"])
    assert snap["dead"] == (truth["dead_lettered"], truth["dead_lettered"])

    _, dau = warehouse.query("select event_date, count(distinct user_id) from raw.events "
                             "where user_id is not null group by 1")
    assert {d.isoformat(): n for d, n in dau} == {d: n for d, n in truth["dau_by_date"].items() if n}

    # Every bad record is in raw.dead_letters at its file and line, with its exact original bytes.
    expected = [json.loads(x) for x in (out / "expected_errors.jsonl").read_text().splitlines()]
    _, rows = warehouse.query("select attributes, error_type, raw_payload, stage from raw.dead_letters")
    got = {}
    for attributes, error_type, raw_payload, stage in rows:
        attrs = json.loads(attributes)
        got[(pathlib.Path(attrs["source_file"]).name, attrs["source_line"])] = (error_type, bytes(raw_payload), stage)
    assert {(e["file"], e["line"]): e["error_type"] for e in expected} == {k: v[0] for k, v in got.items()}
    lines = {name: (out / name).read_bytes().split(b"\n") for name in {e["file"] for e in expected}}
    for (name, number), (_, payload, _) in got.items():
        assert payload == lines[name][number - 1].rstrip(b"\r")


def test_rerun_is_idempotent(strata_home, ndjson_input, capsys):
    out, truth = ndjson_input
    args = ("--input", str(out / "events-*"), "--users-input", str(out / "users.jsonl"))
    first = ingest(capsys, *args)
    before = table_snapshot()
    second = ingest(capsys, *args)
    assert table_snapshot() == before
    assert {k: v for k, v in first.items() if k not in ("seconds", "events_per_s")} == \
           {k: v for k, v in second.items() if k not in ("seconds", "events_per_s")}
    assert before["events"][0] == truth["accepted"]


@pytest.mark.slow
def test_two_process_runner_gives_the_same_rows(tmp_path, monkeypatch, ndjson_input, capsys):
    out, truth = ndjson_input
    contents = []
    for workers in ("1", "2"):
        monkeypatch.setenv("STRATA_HOME", str(tmp_path / f"home-{workers}"))
        summary = ingest(capsys, "--input", str(out / "events-*"), "--workers", workers)
        assert_summary_matches(summary, truth)
        _, rows = warehouse.query("select row_key, event_id, event_date, amount from raw.events order by row_key")
        _, dead = warehouse.query("select row_key, error_type from raw.dead_letters order by row_key")
        contents.append((rows, dead))
    assert contents[0] == contents[1]


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_typed_inputs_match_ground_truth(strata_home, tmp_path, capsys, fmt):
    truth = generate(tmp_path / fmt, fmt=fmt, users=120, days=3, files=1)
    summary = ingest(capsys, "--input", str(tmp_path / fmt / "events-*"))
    assert_summary_matches(summary, truth)
    assert table_snapshot()["events"][2] == truth["accepted_unique_events"]


def test_gs_input_through_the_storage_emulator(strata_home, ndjson_input, capsys, gcs_emulator):
    out, truth = ndjson_input
    for path in sorted(out.glob("events-*")):
        gcs_emulator.upload(f"gs://strata-in/events/{path.name}", path.read_bytes())
    summary = ingest(capsys, "--input", "gs://strata-in/events/events-*")
    assert_summary_matches(summary, truth)
    _, rows = warehouse.query("select distinct source_file from raw.events")
    assert all(r[0].startswith("gs://strata-in/events/") for r in rows)


def test_bigquery_sink_against_a_loopback_fake(strata_home, tmp_path, capsys):
    truth = generate(tmp_path / "bq", users=60, days=2, files=1)
    with FakeBigQuery(refuse_prefix=None) as fake:
        summary = ingest(capsys, "--input", str(tmp_path / "bq" / "events-*"), "--sink", "bigquery",
                         "--bq-project", "strata-test", "--bq-endpoint", fake.endpoint,
                         "--bq-write-method", "streaming_inserts")
        assert_summary_matches(summary, truth)
        events = fake.rows("strata-test", "raw", "events")
        dead = fake.rows("strata-test", "raw", "dead_letters")
    assert len(events) == truth["accepted"]
    assert len({r["event_id"] for r in events}) == truth["accepted_unique_events"]
    assert collections.Counter(r["error_type"] for r in dead) == collections.Counter(
        {k: v for k, v in truth["by_error_type"].items() if v})


def test_readers_query_while_a_load_runs(strata_home, ndjson_input, capsys):
    out, truth = ndjson_input
    warehouse.init()
    errors, counts, done = [], [], threading.Event()

    def reader():
        while not done.is_set():
            try:
                with warehouse.connect() as con:  # the readers' connection: read-only, locked
                    counts.append(con.execute("select count(*) from raw.events").fetchone()[0])
            except Exception as exc:  # noqa: BLE001 - any reader error fails the test below
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        ingest(capsys, "--input", str(out / "events-*"))
    finally:
        done.set()
        thread.join()
    assert not errors
    assert counts and all(0 <= n <= truth["accepted"] for n in counts)
    assert table_snapshot()["events"][0] == truth["accepted"]


def test_cli_errors_are_precise(strata_home, tmp_path, capsys):
    assert cli.main(["ingest", "batch", "--input", str(tmp_path / "nothing-*.jsonl")]) == 2
    assert "matched no files" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a,b\n")
    # Errors name the flags the user typed, not the Beam options they become.
    assert cli.main(["ingest", "batch", "--input", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "--format ndjson|avro|parquet" in err and "--input_format" not in err
    assert cli.main(["ingest", "batch", "--input", str(tmp_path / "x.csv"), "--sink", "bigquery"]) == 2
    err = capsys.readouterr().err
    assert "--bq-project" in err and "--bq_project" not in err


def test_query_command_prints_rows_as_json(strata_home, ndjson_input, capsys):
    out, truth = ndjson_input
    ingest(capsys, "--input", str(out / "events-*"))
    assert cli.main(["query", "select count(*) as n from raw.events", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": truth["accepted"]}]
    assert cli.main(["query", "select * from raw.no_such_table"]) == 2
    assert "no_such_table" in capsys.readouterr().err


def test_default_workers_follow_the_input_size_and_the_idle_cores(tmp_path):
    from beam_pipelines.batch import BYTES_PER_WORKER, local_workers

    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.truncate(3 * BYTES_PER_WORKER)  # sparse: takes no disk
    (tmp_path / "small.jsonl").write_bytes(b"{}\n")
    assert local_workers([str(big)], cpus=2, busy=0.1) == 2
    assert local_workers([str(big)], cpus=8, busy=0.0) == 3  # one per BYTES_PER_WORKER
    assert local_workers([str(big)], cpus=2, busy=1.9) == 1  # the other core is taken: stay in one process
    assert local_workers([str(tmp_path / "small.jsonl")], cpus=2, busy=0.0) == 1


def test_busy_cores_sees_a_process_spinning_now(tmp_path):
    """The worker count reads the machine as it is now, not the lagging load average."""
    from beam_pipelines.batch import busy_cores

    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        busy = busy_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert 0.7 <= busy <= (os.cpu_count() or 1) + 0.01
