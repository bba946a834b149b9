"""Values the checker can decide from the program text alone: literal numbers (unary
minus and plus folded), and the rules on them that would otherwise fail silently at run
time — bounds that are not finite or not ordered, integer division by zero, sizes too
large to allocate."""

from __future__ import annotations

import math

from fpl.compiler import ir
from fpl.dsl.diagnostics import error
from fpl.dsl.spans import Span

#: the most elements one declared value may have (2^31 - 1: 16 GiB of float64, past any
#: model that fits in memory); a larger literal or data size is E0202, not an attempt
#: to allocate it
MAX_ELEMENTS = 2**31 - 1


def literal_value(expr: ir.Expr | None) -> float | int | None:
    """The number ``expr`` denotes when it is a scalar literal, possibly under unary
    minus or plus (``-1``, ``-(2.5)``); else None."""
    sign = 1
    while isinstance(expr, ir.Op) and expr.name in ("neg", "pos") and len(expr.args) == 1:
        if expr.name == "neg":
            sign = -sign
        expr = expr.args[0]
    if isinstance(expr, ir.Const) and not expr.ty.shape and not isinstance(expr.value, bool):
        return sign * expr.value
    return None


def check_literal_bounds(constraint: ir.Constraint, span: Span) -> None:
    """Bounds written as literals are finite and ordered (E0204)."""
    values = {}
    for side in ("lower", "upper"):
        bound = getattr(constraint, side)
        value = literal_value(bound)
        if value is None:
            continue
        if not math.isfinite(value):
            raise error(
                "E0204",
                f"the {side} bound is {value}",
                bound.span if bound is not None else span,
                help="bounds must be finite; leave the bound out for an unbounded side",
            )
        values[side] = value
    if len(values) == 2 and not values["lower"] < values["upper"]:
        raise error(
            "E0204",
            f"the lower bound {values['lower']:g} is not below the upper bound {values['upper']:g}",
            span,
        )


def check_size(dims: tuple, span: Span) -> None:
    """A declared shape of known sizes holds at most ``MAX_ELEMENTS`` elements (E0202)."""
    count = 1
    for dim in dims:
        if isinstance(dim, int):
            count *= dim
    if count > MAX_ELEMENTS:
        raise error(
            "E0202",
            f"a value of {count} elements is too large (at most {MAX_ELEMENTS})",
            span,
        )


def check_division(name: str, args: list[ir.Expr], span: Span) -> None:
    """Integer ``%`` and ``/`` by a literal zero are errors (E0208), as in Stan."""
    if name not in ("mod", "div") or len(args) != 2:
        return
    left, right = args
    if left.ty.base == "int" and right.ty.base == "int" and literal_value(right) == 0:
        what = "`%`" if name == "mod" else "`/`"
        raise error("E0208", f"integer {what} by zero", right.span, label="this is zero")


__all__ = [
    "MAX_ELEMENTS",
    "check_division",
    "check_literal_bounds",
    "check_size",
    "literal_value",
]
