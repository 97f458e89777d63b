"""Admin-defined metrics compiled to SQL.

A :class:`MetricSpec` names an aggregation and an expression from a vetted list (no free SQL
ever comes from the admin), with optional event-type and property filters. Two kinds:

* :data:`EVENT_EXPRESSIONS` aggregate the events of ``staging.stg_events``, filtered by event
  type and by properties. ``property_number`` reads a numeric property with ``TRY_CAST`` /
  ``SAFE_CAST`` (``functions.to_decimal``): an event whose value is not a number is *skipped*
  and counted per period, instead of failing every range that covers it.
* :data:`ROLLUP_EXPRESSIONS` read the daily rollups the dbt models define:
  ``mart.business_metrics`` per day, ``curated.user_metrics`` per user and day. Revenue is
  defined once, in dbt (``macros/metrics/revenue.sql``); a metric over it is a sum (or a mean)
  of those daily values, never a second definition, so it cannot be filtered by event type.

Filter values and the date range are bound parameters; property keys must be snake case and
are only rendered as a JSON path. Averages are computed exactly from the sum and the count
(half away from zero, 9 decimal places), because DuckDB's ``avg`` of a DECIMAL is a DOUBLE.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from strata_core import contract

from . import money
from . import tables as t
from .engine import QueryStats, Snapshot
from .functions import GRAINS, date_trunc, json_text, to_decimal

AGGREGATIONS = ("count", "count_distinct", "sum", "avg")
NAME_RULE = "lower snake case: a letter, then letters, digits or underscores, at most 64 characters"

#: name -> (description, column of stg_events or None, numeric?)
EVENT_EXPRESSIONS = {
    "event_id": ("Event id (count events)", "event_id", False),
    "user_id": ("User id (count users)", "user_id", False),
    "anonymous_id": ("Anonymous id", "anonymous_id", False),
    "session_id": ("Producer session id", "session_id", False),
    "strata_session_id": ("Strata-derived session id", "strata_session_id", False),
    "order_id": ("Order id", "order_id", False),
    "item_id": ("Item id", "item_id", False),
    "amount": ("Money amount as sent (purchases and refunds are both positive)", "amount", True),
    "property_number": ("A numeric property (set property_key); non-numbers are skipped and counted", None, True),
}
#: name -> (description, column of mart.business_metrics, column of curated.user_metrics)
ROLLUP_EXPRESSIONS = {
    "net_revenue": ("Net revenue per day: purchases minus refunds (the dbt definition)", "revenue", "revenue"),
    "gross_revenue": ("Gross revenue per day: purchases (the dbt definition)", "gross_revenue", "gross_revenue"),
    "refunds": ("Refunds per day (the dbt definition)", "refunds", "refunds"),
    "orders": ("Orders (purchases) per day", "orders", "count_orders"),
}
EXPRESSIONS = {**{k: v[0] for k, v in EVENT_EXPRESSIONS.items()}, **{k: v[0] for k, v in ROLLUP_EXPRESSIONS.items()}}


class MetricError(ValueError):
    """A metric definition breaks a rule; ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _snake(value: str) -> bool:
    return contract.SNAKE_CASE_NAME_RE.fullmatch(value or "") is not None


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str
    aggregation: str
    expression: str
    event_types: tuple[str, ...] = ()
    property_filters: tuple[tuple[str, str], ...] = ()
    property_key: str = ""

    @property
    def is_rollup(self) -> bool:
        return self.expression in ROLLUP_EXPRESSIONS

    def validate(self) -> None:
        if not _snake(self.name):
            raise MetricError("name", f"{self.name!r} must be {NAME_RULE}")
        if self.aggregation not in AGGREGATIONS:
            raise MetricError("aggregation", f"{self.aggregation!r}: expected one of {', '.join(AGGREGATIONS)}")
        if self.expression not in EXPRESSIONS:
            raise MetricError("expression", f"{self.expression!r}: expected one of {', '.join(EXPRESSIONS)}")
        if self.is_rollup:
            self._validate_rollup()
            return
        numeric = EVENT_EXPRESSIONS[self.expression][2]
        if self.aggregation in ("sum", "avg") and not numeric:
            raise MetricError("aggregation", f"{self.aggregation} needs a numeric expression "
                              f"({', '.join(k for k, v in EVENT_EXPRESSIONS.items() if v[2])}, or a daily "
                              f"rollup: {', '.join(ROLLUP_EXPRESSIONS)}), not {self.expression!r}")
        if self.expression == "property_number":
            if not _snake(self.property_key):
                raise MetricError("property_key", f"{self.property_key!r} must be {NAME_RULE}")
        elif self.property_key:
            raise MetricError("property_key", "only used with expression 'property_number'")
        for event_type in self.event_types:
            if event_type not in contract.EVENT_TYPES_BY_NAME:
                raise MetricError("event_types", f"unknown event type {event_type!r}; known event types: "
                                  f"{', '.join(sorted(contract.EVENT_TYPES_BY_NAME))}")
        for key, value in self.property_filters:
            if not _snake(key):
                raise MetricError("property_filters", f"key {key!r} must be {NAME_RULE}")
            if not isinstance(value, str):
                raise MetricError("property_filters", f"value for {key!r} must be text")

    def _validate_rollup(self) -> None:
        if self.aggregation not in ("sum", "avg"):
            raise MetricError("aggregation", f"{self.expression} is a daily value: use sum (over the days of a "
                              "period) or avg (the mean day), not " + repr(self.aggregation))
        for field, value in (("event_types", self.event_types), ("property_filters", self.property_filters),
                             ("property_key", self.property_key)):
            if value:
                raise MetricError(field, f"{self.expression} is defined once, in the dbt models "
                                  "(mart.business_metrics, curated.user_metrics), and cannot be filtered; "
                                  "for a filtered sum use expression 'amount' with event type purchase")


