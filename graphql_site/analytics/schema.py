"""The analytics fields over the marts (``Query`` mixin combined in ``graphql_site.schema``)."""

from __future__ import annotations

import graphene
from django.conf import settings

from graphql_site.gateway.context import resolve_cached, run_warehouse
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
        limit=graphene.Int(default_value=50, description="1 to STRATA_USER_EVENTS_MAX_LIMIT (500)."),
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
        first=graphene.Int(default_value=100), after=graphene.String(),
        description="Point-in-time-correct training rows (user x as-of date), in pages.")

    @staticmethod
    def resolve_daily_active_users(root, info, date):
        return resolve_cached(info, "dailyActiveUsers", {"date": date}, date,
                              lambda s, st: queries.daily_active_users(s, st, date))

    @staticmethod
    def resolve_revenue_metrics(root, info, date_range):
        start, end = a.date_range(date_range)
        return resolve_cached(info, "revenueMetrics", {"start": start, "end": end}, end,
                              lambda s, st: queries.revenue_metrics(s, st, start, end))

    @staticmethod
    def resolve_conversion_funnel(root, info, date_range, steps=None):
        start, end = a.date_range(date_range)
        steps = a.funnel_steps(steps)
        return resolve_cached(info, "conversionFunnel", {"start": start, "end": end, "steps": steps}, end,
                              lambda s, st: queries.conversion_funnel(s, st, start, end, steps))

    @staticmethod
    def resolve_user_metrics(root, info, user_id, date_range=None):
        user_id = a.user_id(user_id)
        start, end = a.optional_date_range(date_range)
        return resolve_cached(info, "userMetrics", {"user": user_id, "start": start, "end": end}, end,
                              lambda s, st: queries.user_metrics(s, st, user_id, start, end))

    @staticmethod
    def resolve_user_events(root, info, user_id, event_type=None, limit=50):
        user_id = a.user_id(user_id)
        event_type = a.event_type(event_type)
        limit = a.bounded_int(50 if limit is None else limit, "limit", 1, settings.STRATA_USER_EVENTS_MAX_LIMIT)
        return resolve_cached(info, "userEvents", {"user": user_id, "type": event_type, "limit": limit}, None,
                              lambda s, st: queries.user_events(s, st, user_id, event_type, limit))

    @staticmethod
    def resolve_user_features(root, info, user_id, as_of=None):
        user_id = a.user_id(user_id)
        day = a.as_of_date(as_of)
        return resolve_cached(info, "userFeatures", {"user": user_id, "asOf": day}, day,
                              lambda s, st: queries.user_features(s, st, user_id, day))

    @staticmethod
    def resolve_event_features(root, info, event_id):
        event_id = a.event_id(event_id)
        return resolve_cached(info, "eventFeatures", {"event": event_id}, None,
                              lambda s, st: queries.event_features(s, st, event_id))

    @staticmethod
    def resolve_training_data(root, info, features, date_range, first=100, after=None):
        start, end = a.date_range(date_range)
        first = a.bounded_int(100 if first is None else first, "first", 1, settings.STRATA_TRAINING_PAGE_MAX)
        cursor = None
        if after is not None:
            try:
                cursor = queries.decode_cursor(after)
            except ValueError as exc:
                raise a.BadArgument("after", str(exc)) from None
        if not features:
            raise a.BadArgument("features", "give at least one feature name")
        if len(set(features)) != len(features):
            raise a.BadArgument("features", "feature names must be distinct")
        snap = info.context.snapshot
        known = run_warehouse(lambda: queries.feature_columns(snap, "ml_training"))
        unknown = [f for f in features if f not in known]
        if unknown:
            raise a.BadArgument("features", f"unknown feature(s) {', '.join(map(repr, unknown))}; "
                                            f"known: {', '.join(known)}")
        return resolve_cached(
            info, "trainingData", {"f": features, "start": start, "end": end, "first": first, "after": after},
            end, lambda s, st: queries.training_data(s, st, features, start, end, first, cursor))
