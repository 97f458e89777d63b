"""Query text -> a validated document, with a bound before every step that could be expensive.

1. ``parse(..., max_tokens=STRATA_GRAPHQL_MAX_TOKENS)``: graphql-core stops lexing at the bound,
   so a 1.5 MB query of aliases costs nothing (the request body is bounded before this too).
2. :func:`shape_errors`: one linear pass over the document, with each fragment measured once
   (a memo), bounds aliases, directives and the number of fields after fragment expansion. A
   chain of fragments that each spread the next twice is refused here, before any rule that
   would walk every expansion (graphene's depth rule does).
3. graphql-core's ``specified_rules``; then graphene's ``DisableIntrospection`` (when
   introspection is off) and ``depth_limit_validator``, which are only safe to run on a valid,
   bounded document (the depth rule follows fragment spreads without a memo).

Validated documents are kept in a per-process LRU bounded by an estimate of their bytes
(:data:`AST_BYTES_PER_SOURCE_BYTE` times the query length, measured with ``tracemalloc`` on
graphql-core 3.2), so many distinct large queries cannot grow a worker without bound.

Every error carries ``extensions.code``; a literal argument value of the wrong type also names
the ``argument`` (the same shape as every other bad argument, see ``planning``).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict

from graphene.validation import DisableIntrospection, depth_limit_validator
from graphql import GraphQLError, parse, specified_rules, validate
from graphql.language import (ArgumentNode, DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode,
                              InlineFragmentNode, ListValueNode, ObjectValueNode, OperationDefinitionNode,
                              VariableNode)
from graphql.validation import ValuesOfCorrectTypeRule

from .conf import conf

#: Bytes of AST per byte of query text (measured: 55-70 for small and alias-heavy queries).
AST_BYTES_PER_SOURCE_BYTE = 80

# ``did_you_mean`` reads this module global; 0 turns every "Did you mean ...?" off.
_did_you_mean = sys.modules["graphql.pyutils.did_you_mean"]


def error(message: str, code: str, nodes=None, **extensions) -> dict:
    """A formatted GraphQL error with a code (and ``locations`` when nodes are given)."""
    formatted = GraphQLError(message, nodes).formatted
    formatted["extensions"] = {"code": code, **extensions}
    return formatted


class _ValuesOfCorrectType(ValuesOfCorrectTypeRule):
    """graphql-core's rule, but an error a scalar raises itself (graphene's ``Date`` does: "Date
    cannot represent value: 'yesterday'") keeps the value's location, so that it can name the
    argument like every other bad argument."""

    _node = None

    def is_valid_value_node(self, node) -> None:
        self._node = node
        super().is_valid_value_node(node)

    def report_error(self, error: GraphQLError) -> None:
        if not error.nodes and self._node is not None:
            error = GraphQLError(error.message, [self._node], original_error=error.original_error)
        super().report_error(error)


RULES = [_ValuesOfCorrectType if rule is ValuesOfCorrectTypeRule else rule for rule in specified_rules]


@dataclasses.dataclass(frozen=True)
class Prepared:
    document: DocumentNode | None
    errors: list[dict]


def _policy() -> tuple:
    return (conf().STRATA_GRAPHQL_MAX_TOKENS, conf().STRATA_GRAPHQL_MAX_FIELDS,
            conf().STRATA_GRAPHQL_MAX_ALIASES, conf().STRATA_GRAPHQL_MAX_DIRECTIVES,
            conf().STRATA_GRAPHQL_MAX_DEPTH, conf().STRATA_GRAPHQL_INTROSPECTION,
            conf().STRATA_GRAPHQL_SUGGESTIONS)


class _DocumentCache:
    def __init__(self):
        self._entries: OrderedDict[tuple, tuple[int, Prepared]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        entry = self._entries.get(key)
        if entry is not None:
            try:
                self._entries.move_to_end(key)
            except KeyError:
                pass
            return entry[1]
        return None

    def put(self, key, size: int, prepared: Prepared) -> None:
        budget = conf().STRATA_PARSE_CACHE_BYTES
        if size > budget // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[0]
            self._entries[key] = (size, prepared)
            self._bytes += size
            while self._bytes > budget and self._entries:
                _key, (dropped, _p) = self._entries.popitem(last=False)
                self._bytes -= dropped

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


cache = _DocumentCache()


def prepare(query: str, schema) -> Prepared:
    """The validated document for ``query`` (memoised), or the errors that refuse it."""
    key = (query, _policy())
    prepared = cache.get(key)
    if prepared is None:
        prepared = _prepare(query, schema)
        size = len(query) * (AST_BYTES_PER_SOURCE_BYTE if prepared.document is not None else 1) + 200
        cache.put(key, size, prepared)
    return prepared


def _prepare(query: str, schema) -> Prepared:
    try:
        document = parse(query, max_tokens=conf().STRATA_GRAPHQL_MAX_TOKENS)
    except GraphQLError as exc:
        too_long = "Parsing aborted" in exc.message
        return Prepared(None, [{**exc.formatted, "extensions": {
            "code": "QUERY_TOO_LARGE" if too_long else "GRAPHQL_PARSE_FAILED",
            **({"maxTokens": conf().STRATA_GRAPHQL_MAX_TOKENS} if too_long else {})}}])
    shape = shape_errors(document)
    if shape:
        return Prepared(None, shape)
    _did_you_mean.MAX_LENGTH = 5 if conf().STRATA_GRAPHQL_SUGGESTIONS else 0
    errors = validate(schema, document, RULES, max_errors=20)
    if errors:
        arguments = _argument_values(document)
        return Prepared(None, [_validation_error(e, arguments) for e in errors])
    if not conf().STRATA_GRAPHQL_INTROSPECTION:
        errors = validate(schema, document, [DisableIntrospection], max_errors=5)
        if errors:
            return Prepared(None, [{**e.formatted, "extensions": {"code": "INTROSPECTION_DISABLED"}}
                                   for e in errors])
    limit = conf().STRATA_GRAPHQL_MAX_DEPTH
    errors = validate(schema, document, [depth_limit_validator(limit)], max_errors=5)
    if errors:
        return Prepared(None, [{**e.formatted, "extensions": {"code": "QUERY_TOO_DEEP", "maxDepth": limit}}
                               for e in errors[:1]])
    return Prepared(document, [])


def _validation_error(exc: GraphQLError, arguments: list) -> dict:
    ids = {id(n) for n in exc.nodes or ()}
    argument = next((name for node, name in arguments if id(node) in ids), None)
    if argument is not None:
        return {**exc.formatted, "extensions": {"code": "BAD_USER_INPUT", "argument": argument}}
    return {**exc.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}


def argument_using_variable(document: DocumentNode, variable: str) -> str | None:
    """The name of the first argument whose value is (or contains) ``$variable``."""
    return next((name for node, name in _argument_values(document)
                 if isinstance(node, VariableNode) and node.name.value == variable), None)


def _argument_values(document: DocumentNode) -> list:
    """(value node, name of the argument it is or is part of), for every argument value."""
    out: list = []

    def values(node, name):
        out.append((node, name))
        if isinstance(node, ListValueNode):
            for item in node.values:
                values(item, name)
        elif isinstance(node, ObjectValueNode):
            for field in node.fields:
                values(field.value, name)

    stack = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, ArgumentNode):
            values(node.value, node.name.value)
            continue
        for child in (*(getattr(node, "arguments", None) or ()), *(getattr(node, "directives", None) or ())):
            stack.append(child)
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return out


def shape_errors(document: DocumentNode) -> list[dict]:
    """Aliases, directives and expanded fields over their bounds (linear in the document)."""
    max_fields = conf().STRATA_GRAPHQL_MAX_FIELDS
    aliases = directives = 0
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    expanded: dict[str, int] = {}

    def size(selection_set, visiting: frozenset) -> int:
        """Fields in a selection set with every fragment spread expanded (memoised per fragment;
        saturates just above the bound so that counts stay small)."""
        nonlocal aliases, directives
        total = 0
        for sel in selection_set.selections:
            directives += len(sel.directives or ())
            if isinstance(sel, FieldNode):
                aliases += sel.alias is not None
                total += 1 + (size(sel.selection_set, visiting) if sel.selection_set else 0)
            elif isinstance(sel, InlineFragmentNode):
                total += size(sel.selection_set, visiting)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in visiting or name not in fragments:
                    continue  # cycles and unknown fragments: the validation rules report them
                if name not in expanded:
                    expanded[name] = size(fragments[name].selection_set, visiting | {name})
                total += expanded[name]
            if total > max_fields:
                return max_fields + 1
        return total

    worst = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            directives += len(definition.directives or ())
            worst = max(worst, size(definition.selection_set, frozenset()))
    for name, fragment in fragments.items():
        directives += len(fragment.directives or ())
        if name not in expanded:  # unused fragments are still parsed and validated
            expanded[name] = size(fragment.selection_set, frozenset({name}))
    errors = []
    if worst > max_fields:
        errors.append(error(f"The operation selects more than {max_fields} fields once fragments are "
                            "expanded; split it into smaller queries.", "QUERY_TOO_COMPLEX", maxFields=max_fields))
    if aliases > conf().STRATA_GRAPHQL_MAX_ALIASES:
        errors.append(error(f"The document has {aliases} aliases; at most {conf().STRATA_GRAPHQL_MAX_ALIASES} "
                            "are allowed.", "QUERY_TOO_COMPLEX", maxAliases=conf().STRATA_GRAPHQL_MAX_ALIASES))
    if directives > conf().STRATA_GRAPHQL_MAX_DIRECTIVES:
        errors.append(error(f"The document has {directives} directives; at most "
                            f"{conf().STRATA_GRAPHQL_MAX_DIRECTIVES} are allowed.", "QUERY_TOO_COMPLEX",
                            maxDirectives=conf().STRATA_GRAPHQL_MAX_DIRECTIVES))
    return errors
