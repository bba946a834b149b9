"""Statements and declarations: each top-level statement checked, its names declared in
the checker's scope, and turned into IR statements (a prior becomes a declaration and an
observe); a param's declared support checked against its prior's."""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from fpl.compiler import ir
from fpl.compiler.passes.declared_types import type_expr
from fpl.compiler.passes.distributions import distribution
from fpl.compiler.passes.functions import instantiate
from fpl.compiler.passes.scope import Symbol
from fpl.dsl import ast
from fpl.dsl.diagnostics import InternalError, error
from fpl.stdlib.registry import Bound, DistributionEntry
from fpl.stdlib.types import REAL, RuleError, Ty, broadcast

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker


def statement(c: Checker, s: ast.Stmt) -> list[ir.Stmt]:
    """One top-level statement checked, its name declared: its IR statements."""
    match s:
        case ast.DataDecl():
            ty, cons = type_expr(c, s.type, allow_params=False)
            c.declare(s.name, Symbol("data", ty, s.span))
            return [ir.DataDecl(s.name, ty, cons, s.span)]
        case ast.ParamDecl():
            return param_decl(c, s)
        case ast.WeightDecl():
            ty, cons = type_expr(c, s.type, allow_params=False, weight=True)
            if ty.base != "real":
                raise error("E0201", "a weight must be real", s.type.span)
            init = weight_init(c, s, ty)
            c.declare(s.name, Symbol("weight", ty, s.span))
            return [ir.WeightDecl(s.name, ty, cons, init, s.span)]
        case ast.Let():
            value = c.expr(s.value)
            sym = Symbol("local", value.ty, s.span, _implicit(value), c.data_only(value))
            c.declare(s.name, sym)
            return [ir.Let(s.name, value, s.span)]
        case ast.Out():
            value = c.expr(s.value)
            c.declare(s.name, Symbol("out", value.ty, s.span, _implicit(value)))
            return [ir.Out(s.name, value, s.span)]
        case ast.Tilde():
            value = c.expr(s.lhs)
            dist = distribution(c, s.dist, value=value)
            return [ir.Observe(value, dist, s.span)]
        case ast.Target() | ast.Loss():
            c.in_loss = isinstance(s, ast.Loss)
            try:
                value = c.expr(s.value)
            finally:
                c.in_loss = False
            if value.ty.base not in ("int", "real"):
                raise error("E0201", f"cannot add a {value.ty.base} to the log density", s.span)
            if isinstance(s, ast.Loss):
                value = ir.Op("neg", (value,), Ty("real", value.ty.shape), value.span)
            return [ir.Factor(value, s.span)]
        case ast.GenTilde():
            c.in_gen = True
            try:
                dist = distribution(c, s.dist)
            finally:
                c.in_gen = False
            c.declare(s.name, Symbol("gen", dist.ty, s.span))
            return [ir.GenDraw(s.name, dist, s.span)]
        case ast.GenLet():
            c.in_gen = True
            try:
                value = c.expr(s.value)
            finally:
                c.in_gen = False
            c.declare(s.name, Symbol("gen", value.ty, s.span))
            return [ir.GenLet(s.name, value, s.span)]
        case ast.FnDef():
            return fn_def(c, s)
        case ast.Import():
            raise error("E0106", "imports must be resolved before checking", s.span)
        case _:
            assert_never(s)


def param_decl(c: Checker, s: ast.ParamDecl) -> list[ir.Stmt]:
    """A param: its declaration, and its prior as an observe (the type, if not written,
    is the prior's, with the prior's support as its constraint)."""
    if s.type is not None:
        ty, cons = type_expr(c, s.type, allow_params=True)
        if ty.base != "real":
            raise error(
                "E0201",
                "parameters must be real",
                s.type.span,
                help="discrete parameters are not supported: marginalise them out",
            )
    prior = None
    if s.prior is not None:
        target_ty = ty if s.type is not None else None
        prior = distribution(c, s.prior, value_ty=target_ty)
        entry = c.reg.distributions[prior.name]
        if entry.support.discrete:
            raise error(
                "E0201",
                f"`{s.name}` has the discrete prior `{prior.name}`",
                s.prior.span,
                help="discrete parameters are not supported: marginalise them out",
            )
        if s.type is None:
            ty = prior.ty
            cons = support_constraint(c, entry, prior)
        else:
            check_support(c, s, cons, entry)
    elif s.type is None:
        raise error(
            "E0201",
            f"parameter `{s.name}` needs a type or a prior",
            s.span,
            help=f"write `param {s.name}: real` or `param {s.name} ~ normal(0, 1)`",
        )
    c.declare(s.name, Symbol("param", ty, s.span))
    out: list[ir.Stmt] = [ir.ParamDecl(s.name, ty, cons, s.span)]
    if prior is not None:
        out.append(ir.Observe(ir.Ref(s.name, "param", ty, s.span), prior, s.span))
    return out


