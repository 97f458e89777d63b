"""The BigQuery sink, offline: table layout, idempotent creation, streaming inserts, dead letters.

Everything runs against ``tests/fakes/bigquery_server.FakeBigQuery`` on 127.0.0.1, under a
network guard that fails the test if anything tries to resolve or reach another address.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from google.cloud import bigquery as gbq

from beam_pipelines.bigquery import clients, refused, tables as bq_tables
from beam_pipelines.bigquery import rows as codecs
from beam_pipelines.sinks import bigquery as sink
from strata_core import contract as c
from beam_pipelines import deadletters
from strata_core import schemas
from tests.fakes.bigquery_server import FakeBigQuery
from tests.fakes.network_guard import NonLoopbackConnection, loopback_only

PROJECT, DATASET = "strata-test", "raw"
SEVEN_YEARS_MS = 7 * 365 * 24 * 60 * 60 * 1000
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline():
    with loopback_only():
        yield


@pytest.fixture
def fake():
    with FakeBigQuery() as server:
        yield server


@pytest.fixture
def tables(fake):
    bq_tables.ensure_tables(clients.loopback_client(fake.endpoint, PROJECT), PROJECT, DATASET)
    return fake


def event_row(i: int, **overrides) -> dict:
    """A raw event row in the form the batch pipeline hands to WriteRawToBigQuery."""
    row = {
        "event_id": f"evt-{i:04d}", "event_type": "purchase", "user_id": f"user-{i % 3}",
        "anonymous_id": None, "session_id": "s-1",
        "event_timestamp": "2026-11-25T10:00:00.123456Z", "platform": "web",
        "amount": "19.990000000", "currency": "EUR",
        "properties": json.dumps({"order_id": f"o-{i}", "item_count": 2}),
        "context": json.dumps({"page": {"path": "/checkout"}}), "schema_version": 1,
        "event_date": "2026-11-25", "received_at": "2026-11-26T08:00:00Z",
        "ingest_source": "batch", "source_file": "gs://in/events-1.jsonl", "source_line": i + 1,
        "message_id": None, "row_key": f"rk-{i:04d}", "pipeline_version": c.PIPELINE_VERSION,
        "extra": None,
    }
    row.update(overrides)
    return row


def run(pipeline_fn):
    """Build with ``pipeline_fn(p)`` and run on the in-process FnApiRunner; returns the result."""
    p = beam.Pipeline(runner=FnApiRunner())
    pipeline_fn(p)
    result = p.run()
    result.wait_until_finish()
    return result


def counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(x.committed for x in found)


# ---- (a) table definitions ---------------------------------------------------------------------

def _columns(fields) -> list[tuple[str, str, str]]:
    return [(f["name"], f["type"], f.get("mode", "NULLABLE")) for f in fields]


def test_row_helper_matches_contract():
    assert list(event_row(0)) == schemas.arrow_schema("events").names


@pytest.mark.parametrize("table", sorted(schemas.RAW_TABLES))
def test_table_definition_follows_contract(table):
    definition = bq_tables.table_definition(PROJECT, DATASET, table)
    assert definition.reference.path == f"/projects/{PROJECT}/datasets/{DATASET}/tables/{table}"
    got = [(f.name, f.field_type, f.mode) for f in definition.schema]
    assert got == _columns(schemas.bigquery_schema(table)["fields"])
    layout = schemas.BIGQUERY_LAYOUT[table]
    assert definition.clustering_fields == layout["cluster_fields"]
    if layout["partition_field"]:
        assert definition.time_partitioning.type_ == "DAY"
        assert definition.time_partitioning.field == layout["partition_field"]
        assert definition.time_partitioning.expiration_ms == SEVEN_YEARS_MS
    else:
        assert definition.time_partitioning is None


def test_events_column_types():
    types = {f.name: f.field_type for f in bq_tables.table_definition(PROJECT, DATASET, "events").schema}
    assert types["amount"] == "NUMERIC"
    assert {n for n, t in types.items() if t == "JSON"} == {"properties", "context", "extra"}
    assert types["event_date"] == "DATE" and types["event_timestamp"] == "TIMESTAMP"
    dl = {f.name: f.field_type for f in bq_tables.table_definition(PROJECT, DATASET, "dead_letters").schema}
    assert dl["raw_payload"] == "BYTES" and dl["attributes"] == "JSON"


def test_unknown_table_is_rejected():
    with pytest.raises(ValueError, match="unknown raw table 'event'"):
        bq_tables.table_definition(PROJECT, DATASET, "event")


def test_ensure_tables_sends_the_contract_and_is_idempotent(fake):
    client = clients.loopback_client(fake.endpoint, PROJECT)
    first = bq_tables.ensure_tables(client, PROJECT, DATASET)
    second = bq_tables.ensure_tables(client, PROJECT, DATASET)
    assert sorted(first) == sorted(second) == sorted(schemas.RAW_TABLES)
    assert len(fake.tables) == len(schemas.RAW_TABLES) and len(fake.datasets) == 1

    sent = {body["tableReference"]["tableId"]: body
            for body in fake.sent("POST", f"/datasets/{DATASET}/tables")}
    for table in schemas.RAW_TABLES:
        body = sent[table]  # the JSON google-cloud-bigquery put on the wire
        assert _columns(body["schema"]["fields"]) == _columns(schemas.bigquery_schema(table)["fields"])
        layout = schemas.BIGQUERY_LAYOUT[table]
        assert body["clustering"] == {"fields": layout["cluster_fields"]}
        if layout["partition_field"]:
            assert body["timePartitioning"] == {
                "type": "DAY", "field": layout["partition_field"], "expirationMs": str(SEVEN_YEARS_MS)}
        else:
            assert "timePartitioning" not in body
        assert fake.tables[(PROJECT, DATASET, table)]["schema"] == body["schema"]


def test_ensure_tables_refuses_a_drifted_table(fake):
    client = clients.loopback_client(fake.endpoint, PROJECT)
    client.create_dataset(f"{PROJECT}.{DATASET}")
    old = gbq.Table(f"{PROJECT}.{DATASET}.events", schema=[gbq.SchemaField("event_id", "STRING")])
    client.create_table(old)
    with pytest.raises(RuntimeError, match=r"lacks contract columns \['event_type'"):
        bq_tables.ensure_tables(client, PROJECT, DATASET)


def test_loopback_client_refuses_remote_endpoints():
    with pytest.raises(ValueError, match="not loopback"):
        clients.loopback_client("https://bigquery.googleapis.com", PROJECT)


def test_network_guard_blocks_metadata_server():
    import socket

    with pytest.raises(NonLoopbackConnection):
        socket.create_connection(("169.254.169.254", 80), timeout=0.1)


# ---- dead-letter records, without a pipeline ---------------------------------------------------

def test_failed_insert_becomes_dead_letter():
    row = event_row(7)
    errors = [{"reason": "invalid", "location": "amount", "message": "Invalid NUMERIC value: x"}]
    (dl,) = list(refused.FailedInsertToDeadLetterFn().process(("p:d.events", row, errors)))
    assert set(dl) == {f.name for f in c.DEAD_LETTER_FIELDS}
    assert (dl["source"], dl["stage"], dl["error_type"]) == ("batch", "write", "bigquery_insert_error")
    assert c.ERROR_TYPES_BY_NAME[dl["error_type"]].stage == "write"
    assert "amount" in dl["error_message"] and "Invalid NUMERIC" in dl["error_message"]
    assert json.loads(dl["raw_payload"]) == row
    attributes = json.loads(dl["attributes"])
    assert attributes["source_file"] == row["source_file"] and attributes["source_line"] == 8
    assert attributes["bigquery_errors"] == errors
    assert (dl["event_id"], dl["row_key"], dl["replay_count"]) == ("evt-0007", "rk-0007", 0)
    assert dl["failed_at"].tzinfo is not None
    assert set(dl) == set(deadletters.dead_letter(
        error_type="bigquery_insert_error", error_message="", raw_payload=b"", source="batch",
        attributes=None, row_key="", failed_at=dl["failed_at"]))  # one shape for every stage


def test_row_too_large_error_string_is_kept():
    dl = codecs.failed_insert_to_dead_letter("p:d.events", event_row(1), "Received row with size 10MB")
    assert "rowTooLarge: Received row with size 10MB" in dl["error_message"]


def test_dead_letter_bigquery_row_encodes_bytes_as_base64():
    dl = codecs.failed_insert_to_dead_letter("p:d.events", event_row(1), [])
    row = codecs.dead_letter_to_bigquery_row(dict(dl, raw_payload=b"\xff\x00not utf-8"))
    assert base64.b64decode(row["raw_payload"]) == b"\xff\x00not utf-8"
    assert list(row) == [f.name for f in c.DEAD_LETTER_FIELDS]


def test_arrow_rows_convert_to_insert_json(tables):
    import datetime as dt
    import decimal

    import pyarrow as pa

    native = dict(event_row(3),
                  event_timestamp=dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=dt.timezone.utc),
                  received_at=dt.datetime(2026, 11, 26, 8, tzinfo=dt.timezone.utc),
                  event_date=dt.date(2026, 11, 25), amount=decimal.Decimal("19.99"))
    (from_arrow,) = pa.Table.from_pylist([native], schema=schemas.arrow_schema("events")).to_pylist()
    row = codecs.to_insert_row(from_arrow)
    assert (row["event_timestamp"], row["received_at"], row["event_date"], row["amount"]) == (
        "2026-11-25T10:00:00.123456Z", "2026-11-26T08:00:00.000000Z", "2026-11-25", "19.990000000")
    assert codecs.to_insert_row(event_row(3)) == event_row(3)  # JSON-able rows pass unchanged
    client = clients.loopback_client(tables.endpoint, PROJECT)
    assert client.insert_rows_json(f"{PROJECT}.{DATASET}.events", [row]) == []


# ---- (b) the sink in a pipeline ----------------------------------------------------------------

REFUSED = {
    "refuse-0001": {},                                              # forced by the fake's hook
    "evt-bad-amount": {"amount": "1.0000000001"},                   # > 9 decimals: NUMERIC refuses
    "evt-bad-json": {"properties": "{not json"},                    # JSON column, unparseable
    "evt-bad-ts": {"event_timestamp": "yesterday"},                 # not a timestamp
    "evt-no-key": {"row_key": None},                                # REQUIRED column null
    "evt-unknown": {"surprise": 1},                                 # no such field
}


def _input_rows(good: int = 20) -> list[dict]:
    rows = [event_row(i) for i in range(good)]
    rows += [event_row(100 + n, event_id=eid, **{k: v for k, v in change.items()})
             for n, (eid, change) in enumerate(REFUSED.items())]
    return rows


def test_good_rows_land_refused_rows_become_dead_letters(tables):
    rows = _input_rows()
    started = time.monotonic()

    def build(p):
        dead = (p | beam.Create(rows)
                | "StreamInsertRows" >> sink.StreamInsertRows(
                    PROJECT, DATASET, bigquery_client=clients.LoopbackClient(tables.endpoint, PROJECT)))
        # The returned PCollection is the dead letters: what the pipeline counts.
        assert_that(dead | beam.Map(lambda d: (d["event_id"], d["stage"], type(d["raw_payload"]))),
                    equal_to([(eid, "write", bytes) for eid in REFUSED]))

    result = run(build)
    elapsed = time.monotonic() - started

    events = tables.rows(PROJECT, DATASET, "events")
    dead_rows = tables.rows(PROJECT, DATASET, "dead_letters")
    assert sorted(r["event_id"] for r in events) == sorted(r["event_id"] for r in rows
                                                            if r["event_id"] not in REFUSED)
    assert sorted(r["event_id"] for r in dead_rows) == sorted(REFUSED)
    assert len(events) + len(dead_rows) == len(rows)
    assert counter(result, "bigquery_refused") == len(REFUSED)

    by_id = {r["event_id"]: r for r in rows}
    for stored in dead_rows:
        assert (stored["stage"], stored["error_type"], stored["source"]) == (
            "write", "bigquery_insert_error", "batch")
        assert json.loads(base64.b64decode(stored["raw_payload"])) == by_id[stored["event_id"]]
        assert json.loads(stored["attributes"])["source_file"] == "gs://in/events-1.jsonl"
    messages = {r["event_id"]: r["error_message"] for r in dead_rows}
    assert "Missing required field: row_key" in messages["evt-no-key"]
    assert "no such field: surprise" in messages["evt-unknown"]
    # permanent errors are not retried: one insertAll for events, one for dead letters
    assert len(tables.sent("POST", "/tables/events/insertAll")) == 1
    assert elapsed < 30, f"sink took {elapsed:.1f}s; something is retrying"


def test_transient_error_is_retried_once_without_duplicates(tables):
    tables.transient_failures["events"] = 1
    rows = [event_row(i) for i in range(10)]
    run(lambda p: p | beam.Create(rows) | sink.StreamInsertRows(
        PROJECT, DATASET, bigquery_client=clients.LoopbackClient(tables.endpoint, PROJECT),
        max_insert_retries=3))
    assert sorted(r["event_id"] for r in tables.rows(PROJECT, DATASET, "events")) == [
        r["event_id"] for r in rows]
    assert tables.rows(PROJECT, DATASET, "dead_letters") == []
    assert len(tables.sent("POST", "/tables/events/insertAll")) == 2


def test_persistent_transient_errors_end_as_dead_letters_not_endless_retries(tables):
    tables.transient_failures["events"] = 10_000
    rows = [event_row(i) for i in range(5)]
    started = time.monotonic()
    result = run(lambda p: p | beam.Create(rows) | sink.StreamInsertRows(
        PROJECT, DATASET, bigquery_client=clients.LoopbackClient(tables.endpoint, PROJECT),
        max_insert_retries=2))
    assert time.monotonic() - started < 30
    dead_rows = tables.rows(PROJECT, DATASET, "dead_letters")
    assert sorted(r["event_id"] for r in dead_rows) == [r["event_id"] for r in rows]
    assert all("backendError" in r["error_message"] for r in dead_rows)
    assert len(tables.sent("POST", "/tables/events/insertAll")) == 3  # first try + 2 retries
    assert counter(result, "bigquery_refused") == len(rows)


def test_retry_budget_is_per_bundle_but_rows_are_never_dropped(tables, monkeypatch):
    """Beam 2.77 draws one back-off value per flush, so a transient error after the budget is
    spent is not retried: those rows must come out as dead letters, not vanish."""
    original = tables._insert_all

    def fail_sixth_call(project, dataset, table, body):
        if table == "events" and tables.insert_all_calls == 5:
            tables.transient_failures["events"] = 1
        return original(project, dataset, table, body)

    monkeypatch.setattr(tables, "_insert_all", fail_sixth_call)
    rows = [event_row(i) for i in range(20)]
    run(lambda p: p | beam.Create(rows) | sink.StreamInsertRows(
        PROJECT, DATASET, bigquery_client=clients.LoopbackClient(tables.endpoint, PROJECT),
        max_insert_retries=3, batch_size=2))
    events = tables.rows(PROJECT, DATASET, "events")
    dead_rows = tables.rows(PROJECT, DATASET, "dead_letters")
    assert len(events) + len(dead_rows) == len(rows)
    assert len(dead_rows) == 2 and all("backendError" in r["error_message"] for r in dead_rows)


def test_unwritable_dead_letter_fails_the_run(tables):
    tables.refuse_tables.add("dead_letters")
    with pytest.raises(Exception, match="UnwritableDeadLetterError|BigQuery refused dead letter"):
        run(lambda p: p | beam.Create([event_row(1, event_id="refuse-x")]) | sink.StreamInsertRows(
            PROJECT, DATASET, bigquery_client=clients.LoopbackClient(tables.endpoint, PROJECT)))


def test_retry_bound_is_validated():
    with pytest.raises(ValueError, match="retrying forever"):
        sink.StreamInsertRows(PROJECT, DATASET, max_insert_retries=10_000)


# ---- the production construction path, with no test hook ---------------------------------------

_PRODUCTION_SCRIPT = textwrap.dedent("""
    import json, sys
    from tests.fakes.network_guard import install_process_guard
    install_process_guard()
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from beam_pipelines.sinks.bigquery import StreamInsertRows
    rows = json.loads(sys.stdin.read())
    p = beam.Pipeline(runner=FnApiRunner())
    _ = p | beam.Create(rows) | StreamInsertRows("strata-test", "raw", max_insert_retries=1)
    p.run().wait_until_finish()
