"""A small deterministic event list with the awkward cases the API must get exactly right.

Events are dicts shaped like accepted raw rows (``event_date`` = UTC date, ``received_at``
decides which copy of a duplicated ``event_id`` wins). The marts are built from them by
``fixture_warehouse`` (SQL, like dbt) and the expected answers by ``expected`` (plain Python).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random

UTC = dt.timezone.utc
START = dt.date(2026, 3, 1)
DAYS = 14
USERS = [f"u{i:02d}" for i in range(1, 16)] + ["o'brien"]
ANONYMOUS = ["anon-1", "anon-2", "anon-3"]
TYPES = ["page_view", "view_item", "add_to_cart", "begin_checkout", "purchase", "search", "refund"]
WEIGHTS = [30, 25, 12, 8, 6, 8, 2]
CATEGORIES = ["books", "games", "garden"]


def _ts(day: int, seconds: int) -> dt.datetime:
    return dt.datetime.combine(START + dt.timedelta(days=day), dt.time(0), tzinfo=UTC) + dt.timedelta(seconds=seconds)


def _event(n: int, event_type: str, at: dt.datetime, user: str | None, anon: str | None = None,
           amount: decimal.Decimal | None = None, properties: dict | None = None, delay_s: int = 5) -> dict:
    return {
        "event_id": f"e{n:05d}", "event_type": event_type, "user_id": user, "anonymous_id": anon,
        "session_id": None, "event_timestamp": at, "event_date": at.date(), "platform": "web",
        "amount": amount, "currency": "EUR" if amount is not None else None,
        "properties": json.dumps(properties or {}), "received_at": at + dt.timedelta(seconds=delay_s),
    }


def make_events(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    events: list[dict] = []
    n = 0
    for user in USERS:
        for day in range(DAYS):
            if rng.random() < 0.45:
                continue
            t = rng.randrange(0, 86_000)
            for _session in range(rng.choice([1, 1, 2])):
                for _ in range(rng.randint(1, 7)):
                    event_type = rng.choices(TYPES, WEIGHTS)[0]
                    amount = None
                    if event_type in ("purchase", "refund"):
                        amount = decimal.Decimal(rng.randrange(100, 90_000)) / 100 + \
                            decimal.Decimal(rng.randrange(0, 1000)) / 10 ** 9
                    n += 1
                    at = _ts(day, min(t, 86_399))
                    if at.date() >= START + dt.timedelta(days=DAYS):
                        break
                    events.append(_event(n, event_type, at, user, amount=amount,
                                         properties={"category": rng.choice(CATEGORIES),
                                                     "price": rng.randrange(1, 100)}))
                    t += rng.choice([10, 60, 300, 900, 1799, 1800, 2400])
                t += 3600 * rng.randint(1, 5)
    # Hand-made edge cases -------------------------------------------------------------------
    special = [
        # funnel out of order: add_to_cart before view_item never reaches step 2 with it
        ("add_to_cart", _ts(2, 1000), "u90"), ("view_item", _ts(2, 2000), "u90"),
        # same timestamp counts as non-decreasing
        ("view_item", _ts(3, 500), "u91"), ("add_to_cart", _ts(3, 500), "u91"),
        ("begin_checkout", _ts(3, 500), "u91"), ("purchase", _ts(3, 600), "u91"),
        # a session crossing midnight
        ("page_view", _ts(4, 86_390), "u92"), ("view_item", _ts(5, 30), "u92"),
        # greedy trap: view 10:00, cart 09:00 and 11:00, checkout 10:30 -> reaches step 2 only
        ("view_item", _ts(6, 36_000), "u93"), ("add_to_cart", _ts(6, 32_400), "u93"),
        ("begin_checkout", _ts(6, 37_800), "u93"), ("add_to_cart", _ts(6, 39_600), "u93"),
    ]
    for event_type, at, user in special:
        n += 1
        amount = decimal.Decimal("19.990000001") if event_type == "purchase" else None
        events.append(_event(n, event_type, at, user, amount=amount, properties={"category": "books"}))
    # Anonymous traffic, including a purchase (counts in revenue, not in DAU or paying users).
    for i, anon in enumerate(ANONYMOUS):
        for k in range(3):
            n += 1
            events.append(_event(n, "page_view", _ts(i + 1, 3000 + 60 * k), None, anon=anon))
    n += 1
    events.append(_event(n, "purchase", _ts(2, 7000), None, anon="anon-1", amount=decimal.Decimal("5.5")))
    # Duplicates: the first received copy wins; later copies differ so double counting shows.
    purchases = [e for e in events if e["event_type"] == "purchase" and e["user_id"]][:3]
    for original in purchases:
        copy = dict(original, amount=original["amount"] * 100,
                    received_at=original["received_at"] + dt.timedelta(hours=2))
        events.append(copy)
    early = dict(events[5], event_type="search", received_at=events[5]["received_at"] - dt.timedelta(seconds=1))
    events.append(early)  # received earlier, so this copy wins over events[5]
    rng.shuffle(events)
    return events


def accepted(events: list[dict]) -> list[dict]:
    """One row per event_id, first received wins (the staging rule)."""
    best: dict[str, dict] = {}
    for e in events:
        cur = best.get(e["event_id"])
        if cur is None or e["received_at"] < cur["received_at"]:
            best[e["event_id"]] = e
    return sorted(best.values(), key=lambda e: (e["event_timestamp"], e["event_id"]))
