"""Before anything runs: coerce the variables, check every root field's arguments, price the
request, and refuse it whole if anything is wrong.

Each root field has a *planner* (``analytics.schema.PLANNERS``, ``metrics.schema.PLANNERS``):
``planner(arguments, context) -> Planned``. It checks the arguments (raising ``BadArgument``,
which names the argument and the rule), returns the normalised values the resolver will use,
and the field's cost:

    cost = ROOT_FIELD_COST + days x max(1, steps) + rows

where ``days`` is the length of its date range, ``steps`` the funnel's steps, and ``rows`` a
``limit`` or ``first``. The request's cost is the sum over its root fields (aliases included),
and a request over ``STRATA_GRAPHQL_MAX_COST`` is refused before any SQL runs. The limits agree:
:func:`check_budget` (run at start-up) refuses settings under which a single field within its
own argument limits would be over the budget.

A bad argument, a variable of the wrong type and a literal of the wrong type all get the same
answer: HTTP 400, no ``data``, and errors with ``extensions: {code: BAD_USER_INPUT, argument}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from django.core.exceptions import ImproperlyConfigured
from graphene.utils.str_converters import to_snake_case
from graphql import GraphQLError
from graphql.execution.collect_fields import collect_fields
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.language import FragmentDefinitionNode, OperationType
from graphql.utilities import get_operation_ast

from .conf import conf
from .documents import argument_using_variable, error

ROOT_FIELD_COST = 10


def cost(days: int = 0, steps: int = 0, rows: int = 0) -> int:
    return ROOT_FIELD_COST + days * max(1, steps) + rows


def largest_single_field_cost() -> int:
    """The cost of the most expensive root field with every argument at its limit."""
    return cost(conf().STRATA_MAX_DATE_RANGE_DAYS, conf().STRATA_FUNNEL_MAX_STEPS,
                max(conf().STRATA_USER_EVENTS_MAX_LIMIT, conf().STRATA_TRAINING_PAGE_MAX))


def check_budget() -> None:
    largest = largest_single_field_cost()
    if largest > conf().STRATA_GRAPHQL_MAX_COST:
        raise ImproperlyConfigured(
            f"STRATA_GRAPHQL_MAX_COST={conf().STRATA_GRAPHQL_MAX_COST} is below {largest}, the cost of one "
            "field with its arguments at their limits (STRATA_MAX_DATE_RANGE_DAYS, STRATA_FUNNEL_MAX_STEPS, "
            "STRATA_USER_EVENTS_MAX_LIMIT, STRATA_TRAINING_PAGE_MAX): such a field could never run. "
            "Raise the budget or lower those limits.")


@dataclasses.dataclass(frozen=True)
class Planned:
    values: dict
    cost: int
    #: False when the result depends on more than (data version, query): e.g. admin-edited metrics.
    response_cacheable: bool = True


Planner = Callable[[dict, Any], Planned]


@dataclasses.dataclass
class Plan:
    fields: dict[str, Planned]  # by response key (alias or name)
    cost: int

    @property
    def response_cacheable(self) -> bool:
        return all(p.response_cacheable for p in self.fields.values())


class Refused(Exception):
    """The request is refused before execution; ``errors`` are formatted GraphQL errors."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors[0]["message"] if errors else "refused")
        self.errors = errors


def plan(schema, document, operation_name: str | None, variables: dict | None, context,
         planners: dict[str, Planner]) -> Plan:
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (f"Unknown operation named '{operation_name}'." if operation_name else
                   "Must provide operation name if query contains multiple operations.")
        raise Refused([error(message, "OPERATION_RESOLUTION_FAILURE")])
    if operation.operation != OperationType.QUERY:
        raise Refused([error(f"Only queries are supported, not {operation.operation.value}s.",
                             "OPERATION_RESOLUTION_FAILURE")])
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {}, max_errors=10,
                                  hide_suggestions=not conf().STRATA_GRAPHQL_SUGGESTIONS)
    if isinstance(coerced, list):
        raise Refused([_variable_error(e, document) for e in coerced])
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    query_type = schema.query_type
    fields = collect_fields(schema, fragments, coerced, query_type, operation.selection_set)
    planned: dict[str, Planned] = {}
    errors: list[dict] = []
    total = 0
    for response_key, nodes in fields.items():
        name = nodes[0].name.value
        if name.startswith("__"):
            total += 1
            continue
        try:
            arguments = get_argument_values(query_type.fields[name], nodes[0], coerced)
            p = planners[name]({to_snake_case(k): v for k, v in arguments.items()}, context)
        except GraphQLError as exc:
            extensions = {"code": "BAD_USER_INPUT", **(exc.extensions or {})}
            errors.append(GraphQLError(exc.message, nodes[:1], extensions=extensions).formatted)
            continue
        planned[response_key] = p
        total += p.cost
    if errors:
        raise Refused(errors)
    limit = conf().STRATA_GRAPHQL_MAX_COST
    if total > limit:
        raise Refused([error(
            f"This request costs {total}; at most {limit} is allowed. A root field costs {ROOT_FIELD_COST}, plus "
            "one per day of its date range (times the funnel's steps) and one per row of `limit`/`first`: "
            "use shorter ranges, fewer fields, or split the request.",
            "QUERY_TOO_COMPLEX", [operation], cost=total, maxCost=limit)])
    return Plan(planned, total)


def _variable_error(exc: GraphQLError, document) -> dict:
    """A variable that does not coerce: named, with the argument it is given to."""
    formatted = exc.formatted
    node = (exc.nodes or [None])[0]
    variable = getattr(getattr(getattr(node, "variable", None), "name", None), "value", None)
    extensions = {"code": "BAD_USER_INPUT"}
    argument = argument_using_variable(document, variable) if variable else None
    if argument:
        extensions["argument"] = argument
    if variable:
        extensions["variable"] = variable
    formatted["extensions"] = extensions
    return formatted


def planned(info) -> dict:
    """The checked, normalised arguments of the root field being resolved."""
    return info.context.plan.fields[info.path.key].values