def support_constraint(c: Checker, entry: DistributionEntry, d: ir.Dist) -> ir.Constraint:
    """The constraint of the support of ``d`` (its bounds from the arguments or constants)."""
    sup = entry.support
    kind = _constraint_kind(sup.kind)
    if kind not in ("lower", "upper", "interval"):
        return ir.Constraint(kind)

    def bound(b: Bound | None) -> ir.Expr | None:
        if b is None:
            return None
        if b.arg is not None:
            return d.args[b.arg]
        return ir.Const(float(b.value or 0.0), REAL, d.span)

    return ir.Constraint(kind, bound(sup.lower), bound(sup.upper))


def check_support(
    c: Checker, s: ast.ParamDecl, cons: ir.Constraint, entry: DistributionEntry
) -> None:
    """A declared support wider than the prior's is an error (the density would be
    zero on part of it); a narrower one truncates the prior, as in Stan."""
    sup = entry.support
    assert s.type is not None  # called for typed declarations only
    if sup.kind in ir.STRUCTURED_KINDS and cons.kind != sup.kind:
        raise error(
            "E0204",
            f"the prior `{entry.name}` is over {sup.kind} values but `{s.name}` is declared "
            f"{cons.kind}",
            s.type.span,
            help=f"declare `{s.name}` with the type `{sup.kind}[...]` or leave out the type",
        )
    for side in ("lower", "upper"):
        sb = getattr(sup, side)
        if sb is None or sb.value is None:
            continue
        cb = getattr(cons, side)
        ok = isinstance(cb, ir.Const) and (
            cb.value >= sb.value if side == "lower" else cb.value <= sb.value
        )
        if cb is None or (isinstance(cb, ir.Const) and not ok):
            raise error(
                "E0204",
                f"`{s.name}` is declared wider than the support of its prior `{entry.name}`",
                s.type.span,
                label=f"needs {side}={sb.value:g}",
                help=f"declare `real<{side}={sb.value:g}>` or leave out the type",
            )


def weight_init(c: Checker, s: ast.WeightDecl, ty: Ty):
    """A weight's ``init``: a distribution to draw it from, or a value that fits it."""
    init = s.init
    if (
        isinstance(init, ast.Call)
        and isinstance(init.func, ast.Name)
        and init.func.id in c.reg.distributions
    ):
        return distribution(c, init, value_ty=ty)
    value = c.expr(init)
    try:
        broadcast(value.ty.shape, ty.shape)
    except RuleError as exc:
        raise error("E0202", f"weight `{s.name}` init: {exc.message}", init.span) from None
    return value


def fn_def(c: Checker, s: ast.FnDef) -> list[ir.Stmt]:
    """A ``fn`` recorded for instantiation at its calls (checked now where fully typed)."""
    if s.name in c.functions or c.scope.lookup(s.name) is not None:
        raise error("E0105", f"`{s.name}` is declared twice", s.span)
    names = [p.name for p in s.params]
    for p in s.params:
        if names.count(p.name) > 1:
            raise error("E0105", f"parameter `{p.name}` appears twice", p.span)
    c.functions[s.name] = s
    written = [p.type for p in s.params if p.type is not None]
    if len(written) == len(s.params):
        # fully typed: check the body now, so errors show without a call
        tys = [type_expr(c, t, allow_params=True)[0] for t in written]
        instantiate(c, s.name, tys, s.span)
    return []


def _constraint_kind(kind: str) -> ir.ConstraintKind:
    """A distribution's (continuous) support kind as a constraint kind."""
    for known in ir.CONSTRAINT_KINDS:
        if kind == known:
            return known
    raise InternalError(f"support `{kind}` is not a constraint kind")


def _implicit(value: ir.Expr) -> bool:
    """Whether a name bound to ``value`` has ``.residual`` and ``.iterations``."""
    return isinstance(value, ir.Implicit)


__all__ = ["statement"]
