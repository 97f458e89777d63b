"""SQL functions whose spelling differs between DuckDB and BigQuery.

Each is a SQLAlchemy ``FunctionElement`` compiled per dialect, so query builders stay
dialect-free. Arguments that become part of the SQL text (grain, JSON key) are vetted here.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from strata_core import contract

from .money import ExactNumeric

GRAINS = ("day", "week", "month")


class date_trunc(FunctionElement):
    """``date_trunc(grain, date)`` as a DATE; weeks start on Monday (ISO) on both warehouses."""

    type = sa.Date()
    inherit_cache = True
    name = "date_trunc"
    # The grain is part of the SQL text, so it must be part of the statement cache key.
    _traverse_internals = FunctionElement._traverse_internals + [("grain", InternalTraversal.dp_string)]

    def __init__(self, grain: str, expr):
        if grain not in GRAINS:
            raise ValueError(f"grain {grain!r}: expected one of {GRAINS}")
        self.grain = grain
        super().__init__(expr)


@compiles(date_trunc)
def _date_trunc_default(element, compiler, **kw):
    (expr,) = list(element.clauses)
    if element.grain == "day":
        return compiler.process(expr, **kw)
    return f"CAST(date_trunc('{element.grain}', {compiler.process(expr, **kw)}) AS DATE)"


@compiles(date_trunc, "bigquery")
def _date_trunc_bigquery(element, compiler, **kw):
    (expr,) = list(element.clauses)
    if element.grain == "day":
        return compiler.process(expr, **kw)
    part = {"week": "ISOWEEK", "month": "MONTH"}[element.grain]
    return f"DATE_TRUNC({compiler.process(expr, **kw)}, {part})"


class json_text(FunctionElement):
    """The JSON value at top-level ``key`` of a JSON(-text) column, as text (NULL if absent)."""

    type = sa.String()
    inherit_cache = True
    name = "json_text"
    _traverse_internals = FunctionElement._traverse_internals + [("key", InternalTraversal.dp_string)]

    def __init__(self, expr, key: str):
        if not contract.SNAKE_CASE_NAME_RE.fullmatch(key):
            raise ValueError(f"JSON key {key!r} must be snake case ({contract.SNAKE_CASE_NAME_RE.pattern})")
        self.key = key
        super().__init__(expr)


@compiles(json_text)
def _json_text_default(element, compiler, **kw):
    (expr,) = list(element.clauses)
    return f"json_extract_string({compiler.process(expr, **kw)}, '$.{element.key}')"


@compiles(json_text, "bigquery")
def _json_text_bigquery(element, compiler, **kw):
    (expr,) = list(element.clauses)
    return f"JSON_VALUE({compiler.process(expr, **kw)}, '$.{element.key}')"


class to_decimal(FunctionElement):
    """Text as DECIMAL(38, 9), or NULL when it is not a number: ``TRY_CAST`` on DuckDB,
    ``SAFE_CAST`` on BigQuery (a plain CAST would fail the whole query on one bad value)."""

    type = ExactNumeric()
    inherit_cache = True
    name = "to_decimal"


@compiles(to_decimal)
def _to_decimal_default(element, compiler, **kw):
    (expr,) = list(element.clauses)
    return f"TRY_CAST({compiler.process(expr, **kw)} AS DECIMAL(38, 9))"


@compiles(to_decimal, "bigquery")
def _to_decimal_bigquery(element, compiler, **kw):
    (expr,) = list(element.clauses)
    return f"SAFE_CAST({compiler.process(expr, **kw)} AS NUMERIC)"


class earliest_at_or_after(FunctionElement):
    """DuckDB only: the smallest element of a list that is >= ``bound`` (NULL if none).

    Lets the funnel take each user's event times once (``list(...) FILTER``) instead of one join
    per step; see ``queries.conversion_funnel``.
    """

    type = sa.DateTime(timezone=True)
    inherit_cache = True
    name = "earliest_at_or_after"


@compiles(earliest_at_or_after)
def _earliest_default(element, compiler, **kw):
    raise sa.exc.CompileError("earliest_at_or_after is only available on DuckDB")


@compiles(earliest_at_or_after, "duckdb")
def _earliest_duckdb(element, compiler, **kw):
    values, bound = list(element.clauses)
    return (f"list_min(list_filter({compiler.process(values, **kw)}, "
            f"lambda x: x >= {compiler.process(bound, **kw)}))")
