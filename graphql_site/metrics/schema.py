"""``metric`` and ``userBehavior``: admin-defined metrics, compiled by the query layer."""

from __future__ import annotations

import datetime as dt

import graphene
from django.conf import settings

from graphql_site.analytics import arguments as a
from graphql_site.analytics.types import DateRangeInput, MetricGrain, Money
from graphql_site.gateway.context import resolve_cached
from graphql_site.gateway.planning import Planned, cost, planned
from graphql_site.querylayer import metrics as ql
from strata_core import contract

from .models import MetricDefinition


class MetricPoint(graphene.ObjectType):
    date = graphene.Date(required=True, description="Start of the period (Monday for weeks).")
    value = graphene.Float(description="The value as a number (may round).")
    exact_value = Money(description="The value as an exact decimal string (9 decimal places).")
    skipped = graphene.Int(required=True, description="Matching events of the period whose property value is "
                                                      "not a number (property_number metrics; else 0).")


class MetricSeries(graphene.ObjectType):
    name = graphene.String(required=True)
    description = graphene.String(required=True)
    unit = graphene.String(required=True)
    aggregation = graphene.String(required=True)
    grain = graphene.Field(MetricGrain, required=True)
    points = graphene.List(graphene.NonNull(MetricPoint), required=True,
                           description="Periods with at least one matching event, oldest first.")
    skipped = graphene.Int(required=True, description="Skipped events over the whole range (see MetricPoint).")


def _definition(name: str, argument: str) -> MetricDefinition:
    # Names that cannot exist never reach the database (PostgreSQL refuses NUL bytes, say).
    known = contract.SNAKE_CASE_NAME_RE.fullmatch(name) is not None
    definition = MetricDefinition.objects.filter(name=name).first() if known else None
    if definition is None:
        names = ", ".join(MetricDefinition.objects.values_list("name", flat=True)) or "none defined"
        raise a.BadArgument(argument, f"unknown metric {name!r}; defined metrics: {names}")
    return definition


def _points(series):
    return [{"date": p["period"], "value": float(p["value"]) if p["value"] is not None else None,
             "exact_value": p["value"], "skipped": p["skipped"]} for p in series]


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
    def resolve_metric(root, info, **_):
        v = planned(info)
        spec, start, end, grain = v["spec"], v["start"], v["end"], v["grain"]
        series = resolve_cached(info, "metric", {"spec": spec, "start": start, "end": end, "grain": grain}, end,
                                lambda s, st: ql.series(s, st, spec, start, end, grain))
        points = _points(series)
        return {**v["about"], "grain": grain, "points": points, "skipped": sum(p["skipped"] for p in points)}

    @staticmethod
    def resolve_user_behavior(root, info, **_):
        v = planned(info)
        spec, user_id, start, end = v["spec"], v["user"], v["start"], v["end"]
        # Without a range: the user's whole history (bounded by the warehouse's first/last dates).
        q_start, q_end = start or dt.date(2000, 1, 1), end or dt.date(9999, 12, 31)
        series = resolve_cached(info, "userBehavior", {"spec": spec, "user": user_id, "start": start, "end": end},
                                end, lambda s, st: ql.series(s, st, spec, q_start, q_end, "day", user_id))
        return _points(series)


# ---- planners (gateway.planning). Definitions change in the admin without a new data version, so
# only field-level entries (keyed by the compiled spec) are cached, never the whole response.

def plan_metric(args, ctx) -> Planned:
    start, end = a.date_range(args["date_range"])
    grain = args.get("grain")
    grain = getattr(grain, "value", grain) or MetricGrain.DAY.value
    definition = _definition(args["name"], "name")
    about = {"name": definition.name, "description": definition.description, "unit": definition.unit,
             "aggregation": definition.aggregation}
    return Planned({"spec": definition.to_spec(), "start": start, "end": end, "grain": grain, "about": about},
                   cost(days=(end - start).days + 1), response_cacheable=False)


def plan_user_behavior(args, ctx) -> Planned:
    user_id = a.user_id(args["user_id"])
    start, end = a.optional_date_range(args.get("date_range"))
    spec = _definition(args["metric"], "metric").to_spec()
    days = (end - start).days + 1 if start is not None else settings.STRATA_MAX_DATE_RANGE_DAYS
    return Planned({"spec": spec, "user": user_id, "start": start, "end": end}, cost(days=days),
                   response_cacheable=False)


PLANNERS = {"metric": plan_metric, "userBehavior": plan_user_behavior}
