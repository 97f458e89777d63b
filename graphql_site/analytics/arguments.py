"""Argument checks, run by the planners before anything executes (``gateway.planning``). A bad
argument is a GraphQL error naming the argument and the rule broken."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from graphql import GraphQLError

from strata_core import contract


class BadArgument(GraphQLError):
    def __init__(self, argument: str, rule: str):
        super().__init__(f"Argument `{argument}`: {rule}",
                         extensions={"code": "BAD_USER_INPUT", "argument": argument})


def date_range(value, argument: str = "dateRange") -> tuple[dt.date, dt.date]:
    start, end = value["start"], value["end"]
    if end < start:
        raise BadArgument(argument, f"end ({end}) is before start ({start}); the range is inclusive, "
                                    "so end must be on or after start")
    days = (end - start).days + 1
    if days > settings.STRATA_MAX_DATE_RANGE_DAYS:
        raise BadArgument(argument, f"spans {days} days; at most {settings.STRATA_MAX_DATE_RANGE_DAYS} "
                                    "days are allowed")
    return start, end


def optional_date_range(value, argument: str = "dateRange"):
    return (None, None) if value is None else date_range(value, argument)


def user_id(value: str, argument: str = "userId") -> str:
    limit = contract.FIELDS_BY_NAME["user_id"].max_length
    if not value or len(value) > limit:
        raise BadArgument(argument, f"must be 1 to {limit} characters, got {len(value or '')}")
    return value


def event_id(value: str, argument: str = "eventId") -> str:
    limit = contract.FIELDS_BY_NAME["event_id"].max_length
    if not value or len(value) > limit:
        raise BadArgument(argument, f"must be 1 to {limit} characters, got {len(value or '')}")
    return value


def event_type(value: str | None, argument: str = "eventType") -> str | None:
    if value is not None and not contract.SNAKE_CASE_NAME_RE.fullmatch(value):
        raise BadArgument(argument, f"{value!r} is not an event type; it must be lower snake case "
                                    f"({contract.SNAKE_CASE_NAME_RE.pattern})")
    return value


DEFAULT_FUNNEL_STEPS = ("view_item", "add_to_cart", "begin_checkout", "purchase")


def funnel_steps(value, argument: str = "steps") -> list[str]:
    steps = list(DEFAULT_FUNNEL_STEPS if value is None else value)
    max_steps = settings.STRATA_FUNNEL_MAX_STEPS
    if not 1 <= len(steps) <= max_steps:
        raise BadArgument(argument, f"give 1 to {max_steps} steps, got {len(steps)}")
    for step in steps:
        if step not in contract.EVENT_TYPES_BY_NAME:
            raise BadArgument(argument, f"unknown step {step!r}; known event types: "
                                        f"{', '.join(sorted(contract.EVENT_TYPES_BY_NAME))}")
    if len(set(steps)) != len(steps):
        raise BadArgument(argument, "steps must be distinct")
    return steps


def bounded_int(value: int, argument: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise BadArgument(argument, f"{value} is out of range; allowed {low} to {high}")
    return value


def as_of_date(value: dt.datetime | None, argument: str = "asOf") -> dt.date | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return value.date()
