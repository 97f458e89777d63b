"""Every read the API makes, as SQLAlchemy Core statements plus the shaping of their rows.

Inputs reach SQL only as bound parameters, or as identifiers that matched a vetted catalogue
(feature names, metric expressions). Functions take a :class:`engine.Snapshot` and return plain
Python values (dicts, lists, ``Decimal``, ``date``) that are safe to cache and serialise.
Metric semantics are those of ``docs/layers.md``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json

import sqlalchemy as sa

from strata_core import contract

from . import money
from . import tables as t
from .engine import QueryStats, Snapshot
from .functions import earliest_at_or_after


def _money(value) -> decimal.Decimal:
    return money.ZERO if value is None else money.exact(value)


def _days(start: dt.date, end: dt.date):
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)


def _utc(value):
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _json(value):
    if value is None or isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


# ---- business metrics ------------------------------------------------------------------------

def daily_active_users(snap: Snapshot, stats: QueryStats, day: dt.date) -> dict:
    bm = t.business_metrics
    rows = snap.rows(sa.select(bm.c.dau).where(bm.c.date == sa.bindparam("day")), {"day": day}, stats)
    return {"date": day, "active_users": int(rows[0].dau or 0) if rows else 0}


def revenue_metrics(snap: Snapshot, stats: QueryStats, start: dt.date, end: dt.date) -> dict:
    """Totals over the inclusive range, and one row per day (days without events are zero).

    Paying users are distinct over the whole range, so they come from ``curated.user_metrics``
    rather than a sum of daily counts.
    """
    bm, um = t.business_metrics, t.user_metrics
    daily_rows = snap.rows(
        sa.select(bm.c.date, bm.c.revenue, bm.c.gross_revenue, bm.c.refunds, bm.c.orders)
        .where(bm.c.date.between(sa.bindparam("start"), sa.bindparam("end"))).order_by(bm.c.date),
        {"start": start, "end": end}, stats)
    paying = snap.rows(
        sa.select(sa.func.count(sa.distinct(um.c.user_id)).label("n"))
        .where(um.c.date.between(sa.bindparam("start"), sa.bindparam("end")), um.c.count_orders > 0),
        {"start": start, "end": end}, stats)
    by_day = {r.date: r for r in daily_rows}
    gross = money.add(r.gross_revenue for r in daily_rows)
    refunds = money.add(r.refunds for r in daily_rows)
    orders = sum(int(r.orders or 0) for r in daily_rows)
    return {
        # Net revenue is the dbt models' (mart.business_metrics.revenue, per day): summed, not recomputed.
        "total_revenue": money.add(r.revenue for r in daily_rows),
        "gross_revenue": gross,
        "refunds": refunds,
        "orders": orders,
        "paying_users": int(paying[0].n or 0),
        # 9 decimals, half away from zero: the rounding of mart.business_metrics.aov.
        "average_order_value": money.divide(gross, orders) if orders else None,
        "daily": [{"date": day,
                   "revenue": _money(by_day[day].revenue) if day in by_day else money.ZERO,
                   "orders": int(by_day[day].orders or 0) if day in by_day else 0}
                  for day in _days(start, end)],
    }


# ---- funnel ----------------------------------------------------------------------------------

def conversion_funnel(snap: Snapshot, stats: QueryStats, start: dt.date, end: dt.date,
                      steps: list[str], strategy: str | None = None) -> dict:
    """Users reaching each step: events of steps 1..k at non-decreasing ``event_timestamp``,
    all with ``event_date`` in range; conversion_k = users_k / users_1.

    Greedy per user: the earliest step-1 event, then the earliest step-k event at or after the
    step-(k-1) time. Taking the earliest at each step never loses a longer sequence, so this is
    exact. It reads ``mart.funnel_events`` (every event of identified users, slim columns)
    because it needs every event time, not a daily first/last.

    Two equivalent plans: ``joins`` (portable, one join per step; BigQuery) and ``lists``
    (DuckDB: one pass collecting each user's times per step, about 25% cheaper).
    """
    strategy = strategy or ("lists" if snap.backend == "duckdb" else "joins")
    params = {"start": start, "end": end, "step_names": list(steps),
              **{f"step_{i}": s for i, s in enumerate(steps)}}
    statement = (_funnel_lists if strategy == "lists" else _funnel_joins)(len(steps))
    row = snap.rows(statement, params, stats)[0]
    users = [int(row[i] or 0) for i in range(len(steps))]
    first = users[0] if users else 0
    return {"steps": [{"name": s, "users": n, "conversion_rate": (n / first) if first else 0.0}
                      for s, n in zip(steps, users)]}


def _funnel_source():
    e = t.funnel_events
    return e, (e.c.event_date.between(sa.bindparam("start"), sa.bindparam("end")),
               e.c.user_id.is_not(None),
               e.c.event_type.in_(sa.bindparam("step_names", expanding=True)))


def _funnel_joins(n_steps: int) -> sa.Select:
    e, where = _funnel_source()
    events = sa.select(e.c.user_id, e.c.event_type, e.c.event_timestamp).where(*where).cte("funnel_events")
    reached = []
    for i in range(n_steps):
        step = sa.bindparam(f"step_{i}")
        q = sa.select(events.c.user_id, sa.func.min(events.c.event_timestamp).label("at"))
        if i:
            prev = reached[-1]
            q = q.select_from(events.join(prev, sa.and_(events.c.user_id == prev.c.user_id,
                                                        events.c.event_timestamp >= prev.c.at)))
        reached.append(q.where(events.c.event_type == step).group_by(events.c.user_id).cte(f"reached_{i}"))
    return sa.select(*[sa.select(sa.func.count()).select_from(r).scalar_subquery().label(f"n_{i}")
                       for i, r in enumerate(reached)])


def _funnel_lists(n_steps: int) -> sa.Select:
    e, where = _funnel_source()
    ts, is_step = e.c.event_timestamp, lambda i: e.c.event_type == sa.bindparam(f"step_{i}")
    per_user = sa.select(
        sa.func.min(ts).filter(is_step(0)).label("t_0"),
        *[sa.func.list(ts).filter(is_step(i)).label(f"l_{i}") for i in range(1, n_steps)],
    ).where(*where).group_by(e.c.user_id).subquery("per_user")
    level = per_user
    for i in range(1, n_steps):
        level = sa.select(level, earliest_at_or_after(per_user.c[f"l_{i}"] if i == 1 else level.c[f"l_{i}"],
                                                      level.c[f"t_{i - 1}"]).label(f"t_{i}")).subquery(f"level_{i}")
    return sa.select(*[sa.func.count(level.c[f"t_{i}"]).label(f"n_{i}") for i in range(n_steps)])


# ---- users -----------------------------------------------------------------------------------

def user_metrics(snap: Snapshot, stats: QueryStats, user_id: str,
                 start: dt.date | None = None, end: dt.date | None = None) -> dict | None:
    """All time from ``mart.user_analytics``; for a range, the user's days of
    ``curated.user_metrics`` (revenue as dbt defines it), with sessions counted distinct over the
    whole range from ``staging.stg_events`` (a sum of daily counts would count a session that
    crosses midnight twice)."""
    if start is None:
        ua = t.user_analytics
        rows = snap.rows(sa.select(ua).where(ua.c.user_id == sa.bindparam("user_id")),
                         {"user_id": user_id}, stats)
        if not rows:
            return None
        r = rows[0]
        return {"user_id": user_id, "event_count": int(r.count_events or 0),
                "session_count": int(r.count_sessions or 0), "total_revenue": _money(r.total_revenue),
                "first_seen_at": _utc(r.first_seen_at), "last_seen_at": _utc(r.last_seen_at),
                "active_days": int(r.active_days or 0)}
    um, e = t.user_metrics, t.stg_events
    in_range = (sa.bindparam("start"), sa.bindparam("end"))
    sessions = (sa.select(sa.func.count(sa.distinct(e.c.strata_session_id)))
                .where(e.c.user_id == sa.bindparam("user_id"), e.c.event_date.between(*in_range)).scalar_subquery())
    r = snap.rows(
        sa.select(sa.func.sum(um.c.count_events).label("events"), sessions.label("sessions"),
                  sa.func.sum(um.c.revenue).label("revenue"),
                  sa.func.min(um.c.first_event_at).label("first"), sa.func.max(um.c.last_event_at).label("last"),
                  sa.func.count().label("days"))
        .where(um.c.user_id == sa.bindparam("user_id"), um.c.date.between(*in_range)),
        {"user_id": user_id, "start": start, "end": end}, stats)[0]
    if not r.days:
        return None
    return {"user_id": user_id, "event_count": int(r.events), "session_count": int(r.sessions or 0),
            "total_revenue": _money(r.revenue), "first_seen_at": _utc(r.first),
            "last_seen_at": _utc(r.last), "active_days": int(r.days)}


def user_events(snap: Snapshot, stats: QueryStats, user_id: str, event_type: str | None,
                limit: int) -> list[dict]:
    """Newest first; ties broken by ``event_id`` so pages are deterministic."""
    e = t.stg_events
    q = sa.select(e.c.event_id, e.c.event_type, e.c.event_timestamp, e.c.amount, e.c.properties) \
        .where(e.c.user_id == sa.bindparam("user_id"))
    params = {"user_id": user_id, "limit": limit}
    if event_type is not None:
        q = q.where(e.c.event_type == sa.bindparam("event_type"))
        params["event_type"] = event_type
    q = q.order_by(e.c.event_timestamp.desc(), e.c.event_id.desc()).limit(sa.bindparam("limit"))
    return [{"event_id": r.event_id, "event_type": r.event_type,
             "event_timestamp": _utc(r.event_timestamp), "amount": r.amount,
             "properties": _json(r.properties)}
            for r in snap.rows(q, params, stats)]


# ---- ML features -----------------------------------------------------------------------------

def feature_columns(snap: Snapshot, table: str) -> list[str]:
    """Feature column names of ``curated.ml_features`` or ``mart.ml_training`` (the catalogue
    that ``features`` arguments are checked against)."""
    memo_key = ("feature_columns", table)
    if memo_key not in snap.memo:
        clause = t.feature_table(table)
        names = snap.columns(sa.select(sa.text("*")).select_from(clause).where(sa.false()))
        keys = set(t.FEATURE_TABLES[table][1]) | t.METADATA_COLUMNS
        snap.memo[memo_key] = [n for n in names if n not in keys and contract.SNAKE_CASE_NAME_RE.fullmatch(n)]
    return snap.memo[memo_key]


def _feature_list(row, names) -> list[dict]:
    out = []
    for name in names:
        value = getattr(row, name)
        if isinstance(value, decimal.Decimal):
            value = money.fixed(value)
        elif isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        out.append({"name": name, "value": value})
    return out


def user_features(snap: Snapshot, stats: QueryStats, user_id: str, as_of: dt.date | None) -> dict | None:
    """The latest feature row with ``as_of_date <= as_of`` (point in time), or the latest."""
    names = feature_columns(snap, "ml_features")
    f = t.feature_table("ml_features", tuple(names))
    q = sa.select(f).where(f.c.user_id == sa.bindparam("user_id"))
    params = {"user_id": user_id}
    if as_of is not None:
        q = q.where(f.c.as_of_date <= sa.bindparam("as_of"))
        params["as_of"] = as_of
    rows = snap.rows(q.order_by(f.c.as_of_date.desc()).limit(1), params, stats)
    if not rows:
        return None
    return {"user_id": user_id, "as_of_date": rows[0].as_of_date, "features": _feature_list(rows[0], names)}


def event_features(snap: Snapshot, stats: QueryStats, event_id: str) -> dict | None:
    """The event, with its user's features as of the day *before* the event (no leakage)."""
    e = t.stg_events
    rows = snap.rows(sa.select(e.c.event_id, e.c.event_type, e.c.user_id, e.c.event_timestamp,
                               e.c.event_date, e.c.platform, e.c.amount)
                     .where(e.c.event_id == sa.bindparam("event_id")).limit(1), {"event_id": event_id}, stats)
    if not rows:
        return None
    ev = rows[0]
    user = None
    if ev.user_id is not None:
        user = user_features(snap, stats, ev.user_id, ev.event_date - dt.timedelta(days=1))
    return {"event_id": ev.event_id, "event_type": ev.event_type, "user_id": ev.user_id,
            "event_timestamp": _utc(ev.event_timestamp), "platform": ev.platform, "amount": ev.amount,
            "user_features_as_of": user["as_of_date"] if user else None,
            "features": user["features"] if user else []}


def encode_cursor(as_of_date: dt.date, user_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([as_of_date.isoformat(), user_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[dt.date, str]:
    """Raises ``ValueError`` for anything that is not a cursor this API issued."""
    try:
        day, user = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return dt.date.fromisoformat(day), str(user)
    except Exception as exc:  # noqa: BLE001 - any malformed cursor is the same user error
        raise ValueError(f"not a cursor issued by this API: {exc}") from None


def training_data(snap: Snapshot, stats: QueryStats, features: list[str], start: dt.date,
                  end: dt.date, first: int, after: tuple[dt.date, str] | None) -> dict:
    """Rows of ``mart.ml_training`` (point-in-time correct by construction) in (as_of_date,
    user_id) order, keyset-paginated. ``features`` must already be vetted."""
    f = t.feature_table("ml_training", tuple(features))
    q = sa.select(f).where(f.c.as_of_date.between(sa.bindparam("start"), sa.bindparam("end")))
    params = {"start": start, "end": end, "limit": first + 1}
    if after is not None:
        q = q.where(sa.or_(f.c.as_of_date > sa.bindparam("after_date"),
                           sa.and_(f.c.as_of_date == sa.bindparam("after_date"),
                                   f.c.user_id > sa.bindparam("after_user"))))
        params.update(after_date=after[0], after_user=after[1])
    q = q.order_by(f.c.as_of_date, f.c.user_id).limit(sa.bindparam("limit"))
    rows = snap.rows(q, params, stats)
    page = rows[:first]
    return {
        "rows": [{"user_id": r.user_id, "as_of_date": r.as_of_date,
                  "label_purchases_next_7d": r.label_purchases_next_7d,
                  "features": _feature_list(r, features), "cursor": encode_cursor(r.as_of_date, r.user_id)}
                 for r in page],
        "page_info": {"has_next_page": len(rows) > first,
                      "end_cursor": encode_cursor(page[-1].as_of_date, page[-1].user_id) if page else None},
    }