def _event_select(spec: MetricSpec, grain: str, by_user: bool) -> sa.Select:
    e = t.stg_events
    skipped = sa.literal(0)
    if spec.expression == "property_number":
        raw = json_text(e.c.properties, spec.property_key)
        expr = to_decimal(raw)
        skipped = sa.func.count(raw) - sa.func.count(expr)
    else:
        expr = e.c[EVENT_EXPRESSIONS[spec.expression][1]]
    total = {"count": lambda: sa.func.count(expr), "count_distinct": lambda: sa.func.count(sa.distinct(expr)),
             "sum": lambda: sa.func.sum(expr), "avg": lambda: sa.func.sum(expr)}[spec.aggregation]()
    period = date_trunc(grain, e.c.event_date).label("period")
    q = sa.select(period, total.label("total"), sa.func.count(expr).label("n"), skipped.label("skipped")).where(
        e.c.event_date.between(sa.bindparam("start"), sa.bindparam("end")))
    if by_user:
        q = q.where(e.c.user_id == sa.bindparam("user_id"))
    if spec.event_types:
        q = q.where(e.c.event_type.in_(sa.bindparam("event_types", expanding=True)))
    for i, (key, _value) in enumerate(spec.property_filters):
        q = q.where(json_text(e.c.properties, key) == sa.bindparam(f"pf_{i}"))
    return q.group_by(period).order_by(period)


def _rollup_select(spec: MetricSpec, grain: str, by_user: bool) -> sa.Select:
    _description, daily_column, user_column = ROLLUP_EXPRESSIONS[spec.expression]
    table = t.user_metrics if by_user else t.business_metrics
    column = table.c[user_column if by_user else daily_column]
    period = date_trunc(grain, table.c.date).label("period")
    q = sa.select(period, sa.func.sum(column).label("total"), sa.func.count(column).label("n"),
                  sa.literal(0).label("skipped")).where(table.c.date.between(sa.bindparam("start"), sa.bindparam("end")))
    if by_user:
        q = q.where(table.c.user_id == sa.bindparam("user_id"))
    return q.group_by(period).order_by(period)


def compile_select(spec: MetricSpec, grain: str = "day", by_user: bool = False) -> sa.Select:
    """``SELECT period, total, n, skipped`` per period for ``start``..``end`` (bound parameters
    ``start``, ``end``, ``user_id`` when ``by_user``, ``event_types``, ``pf_<i>``)."""
    spec.validate()
    if grain not in GRAINS:
        raise MetricError("grain", f"{grain!r}: expected one of {GRAINS}")
    return (_rollup_select if spec.is_rollup else _event_select)(spec, grain, by_user)


def params(spec: MetricSpec, start: dt.date, end: dt.date, user_id: str | None = None) -> dict:
    out = {"start": start, "end": end}
    if user_id is not None:
        out["user_id"] = user_id
    if spec.event_types and not spec.is_rollup:
        out["event_types"] = list(spec.event_types)
    for i, (_key, value) in enumerate(spec.property_filters):
        out[f"pf_{i}"] = value
    return out


def compiled_sql(spec: MetricSpec, dialect: sa.Dialect, grain: str = "day") -> str:
    """The SQL text (with placeholders) shown in the admin."""
    return str(compile_select(spec, grain).compile(dialect=dialect))


def series(snap: Snapshot, stats: QueryStats, spec: MetricSpec, start: dt.date, end: dt.date,
           grain: str = "day", user_id: str | None = None) -> list[dict]:
    """``[{period, value, skipped}]`` for periods with at least one matching row; ``value`` is an
    exact ``Decimal`` (``None`` when every matching value was skipped)."""
    rows = snap.rows(compile_select(spec, grain, by_user=user_id is not None),
                     params(spec, start, end, user_id), stats)
    out = []
    for r in rows:
        total = None if r.total is None else money.exact(r.total)
        if spec.aggregation == "avg":
            value = money.divide(total, int(r.n)) if total is not None and r.n else None
        else:
            value = total
        period = r.period.date() if isinstance(r.period, dt.datetime) else r.period
        out.append({"period": period, "value": value, "skipped": int(r.skipped or 0)})
    return out
