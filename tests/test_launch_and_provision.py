"""``strata launch`` (Flex Template parameters checked locally, the exact gcloud command),
``strata bq init`` (DDL from the contract; BigQuery against the loopback fake; Pub/Sub against
the real emulator) and the data-version stores. Nothing reaches a Google endpoint."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

from conftest import need_service
from strata import cli, launch
from strata_core import dataversion, ddl, resources, schemas
from tests.fakes.bigquery_server import FakeBigQuery
from tests.fakes.network_guard import loopback_only

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _launch(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["launch", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- strata launch -----------------------------------------------------------------------------

def test_launch_batch_prints_the_exact_gcloud_command(capsys):
    code, out, _ = _launch(capsys, "batch", "--project", "my-project", "--region", "europe-west1",
                           "-p", "input=gs://my-bucket/events/2026-11-26/*.jsonl", "--job-name", "strata-batch-1")
    assert code == 0
    argv = shlex.split(out)
    assert argv[:5] == ["gcloud", "dataflow", "flex-template", "run", "strata-batch-1"]
    assert "--template-file-gcs-location=gs://my-project-strata-templates/templates/ingest_batch.json" in argv
    assert "--temp-location=gs://my-project-strata-dataflow/tmp" in argv
    assert "--parameters=bq_project=my-project,input=gs://my-bucket/events/2026-11-26/*.jsonl" in argv
    assert "--update" not in argv


@pytest.mark.parametrize("args, message", [
    (["-p", "bq_project=my-project"], "missing required parameter 'input'"),
    (["-p", "input=/local/file.jsonl"], r"parameter input='/local/file.jsonl' does not match \^gs://"),
    (["-p", "input=gs://b/x", "-p", "inputs=gs://b/y"], "unknown parameter 'inputs'; the template accepts: bq_dataset"),
    (["-p", "input=gs://b/x", "-p", "bq_write_method=fast"], "bq_write_method='fast' does not match"),
    (["-p", "input"], "'input' must be NAME=VALUE"),
])
def test_launch_refuses_bad_parameters_with_the_rule(capsys, args, message):
    code, out, err = _launch(capsys, "batch", "--project", "my-project", "--region", "europe-west1", *args)
    assert code == 2 and out == ""
    assert re.search(message, err), err


def test_launch_checks_project_and_region(capsys):
    assert _launch(capsys, "batch", "--project", "P", "--region", "europe-west1", "-p", "input=gs://b/x")[2] \
        .count("must be a GCP project id") == 1
    assert "must be a Dataflow region" in _launch(capsys, "batch", "--project", "my-project", "--region", "eu",
                                                  "-p", "input=gs://b/x")[2]


def test_launch_stream_update_with_renamed_steps(capsys):
    code, out, err = _launch(capsys, "stream", "--project", "my-project", "--region", "europe-west1", "--update",
                             "--transform-name-mapping", "ParseEvents=ParseMessages",
                             "--transform-name-mapping", "WriteRaw/WriteEvents=WriteRaw/StreamEvents",
                             "-p", "dead_letter_topic=projects/my-project/topics/dead-letters")
    assert code == 0, err
    argv = shlex.split(out)
    assert argv[4] == "strata-stream"  # a stable name: --update replaces the job of that name
    assert "--update" in argv and "--enable-streaming-engine" in argv
    assert ("--transform-name-mappings=ParseEvents=ParseMessages,WriteRaw/WriteEvents=WriteRaw/StreamEvents"
            in argv)
    params = next(a for a in argv if a.startswith("--parameters="))
    assert "subscription=projects/my-project/subscriptions/events-ingest" in params
    assert "dead_letter_topic=projects/my-project/topics/dead-letters" in params


def test_launch_update_rules(capsys):
    base = ["--project", "my-project", "--region", "europe-west1"]
    assert "needs --update" in _launch(capsys, "stream", *base, "--transform-name-mapping", "A=B")[2]
    assert "must be step labels" in _launch(capsys, "stream", *base, "--update",
                                            "--transform-name-mapping", "A b=C")[2]
    with pytest.raises(launch.LaunchError, match="streaming job only"):
        launch.build_command("batch", project="my-project", region="europe-west1",
                             params={"input": "gs://my-bucket/x"}, update=True)


def test_launch_escapes_commas_for_gcloud():
    argv = launch.build_command("batch", project="my-project", region="europe-west1",
                                params={"input": "gs://my-bucket/{a,b}/*.jsonl"})
    assert "--parameters=^~^bq_project=my-project~input=gs://my-bucket/{a,b}/*.jsonl" in argv


def test_launch_run_executes_the_printed_command(capsys, tmp_path, monkeypatch):
    fake = tmp_path / "gcloud"  # stands in for the SDK: records its argv, contacts nothing
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    base = ["batch", "--project", "my-project", "--region", "europe-west1", "-p", "input=gs://my-bucket/x",
            "--job-name", "strata-batch-2"]
    _, printed, _ = _launch(capsys, *base)
    assert _launch(capsys, *base, "--run")[0] == 0
    assert (tmp_path / "argv").read_text().splitlines() == shlex.split(printed)[1:]


def test_launch_needs_only_the_standard_library(tmp_path):
    """Cloud Build's last step runs it with the SDK image's bare Python (no site-packages)."""
    proc = subprocess.run([sys.executable, "-S", "-m", "strata.commands.launch", "stream", "--project", "my-project",
                           "--region", "europe-west1", "--update"], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gcloud dataflow flex-template run strata-stream ")


# ---- DDL and datasets ----------------------------------------------------------------------------

def test_reviewed_ddl_is_current():
    assert (ROOT / "deploy/bigquery/init.sql").read_text() == ddl.render(), \
        "deploy/bigquery/init.sql is stale: run `strata bq init --print-ddl > deploy/bigquery/init.sql`"


def _parse_create_table(statement: str) -> dict:
    """An independent reading of one CREATE TABLE: columns, PARTITION BY, CLUSTER BY, OPTIONS."""
    head, _, rest = statement.partition("(\n")
    body, _, tail = rest.rpartition("\n)")
    columns = []
    for line in body.splitlines():
        m = re.match(r"^\s+(\w+) (\w+)( NOT NULL)? OPTIONS\(description=\"", line)
        assert m, line
        columns.append((m.group(1), m.group(2), "REQUIRED" if m.group(3) else "NULLABLE"))
    partition = re.search(r"PARTITION BY (?:DATE\()?(\w+)\)?", tail)
    cluster = re.search(r"CLUSTER BY ([\w, ]+)", tail)
    days = re.search(r"partition_expiration_days=(\d+)", tail)
    return {"table": head.split()[-1], "columns": columns,
            "partition": partition.group(1) if partition else None,
            "cluster": [c.strip() for c in cluster.group(1).split(",")] if cluster else [],
            "days": int(days.group(1)) if days else None}


@pytest.mark.parametrize("table", sorted(schemas.RAW_TABLES))
def test_ddl_matches_the_contract(table):
    parsed = _parse_create_table(ddl.table_statement(table))
    assert parsed["table"] == f"raw.{table}"
    expected = [(f.name, {"string": "STRING", "enum": "STRING", "timestamp": "TIMESTAMP", "decimal": "NUMERIC",
                          "integer": "INT64", "json": "JSON", "date": "DATE", "bytes": "BYTES"}[f.kind],
                 "REQUIRED" if f.required else "NULLABLE") for f in schemas.RAW_TABLES[table]]
    assert parsed["columns"] == expected
    layout = schemas.BIGQUERY_LAYOUT[table]
    assert parsed["partition"] == layout["partition_field"]
    assert parsed["cluster"] == layout["cluster_fields"]
    assert parsed["days"] == (7 * 365 if layout["partition_field"] else None)


def test_dataset_expirations_match_the_dbt_project():
    dbt_vars = yaml.safe_load((ROOT / "transforms_sql/dbt_project.yml").read_text())["vars"]
    for layer in ("staging", "curated", "mart"):
        assert resources.DATASETS[layer].default_partition_expiration_days == dbt_vars[f"{layer}_retention_days"]
    assert resources.DATASETS["raw"].default_partition_expiration_days == 7 * 365
    assert resources.DATASETS["mart"].default_partition_expiration_days == 2 * 365
    script = ddl.render("EU")
    for layer in resources.DATASETS:
        assert f"CREATE SCHEMA IF NOT EXISTS {layer}\n" in script
    assert script.count('location="EU"') == 4


def test_bq_init_creates_datasets_and_raw_tables(capsys):
    with loopback_only(), FakeBigQuery() as fake:
        argv = ["bq", "init", "--project", "strata-test", "--no-pubsub", "--bq-endpoint", fake.endpoint]
        assert cli.main(argv) == 0
        assert cli.main(argv) == 0  # idempotent
        out = capsys.readouterr().out
        assert sorted(d for _, d in fake.datasets) == sorted(resources.DATASETS)
        mart = fake.datasets[("strata-test", "mart")]
        assert mart["defaultPartitionExpirationMs"] == str(730 * 86_400_000)
        assert sorted(t for _, _, t in fake.tables) == sorted(schemas.RAW_TABLES)
        events = fake.tables[("strata-test", "raw", "events")]
    assert events["timePartitioning"] == {"type": "DAY", "field": "event_date", "expirationMs": str(2555 * 86_400_000)}
    assert events["clustering"] == {"fields": ["user_id", "event_type"]}
    assert "table strata-test.raw.events: ready (partitioning event_date, clustering user_id, event_type)" in out


def test_bq_init_refuses_a_bad_project(capsys):
    assert cli.main(["bq", "init", "--project", "Bad_Project"]) == 2
    assert "must be a GCP project id" in capsys.readouterr().err


def test_bq_init_print_ddl_touches_nothing(capsys):
    assert cli.main(["bq", "init", "--print-ddl"]) == 0
    assert capsys.readouterr().out == ddl.render()


# ---- Pub/Sub on the real emulator ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pubsub_emulator(tmp_path, monkeypatch):
    gcloud = shutil.which("gcloud")
    available = bool(gcloud) and subprocess.run([gcloud, "beta", "emulators", "pubsub", "--help"],
                                                capture_output=True).returncode == 0
    need_service(available, "Google's Pub/Sub emulator (gcloud beta emulators pubsub) is not installed")
    port = _free_port()
    data = tmp_path / "pubsub"
    data.mkdir()
    proc = subprocess.Popen([gcloud, "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}",
                             f"--data-dir={data}", "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the Pub/Sub emulator did not start"
                time.sleep(0.3)
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, 15)  # gcloud starts the emulator's JVM as a child: stop the group
        proc.wait(timeout=30)


def test_bq_init_creates_topics_and_subscriptions_with_dead_letter_policy(pubsub_emulator, capsys):
    from google.cloud import pubsub_v1

    argv = ["bq", "init", "--project", "strata-test", "--no-bigquery"]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count(": created") == len(resources.TOPICS) + len(resources.SUBSCRIPTIONS)
    assert out.count(": exists") == len(resources.TOPICS) + len(resources.SUBSCRIPTIONS)
    subscriber = pubsub_v1.SubscriberClient()
    try:
        sub = subscriber.get_subscription(subscription=resources.subscription_path("strata-test", "events-ingest"))
    finally:
        subscriber.close()
    assert sub.topic == "projects/strata-test/topics/events"
    assert sub.dead_letter_policy.dead_letter_topic == "projects/strata-test/topics/events-undeliverable"
    assert sub.dead_letter_policy.max_delivery_attempts == 10
    assert sub.message_retention_duration.total_seconds() == 7 * 86400
    assert sub.ack_deadline_seconds == 60


# ---- the data version -------------------------------------------------------------------------

def test_file_store_publishes_atomically(strata_home):
    store = dataversion.store("")
    assert store.read() is None
    store.publish("v1")
    assert (strata_home / "data_version").read_text() == "v1\n" and store.read() == "v1"
    assert not [p for p in strata_home.iterdir() if p.name.startswith(".data_version")]
    other = strata_home / "elsewhere"
    other.mkdir(parents=True)
    dataversion.store(f"file://{other}").publish("v2")
    assert (other / "data_version").read_text() == "v2\n" and store.read() == "v1"


def test_build_ids_sort_by_time():
    first = dataversion.new_build_id()
    time.sleep(1.1)
    assert dataversion.new_build_id() > first
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", first)


@pytest.mark.parametrize("url", ["ftp://x", "file://relative/dir", "bigquery://only-project", "redis"])
def test_store_urls_are_checked(url):
    with pytest.raises(ValueError, match="expected file:///ABSOLUTE/DIR, redis://HOST:PORT/DB or bigquery://"):
        dataversion.store(url)


def test_redis_store(monkeypatch):
    from conftest import port_open

    need_service(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    monkeypatch.setattr(dataversion, "REDIS_KEY", "strata-test-prod:data_version")
    store = dataversion.store("redis://127.0.0.1:6379/0")
    try:
        store.publish("v-redis")
        assert store.read() == "v-redis"
    finally:
        store._client.delete("strata-test-prod:data_version")


def test_data_version_command(strata_home, capsys):
    assert cli.main(["data-version", "show"]) == 1
    assert cli.main(["data-version", "publish", "--version", "v-cli"]) == 0
    assert cli.main(["data-version", "show"]) == 0
    assert capsys.readouterr().out.splitlines() == ["(none published yet)", "v-cli", "v-cli"]


def test_bigquery_transform_publishes_to_the_configured_store(strata_home, monkeypatch):
    """`strata transform --target bigquery` publishes through the one interface (here a file URL)
    after a successful build, and not with --no-publish or after a failed one."""
    from strata import transform

    target = strata_home / "published"
    target.mkdir(parents=True)
    monkeypatch.setenv(dataversion.ENV, f"file://{target}")

    class Result:
        def __init__(self, success):
            self.success, self.result, self.exception = success, None, None

    outcomes = iter([True, True, False])
    monkeypatch.setattr(transform, "invoke_dbt", lambda args, **kw: Result(next(outcomes)))
    first = transform.run_transform(target="bigquery")
    assert first["ok"] and dataversion.store().read() == first["data_version"]
    assert transform.run_transform(target="bigquery", publish=False)["data_version"] == first["data_version"]
    failed = transform.run_transform(target="bigquery")
    assert not failed["ok"] and failed["data_version"] == first["data_version"]
    assert not (strata_home / "data_version").exists()  # the local file is the DuckDB target's
