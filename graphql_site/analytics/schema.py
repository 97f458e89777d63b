"""The analytics fields over the marts (``Query`` mixin combined in ``graphql_site.schema``)."""

from __future__ import annotations

import graphene
from django.conf import settings

from graphql_site.gateway.context import resolve_cached, run_warehouse
from graphql_site.gateway.planning import Planned, cost, planned
from graphql_site.querylayer import queries

from . import arguments as a
from .types import (ConversionFunnel, DailyActiveUsers, DateRangeInput, EventFeatures, RevenueMetrics,
                    TrainingDataPage, UserEvent, UserFeatures, UserMetrics)


class Query(graphene.ObjectType):
    """Root fields are nullable on purpose: an error in one field nulls only that field."""

    daily_active_users = graphene.Field(
        DailyActiveUsers, date=graphene.Date(required=True),
        description="Distinct users with at least one event on a UTC date.")
    revenue_metrics = graphene.Field(
        RevenueMetrics, date_range=graphene.Argument(DateRangeInput, required=True),
        description="Revenue, refunds, orders, paying users and AOV over an inclusive date range.")
    conversion_funnel = graphene.Field(
        ConversionFunnel, date_range=graphene.Argument(DateRangeInput, required=True),
        steps=graphene.List(graphene.NonNull(graphene.String),
                            description="Event types in order; default view_item, add_to_cart, "
                                        "begin_checkout, purchase."),
        description="Users reaching each step with non-decreasing event times inside the range.")
    user_metrics = graphene.Field(
        UserMetrics, user_id=graphene.ID(required=True), date_range=graphene.Argument(DateRangeInput),
        description="A user's activity, all time or within a date range; null for an unknown user.")
    user_events = graphene.Field(
        graphene.List(graphene.NonNull(UserEvent)),
        user_id=graphene.ID(required=True), event_type=graphene.String(),
        limit=graphene.Int(default_value=50, description="1 to STRATA_USER_EVENTS_MAX_LIMIT (500); every allowed "
                                                          "value also fits the request cost budget."),
        description="A user's events, newest first.")
    user_features = graphene.Field(
        UserFeatures, user_id=graphene.ID(required=True), as_of=graphene.DateTime(),
        description="The user's ML features as of a time (latest when omitted); null if none.")
    event_features = graphene.Field(
        EventFeatures, event_id=graphene.ID(required=True),
        description="An event with its user's features as of the day before it; null if unknown.")
    training_data = graphene.Field(
        TrainingDataPage,
        features=graphene.List(graphene.NonNull(graphene.String), required=True),
        date_range=graphene.Argument(DateRangeInput, required=True),
        first=graphene.Int(default_value=100, description="1 to STRATA_TRAINING_PAGE_MAX (1000); every allowed "
                                                           "value also fits the request cost budget."),
        after=graphene.String(),
        description="Point-in-time-correct training rows (user x as-of date), in pages.")

    @staticmethod
    def resolve_daily_active_users(root, info, **_):
        day = planned(info)["date"]
        return resolve_cached(info, "dailyActiveUsers", {"date": day}, day,
                              lambda s, st: queries.daily_active_users(s, st, day))

    @staticmethod
    def resolve_revenue_metrics(root, info, **_):
        v = planned(info)
        return resolve_cached(info, "revenueMetrics", v, v["end"],
                              lambda s, st: queries.revenue_metrics(s, st, v["start"], v["end"]))

    @staticmethod
    def resolve_conversion_funnel(root, info, **_):
        v = planned(info)
        return resolve_cached(info, "conversionFunnel", v, v["end"],
                              lambda s, st: queries.conversion_funnel(s, st, v["start"], v["end"], v["steps"]))

    @staticmethod
    def resolve_user_metrics(root, info, **_):
        v = planned(info)
        return resolve_cached(info, "userMetrics", v, v["end"],
                              lambda s, st: queries.user_metrics(s, st, v["user"], v["start"], v["end"]))

    @staticmethod
    def resolve_user_events(root, info, **_):
        v = planned(info)
        return resolve_cached(info, "userEvents", v, None,
                              lambda s, st: queries.user_events(s, st, v["user"], v["type"], v["limit"]))

    @staticmethod
    def resolve_user_features(root, info, **_):
        v = planned(info)
        return resolve_cached(info, "userFeatures", v, v["as_of"],
                              lambda s, st: queries.user_features(s, st, v["user"], v["as_of"]))

    @staticmethod
    def resolve_event_features(root, info, **_):
        v = planned(info)
        return resolve_cached(info, "eventFeatures", v, None,
                              lambda s, st: queries.event_features(s, st, v["event"]))

    @staticmethod
    def resolve_training_data(root, info, **_):
        v = planned(info)
        return resolve_cached(
            info, "trainingData", v, v["end"],
            lambda s, st: queries.training_data(s, st, v["features"], v["start"], v["end"], v["first"],
                                                v["cursor"]))


