"""Written types and sizes: a declaration's type expression (``real<lower=0>[N]``,
``simplex[K]``, ``contractive<bound=0.9>[H, H]``) as a ``Ty`` and the ``Constraint`` that
unconstrains it, with its sizes checked to be known before the model runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpl.compiler import ir
from fpl.compiler.passes.literals import check_literal_bounds, check_size
from fpl.compiler.passes.types import STRUCTURED
from fpl.dsl import ast
from fpl.dsl.diagnostics import did_you_mean, error
from fpl.stdlib.types import INT, REAL, Dim, RuleError, Ty, broadcast, dim_text, dims_equal

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker


def type_expr(
    c: Checker, t: ast.TypeExpr, allow_params: bool, weight: bool = False
) -> tuple[Ty, ir.Constraint]:
    """The type and constraint a type expression declares; its bounds are data
    expressions (or, with ``allow_params``, any expression), ``weight`` admits the
    weight-only types."""
    if t.base in ir.WELL_POSED_KINDS:
        return well_posed_type(c, t, weight)
    if t.base in STRUCTURED and t.bounds:
        raise error("E0204", f"`{t.base}` takes no options", t.bounds[0].span)
    if t.base in STRUCTURED:
        # `simplex[K]` is one simplex; `simplex[M, K]` an array of M of them: the sizes
        # before the last are the array's (as in `real[M, K]`, M rows of K)
        rank, structured = STRUCTURED[t.base]
        if not t.shape:
            raise error("E0204", f"`{t.base}` takes a size, e.g. `{t.base}[K]`", t.span)
        *outer, k = (size(c, d) for d in t.shape)
        check_size((*outer, *(k,) * rank), t.span)
        return Ty("real", (*outer, *(k,) * rank)), ir.Constraint(structured)
    shape = tuple(size(c, d) for d in t.shape)
    check_size(shape, t.span)
    ty = Ty(t.base, shape)
    lower = upper = None
    for b in t.bounds:
        if b.name not in ("lower", "upper"):
            raise error(
                "E0204",
                f"unknown bound `{b.name}`",
                b.span,
                help=did_you_mean(b.name, ["lower", "upper"]),
            )
        value = c.expr(b.value)
        no_params(c, value, allow_params, "a bound")
        if value.ty.base not in ("int", "real"):
            raise error("E0201", "a bound must be a number", b.span)
        try:
            broadcast(value.ty.shape, shape)
        except RuleError as exc:
            raise error("E0202", f"bound `{b.name}`: {exc.message}", b.span) from None
        if b.name == "lower":
            lower = value
        else:
            upper = value
    kind: ir.BoundKind = (
        "interval"
        if lower is not None and upper is not None
        else "lower"
        if lower is not None
        else "upper"
        if upper is not None
        else "real"
    )
    constraint = ir.Constraint(kind, lower, upper)
    check_literal_bounds(constraint, t.span)
    return ty, constraint


def well_posed_type(c: Checker, t: ast.TypeExpr, weight: bool) -> tuple[Ty, ir.Constraint]:
    """``contractive<bound=c>[H, H]`` / ``monotone<margin=m>[H]``: an H x H weight
    whose fixed-point layers are well posed (compiler/transforms.py); the option is
    a data expression kept in the ``Constraint`` (bound as upper, margin as lower)."""
    from fpl.compiler.transforms import WELL_POSED_OPTIONS

    option, side, default = WELL_POSED_OPTIONS[t.base]
    if not weight:
        raise error(
            "E0204",
            f"`{t.base}` is a weight type",
            t.span,
            help=f"declare `weight W: {t.base}[...] init ...`: its map onto the set is "
            "not one-to-one, so it has no density (no Jacobian) and cannot be a param",
        )
    sizes = tuple(size(c, d) for d in t.shape)
    want = 2 if t.base == "contractive" else 1
    if len(sizes) != want or (want == 2 and dims_equal(sizes[0], sizes[1]) is False):
        example = "contractive[H, H]" if want == 2 else "monotone[H]"
        raise error(
            "E0202",
            f"`{t.base}` is a square matrix: write `{example}`",
            t.span,
            help=f"got [{', '.join(dim_text(d) for d in sizes)}]",
        )
    shape = (sizes[0], sizes[0])
    check_size(shape, t.span)
    value = None
    for b in t.bounds:
        if b.name != option:
            raise error(
                "E0204",
                f"`{t.base}` takes the option `{option}`, not `{b.name}`",
                b.span,
                help=f"e.g. `{t.base}<{option}={default}>`",
            )
        value = c.expr(b.value)
        no_params(c, value, False, "an option")
        if value.ty not in (INT, REAL):
            raise error("E0201", f"`{option}` must be a number", b.span)
        bad = isinstance(value, ir.Const) and not (
            0 < value.value < 1 if option == "bound" else 0 < value.value <= 1
        )
        if bad:
            allowed = "0 < bound < 1" if option == "bound" else "0 < margin <= 1"
            raise error("E0204", f"`{option}` must satisfy {allowed}", b.span)
    kind: ir.WellPosedKind = "contractive" if t.base == "contractive" else "monotone"
    if side == "upper":
        return Ty("real", shape), ir.Constraint(kind, upper=value)
    return Ty("real", shape), ir.Constraint(kind, lower=value)


def size(c: Checker, e: ast.Expr) -> Dim:
    """A written size: an integer known before the model runs, not negative."""
    value = c.expr(e)
    if value.ty != INT:
        raise error("E0201", f"a size must be an integer, not {value.ty}", e.span)
    dim = c.static(value)
    if dim is None:
        raise error(
            "E0201",
            "a size must be known before the model runs",
            e.span,
            label="not a literal or data integer",
            help="sizes may be literals, `data` integers, integer `let`s of data only "
            "(`let K = max(y)`), or + - * of those",
        )
    if isinstance(dim, int) and dim < 0:
        raise error("E0202", f"negative size {dim}", e.span)
    return dim


def no_params(c: Checker, value: ir.Expr, allow_params: bool, what: str) -> None:
    """Unless ``allow_params``, E0201 where ``value`` reads anything but data."""
    if allow_params:
        return
    for node in ir.walk(value):
        if isinstance(node, ir.Ref) and node.kind not in ("data",):
            raise error(
                "E0201",
                f"{what} of data may only use data, not the {node.kind} `{node.name}`",
                node.span,
            )


__all__ = ["no_params", "size", "type_expr", "well_posed_type"]
