"""The API's answers computed independently, in plain Python, from the event list.

Nothing here reads the warehouse: each function restates a rule of ``docs/layers.md`` directly
(sets, loops, brute force), so a bug in the SQL (marts or API) cannot hide in both places.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections import defaultdict

ZERO = decimal.Decimal(0)
SESSION_GAP = dt.timedelta(minutes=30)


def in_range(e, start, end):
    return start <= e["event_date"] <= end


def dau(events, day):
    return len({e["user_id"] for e in events if e["event_date"] == day and e["user_id"] is not None})


def revenue(events, start, end):
    rng = [e for e in events if in_range(e, start, end)]
    gross = sum((e["amount"] for e in rng if e["event_type"] == "purchase"), ZERO)
    refunds = sum((e["amount"] for e in rng if e["event_type"] == "refund"), ZERO)
    orders = sum(1 for e in rng if e["event_type"] == "purchase")
    daily = []
    day = start
    while day <= end:
        d = [e for e in rng if e["event_date"] == day]
        daily.append({"date": day.isoformat(),
                      "revenue": sum((e["amount"] for e in d if e["event_type"] == "purchase"), ZERO)
                      - sum((e["amount"] for e in d if e["event_type"] == "refund"), ZERO),
                      "orders": sum(1 for e in d if e["event_type"] == "purchase")})
        day += dt.timedelta(days=1)
    return {"totalRevenue": gross - refunds, "grossRevenue": gross, "refunds": refunds, "orders": orders,
            "payingUsers": len({e["user_id"] for e in rng if e["event_type"] == "purchase" and e["user_id"]}),
            "averageOrderValue": (gross / orders).quantize(decimal.Decimal("1e-9"), decimal.ROUND_HALF_UP)
            if orders else None,
            "daily": daily}


def _reaches(times_by_step: list[list[dt.datetime]], k: int) -> bool:
    """Brute force: is there t1 <= t2 <= ... <= tk with t_i an event time of step i?"""
    def search(i, after):
        if i == k:
            return True
        return any(t >= after and search(i + 1, t) for t in times_by_step[i])
    return search(0, dt.datetime.min.replace(tzinfo=dt.timezone.utc))


def funnel(events, start, end, steps):
    per_user = defaultdict(lambda: defaultdict(list))
    for e in events:
        if e["user_id"] is not None and in_range(e, start, end) and e["event_type"] in steps:
            per_user[e["user_id"]][e["event_type"]].append(e["event_timestamp"])
    users = []
    for k in range(1, len(steps) + 1):
        users.append(sum(1 for by_type in per_user.values()
                         if _reaches([sorted(by_type.get(s, [])) for s in steps], k)))
    return [{"name": s, "users": n, "conversionRate": (n / users[0]) if users[0] else 0.0}
            for s, n in zip(steps, users)]


def sessions(events):
    """Session count per identity and the (identity, start) of every session."""
    by_identity = defaultdict(list)
    for e in events:
        identity = e["user_id"] if e["user_id"] is not None else "anonymous:" + e["anonymous_id"]
        by_identity[identity].append(e)
    out = {}
    for identity, evs in by_identity.items():
        evs.sort(key=lambda e: (e["event_timestamp"], e["event_id"]))
        groups = []
        for e in evs:
            if groups and e["event_timestamp"] - groups[-1][-1]["event_timestamp"] < SESSION_GAP:
                groups[-1].append(e)
            else:
                groups.append([e])
        out[identity] = groups
    return out


def user_metrics(events, user, start=None, end=None):
    mine = [e for e in events if e["user_id"] == user and (start is None or in_range(e, start, end))]
    if not mine:
        return None
    groups = sessions([e for e in events if e["user_id"] == user]).get(user, [])
    if start is None:
        session_count = len(groups)
    else:
        ids = {id(e) for e in mine}
        session_count = sum(1 for g in groups if any(id(e) in ids for e in g))
    net = sum((e["amount"] for e in mine if e["event_type"] == "purchase"), ZERO) - \
        sum((e["amount"] for e in mine if e["event_type"] == "refund"), ZERO)
    return {"userId": user, "eventCount": len(mine), "sessionCount": session_count, "totalRevenue": net,
            "firstSeenAt": min(e["event_timestamp"] for e in mine),
            "lastSeenAt": max(e["event_timestamp"] for e in mine),
            "activeDays": len({e["event_date"] for e in mine})}


def user_events(events, user, event_type=None, limit=50):
    mine = [e for e in events if e["user_id"] == user and (event_type is None or e["event_type"] == event_type)]
    mine.sort(key=lambda e: (e["event_timestamp"], e["event_id"]), reverse=True)
    return [{"eventId": e["event_id"], "eventType": e["event_type"], "eventTimestamp": e["event_timestamp"],
             "amount": e["amount"], "properties": json.loads(e["properties"])} for e in mine[:limit]]


def daily_series(events, start, end, predicate, value):
    """{date: aggregate} for days with at least one event matching ``predicate``."""
    out = defaultdict(list)
    for e in events:
        if in_range(e, start, end) and predicate(e):
            out[e["event_date"]].append(e)
    return {day: value(evs) for day, evs in sorted(out.items())}


def features(events, user, as_of):
    """Simplified point-in-time features (as the fixture defines them), from events <= as_of."""
    mine = [e for e in events if e["user_id"] == user and e["event_date"] <= as_of]
    window = [e for e in mine if e["event_date"] > as_of - dt.timedelta(days=28)]
    net = sum((e["amount"] for e in window if e["event_type"] == "purchase"), ZERO) - \
        sum((e["amount"] for e in window if e["event_type"] == "refund"), ZERO)
    return {"count_events_7d": sum(1 for e in mine if e["event_date"] > as_of - dt.timedelta(days=7)),
            "count_orders_28d": sum(1 for e in window if e["event_type"] == "purchase"),
            "revenue_28d": net}


def training_rows(events, start, end):
    """(as_of_date, user_id, label) for each user-day with events, in API order."""
    active = sorted({(e["event_date"], e["user_id"]) for e in events
                     if e["user_id"] is not None and in_range(e, start, end)})
    rows = []
    for day, user in active:
        label = sum(1 for e in events if e["user_id"] == user and e["event_type"] == "purchase"
                    and day < e["event_date"] <= day + dt.timedelta(days=7))
        rows.append((day, user, label))
    return rows
