"""Exact money, from the warehouse row to the response text.

* :class:`ExactNumeric` is the SQLAlchemy type of every money column and aggregate. The DuckDB
  dialect reports no native decimal support, so SQLAlchemy's ``Numeric`` would turn each
  DECIMAL(38, 9) into a float and back (``123456789.12`` came back as ``123456789.120000005``);
  this type hands the driver's ``Decimal`` through untouched, and refuses a float.
* Arithmetic in Python uses :data:`CONTEXT` (80 significant digits): Python's default context
  has 28, which rounds sums of DECIMAL(38, 9) values.
* :func:`fixed` is the one text form of money: a plain decimal with exactly 9 decimal places
  (``"0.000000000"``, ``"12.500000000"``), never an exponent.
"""

from __future__ import annotations

import decimal

import sqlalchemy as sa

from strata_core import contract

CONTEXT = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_UP,
                          traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])
QUANTUM = decimal.Decimal(1).scaleb(-contract.AMOUNT_SCALE)
ZERO = decimal.Decimal(0)


def exact(value) -> decimal.Decimal:
    """``value`` (a Decimal, an int or decimal text) as a Decimal; a float is a bug upstream."""
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, float):
        raise TypeError(f"money must never pass through a float (got {value!r})")
    return decimal.Decimal(value if isinstance(value, (int, str)) else str(value))


def add(values) -> decimal.Decimal:
    total = ZERO
    for value in values:
        if value is not None:
            total = CONTEXT.add(total, exact(value))
    return total


def subtract(a, b) -> decimal.Decimal:
    return CONTEXT.subtract(exact(a), exact(b))


def divide(total, count: int) -> decimal.Decimal:
    """``total / count`` rounded half away from zero to 9 decimal places (mart.business_metrics.aov's rule)."""
    return CONTEXT.divide(exact(total), decimal.Decimal(count)).quantize(QUANTUM, context=CONTEXT)


def fixed(value) -> str:
    """The response text of a money value: exactly 9 decimal places, no exponent."""
    return format(exact(value).quantize(QUANTUM, context=CONTEXT), "f")


class ExactNumeric(sa.Numeric):
    """NUMERIC/DECIMAL(38, 9) read as an exact ``Decimal`` on every dialect."""

    cache_ok = True

    def __init__(self):
        super().__init__(contract.AMOUNT_PRECISION, contract.AMOUNT_SCALE, asdecimal=True)

    def result_processor(self, dialect, coltype):
        def process(value):
            return None if value is None else exact(value)
        return process
