"""The compiled fast path agrees with the rule-by-rule validator, record by record and value by value.

The fast path may only *accept*; whatever it accepts must be exactly what the validator accepts,
with exactly the validator's values, and every rejection must come from the validator. These tests
run the same records both ways (``STRATA_FAST_PATH=off`` is the validator alone) and compare.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import orjson
import pyarrow as pa
import pytest

from beam_pipelines import fastpath, transforms, validation
from beam_pipelines.records import FileOrigin, Message, RecordBatch, SubscriptionOrigin
from strata import cli
from strata.generator.writers import ndjson_bytes
from strata_core import contract as c

NOW_US = int(dt.datetime.now(dt.timezone.utc).timestamp()) * 1_000_000


def run_steps(batch: RecordBatch, fast: bool, monkeypatch) -> tuple[list[dict], list[dict], int]:
    """(raw.events rows by row_key order, dead-letter rows, records the fast path did not accept)."""
    monkeypatch.setenv("STRATA_FAST_PATH", "on" if fast else "off")
    parse, validate, enrich = transforms.ParseFn(), transforms.ValidateFn(), transforms.EnrichFn()
    parsed, dead_p = parse.parse(batch)
    valid, dead_v = validate.validate(parsed)
    outputs = [getattr(o, "value", o) for o in enrich.enrich(valid)]
    (events,) = [o for o in outputs if isinstance(o, transforms.RowsPart) and o.table == "events"]
    rows = sorted(events.rows.to_pylist(), key=lambda r: r["row_key"])
    dead = sorted(({k: v for k, v in d.items() if k != "failed_at"} for d in dead_p + dead_v),
                  key=lambda d: d["row_key"])
    for row in rows:
        row.pop("received_at")
    return rows, dead, len(batch.records) - (valid.table.num_rows if valid.table is not None else 0)


def test_generated_events_get_the_same_rows_and_dead_letters_either_way(tmp_path, monkeypatch):
    start = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=3)).isoformat()
    assert cli.main(["generate", "--out", str(tmp_path), "--users", "400", "--days", "2", "--seed", "7",
                     "--start-date", start, "--bad-rate", "0.1", "--files", "1"]) == 0
    lines = [line.rstrip(b"\r") for line in (tmp_path / "events-00000.ndjson").read_bytes().split(b"\n")
             if line.strip()]
    origin = FileOrigin(str(tmp_path / "events-00000.ndjson"), "ndjson")
    batch = RecordBatch(origin, f"{origin.key}-0000000", list(range(1, len(lines) + 1)), lines, NOW_US)

    fast_rows, fast_dead, slow_seen = run_steps(batch, True, monkeypatch)
    slow_rows, slow_dead, _ = run_steps(batch, False, monkeypatch)
    assert fast_rows == slow_rows  # every column of every accepted row, extra included
    assert fast_dead == slow_dead  # the same rejections, types, messages and bytes
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert len(fast_rows) == truth["accepted"] and len(fast_dead) == truth["dead_lettered"]
    # ... and the fast path did the work: the validator saw the bad records and few others.
    assert slow_seen < 1.2 * truth["dead_lettered"]
    assert any(r["extra"] for r in fast_rows) and any(r["amount"] is not None for r in fast_rows)


def _canonical_timestamp(rng: random.Random) -> str:
    stamp = (f"{rng.randint(2000, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 31):02d}"
             f"{rng.choice('T ')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}")
    if rng.random() < 0.6:
        stamp += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6)))
    if rng.random() < 0.3:
        return stamp + "Z"
    return stamp + f"{rng.choice('+-')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"


def test_arrow_reads_the_fast_paths_rfc3339_form_as_the_validator_does():
    rng = random.Random(3)
    texts = [_canonical_timestamp(rng) for _ in range(5000)]
    raw = fastpath.raw_column([json.dumps(t).encode() for t in texts])
    suspect = fastpath.np.zeros(len(texts), bool)
    far_future = 10**18
    converted = fastpath._timestamps(raw, suspect, far_future).cast(pa.int64()).to_pylist()
    f = c.FIELDS_BY_NAME["event_timestamp"]
    for text, us, flagged in zip(texts, converted, suspect.tolist()):
        try:
            expected = validation._timestamp(f, text, far_future, None)
        except validation.Rejected:
            assert flagged, text  # e.g. 31 April: the fast path must not take it
            continue
        assert flagged or us == expected, text


@pytest.mark.parametrize("amount, exact", [
    (b"0", "0"), (b"19.99", "19.99"), (b"5", "5"), (b"0.000000001", "0.000000001"),
    (b"999999999999999.999999999", "999999999999999.999999999"), (b"123456789.123456789", "123456789.123456789"),
])
def test_amounts_are_exact_on_both_paths(amount, exact, monkeypatch):
    line = (b'{"event_id":"e","event_type":"purchase","user_id":"u","event_timestamp":"2026-06-15T10:00:00Z",'
            b'"amount":' + amount + b',"currency":"EUR"}')
    origin = FileOrigin("/in.jsonl", "ndjson")
    for fast in (True, False):
        rows, dead, _ = run_steps(RecordBatch(origin, "b-1", [1], [line], NOW_US), fast, monkeypatch)
        assert not dead and rows[0]["amount"] == validation.decimal.Decimal(exact)


def test_message_batches_take_the_fast_path_with_the_same_dead_letters(monkeypatch):
    payloads = [ndjson_bytes({"event_id": f"e-{i}", "event_type": "page_view", "anonymous_id": "a",
                              "event_timestamp": "2026-06-15T10:00:00.5+02:00", "utm": i}) for i in range(50)]
    payloads[7] = payloads[7][:-1] + b',"event_id":"again"}'
    origin = SubscriptionOrigin("projects/strata-local/subscriptions/critical")
    messages = [Message(f"m-{i:03d}", NOW_US, {}) for i in range(50)]
    batch = RecordBatch(origin, "pull-1", messages, payloads, NOW_US)
    fast_rows, fast_dead, slow_seen = run_steps(batch, True, monkeypatch)
    slow_rows, slow_dead, _ = run_steps(batch, False, monkeypatch)
    assert fast_rows == slow_rows and fast_dead == slow_dead
    assert [d["error_type"] for d in fast_dead] == ["duplicate_key"] and slow_seen == 1
    assert orjson.loads(fast_rows[0]["extra"]) == {"utm": 0} and fast_rows[0]["message_id"] == "m-000"


def test_the_compiled_struct_follows_the_contract():
    assert fastpath.EventStruct.__struct_fields__ == tuple(f.name for f in c.CONTRACT_FIELDS)
    assert fastpath.contract_schema().names == [f.name for f in c.CONTRACT_FIELDS] + ["extra"]


def _mutations(rng: random.Random, obj: dict) -> bytes:
    """One valid event, changed in one of the ways producers (and attackers) change them."""
    obj = dict(obj)
    key = rng.choice(list(obj))
    kind = rng.randrange(16)
    if kind == 0:
        obj[key] = rng.choice([None, "", " ", "\u3000", "a\x00", 0, -1, 1.5, True, [], {}, "x" * 129, 2**63 - 1])
    elif kind == 1:
        obj["extra_" + rng.choice("abc")] = rng.choice([1, "x, y", {"k": [1, {"k": 2}]}, None, "é"])
    elif kind == 2:
        obj["amount"] = rng.choice([0, 1, 19.99, 1e15, 1e14 + 0.5, 12.3456789012, -0.0, 10**16, 3])
        obj["currency"] = rng.choice(["USD", "usd", "", None, "EURO"])
    elif kind == 3:
        obj["event_timestamp"] = rng.choice([
            "2026-06-15T10:00:00Z", "2026-06-15t10:00:00z", "2026-06-15 10:00:00+00:00", "2026-02-30T10:00:00Z",
            "2026-06-15T10:00:00.1234567Z", "2026-06-15T10:00Z", "2026-06-15T10:00:00,5Z", 1781517600000,
            1781517600000.0, "1999-12-31T23:59:59Z", "2026-06-15T24:00:00Z", "2026-06-15T10:00:00-23:59"])
    elif kind == 4:
        obj["properties"] = rng.choice([{"a": 1}, [], "x", None, {"a": {"b": {"c": {}}}}, {"q": "a, b", "r": ","}])
    text = orjson.dumps(obj)
    if kind == 5:  # a key twice, at the top or inside an object
        text = text[:-1] + b',"' + key.encode() + b'":' + orjson.dumps(obj[key]) + b"}"
    elif kind == 6:
        text = text.replace(b'{"page":', b'{"page":1,"page":', 1)
    elif kind == 7:  # the same key spelt with an escape
        text = text.replace(b'"user_id"', b'"user_\\u0069d"', 1)
    elif kind == 8:  # whitespace where JSON allows it
        text = text.replace(b",", b" ,\t", 2).replace(b":", b" : ", 3)
    elif kind == 9:  # an escaped character in a string value
        text = text.replace(b'"page_view"', b'"page\\u005fview"', 1).replace(b'sess_', b'sess\\/', 1)
    elif kind == 10:  # invalid UTF-8 somewhere
        cut = rng.randrange(1, len(text) - 1)
        text = text[:cut] + b"\xff" + text[cut:]
    elif kind == 11:  # a comma inside a value
        text = text.replace(b'"web"', b'"w,eb"', 1).replace(b'"/', b'"/,', 1)
    elif kind == 12:
        text = text[: rng.randrange(1, len(text))]
    elif kind == 13:
        text = text.replace(b"{", b"[", 1)
    elif kind == 14:  # an escaped comma or quote in a value
        text = text.replace(b'sess_', b'sess\\u002c', 1).replace(b'anon_', b'anon\\"', 1)
    elif kind == 15:  # integers beyond INT64
        text = text[:-1] + b',"schema_version":' + rng.choice([b"9223372036854775808", b"18446744073709551615"]) + b"}"
    return text


def test_mutated_records_get_the_same_verdicts_either_way(tmp_path, monkeypatch):
    start = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=3)).isoformat()
    assert cli.main(["generate", "--out", str(tmp_path), "--users", "200", "--days", "2", "--seed", "9",
                     "--start-date", start, "--bad-rate", "0", "--files", "1"]) == 0
    good = [orjson.loads(line) for line in (tmp_path / "events-00000.ndjson").read_bytes().split(b"\n")
            if line.strip()]
    rng = random.Random(11)
    records = [_mutations(rng, rng.choice(good)) for _ in range(4000)]
    origin = FileOrigin("/fuzz.jsonl", "ndjson")
    batch = RecordBatch(origin, f"{origin.key}-0000000", list(range(1, len(records) + 1)), records, NOW_US)
    fast_rows, fast_dead, _ = run_steps(batch, True, monkeypatch)
    slow_rows, slow_dead, _ = run_steps(batch, False, monkeypatch)
    assert len(fast_rows) + len(fast_dead) == len(records)
    assert 500 < len(fast_dead) < len(records) - 500  # both verdicts well represented
    assert fast_rows == slow_rows
    assert fast_dead == slow_dead


ADD_A_FIELD = r'''
import json, pathlib, sys
from strata_core import contract as c

# Declare one more field in the contract, as its maintainer would, and nowhere else.
source = pathlib.Path(c.__file__).read_text()
marker = "    # ---- added by the pipeline"
field = '    Field("campaign_id", "string", "Marketing campaign id.", max_length=12, identifier=True),\n'
assert marker in source
exec(compile(source.replace(marker, field + marker, 1), c.__file__, "exec"), c.__dict__)

from strata import cli, docs, warehouse  # everything else derives from the contract when imported
status = cli.main(["ingest", "batch", "--input", sys.argv[1], "--json"])
_, rows = warehouse.query("select event_id, campaign_id, extra from raw.events order by event_id")
_, dead = warehouse.query("select event_id, error_type from raw.dead_letters order by event_id")
print(json.dumps({"status": status, "rows": rows, "dead": dead, "docs": docs.render()}, default=str))
'''


def test_a_field_added_to_the_contract_flows_to_raw_events_and_the_docs(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    base = {"event_type": "page_view", "user_id": "u", "event_timestamp": "2026-06-15T10:00:00Z"}
    lines = [{"event_id": "e1", "campaign_id": "spring-26", **base},
             {"event_id": "e2", **base},
             {"event_id": "e3", "campaign_id": "x" * 13, **base},
             {"event_id": "e4", "campaign_id": "  ", **base},
             {"event_id": "e5", "campaign_id": 7, **base}]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    env = {**os.environ, "STRATA_HOME": str(tmp_path / "home"), "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", ADD_A_FIELD, str(tmp_path / "in.jsonl")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 0
    assert result["rows"] == [["e1", "spring-26", None], ["e2", None, None]]  # a column, not `extra`
    assert result["dead"] == [["e3", "field_too_long"], ["e4", "invalid_id"], ["e5", "invalid_type"]]
    assert "| `campaign_id` |  | STRING | string | ≤ 12 chars; not only whitespace, no NUL | Marketing campaign id. |" \
        in result["docs"]
