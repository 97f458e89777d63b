"""``metric`` and ``userBehavior``: admin-defined metrics, compiled by the query layer."""

from __future__ import annotations

import datetime as dt
import re

import graphene

from graphql_site.analytics import arguments as a
from graphql_site.analytics.types import DateRangeInput, MetricGrain, Money
from graphql_site.gateway.context import resolve_cached
from graphql_site.querylayer import metrics as ql

from .models import MetricDefinition

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class MetricPoint(graphene.ObjectType):
    date = graphene.Date(required=True, description="Start of the period (Monday for weeks).")
    value = graphene.Float(description="The value as a number (may round).")
    exact_value = Money(description="The value as an exact decimal string.")


class MetricSeries(graphene.ObjectType):
    name = graphene.String(required=True)
    description = graphene.String(required=True)
    unit = graphene.String(required=True)
    aggregation = graphene.String(required=True)
    grain = graphene.Field(MetricGrain, required=True)
    points = graphene.List(graphene.NonNull(MetricPoint), required=True,
                           description="Periods with at least one matching event, oldest first.")


def _definition(name: str, argument: str) -> MetricDefinition:
    # Names that cannot exist never reach the database (PostgreSQL refuses NUL bytes, say).
    definition = MetricDefinition.objects.filter(name=name).first() if NAME_RE.match(name) else None
    if definition is None:
        known = ", ".join(MetricDefinition.objects.values_list("name", flat=True)) or "none defined"
        raise a.BadArgument(argument, f"unknown metric {name!r}; defined metrics: {known}")
    return definition


def _points(series):
    return [{"date": p["period"], "value": float(p["value"]) if p["value"] is not None else None,
             "exact_value": p["value"]} for p in series]


class Query(graphene.ObjectType):
    metric = graphene.Field(
        MetricSeries, name=graphene.String(required=True),
        date_range=graphene.Argument(DateRangeInput, required=True),
        grain=graphene.Argument(MetricGrain, default_value=MetricGrain.DAY.value),
        description="A metric defined in the admin, per day, ISO week or month.")
    user_behavior = graphene.Field(
        graphene.List(graphene.NonNull(MetricPoint)),
        user_id=graphene.ID(required=True), metric=graphene.String(required=True),
        date_range=graphene.Argument(DateRangeInput),
        description="A metric from the admin for one user, per day (days with matching events).")

    @staticmethod
    def resolve_metric(root, info, name, date_range, grain=MetricGrain.DAY.value):
        start, end = a.date_range(date_range)
        grain = getattr(grain, "value", grain) or MetricGrain.DAY.value
        definition = _definition(name, "name")
        # Definitions change in the admin without a new data version: only field-level entries
        # (keyed by the compiled spec) may be cached, not the whole response.
        info.context.response_cacheable = False
        spec = definition.to_spec()
        series = resolve_cached(info, "metric", {"spec": spec, "start": start, "end": end, "grain": grain}, end,
                                lambda s, st: ql.series(s, st, spec, start, end, grain))
        return {"name": definition.name, "description": definition.description, "unit": definition.unit,
                "aggregation": definition.aggregation, "grain": grain, "points": _points(series)}

    @staticmethod
    def resolve_user_behavior(root, info, user_id, metric, date_range=None):
        user_id = a.user_id(user_id)
        start, end = a.optional_date_range(date_range)
        spec = _definition(metric, "metric").to_spec()
        info.context.response_cacheable = False
        # Without a range: the user's whole history (bounded by the warehouse's first/last dates).
        q_start = start or dt.date(2000, 1, 1)
        q_end = end or dt.date(9999, 12, 31)
        series = resolve_cached(info, "userBehavior", {"spec": spec, "user": user_id, "start": start, "end": end},
                                end, lambda s, st: ql.series(s, st, spec, q_start, q_end, "day", user_id))
        return _points(series)