""")


def test_production_client_path_against_the_fake(tables, tmp_path):
    """No ``bigquery_client``: Beam builds its own clients from application default credentials.

    Pointed at the fake only through the environment: ``BIGQUERY_EMULATOR_HOST`` (honoured by
    google-cloud-bigquery) and a throwaway service-account key whose ``token_uri`` is the fake's
    ``/token``. Runs in a subprocess because Beam caches credentials per process.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    key_file = tmp_path / "throwaway-key.json"  # generated per run, never committed
    key_file.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "throwaway",
        "private_key": pem, "client_email": f"test@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": f"{tables.endpoint}/token",
    }))
    env = dict(os.environ, BIGQUERY_EMULATOR_HOST=tables.endpoint,
               GOOGLE_APPLICATION_CREDENTIALS=str(key_file), PYTHONPATH=str(REPO),
               GOOGLE_CLOUD_PROJECT=PROJECT)
    env.pop("GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED", None)
    rows = [event_row(1), event_row(2, event_id="refuse-2")]
    proc = subprocess.run([sys.executable, "-c", _PRODUCTION_SCRIPT], input=json.dumps(rows),
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["event_id"] for r in tables.rows(PROJECT, DATASET, "events")] == ["evt-0001"]
    assert [r["event_id"] for r in tables.rows(PROJECT, DATASET, "dead_letters")] == ["refuse-2"]
    assert tables.sent("POST", "/token"), "the service-account token was not fetched from the fake"
