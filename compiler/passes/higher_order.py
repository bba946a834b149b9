"""Checking the higher-order forms: functions passed by name (``function_value``),
map/scan/fold over the first axis, Stan's ODE solvers (``fpl.stdlib.ode``) and the
derivative operators grad/jacobian/hessian/jvp/vjp applied to their arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpl.compiler import ir
from fpl.compiler.passes.expressions import op
from fpl.compiler.passes.functions import instantiate
from fpl.dsl import ast
from fpl.dsl.diagnostics import did_you_mean, error
from fpl.stdlib import ode
from fpl.stdlib.types import RuleError, Ty, dim_text, dims_equal

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker

#: map/scan/fold by name (the ODE solvers, kind `ode`, go by Stan's names: `ode.FORMS`)
HIGHER_ORDER = tuple(k for k in ir.HIGHER_ORDER_KINDS if k != "ode")
DERIVATIVES = ir.DERIVATIVE_KINDS


def function_value(c: Checker, node: ast.Expr, tys: list[Ty], span) -> ir.Lambda:
    """A function passed by name (user-defined or built-in) instantiated at ``tys``."""
    if not isinstance(node, ast.Name):
        raise error("E0201", "expected the name of a function", node.span)
    name = node.id
    if name in c.functions:
        return instantiate(c, name, tys, span)
    if name in c.reg.functions:
        params = tuple(f"_x{i}" for i in range(len(tys)))
        refs: list[ir.Expr] = [ir.Ref(p, "arg", t, node.span) for p, t in zip(params, tys)]
        result = op(c, name, refs, span)
        return ir.Lambda(name, params, (), result, result.ty, node.span)
    known = set(c.functions) | set(c.reg.functions)
    raise error("E0104", f"unknown function `{name}`", node.span, help=did_you_mean(name, known))


def check_higher_order(c: Checker, e: ast.Call, kind: ir.HigherOrderKind) -> ir.Expr:
    """``map(f, xs...)``, ``scan(f, init, xs...)``, ``fold(f, init, xs...)``: sequences of
    one length along their first axis; a carry that keeps its shape."""
    need = 2 if kind == "map" else 3
    if len(e.args) < need:
        usage = "map(f, xs...)" if kind == "map" else f"{kind}(f, init, xs...)"
        raise error("E0203", f"`{kind}` needs at least {need} arguments: `{usage}`", e.span)
    args = [c.expr(a) for a in e.args[1:]]
    seqs = args if kind == "map" else args[1:]
    length = None
    for s in seqs:
        if s.ty.rank == 0:
            raise error("E0202", f"`{kind}` runs along the first axis; this is a scalar", s.span)
        if length is not None and dims_equal(length, s.ty.shape[0]) is False:
            raise error(
                "E0202",
                f"sequences of different lengths {dim_text(length)} and {dim_text(s.ty.shape[0])}",
                s.span,
            )
        length = s.ty.shape[0] if length is None else length
    elems = [s.ty.with_shape(s.ty.shape[1:]) for s in seqs]
    if kind == "map":
        lam = function_value(c, e.args[0], elems, e.span)
        return ir.HigherOrder(
            kind, lam, tuple(args), lam.ty.with_shape((length, *lam.ty.shape)), e.span
        )
    init = args[0]
    carry = Ty("real", init.ty.shape)
    lam = function_value(c, e.args[0], [carry, *elems], e.span)
    if lam.ty.rank != carry.rank or any(
        dims_equal(a, b) is False for a, b in zip(lam.ty.shape, carry.shape)
    ):
        raise error(
            "E0202",
            f"`{kind}`: the function returns {lam.ty} but the carry is {carry}",
            e.span,
            help="the function must return a value of the same shape as `init`",
        )
    ty = carry.with_shape((length, *carry.shape)) if kind == "scan" else carry
    return ir.HigherOrder(kind, lam, tuple(args), ty, e.span)


def check_ode(c: Checker, e: ast.Call, form: ode.Form) -> ir.Expr:
    """Stan's ODE solvers (fpl/stdlib/ode.py): one solver node whose ``args`` are
    ``y0, t0, ts, rel_tol, abs_tol, max_num_steps, args...`` (defaults filled in)."""
    if e.kwargs or e.conditional:
        raise error("E0203", f"`{form.name}` takes positional arguments: `{form.usage}`", e.span)
    if not e.args:
        raise error("E0203", f"`{form.name}` needs a function first: `{form.usage}`", e.span)
    args = [c.expr(a) for a in e.args[1:]]
    try:
        head, tolerances, extra = ode.arrange(form, args)
        state, ty = ode.types(form, [a.ty for a in head], [a.ty for a in tolerances or []])
    except ValueError as exc:
        raise error("E0203", str(exc), e.span) from None
    except RuleError as exc:
        raise error("E0201", exc.message, e.span) from None
    lam = function_value(c, e.args[0], [Ty("real", ()), state, *(a.ty for a in extra)], e.span)
    if lam.ty.rank != 1 or dims_equal(lam.ty.shape[0], state.shape[0]) is False:
        raise error(
            "E0202",
            f"`{form.name}`: the function returns {lam.ty} but the state y0 is {state}",
            e.args[0].span,
            help="`f(t, y, ...)` returns dy/dt, of the same shape as `y`",
        )
    if tolerances is None:
        rel, absolute, steps = form.defaults
        tolerances = [
            ir.Const(rel, Ty("real", ()), e.span),
            ir.Const(absolute, Ty("real", ()), e.span),
            ir.Const(steps, Ty("int", ()), e.span),
        ]
    c.node_count += 1
    args = [*head, *tolerances, *extra]
    return ir.HigherOrder("ode", lam, tuple(args), ty, e.span, form.name, c.node_count)


def check_derivative(c: Checker, e: ast.Call) -> ir.Expr:
    """``grad(f)(x...)`` and the other derivative operators (optionally with an argument
    number, 0-based) applied: the derivative's type from the function's."""
    inner = e.func
    assert isinstance(inner, ast.Call)  # check_call dispatches on it
    kind = ir.literal(inner.func.id, DERIVATIVES) if isinstance(inner.func, ast.Name) else None
    if kind is None:
        raise error("E0201", "only grad/jacobian/hessian/jvp/vjp(...) return functions", inner.span)
    if not 1 <= len(inner.args) <= 2 or inner.kwargs:
        raise error(
            "E0203", f"`{kind}` takes a function and optionally an argument number", inner.span
        )
    argnum = 0
    if len(inner.args) == 2:
        k = c.expr(inner.args[1])
        if not (isinstance(k, ir.Const) and k.ty.base == "int"):
            raise error(
                "E0201", "the argument number must be an integer literal", inner.args[1].span
            )
        argnum = int(k.value)
    args = [c.expr(a) for a in e.args]
    extra = 1 if kind in ("jvp", "vjp") else 0
    fargs = args[: len(args) - extra]
    if not 0 <= argnum < len(fargs):
        raise error("E0203", f"argument number {argnum} is out of range (0-based)", inner.span)
    lam = function_value(c, inner.args[0], [a.ty for a in fargs], e.span)
    wrt = fargs[argnum].ty.with_base("real")
    out = lam.ty
    if kind in ("grad", "hessian") and out.rank != 0:
        raise error("E0201", f"`{kind}` needs a function returning a scalar, not {out}", inner.span)
    if kind == "grad":
        ty = wrt
    elif kind == "hessian":
        ty = wrt.with_shape(wrt.shape + wrt.shape)
    elif kind == "jacobian":
        ty = Ty("real", out.shape + wrt.shape)
    elif kind == "jvp":
        if len(args) != len(fargs) + 1:
            raise error("E0203", "`jvp(f)(x..., v)` needs a tangent after the arguments", e.span)
        ty = Ty("real", out.shape)
    else:
        if len(args) != len(fargs) + 1:
            raise error("E0203", "`vjp(f)(x..., u)` needs a cotangent after the arguments", e.span)
        ty = wrt
    deriv = ir.Derivative(kind, lam, argnum, ty, inner.span)
    return ir.Apply(deriv, tuple(args), ty, e.span)


__all__ = [
    "DERIVATIVES",
    "HIGHER_ORDER",
    "check_derivative",
    "check_higher_order",
    "check_ode",
    "function_value",
]
