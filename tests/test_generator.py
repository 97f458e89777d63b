"""The synthetic generator: determinism, realism, and intent == validator classification.

The central check: every record the generator wrote is classified by
``beam_pipelines.validation`` exactly as the generator says (``expected_errors.jsonl``), and the
ground truth it computed from intent matches a count done here from the validator's output.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import decimal
import json
import pathlib
import re
import time

import orjson
import pytest

from strata_core import contract as c
from beam_pipelines import validation
from strata.generator import GeneratorConfig, generate
from strata.generator.bad_records import GENERATED_ERROR_TYPES, NOT_GENERATED, UNTYPED_ONLY
from strata.generator.truth import FUNNEL_STEPS

TODAY = dt.datetime.now(dt.timezone.utc).date()
NOW_US = time.time_ns() // 1000
FUNNEL_INDEX = {name: i for i, name in enumerate(FUNNEL_STEPS)}


# ---- reading back what was written, the way the batch reader does ------------------------------

def ndjson_records(path: pathlib.Path):
    """(physical line number, line bytes without ending) for non-blank lines; blank line count."""
    records, blank = [], 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                blank += 1
                continue
            records.append((number, line))
    return records, blank


def typed_check(record: dict):
    """Validate an Avro/Parquet row as the pipeline does (``transforms._from_typed_record``: nulls
    are absent, ``properties``/``context`` JSON text is parsed, and checked for repeated keys)."""
    from beam_pipelines.transforms import _from_typed_record

    _, obj, texts = _from_typed_record(record)
    return validation.validate(obj, NOW_US, texts)


def classify(out: pathlib.Path, fmt: str):
    """Run every written record through the validator.

    Returns (events by (file, line), error_type by (file, line), raw accepted lines, blank lines).
    """
    truth = json.loads((out / "ground_truth.json").read_text())
    accepted, rejected, raw_lines, blank = {}, {}, {}, 0
    for name in truth["generator"]["files"]:
        path = out / name
        if fmt == "ndjson":
            records, n_blank = ndjson_records(path)
            blank += n_blank
            items = [(n, line, lambda line=line: validation.parse_and_validate(line, NOW_US))
                     for n, line in records]
        elif fmt == "avro":
            import fastavro

            with open(path, "rb") as f:
                rows = list(fastavro.reader(f))
            items = [(n, row, lambda row=row: typed_check(row)) for n, row in enumerate(rows, 1)]
        else:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
            items = [(n, row, lambda row=row: typed_check(row)) for n, row in enumerate(rows, 1)]
        for n, raw, check in items:
            try:
                accepted[(name, n)] = check()
                raw_lines[(name, n)] = raw
            except validation.Rejected as exc:
                rejected[(name, n)] = exc.error_type
    return accepted, rejected, raw_lines, blank


def expected_errors(out: pathlib.Path) -> dict:
    rows = [json.loads(line) for line in (out / "expected_errors.jsonl").read_text().splitlines()]
    return {(r["file"], r["line"]): r for r in rows}


def reference_metrics(events) -> dict:
    """docs/layers.md metric semantics, computed independently from validated events."""
    unique = {}
    for e in events:
        unique.setdefault(e.event_id, e)
    dates = collections.Counter()
    users, paying = collections.defaultdict(set), collections.defaultdict(set)
    gross, refunds = collections.defaultdict(decimal.Decimal), collections.defaultdict(decimal.Decimal)
    orders, signups = collections.Counter(), collections.Counter()
    funnel_events = collections.defaultdict(list)
    for e in unique.values():
        day = validation.event_date(e.event_timestamp).isoformat()
        dates[day] += 1
        if e.user_id is None:
            continue
        users[day].add(e.user_id)
        if e.event_type == "purchase":
            gross[day] += e.amount
            orders[day] += 1
            paying[day].add(e.user_id)
        elif e.event_type == "refund":
            refunds[day] += e.amount
        elif e.event_type == "signup":
            signups[day] += 1
        if e.event_type in FUNNEL_INDEX:
            funnel_events[e.user_id].append((e.event_timestamp, FUNNEL_INDEX[e.event_type]))
    reached = collections.Counter()
    for steps in funnel_events.values():
        k = 0
        for _, step in sorted(steps):  # ties: lower step first, so non-decreasing time suffices
            if step == k:
                k += 1
        for i in range(k):
            reached[FUNNEL_STEPS[i]] += 1
    days = sorted(dates)
    return {
        "accepted_unique_events": len(unique),
        "events_by_date": {d: dates[d] for d in days},
        "dau_by_date": {d: len(users[d]) for d in days},
        "revenue_by_date": {d: gross[d] - refunds[d] for d in days},
        "gross_by_date": {d: gross[d] for d in days},
        "refunds_by_date": {d: refunds[d] for d in days},
        "orders_by_date": {d: orders[d] for d in days},
        "paying_users_by_date": {d: len(paying[d]) for d in days},
        "new_users_by_date": {d: signups[d] for d in days},
        "funnel_users": {s: reached[s] for s in FUNNEL_STEPS},
    }


def check_against_validator(out: pathlib.Path, fmt: str) -> tuple[dict, dict, dict]:
    truth = json.loads((out / "ground_truth.json").read_text())
    accepted, rejected, raw_lines, blank = classify(out, fmt)
    expected = expected_errors(out)
    # record by record: the generator's intent is the validator's verdict
    assert {k: v["error_type"] for k, v in expected.items()} == rejected
    # counts
    assert truth["blank_lines"] == blank
    assert truth["input_records"] == len(accepted) + len(rejected)
    assert truth["accepted"] == len(accepted)
    assert truth["dead_lettered"] == len(rejected)
    assert truth["by_error_type"] == dict(collections.Counter(rejected.values()))
    unique_ids = {e.event_id for e in accepted.values()}
    assert truth["duplicates"] == len(accepted) - len(unique_ids)
    # bad records' ids never collide with good ones
    bad_ids = {r["event_id"] for r in expected.values() if r["event_id"]}
    assert not bad_ids & unique_ids
    # metrics
    ref = reference_metrics(accepted.values())
    for key, value in ref.items():
        got = truth[key]
        if key.endswith(("revenue_by_date", "gross_by_date", "refunds_by_date")):
            got = {d: decimal.Decimal(v) for d, v in got.items()}
        assert got == value, key
    return truth, accepted, raw_lines


# ---- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ndjson_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen-ndjson")
    summary = generate(GeneratorConfig(out=out, users=150, days=6, seed=7, files=2))
    return out, summary


# ---- tests -----------------------------------------------------------------------------------

def test_every_contract_error_type_is_generated_or_explained():
    names = {e.name for e in c.ERROR_TYPES if e.stage in ("decode", "parse", "validate")}
    assert names == set(GENERATED_ERROR_TYPES) | set(NOT_GENERATED)


class _Pick:
    """Stands in for ``random.Random`` to pick variant ``i`` of a recipe."""

    def __init__(self, i: int):
        self.i = i

    def choice(self, seq):
        return seq[self.i]


@pytest.mark.parametrize("error_type", GENERATED_ERROR_TYPES)
def test_every_recipe_variant_gets_its_error_type(error_type):
    from strata.generator import bad_records
    from strata.generator.writers import ndjson_bytes, typed_record

    ts_ms = (NOW_US // 1000) - 3_600_000
    for typed in (False, True):
        if typed and error_type in UNTYPED_ONLY:
            continue
        n = sum(1 for ok, _ in bad_records.RECIPES[error_type][1] if ok or not typed)
        for i in range(n):
            record = bad_records.make(error_type, _Pick(i), "bad_x_1", ts_ms, "user_1", None, typed)
            if typed:  # Avro keeps epoch ms; Parquet gets RFC 3339 text
                checks = [lambda ok=ok: typed_check(typed_record(record, ok)) for ok in (True, False)]
            else:
                raw = ndjson_bytes(record)
                checks = [lambda: validation.parse_and_validate(raw, NOW_US)]
            for check in checks:
                with pytest.raises(validation.Rejected) as caught:
                    check()
                assert caught.value.error_type == error_type, (typed, i, record if len(str(record)) < 500 else "")
            if type(record) is bytes:
                assert b"\n" not in record and b"\r" not in record


def test_ndjson_intent_matches_validator(ndjson_run):
    out, summary = ndjson_run
    truth, _, _ = check_against_validator(out, "ndjson")
    assert set(truth["by_error_type"]) == set(GENERATED_ERROR_TYPES)  # all of them, at default rates
    assert summary["records"] == truth["input_records"]
    assert truth["duplicates"] > 0 and truth["blank_lines"] > 0
    assert truth["funnel_users"]["view_item"] >= truth["funnel_users"]["purchase"] > 0
    assert len(summary["files"]) == 2


def test_ndjson_realism(ndjson_run):
    out, _ = ndjson_run
    truth, accepted, raw_lines = check_against_validator(out, "ndjson")
    objs = [orjson.loads(raw_lines[k]) for k in accepted]
    stamps = [o["event_timestamp"] for o in objs]
    assert any(type(s) is int for s in stamps), "epoch milliseconds"
    assert any(type(s) is str and s.endswith("Z") and "." in s for s in stamps), "fractional seconds"
    offsets = [s for s in stamps if type(s) is str and re.search(r"[+-]\d\d:\d\d$", s) and not s.endswith("+00:00")]
    assert offsets
    crossing = [s for s in offsets
                if dt.datetime.fromisoformat(s).date() != dt.datetime.fromisoformat(s).astimezone(dt.timezone.utc).date()]
    assert crossing, "local date != UTC date"
    events = list(accepted.values())
    assert {e.event_type for e in events} == {t.name for t in c.EVENT_TYPES}
    assert {e.platform for e in events} == {"web", "ios", "android", "server"}
    assert {e.currency for e in events if e.currency} == {"USD", "EUR", "GBP"}
    assert any(e.user_id is None and e.anonymous_id for e in events), "anonymous-only events"
    assert any(e.extra for e in events), "unknown top-level fields"
    assert any(e.session_id for e in events)
    assert any(not p.isascii() for e in events for p in [e.properties.decode()] if e.properties)
    for o in objs:  # properties named by the contract are present
        assert set(c.EVENT_TYPES_BY_NAME[o["event_type"]].properties) <= set(o["properties"])
    # amounts have at most 2 decimals; refunds refer to an earlier purchase and are not larger
    purchases = {json.loads(e.properties)["order_id"]: e for e in events if e.event_type == "purchase"}
    refunds = [e for e in events if e.event_type == "refund"]
    assert refunds
    for r in refunds:
        p = purchases[json.loads(r.properties)["order_id"]]
        assert r.amount <= p.amount and r.event_timestamp > p.event_timestamp and r.currency == p.currency
    assert all(e.amount.as_tuple().exponent >= -2 for e in events if e.amount is not None)
    # CRLF endings exist; duplicates are byte-identical copies
    data = b"".join((out / n).read_bytes() for n in truth["generator"]["files"])
    assert b"\r\n" in data
    by_id = collections.defaultdict(set)
    for k, e in accepted.items():
        by_id[e.event_id].add(raw_lines[k])
    assert all(len(v) == 1 for v in by_id.values())
    # all good timestamps inside the generated range
    start = dt.date.fromisoformat(truth["generator"]["start_date"])
    end = start + dt.timedelta(days=truth["generator"]["days"])
    assert all(start <= validation.event_date(e.event_timestamp) < end for e in events)


def test_users_file(ndjson_run):
    out, _ = ndjson_run
    rows = [json.loads(line) for line in (out / "users.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        assert set(row) == {"user_id", "created_at", "country", "plan", "traits"}
        assert re.fullmatch(r"[A-Z]{2}", row["country"]) and row["created_at"].endswith("Z")
        if hasattr(validation, "validate_user"):
            validation.validate_user(row, NOW_US)


def test_deterministic_with_seed(tmp_path):
    def run(name, seed):
        out = tmp_path / name
        generate(GeneratorConfig(out=out, users=40, days=3, seed=seed, bad_rate=0.05,
                                 start_date=TODAY - dt.timedelta(days=4)))
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    first, again, other = run("a", 11), run("b", 11), run("c", 12)
    assert first == again
    assert first["events-00000.ndjson"] != other["events-00000.ndjson"]


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_typed_formats(tmp_path, fmt):
    out = tmp_path / fmt
    summary = generate(GeneratorConfig(out=out, users=60, days=3, seed=3, format=fmt, bad_rate=0.06))
    truth, accepted, raw = check_against_validator(out, fmt)
    assert set(truth["by_error_type"]) == set(GENERATED_ERROR_TYPES) - UNTYPED_ONLY
    assert truth["blank_lines"] == 0 and truth["duplicates"] > 0
    assert summary["files"] == [f"events-00000.{fmt}"]
    stamps = [r["event_timestamp"] for r in raw.values()]
    if fmt == "avro":
        assert any(type(s) is int for s in stamps)  # the ["null", "string", "long"] union
    else:
        assert all(type(s) is str for s in stamps)


def test_events_option_targets_total(tmp_path):
    summary = generate(GeneratorConfig(out=tmp_path, users=200, days=4, seed=5, events=15_000,
                                       start_date=TODAY - dt.timedelta(days=4)))
    assert 13_500 <= summary["records"] <= 16_500


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="--start-date"):
        generate(GeneratorConfig(out=tmp_path, days=3, start_date=TODAY + dt.timedelta(days=1)))
    with pytest.raises(ValueError, match="--start-date"):
        generate(GeneratorConfig(out=tmp_path, days=3, start_date=dt.date(1999, 12, 1)))
    with pytest.raises(ValueError, match="--bad-rate"):
        generate(GeneratorConfig(out=tmp_path, bad_rate=2))


def test_cli(tmp_path, capsys):
    from strata.commands import generate as command

    parser = argparse.ArgumentParser(prog="strata")
    command.register(parser.add_subparsers(dest="command"))

    def main(*argv):
        args = parser.parse_args(["generate", *argv])
        return args.func(args)

    out = tmp_path / "cli"
    assert main("--users", "20", "--days", "2", "--out", str(out), "--seed", "1", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"files", "records", "bad", "duplicates", "seconds"} <= set(summary)
    assert (out / "ground_truth.json").exists() and (out / "users.jsonl").exists()
    # an earlier run is not silently mixed with a new one
    assert main("--users", "20", "--days", "2", "--out", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main("--users", "20", "--days", "2", "--out", str(out), "--overwrite", "--files", "3") == 0
    assert sorted(p.name for p in out.glob("events-*")) == [f"events-0000{i}.ndjson" for i in range(3)]
    assert main("--days", "2", "--out", str(tmp_path / "x"), "--start-date", "2999-01-01") == 2
