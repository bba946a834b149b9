"""Checking calls: built-in functions, user functions, distribution-function forms
(``_lpdf``, ``_rng`` ...) and Stan's ``reject``; the higher-order forms and derivatives
are ``higher_order``'s, the implicit forms fix/root/argmin ``implicit_forms``'s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fpl.compiler import ir
from fpl.compiler.passes.distributions import dist_type
from fpl.compiler.passes.expressions import op
from fpl.compiler.passes.functions import instantiate
from fpl.compiler.passes.higher_order import (
    DERIVATIVES,
    HIGHER_ORDER,
    check_derivative,
    check_higher_order,
    check_ode,
)
from fpl.compiler.passes.implicit_forms import check_implicit
from fpl.dsl import ast
from fpl.dsl.diagnostics import did_you_mean, error
from fpl.stdlib import ode
from fpl.stdlib.rules import log_prob_shape
from fpl.stdlib.types import RuleError, Ty

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker

DIST_SUFFIXES: dict[str, ir.LogProbKind | Literal["rng"]] = {
    "_lpdf": "lpdf",
    "_lpmf": "lpdf",
    "_lupdf": "lpdf",
    "_lupmf": "lpdf",
    "_lcdf": "lcdf",
    "_lccdf": "lccdf",
    "_cdf": "cdf",
    "_rng": "rng",
}


def check_call(c: Checker, e: ast.Call) -> ir.Expr:
    """A call, dispatched on what is called (see the module docstring)."""
    if isinstance(e.func, ast.Call):
        return check_derivative(c, e)
    if not isinstance(e.func, ast.Name):
        raise error("E0201", "only named functions can be called", e.func.span)
    name = e.func.id
    if name in DERIVATIVES:
        raise error(
            "E0201",
            f"`{name}(f)` is a function: call it with arguments, e.g. `{name}(f)(x)`",
            e.span,
        )
    if name in ode.FORMS:
        return check_ode(c, e, ode.FORMS[name])
    if name == "reject" and "reject" not in c.functions:
        return _reject(c, e)
    higher_order = ir.literal(name, HIGHER_ORDER) if name in HIGHER_ORDER else None
    if higher_order is not None:
        return check_higher_order(c, e, higher_order)
    # every suffix is `_` and a word without `_`: the one `name` may end with starts at
    # its last `_` (a look-up, not a test per suffix)
    at = name.rfind("_")
    kind = DIST_SUFFIXES.get(name[at:]) if at >= 0 else None
    if kind is not None and name[:at] in c.reg.distributions:
        return _dist_function(c, e, name[:at], kind)
    if e.kwargs:
        raise error("E0203", f"`{name}` takes no keyword arguments", e.kwargs[0].span)
    if e.conditional:
        raise error("E0201", f"`|` is only used in `_lpdf`/`_lpmf` calls, not in `{name}`", e.span)
    if name in c.functions:
        args = [c.expr(a) for a in e.args]
        lam = instantiate(c, name, [a.ty for a in args], e.span)
        return ir.Apply(lam, tuple(args), lam.ty, e.span)
    if name in c.reg.functions:
        return op(c, name, [c.expr(a) for a in e.args], e.span)
    # the name is unknown: say so before checking the arguments, whose errors (a
    # function passed by name, as to Stan's `ode_rk45(f, ...)`) would hide it
    if name in c.reg.distributions:
        raise error(
            "E0104",
            f"`{name}` is a distribution, not a function",
            e.func.span,
            help=f"use `y ~ {name}(...)` or `{name}_lpdf(y | ...)`",
        )
    known = set(c.reg.functions) | set(c.functions) | set(HIGHER_ORDER) | set(DERIVATIVES)
    known |= set(ode.FORMS)
    known |= {d + "_lpdf" for d in c.reg.distributions}
    known |= {d + "_rng" for d in c.reg.distributions}
    raise error(
        "E0104",
        f"unknown function `{name}`",
        e.func.span,
        label="not a function",
        help=did_you_mean(name, known),
    )


def _reject(c: Checker, e: ast.Call) -> ir.Reject:
    """Stan's ``reject("message", values...)``: the message, then the values shown after
    it.  Its type unifies with anything (``test ? reject(...) : x``): an int scalar,
    retyped to the other branch's base by the conditional."""
    first = e.args[0] if e.args else None
    if not (isinstance(first, ast.Name) and first.id.startswith('"')) or e.kwargs:
        raise error(
            "E0201",
            "`reject` takes a message first",
            e.span,
            help='write `reject("message", values...)`, e.g. '
            '`sigma > 0 ? sigma : reject("sigma must be positive, got ", sigma)`',
        )
    if e.conditional:
        raise error("E0201", "`|` is only used in `_lpdf`/`_lpmf` calls, not in `reject`", e.span)
    values = tuple([c.expr(a) for a in e.args[1:]])
    for v in values:
        if v.ty.base not in ("int", "real", "bool"):
            raise error("E0201", "`reject` shows numbers after its message", v.span)
    return ir.Reject("reject", values, Ty("int"), e.span, first.id[1:-1])


def _dist_function(
    c: Checker, e: ast.Call, base: str, kind: ir.LogProbKind | Literal["rng"]
) -> ir.Expr:
    entry = c.reg.distributions[base]
    if e.kwargs:
        raise error("E0203", "distribution functions take positional arguments", e.kwargs[0].span)
    if kind == "rng":
        if not (c.in_gen or c.in_loss):
            raise error(
                "E0207",
                f"`{base}_rng` draws random numbers: use it only in `gen` statements or a "
                "`loss` (fresh draws at every optimizer step)",
                e.span,
            )
        args = tuple([c.expr(a) for a in e.args])
        d = dist_type(c, entry, args, e.span, e.func.span)
        return ir.Rng(d, d.ty, e.span)
    if not e.args:
        raise error(
            "E0203", f"`{base}_{kind}` needs the value first: `{base}_{kind}(y | ...)`", e.span
        )
    value = c.expr(e.args[0])
    args = tuple([c.expr(a) for a in e.args[1:]])
    d = dist_type(c, entry, args, e.span, e.func.span, value=value)
    try:
        out = log_prob_shape(entry, value.ty.shape, [a.ty.shape for a in args])
    except RuleError as exc:
        raise error("E0202", exc.message, e.span) from None
    return ir.LogProb(kind, d, value, Ty("real", out), e.span)


__all__ = ["DIST_SUFFIXES", "check_call", "check_implicit"]
