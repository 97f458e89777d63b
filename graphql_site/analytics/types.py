"""GraphQL types of the analytics fields. Money is exact: a decimal serialised as a string."""

from __future__ import annotations

import decimal

import graphene
from graphene.types.generic import GenericScalar
from graphql import Undefined
from graphql.language import ast

from graphql_site.querylayer import money


class Money(graphene.Scalar):
    """An exact decimal amount, serialised as a string with exactly 9 decimal places, such as
    "12.500000000" or "0.000000000" (never a float, never an exponent)."""

    @staticmethod
    def serialize(value):
        return None if value is None else money.fixed(value)

    @staticmethod
    def parse_value(value):
        try:
            return decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None

    @staticmethod
    def parse_literal(node, _variables=None):
        if isinstance(node, (ast.StringValueNode, ast.IntValueNode, ast.FloatValueNode)):
            return Money.parse_value(node.value)
        return Undefined


class DateRangeInput(graphene.InputObjectType):
    """An inclusive range of UTC dates."""

    start = graphene.Date(required=True)
    end = graphene.Date(required=True)


class MetricGrain(graphene.Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class DailyActiveUsers(graphene.ObjectType):
    date = graphene.Date(required=True)
    active_users = graphene.Int(required=True, description="Distinct users with at least one event that day.")


class RevenueDay(graphene.ObjectType):
    date = graphene.Date(required=True)
    revenue = Money(required=True, description="Purchases minus refunds.")
    orders = graphene.Int(required=True)


class RevenueMetrics(graphene.ObjectType):
    total_revenue = Money(required=True, description="Gross revenue minus refunds.")
    gross_revenue = Money(required=True, description="Sum of purchase amounts.")
    refunds = Money(required=True, description="Sum of refund amounts.")
    orders = graphene.Int(required=True, description="Number of purchases.")
    paying_users = graphene.Int(required=True, description="Distinct users with a purchase in the range.")
    average_order_value = Money(description="Gross revenue / orders; null without orders.")
    daily = graphene.List(graphene.NonNull(RevenueDay), required=True,
                          description="One entry per day of the range, zero on days without events.")


class FunnelStep(graphene.ObjectType):
    name = graphene.String(required=True)
    users = graphene.Int(required=True)
    conversion_rate = graphene.Float(required=True, description="users / users of the first step (0 if none).")


class ConversionFunnel(graphene.ObjectType):
    steps = graphene.List(graphene.NonNull(FunnelStep), required=True)


class UserMetrics(graphene.ObjectType):
    user_id = graphene.ID(required=True)
    event_count = graphene.Int(required=True)
    session_count = graphene.Int(required=True)
    total_revenue = Money(required=True, description="Purchases minus refunds.")
    first_seen_at = graphene.DateTime()
    last_seen_at = graphene.DateTime()
    active_days = graphene.Int(required=True)


class UserEvent(graphene.ObjectType):
    event_id = graphene.ID(required=True)
    event_type = graphene.String(required=True)
    event_timestamp = graphene.DateTime(required=True)
    amount = Money()
    properties = GenericScalar(description="The event's properties object.")


class Feature(graphene.ObjectType):
    name = graphene.String(required=True)
    value = GenericScalar()


class UserFeatures(graphene.ObjectType):
    user_id = graphene.ID(required=True)
    as_of_date = graphene.Date(required=True, description="Features use only events on or before this date.")
    features = graphene.List(graphene.NonNull(Feature), required=True)


class EventFeatures(graphene.ObjectType):
    event_id = graphene.ID(required=True)
    event_type = graphene.String(required=True)
    user_id = graphene.ID()
    event_timestamp = graphene.DateTime(required=True)
    platform = graphene.String()
    amount = Money()
    user_features_as_of = graphene.Date(description="The user's features are as of the day before the event.")
    features = graphene.List(graphene.NonNull(Feature), required=True)


class TrainingRow(graphene.ObjectType):
    user_id = graphene.ID(required=True)
    as_of_date = graphene.Date(required=True)
    label_purchases_next_7d = graphene.Int()
    features = graphene.List(graphene.NonNull(Feature), required=True,
                             description="The requested features, in the requested order.")
    cursor = graphene.String(required=True)


class PageInfo(graphene.ObjectType):
    has_next_page = graphene.Boolean(required=True)
    end_cursor = graphene.String()


class TrainingDataPage(graphene.ObjectType):
    rows = graphene.List(graphene.NonNull(TrainingRow), required=True)
    page_info = graphene.Field(PageInfo, required=True)
