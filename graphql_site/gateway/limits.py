"""Limits that refuse expensive queries before anything runs.

* Depth (``QueryDepthRule``, a graphql-core validation rule): nesting of selection sets,
  through fragments. Introspection fields (``__schema``, ``__type``) are not counted; whether
  introspection is allowed at all is a separate setting.
* Complexity (``complexity()``): every field costs 1, every root field (a warehouse query) 10
  more, and a field with a ``limit`` or ``first`` argument multiplies the cost of its selection
  by that number (at most the argument's cap). It is checked after validation, with the request's variables, because a
  ``limit: $n`` cannot be priced without the value of ``$n``; a variable that is not given
  counts as the largest value the argument allows.
"""

from __future__ import annotations

from django.conf import settings
from graphql import GraphQLError, ValidationRule
from graphql.language import (DocumentNode, FieldNode, FragmentSpreadNode, InlineFragmentNode, IntValueNode,
                              OperationDefinitionNode, VariableNode)

ROOT_FIELD_COST = 10


def _cap(arg_name: str) -> int:
    return {"limit": settings.STRATA_USER_EVENTS_MAX_LIMIT,
            "first": settings.STRATA_TRAINING_PAGE_MAX}.get(arg_name, 1)


class _Walker:
    def __init__(self, fragments, variables: dict | None):
        self.fragments = fragments
        self.variables = variables

    def multiplier(self, field: FieldNode) -> int:
        for arg in field.arguments or ():
            name = arg.name.value
            if name not in ("limit", "first"):
                continue
            value = None
            if isinstance(arg.value, IntValueNode):
                value = int(arg.value.value)
            elif isinstance(arg.value, VariableNode) and self.variables is not None:
                value = self.variables.get(arg.value.name.value)
            if not isinstance(value, int) or isinstance(value, bool):
                value = _cap(name)
            # Over the cap is the resolver's argument error, which names the argument.
            return max(1, min(value, _cap(name)))
        return 1

    def measure(self, selection_set, depth: int, visiting: frozenset) -> tuple[int, int]:
        """(max depth, cost) of a selection set at ``depth``."""
        if selection_set is None:
            return depth, 0
        max_depth, cost = depth, 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.name.value.startswith("__"):
                    continue
                d, c = self.measure(sel.selection_set, depth + 1, visiting)
                max_depth = max(max_depth, d)
                cost += 1 + self.multiplier(sel) * c + (ROOT_FIELD_COST if depth == 0 else 0)
            elif isinstance(sel, InlineFragmentNode):
                d, c = self.measure(sel.selection_set, depth, visiting)
                max_depth, cost = max(max_depth, d), cost + c
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in visiting:  # other rules report these
                    continue
                d, c = self.measure(fragment.selection_set, depth, visiting | {name})
                max_depth, cost = max(max_depth, d), cost + c
        return max_depth, cost


def _fragments(document: DocumentNode) -> dict:
    return {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}


def _name(node: OperationDefinitionNode) -> str:
    return node.name.value if node.name else "anonymous"


class QueryDepthRule(ValidationRule):
    """Refuses operations nested deeper than ``STRATA_GRAPHQL_MAX_DEPTH``."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args):
        depth, _cost = _Walker(_fragments(self.context.document), None).measure(node.selection_set, 0, frozenset())
        limit = settings.STRATA_GRAPHQL_MAX_DEPTH
        if depth > limit:
            self.report_error(GraphQLError(
                f"Operation '{_name(node)}' is nested {depth} levels deep; the maximum depth is {limit}.",
                node, extensions={"code": "QUERY_TOO_DEEP", "depth": depth, "maxDepth": limit}))


def complexity_error(document: DocumentNode, operation_name: str | None, variables: dict | None) -> GraphQLError | None:
    """An error when the operation that will run costs more than ``STRATA_GRAPHQL_MAX_COMPLEXITY``."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    walker = _Walker(_fragments(document), variables or {})
    limit = settings.STRATA_GRAPHQL_MAX_COMPLEXITY
    for node in operations[:1] if len(operations) == 1 else []:
        _depth, cost = walker.measure(node.selection_set, 0, frozenset())
        if cost > limit:
            return GraphQLError(
                f"Operation '{_name(node)}' has complexity {cost}; the maximum is {limit} "
                "(lower `limit`/`first`, or split the query).",
                node, extensions={"code": "QUERY_TOO_COMPLEX", "complexity": cost, "maxComplexity": limit})
    return None
