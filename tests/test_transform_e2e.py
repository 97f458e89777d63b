"""Generator (with its ground truth) -> `strata ingest batch` -> `strata transform`: the marts
equal the generator's independently computed truth exactly (DAU, revenue, gross, refunds,
orders, paying users and new users per date; the default funnel over the whole range)."""

from __future__ import annotations

import collections
import decimal
import json

import duckdb
import pytest

from strata import cli
from strata_core import paths

pytestmark = pytest.mark.slow
START = "2026-11-01"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRATA_HOME", str(root / "home"))
        gen = root / "gen"
        assert cli.main(["generate", "--out", str(gen), "--users", "200", "--days", "4", "--seed", "5",
                         "--start-date", START, "--files", "2", "--json"]) == 0
        assert cli.main(["ingest", "batch", "--input", str(gen / "events-*"),
                         "--users-input", str(gen / "users.jsonl"), "--json"]) == 0
        assert cli.main(["transform", "--json"]) == 0
        con = duckdb.connect(str(paths.warehouse_path()), read_only=True)
        try:
            metrics = {str(r[0]): r[1:] for r in con.execute(
                "select date, dau, revenue, gross_revenue, refunds, orders, paying_users, new_users "
                "from mart.business_metrics").fetchall()}
            funnel_events = con.execute(
                "select user_id, event_type, event_timestamp from mart.funnel_events "
                "where event_type in ('view_item', 'add_to_cart', 'begin_checkout', 'purchase')").fetchall()
        finally:
            con.close()
        yield json.loads((gen / "ground_truth.json").read_text()), metrics, funnel_events


def test_daily_business_metrics_equal_ground_truth(built):
    truth, metrics, _ = built
    assert truth["dau_by_date"], "the generator wrote no dates"
    for date in truth["dau_by_date"]:
        dau, revenue, gross, refunds, orders, paying, new_users = metrics[date]
        assert dau == truth["dau_by_date"][date], date
        assert revenue == decimal.Decimal(truth["revenue_by_date"][date]), date
        assert gross == decimal.Decimal(truth["gross_by_date"][date]), date
        assert refunds == decimal.Decimal(truth["refunds_by_date"][date]), date
        assert orders == truth["orders_by_date"][date], date
        assert paying == truth["paying_users_by_date"][date], date
        assert new_users == truth["new_users_by_date"][date], date
    # other rows are signup dates from the user master file, before the event range: no activity
    for date in set(metrics) - set(truth["dau_by_date"]):
        assert date < START and metrics[date][0] == 0 and metrics[date][4] == 0, date


def test_funnel_over_the_range_equals_ground_truth(built):
    truth, _, funnel_events = built
    steps = truth["funnel_steps"]
    by_user = collections.defaultdict(list)
    for user, kind, ts in funnel_events:
        by_user[user].append((ts, kind))
    reached = collections.Counter()
    for events in by_user.values():
        t, k = None, 0
        for step in steps:
            later = [ts for ts, kind in events if kind == step and (t is None or ts >= t)]
            if not later:
                break
            t, k = min(later), k + 1
        for i in range(k):
            reached[steps[i]] += 1
    assert {s: reached[s] for s in steps} == truth["funnel_users"]
