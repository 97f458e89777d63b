"""Admin-defined metrics compiled to SQL.

A :class:`MetricSpec` names an aggregation and an expression from :data:`EXPRESSIONS` (the
vetted list: no free SQL ever comes from the admin), optional event-type and property filters.
Filter values and the date range are bound parameters; property keys must match
``functions.JSON_KEY_RE`` and are only rendered as a JSON path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal

import sqlalchemy as sa

from strata_core import contract

from . import tables as t
from .engine import QueryStats, Snapshot
from .functions import GRAINS, JSON_KEY_RE, date_trunc, json_text

AGGREGATIONS = ("count", "count_distinct", "sum", "avg")

#: name -> (description, builder over stg_events, numeric?)
EXPRESSIONS = {
    "event_id": ("Event id (count events)", lambda e: e.c.event_id, False),
    "user_id": ("User id (count users)", lambda e: e.c.user_id, False),
    "anonymous_id": ("Anonymous id", lambda e: e.c.anonymous_id, False),
    "session_id": ("Producer session id", lambda e: e.c.session_id, False),
    "strata_session_id": ("Strata-derived session id", lambda e: e.c.strata_session_id, False),
    "order_id": ("Order id", lambda e: e.c.order_id, False),
    "item_id": ("Item id", lambda e: e.c.item_id, False),
    "amount": ("Money amount as sent (purchases and refunds are both positive)",
               lambda e: e.c.amount, True),
    "signed_amount": ("Amount with refunds negative (sum = net revenue)",
                      lambda e: sa.case((e.c.event_type == "refund", -e.c.amount), else_=e.c.amount), True),
    "property_number": ("A numeric property (set property_key)", None, True),
}


class MetricError(ValueError):
    """A metric definition breaks a rule; ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str
    aggregation: str
    expression: str
    event_types: tuple[str, ...] = ()
    property_filters: tuple[tuple[str, str], ...] = ()
    property_key: str = ""

    def validate(self) -> None:
        if not JSON_KEY_RE.match(self.name or ""):
            raise MetricError("name", f"{self.name!r} must match {JSON_KEY_RE.pattern}")
        if self.aggregation not in AGGREGATIONS:
            raise MetricError("aggregation", f"{self.aggregation!r}: expected one of {AGGREGATIONS}")
        if self.expression not in EXPRESSIONS:
            raise MetricError("expression", f"{self.expression!r}: expected one of {sorted(EXPRESSIONS)}")
        numeric = EXPRESSIONS[self.expression][2]
        if self.aggregation in ("sum", "avg") and not numeric:
            raise MetricError("aggregation", f"{self.aggregation} needs a numeric expression "
                              f"({', '.join(k for k, v in EXPRESSIONS.items() if v[2])}), "
                              f"not {self.expression!r}")
        if self.expression == "property_number":
            if not JSON_KEY_RE.match(self.property_key or ""):
                raise MetricError("property_key", f"{self.property_key!r} must match {JSON_KEY_RE.pattern}")
        elif self.property_key:
            raise MetricError("property_key", "only used with expression 'property_number'")
        for event_type in self.event_types:
            if not contract.EVENT_TYPE_RE.match(event_type):
                raise MetricError("event_types", f"{event_type!r} must match {contract.EVENT_TYPE_RE.pattern}")
        for key, value in self.property_filters:
            if not JSON_KEY_RE.match(key):
                raise MetricError("property_filters", f"key {key!r} must match {JSON_KEY_RE.pattern}")
            if not isinstance(value, str):
                raise MetricError("property_filters", f"value for {key!r} must be text")


def _expression(spec: MetricSpec, e):
    if spec.expression == "property_number":
        return sa.cast(json_text(e.c.properties, spec.property_key), sa.Numeric(38, 9))
    return EXPRESSIONS[spec.expression][1](e)


def compile_select(spec: MetricSpec, grain: str = "day", by_user: bool = False) -> sa.Select:
    """``SELECT period, value`` grouped by period, for ``start``..``end`` (bound parameters
    ``start``, ``end``, ``user_id`` when ``by_user``, ``event_types``, ``pf_<i>``)."""
    spec.validate()
    if grain not in GRAINS:
        raise MetricError("grain", f"{grain!r}: expected one of {GRAINS}")
    e = t.stg_events
    expr = _expression(spec, e)
    value = {
        "count": lambda: sa.func.count(expr),
        "count_distinct": lambda: sa.func.count(sa.distinct(expr)),
        "sum": lambda: sa.func.sum(expr),
        "avg": lambda: sa.func.avg(expr),
    }[spec.aggregation]()
    period = date_trunc(grain, e.c.event_date).label("period")
    q = sa.select(period, value.label("value")).where(
        e.c.event_date.between(sa.bindparam("start"), sa.bindparam("end")))
    if by_user:
        q = q.where(e.c.user_id == sa.bindparam("user_id"))
    if spec.event_types:
        q = q.where(e.c.event_type.in_(sa.bindparam("event_types", expanding=True)))
    for i, (key, _value) in enumerate(spec.property_filters):
        q = q.where(json_text(e.c.properties, key) == sa.bindparam(f"pf_{i}"))
    return q.group_by(period).order_by(period)


def params(spec: MetricSpec, start: dt.date, end: dt.date, user_id: str | None = None) -> dict:
    out = {"start": start, "end": end}
    if user_id is not None:
        out["user_id"] = user_id
    if spec.event_types:
        out["event_types"] = list(spec.event_types)
    for i, (_key, value) in enumerate(spec.property_filters):
        out[f"pf_{i}"] = value
    return out


def compiled_sql(spec: MetricSpec, dialect: sa.Dialect, grain: str = "day") -> str:
    """The SQL text (with placeholders) shown in the admin."""
    return str(compile_select(spec, grain).compile(dialect=dialect))


def series(snap: Snapshot, stats: QueryStats, spec: MetricSpec, start: dt.date, end: dt.date,
           grain: str = "day", user_id: str | None = None) -> list[dict]:
    """``[{period, value}]`` for periods with at least one matching event."""
    rows = snap.rows(compile_select(spec, grain, by_user=user_id is not None),
                     params(spec, start, end, user_id), stats)
    out = []
    for r in rows:
        value = r.value
        if isinstance(value, float):
            value = decimal.Decimal(repr(value))
        elif value is not None and not isinstance(value, decimal.Decimal):
            value = decimal.Decimal(value)
        out.append({"period": r.period if isinstance(r.period, dt.date) and not isinstance(r.period, dt.datetime)
                    else r.period.date(), "value": value})
    return out