# ---- planners: argument checks and costs, before anything runs (gateway.planning) ----------------

def _days(start, end) -> int:
    return (end - start).days + 1 if start is not None else 0


def plan_daily_active_users(args, ctx) -> Planned:
    return Planned({"date": args["date"]}, cost(days=1))


def plan_revenue_metrics(args, ctx) -> Planned:
    start, end = a.date_range(args["date_range"])
    return Planned({"start": start, "end": end}, cost(days=_days(start, end)))


def plan_conversion_funnel(args, ctx) -> Planned:
    start, end = a.date_range(args["date_range"])
    steps = a.funnel_steps(args.get("steps"))
    return Planned({"start": start, "end": end, "steps": steps}, cost(days=_days(start, end), steps=len(steps)))


def plan_user_metrics(args, ctx) -> Planned:
    start, end = a.optional_date_range(args.get("date_range"))
    return Planned({"user": a.user_id(args["user_id"]), "start": start, "end": end}, cost(days=_days(start, end)))


def plan_user_events(args, ctx) -> Planned:
    limit = args.get("limit")
    limit = a.bounded_int(50 if limit is None else limit, "limit", 1, settings.STRATA_USER_EVENTS_MAX_LIMIT)
    return Planned({"user": a.user_id(args["user_id"]), "type": a.event_type(args.get("event_type")),
                    "limit": limit}, cost(rows=limit))


def plan_user_features(args, ctx) -> Planned:
    return Planned({"user": a.user_id(args["user_id"]), "as_of": a.as_of_date(args.get("as_of"))}, cost())


def plan_event_features(args, ctx) -> Planned:
    return Planned({"event": a.event_id(args["event_id"])}, cost())


def plan_training_data(args, ctx) -> Planned:
    start, end = a.date_range(args["date_range"])
    first = args.get("first")
    first = a.bounded_int(100 if first is None else first, "first", 1, settings.STRATA_TRAINING_PAGE_MAX)
    after, cursor = args.get("after"), None
    if after is not None:
        try:
            cursor = queries.decode_cursor(after)
        except ValueError as exc:
            raise a.BadArgument("after", str(exc)) from None
    features = list(args["features"])
    if not features:
        raise a.BadArgument("features", "give at least one feature name")
    if len(set(features)) != len(features):
        raise a.BadArgument("features", "feature names must be distinct")
    if ctx.warehouse_available:  # otherwise the field reports the warehouse when it runs
        snap = ctx.snapshot
        known = run_warehouse(lambda: queries.feature_columns(snap, "ml_training"))
        unknown = [f for f in features if f not in known]
        if unknown:
            raise a.BadArgument("features", f"unknown feature(s) {', '.join(map(repr, unknown))}; "
                                            f"known: {', '.join(known)}")
    return Planned({"features": features, "start": start, "end": end, "first": first, "after": after,
                    "cursor": cursor}, cost(rows=first))


PLANNERS = {
    "dailyActiveUsers": plan_daily_active_users,
    "revenueMetrics": plan_revenue_metrics,
    "conversionFunnel": plan_conversion_funnel,
    "userMetrics": plan_user_metrics,
    "userEvents": plan_user_events,
    "userFeatures": plan_user_features,
    "eventFeatures": plan_event_features,
    "trainingData": plan_training_data,
}
