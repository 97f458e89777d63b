"""The dbt layers end to end on the local warehouse: exact metrics, incremental = full refresh,
only touched partitions rebuilt, and readers never disturbed by a build.

One scenario (module fixture) runs three builds, about 25 s in all:

1. batch 1 (ten days of synthetic events, duplicates, anonymous events, signups) -> build;
2. batch 2 (a new day, late events for an old day, a re-sent duplicate) -> incremental build,
   while another process keeps opening the warehouse read-only and querying a mart;
3. a full refresh of the same data.

Expected values are computed here in plain Python from the events we wrote, independently of
the SQL. The generator -> ingest -> transform variant lives in test_transform_e2e.py.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import textwrap
import time

import duckdb
import pyarrow as pa
import pytest

from strata_core import duckdb_config, lake, paths, schemas
from strata import transform, warehouse

UTC = dt.timezone.utc
DAY0 = dt.date(2026, 3, 1)
NANO = decimal.Decimal("0.000000001")
FUNNEL = ("view_item", "add_to_cart", "begin_checkout", "purchase")
EVENT_WEIGHTS = {"page_view": 30, "view_item": 20, "add_to_cart": 10, "begin_checkout": 6,
                 "purchase": 5, "refund": 1, "search": 8, "error": 1}


# ---- synthetic raw data ---------------------------------------------------------------------

def _event(rng, n, user, anon, ts, received_at, batch):
    kind = rng.choices(list(EVENT_WEIGHTS), weights=list(EVENT_WEIGHTS.values()))[0]
    amount = None
    if kind in ("purchase", "refund"):
        amount = decimal.Decimal(rng.randint(1, 500_000_000_000)) * NANO  # up to 500, 9 decimals
    props = {"item_id": f"sku-{rng.randint(1, 50)}"} if kind in ("view_item", "add_to_cart") else {}
    if kind in ("purchase", "refund"):
        props = {"order_id": f"o-{batch}-{n}"}
    return {
        "event_id": f"ev-{batch}-{n}", "event_type": kind, "user_id": user, "anonymous_id": anon,
        "session_id": None, "event_timestamp": ts, "platform": rng.choice(["web", "ios", "android"]),
        "amount": amount, "currency": "EUR" if amount is not None else None,
        "properties": json.dumps(props), "context": "{}", "schema_version": 1,
        "event_date": ts.astimezone(UTC).date(), "received_at": received_at, "ingest_source": "batch",
        "source_file": f"batch{batch}.ndjson", "source_line": n, "message_id": None,
        "row_key": f"rk-{batch}-{n}", "pipeline_version": "test", "extra": None,
    }


def make_batch(seed: int, days: list[dt.date], users: int, received_at: dt.datetime, batch: int) -> list[dict]:
    """Bursty per-user activity: gaps of 1-45 min (so some cross the 30-min session rule), some
    bursts running over midnight, ~10% anonymous events and ~4% re-sent duplicates."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for day in days:
        for u in range(users):
            if rng.random() < 0.35:
                continue
            user = f"user-{u:03d}"
            ts = dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(
                seconds=rng.choice([rng.randint(0, 86_399), 86_400 - rng.randint(60, 1_800)]),
                microseconds=rng.randint(0, 999_999))
            for _ in range(rng.randint(1, 12)):
                anonymous = rng.random() < 0.1
                rows.append(_event(rng, len(rows), None if anonymous else user,
                                   f"anon-{u:03d}" if anonymous else None, ts, received_at, batch))
                ts += dt.timedelta(seconds=rng.randint(60, 45 * 60), microseconds=rng.randint(0, 999_999))
    for original in rng.sample(rows, k=max(1, len(rows) // 25)):
        copy = dict(original, row_key=original["row_key"] + "-resent",
                    received_at=received_at + dt.timedelta(seconds=5), platform="server")
        rows.append(copy)
    return rows


def make_users(seed: int, users: int, received_at: dt.datetime) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for u in range(users):
        created = dt.datetime.combine(DAY0 + dt.timedelta(days=rng.randint(-5, 9)), dt.time(), UTC) + \
            dt.timedelta(seconds=rng.randint(0, 86_399))
        out.append({"user_id": f"user-{u:03d}", "created_at": created, "country": "DE", "plan": "free",
                    "traits": None, "user_source": "signup_event", "source_file": "users",
                    "source_line": u, "row_key": f"user-{u}", "received_at": received_at,
                    "pipeline_version": "test"})
    return out


def write_events(rows: list[dict], part: str) -> None:
    by_date = collections.defaultdict(list)
    for r in rows:
        by_date[r["event_date"]].append(r)
    for day, day_rows in by_date.items():
        lake.write_part("events", part, pa.Table.from_pylist(day_rows, schema=schemas.arrow_schema("events")),
                             partition=f"event_date={day.isoformat()}")


def write_users(rows: list[dict], part: str) -> None:
    lake.write_part("users", part, pa.Table.from_pylist(rows, schema=schemas.arrow_schema("users")))


# ---- the independent computation ------------------------------------------------------------

def dedupe(rows: list[dict]) -> list[dict]:
    first: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (r["received_at"], r["row_key"])):
        first.setdefault(r["event_id"], r)
    return list(first.values())


def session_starts(events: list[dict]) -> list[dt.date]:
    by_identity = collections.defaultdict(list)
    for e in events:
        by_identity[e["user_id"] or "anonymous:" + e["anonymous_id"]].append(e)
    starts = []
    for evs in by_identity.values():
        evs.sort(key=lambda e: (e["event_timestamp"], e["event_id"]))
        previous = None
        for e in evs:
            if previous is None or (e["event_timestamp"] - previous) >= dt.timedelta(minutes=30):
                starts.append(e["event_date"])
            previous = e["event_timestamp"]
    return starts


def funnel_users(events: list[dict], steps=FUNNEL) -> list[int]:
    """Users reaching each step: steps 1..k at non-decreasing timestamps (greedy earliest)."""
    by_user = collections.defaultdict(lambda: collections.defaultdict(list))
    for e in events:
        if e["user_id"] is not None:
            by_user[e["user_id"]][e["event_type"]].append(e["event_timestamp"])
    counts = [0] * len(steps)
    for kinds in by_user.values():
        t = None
        for k, step in enumerate(steps):
            candidates = [ts for ts in kinds.get(step, []) if t is None or ts >= t]
            if not candidates:
                break
            t = min(candidates)
            counts[k] += 1
    return counts


def expected_business_metrics(raw_rows: list[dict], user_rows: list[dict]) -> dict[dt.date, dict]:
    events = dedupe(raw_rows)
    days = collections.defaultdict(lambda: {"users": set(), "payers": set(), "gross": decimal.Decimal(0),
                                            "refunds": decimal.Decimal(0), "orders": 0})
    for e in events:
        d = days[e["event_date"]]
        if e["user_id"] is not None:
            d["users"].add(e["user_id"])
        if e["event_type"] == "purchase":
            d["gross"] += e["amount"]
            d["orders"] += 1
            if e["user_id"] is not None:
                d["payers"].add(e["user_id"])
        elif e["event_type"] == "refund":
            d["refunds"] += e["amount"]
    signups = collections.Counter()
    first_created: dict[str, dt.datetime] = {}
    for u in user_rows:
        first_created[u["user_id"]] = min(first_created.get(u["user_id"], u["created_at"]), u["created_at"])
    for created in first_created.values():
        signups[created.date()] += 1
    sessions = collections.Counter(session_starts(events))
    out = {}
    for date in set(days) | set(signups):
        d = days[date]
        aov = None
        if d["orders"]:
            aov = (d["gross"] / d["orders"]).quantize(NANO, rounding=decimal.ROUND_HALF_UP)
        out[date] = {"dau": len(d["users"]), "revenue": d["gross"] - d["refunds"], "gross_revenue": d["gross"],
                     "refunds": d["refunds"], "orders": d["orders"], "paying_users": len(d["payers"]),
                     "aov": aov, "new_users": signups[date], "sessions": sessions[date]}
    return out


# ---- reading the warehouse ------------------------------------------------------------------

def open_reader() -> duckdb.DuckDBPyConnection:
    """A reader's connection, configured as Strata's readers are (one process may not open a
    file with two configurations)."""
    return duckdb.connect(str(paths.warehouse_path()), read_only=True, config=duckdb_config.read_only_config())


def read_rows(sql: str) -> list[tuple]:
    con = open_reader()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def business_metrics() -> dict[dt.date, dict]:
    cols = ["dau", "revenue", "gross_revenue", "refunds", "orders", "paying_users", "aov", "new_users", "sessions"]
    return {r[0]: dict(zip(cols, r[1:])) for r in read_rows(
        f"select date, {', '.join(cols)} from mart.business_metrics")}


SNAPSHOT_TABLES = ("staging.base_raw__events", "staging.stg_events", "staging.stg_sessions", "staging.stg_users",
                   "curated.user_metrics", "curated.event_metrics", "curated.ml_features",
                   "mart.business_metrics", "mart.user_analytics", "mart.funnel_events",
                   "mart.funnel_daily", "mart.ml_training")


def snapshot() -> dict[str, list[tuple]]:
    """Every model's rows minus the build bookkeeping (when loaded, the raw high-water mark)."""
    def bookkeeping(table):
        return "loaded_at, received_high_water_at" if table.endswith("base_raw__events") else "loaded_at"
    return {t: sorted(read_rows(f"select * exclude ({bookkeeping(t)}) from {t}"), key=repr) for t in SNAPSHOT_TABLES}


def loaded_at_by_date(table: str, column: str) -> dict[dt.date, set]:
    out = collections.defaultdict(set)
    for day, loaded in read_rows(f"select {column}, loaded_at from {table}"):
        out[day].add(loaded)
    return out


READER = textwrap.dedent("""
    import json, sys, time, duckdb, pathlib
    db, stop = sys.argv[1], pathlib.Path(sys.argv[2])
    while not stop.exists():
        try:
            con = duckdb.connect(db, read_only=True)
            try:
                row = con.execute("select count(*), sum(dau), sum(revenue) from mart.business_metrics").fetchone()
            finally:
                con.close()
            print(json.dumps({"rows": row[0], "dau": int(row[1]), "revenue": str(row[2])}), flush=True)
        except Exception as exc:
            print(json.dumps({"error": repr(exc)}), flush=True)
        time.sleep(0.01)
""")


# ---- the scenario ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    home = tmp_path_factory.mktemp("transform") / "strata-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRATA_HOME", str(home))
        paths.use_offline_env()
        warehouse.init()
        t1 = dt.datetime(2026, 3, 11, 6, 0, tzinfo=UTC)
        days1 = [DAY0 + dt.timedelta(days=i) for i in range(10)]  # 03-01 .. 03-10
        batch1 = make_batch(1, days1, users=30, received_at=t1, batch=1)
        users = make_users(7, 30, t1)
        write_events(batch1, "batch1")
        write_users(users, "users1")
        first = transform.run_transform()
        state = {"first": first, "metrics_1": business_metrics(), "batch1": batch1, "users": users}
        state["loaded_1"] = {t: loaded_at_by_date(t, c) for t, c in
                             (("staging.base_raw__events", "event_date"), ("mart.business_metrics", "date"),
                              ("curated.user_metrics", "date"))}

        # batch 2: a new day (03-11) and late events for 03-03, plus a re-sent copy of an old event
        t2 = t1 + dt.timedelta(days=1)
        late_day, new_day = DAY0 + dt.timedelta(days=2), DAY0 + dt.timedelta(days=10)
        batch2 = make_batch(2, [late_day, new_day], users=30, received_at=t2, batch=2)
        old = next(e for e in batch1 if e["event_date"] == DAY0 + dt.timedelta(days=7))
        batch2.append(dict(old, row_key="rk-resent-late", received_at=t2, platform="server"))
        state.update(batch2=batch2, late_day=late_day, new_day=new_day, resent_date=old["event_date"])

        # a long-lived reader holding the old file, and another process polling during the build
        held = open_reader()
        stop = home / "stop-reader"
        reader = subprocess.Popen([sys.executable, "-c", READER, str(paths.warehouse_path()), str(stop)],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)  # let the reader start and see the old data
        write_events(batch2, "batch2")
        incremental = transform.run_transform()
        time.sleep(1.0)  # and see the new data
        stop.touch()
        out, _ = reader.communicate(timeout=60)
        state["held_after_swap"] = held.execute("select sum(dau) from mart.business_metrics").fetchone()[0]
        held.close()
        state["reader_lines"] = [json.loads(line) for line in out.splitlines() if line.strip()]
        state.update(incremental=incremental, metrics_2=business_metrics(), snapshot_incremental=snapshot())
        state["loaded_2"] = {t: loaded_at_by_date(t, c) for t, c in
                             (("staging.base_raw__events", "event_date"), ("mart.business_metrics", "date"),
                              ("curated.user_metrics", "date"))}
        state["funnel_events"] = read_rows("select user_id, event_type, event_date, event_timestamp, event_id "
                                           "from mart.funnel_events")
        state["funnel_daily"] = read_rows("select event_date, step_number, count_users from mart.funnel_daily")

        # A full refresh of the same raw rows reproduces every table: nothing is published.
        state["full"] = transform.run_transform(full_refresh=True)
        # The same lake in a new home (homes can be copied): a first build, from scratch.
        fresh = home.parent / "fresh-home"
        shutil.copytree(home / "lake", fresh / "lake")
        mp.setenv("STRATA_HOME", str(fresh))
        warehouse.init()
        state["fresh"] = transform.run_transform()
        state["snapshot_fresh"] = snapshot()
        mp.setenv("STRATA_HOME", str(home))
        yield state


def _assert_metrics_equal(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for date in sorted(expected):
        assert actual[date] == expected[date], f"business_metrics differ on {date}"


@pytest.mark.slow
def test_builds_pass_with_all_tests(scenario):
    for key in ("first", "incremental", "full", "fresh"):
        s = scenario[key]
        assert s["ok"], transform.format_summary(s)
        assert s["models"]["errors"] == 0 and s["models"]["built"] == 15  # 12 layer + 3 monitoring models
        assert s["tests"]["failed"] == 0 and s["tests"]["errors"] == 0 and s["tests"]["passed"] > 40
        assert s["unit_tests"]["failed"] == 0 and s["unit_tests"]["passed"] >= 6
        assert s["rows"]["mart.business_metrics"] > 0
    first, incremental, full = (scenario[k] for k in ("first", "incremental", "full"))
    assert first["changed"] and incremental["changed"]
    assert first["data_version"] != incremental["data_version"]
    # The full refresh rebuilt every table into the same rows: it published no new version.
    assert full["changed"] is False and full["data_version"] == incremental["data_version"]
    assert "nothing changed" in transform.format_summary(full)
    assert transform.version_store("duckdb").read() == incremental["data_version"]
    assert not transform.build_path().exists()


@pytest.mark.slow
def test_business_metrics_equal_independent_computation(scenario):
    _assert_metrics_equal(scenario["metrics_1"], expected_business_metrics(scenario["batch1"], scenario["users"]))
    _assert_metrics_equal(scenario["metrics_2"], expected_business_metrics(
        scenario["batch1"] + scenario["batch2"], scenario["users"]))


@pytest.mark.slow
def test_money_is_exact_decimal(scenario):
    types = dict(read_rows("select column_name, data_type from information_schema.columns "
                           "where table_schema = 'mart' and table_name = 'business_metrics'"))
    for col in ("revenue", "gross_revenue", "refunds", "aov"):
        assert types[col] == "DECIMAL(38,9)", (col, types[col])
    assert all(isinstance(m["revenue"], decimal.Decimal) for m in scenario["metrics_2"].values())


@pytest.mark.slow
def test_funnel_matches_independent_computation(scenario):
    events = dedupe(scenario["batch1"] + scenario["batch2"])
    # every single-date default funnel
    expected = {}
    for date in {e["event_date"] for e in events}:
        counts = funnel_users([e for e in events if e["event_date"] == date])
        for k, n in enumerate(counts, start=1):
            if n:
                expected[(date, k)] = n
    assert {(d, k): n for d, k, n in scenario["funnel_daily"]} == expected
    # a multi-day range evaluated over mart.funnel_events equals the same over raw events
    lo, hi = DAY0 + dt.timedelta(days=1), DAY0 + dt.timedelta(days=6)
    mart_events = [{"user_id": u, "event_type": t, "event_date": d, "event_timestamp": ts, "event_id": i}
                   for u, t, d, ts, i in scenario["funnel_events"] if lo <= d <= hi]
    raw_events = [e for e in events if lo <= e["event_date"] <= hi]
    assert funnel_users(mart_events) == funnel_users(raw_events)
    counts = funnel_users(raw_events)
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1] > 0


@pytest.mark.slow
def test_incremental_equals_full_refresh(scenario):
    inc, full = scenario["snapshot_incremental"], scenario["snapshot_fresh"]
    for table in SNAPSHOT_TABLES:
        assert len(inc[table]) == len(full[table]), table
        assert inc[table] == full[table], f"{table}: incremental result differs from a build from scratch"


@pytest.mark.slow
def test_incremental_rebuilds_only_touched_partitions(scenario):
    before, after = scenario["loaded_1"], scenario["loaded_2"]
    late, new, resent = scenario["late_day"], scenario["new_day"], scenario["resent_date"]
    arrived = {e["event_date"] for e in scenario["batch2"]}
    run_2 = {v for vs in after["staging.base_raw__events"].values() for v in vs} - \
        {v for vs in before["staging.base_raw__events"].values() for v in vs}
    assert len(run_2) == 1, run_2

    def rebuilt(table):
        return {d for d, loaded in after[table].items() if loaded & run_2}

    # base: exactly the dates raw rows arrived for (the re-sent duplicate's date included)
    assert resent in arrived and late in arrived and new in arrived
    assert rebuilt("staging.base_raw__events") == arrived
    # stg_events adds +-1 day for sessions crossing midnight; the metrics follow it
    around = {d + dt.timedelta(days=i) for d in arrived for i in (-1, 0, 1)}
    assert rebuilt("curated.user_metrics") <= around
    assert rebuilt("mart.business_metrics") <= around
    untouched = set(before["mart.business_metrics"]) - around
    assert untouched, "the scenario must leave some dates alone"
    for day in untouched:
        assert after["mart.business_metrics"][day] == before["mart.business_metrics"][day], day


@pytest.mark.slow
def test_readers_see_old_or_new_data_never_an_error(scenario):
    lines = scenario["reader_lines"]
    assert lines, "the reader process printed nothing"
    errors = [line for line in lines if "error" in line]
    assert not errors, errors[:3]
    old = sum(m["dau"] for m in scenario["metrics_1"].values())
    new = sum(m["dau"] for m in scenario["metrics_2"].values())
    seen = [line["dau"] for line in lines]
    assert set(seen) <= {old, new}
    assert seen[0] == old and seen[-1] == new
    # once the new file is visible a reader never goes back to the old one
    assert seen == sorted(seen, key=lambda v: v == new)
    # a connection opened before the swap keeps reading its (old) snapshot
    assert scenario["held_after_swap"] == old


def test_failed_build_leaves_published_warehouse_alone(strata_home, monkeypatch):
    """A build dbt reports as failed publishes nothing: same file, same data_version, no leftovers."""
    warehouse.init()
    write_events(make_batch(1, [DAY0], users=3, received_at=dt.datetime(2026, 3, 2, tzinfo=UTC), batch=1), "b1")
    (strata_home / "data_version").write_text("v-before\n")
    live = paths.warehouse_path()
    inode = live.stat().st_ino

    class Failed:
        success = False
        exception = RuntimeError("model broke")
        result = None

    def fake_dbt(args, warehouse_file=None, callbacks=()):
        assert warehouse_file == transform.build_path() and warehouse_file.exists()
        duckdb.connect(str(warehouse_file)).execute("create table mart.half_built as select 1 as x").close()
        return Failed()

    monkeypatch.setattr(transform, "invoke_dbt", fake_dbt)
    summary = transform.run_transform()
    assert not summary["ok"] and summary["data_version"] == "v-before"
    assert "model broke" in transform.format_summary(summary)
    assert live.stat().st_ino == inode and transform.version_store("duckdb").read() == "v-before"
    assert not transform.build_path().exists()
    assert read_rows("select count(*) from information_schema.tables where table_name = 'half_built'") == [(0,)]


def test_unknown_target_is_refused(strata_home):
    with pytest.raises(transform.TransformError, match="expected one of duckdb, bigquery"):
        transform.run_transform(target="snowflake")


def test_cli_passes_options_to_dbt(strata_home, monkeypatch, capsys):
    from strata import cli

    seen = []

    class Failed:
        success, exception, result = False, None, None

    def fake_dbt(args, warehouse_file=None, callbacks=()):
        seen.append(args)
        return Failed()

    warehouse.init()
    write_events(make_batch(1, [DAY0], users=3, received_at=dt.datetime(2026, 3, 2, tzinfo=UTC), batch=1), "b1")
    monkeypatch.setattr(transform, "invoke_dbt", fake_dbt)
    status = cli.main(["transform", "--no-tests", "--full-refresh", "--select", "+business_metrics", "--json"])
    assert status == 1  # dbt reported failure -> non-zero exit, summary still printed
    args = seen[0]
    assert args[0] == "run" and "--full-refresh" in args
    assert args[args.index("--select") + 1] == "+business_metrics"
    assert args[args.index("--target") + 1] == "duckdb"
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is False and summary["target"] == "duckdb"
