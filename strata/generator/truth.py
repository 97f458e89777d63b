"""The ground truth: what the pipeline and the marts must report for what was written.

Computed from what the generator intended, never by running the validator, following the metric
semantics of ``docs/layers.md``: accepted events only, one per ``event_id``, ``event_date`` = UTC
date of ``event_timestamp``, users = distinct non-null ``user_id``, money exact.

Good events must be fed in ``event_timestamp`` order (the funnel is matched greedily per user,
which is exact because one user's events never share a timestamp). Per-date maps have one key
per date with at least one accepted event, zeros included.
"""

from __future__ import annotations

import collections

from strata.generator.timestamps import DAY_MS, date_str

FUNNEL_STEPS = ("view_item", "add_to_cart", "begin_checkout", "purchase")
_STEP = {name: i for i, name in enumerate(FUNNEL_STEPS)}


def money(cents: int) -> str:
    """Exact decimal string of an amount in cents: ``-12.05``."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


class GroundTruth:
    def __init__(self):
        self.blank_lines = 0
        self.unique = 0
        self.duplicates = 0
        self.by_error_type: collections.Counter[str] = collections.Counter()
        self.events = collections.Counter()
        self.users: dict[int, set] = collections.defaultdict(set)
        self.gross = collections.Counter()
        self.refunds = collections.Counter()
        self.orders = collections.Counter()
        self.paying: dict[int, set] = collections.defaultdict(set)
        self.signups = collections.Counter()
        self.funnel: dict[str, int] = {}

    def good(self, ts_ms: int, event_type: str, user_id: str | None, cents: int | None) -> None:
        day = ts_ms // DAY_MS
        self.unique += 1
        self.events[day] += 1
        if user_id is None:
            return
        self.users[day].add(user_id)
        step = _STEP.get(event_type)
        if step is not None:
            reached = self.funnel.get(user_id, 0)
            if reached == step:
                self.funnel[user_id] = step + 1
            if event_type == "purchase":
                self.gross[day] += cents
                self.orders[day] += 1
                self.paying[day].add(user_id)
        elif event_type == "refund":
            self.refunds[day] += cents
        elif event_type == "signup":
            self.signups[day] += 1

    def to_json(self) -> dict:
        days = sorted(self.events)
        dead = sum(self.by_error_type.values())
        accepted = self.unique + self.duplicates
        reached = collections.Counter(self.funnel.values())
        return {
            "input_records": accepted + dead,
            "blank_lines": self.blank_lines,
            "accepted": accepted,
            "dead_lettered": dead,
            "by_error_type": dict(sorted(self.by_error_type.items())),
            "accepted_unique_events": self.unique,
            "duplicates": self.duplicates,
            "events_by_date": {date_str(d): self.events[d] for d in days},
            "dau_by_date": {date_str(d): len(self.users.get(d, ())) for d in days},
            "revenue_by_date": {date_str(d): money(self.gross[d] - self.refunds[d]) for d in days},
            "gross_by_date": {date_str(d): money(self.gross[d]) for d in days},
            "refunds_by_date": {date_str(d): money(self.refunds[d]) for d in days},
            "orders_by_date": {date_str(d): self.orders[d] for d in days},
            "paying_users_by_date": {date_str(d): len(self.paying.get(d, ())) for d in days},
            "new_users_by_date": {date_str(d): self.signups[d] for d in days},
            "funnel_steps": list(FUNNEL_STEPS),
            "funnel_users": {name: sum(n for r, n in reached.items() if r > i)
                             for i, name in enumerate(FUNNEL_STEPS)},
        }
