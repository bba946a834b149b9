"""Checking the implicit forms fix/root/argmin: the unknown's type, the map, residual or
objective against it, ``argmin``'s ``subject to`` constraints, the solver and its options
(validated against the solver class's fields), and the gradient mode and warm start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpl.compiler import ir
from fpl.compiler.passes.declared_types import type_expr
from fpl.compiler.passes.scope import Scope, Symbol
from fpl.dsl import ast
from fpl.dsl.diagnostics import did_you_mean, error
from fpl.stdlib.solvers import CONSTRAINED_SOLVER, DEFAULT_SOLVER, UNROLLABLE
from fpl.stdlib.types import RuleError, broadcast, dims_equal

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker

#: grad mode -> its options
GRAD_MODES: dict[ir.GradMode, tuple[str, ...]] = {
    "implicit": (),
    "phantom": ("k", "step"),
    "onestep": (),
    "unrolled": (),
    "lstsq": (),
}


#: integer solver options (iteration counts) at most this: the solvers count in int32
MAX_INT_OPTION = 2**31 - 1
#: ``phantom(k=...)`` at most this many terms: each is traced, so k is compile time
MAX_PHANTOM_TERMS = 1000
#: ``phantom(step=...)`` at most this (a larger step only makes the series diverge)
MAX_PHANTOM_STEP = 1e6


def _constant(c: Checker, node: ast.Expr) -> float | int:
    value = c.expr(node)
    if isinstance(value, ir.Op) and value.name == "neg" and isinstance(value.args[0], ir.Const):
        return -value.args[0].value
    if isinstance(value, ir.Const):
        return value.value
    raise error("E0206", "solver options must be numbers written in the program", node.span)


def check_implicit(c: Checker, e: ast.Implicit) -> ir.Expr:
    """A ``fix``/``root``/``argmin`` node, numbered (see the module docstring)."""
    ty, cons = type_expr(c, e.type, allow_params=True)
    if ty.base != "real" or cons.kind != "real":
        raise error(
            "E0201", f"the unknown of `{e.kind}` must be an unconstrained real", e.type.span
        )
    init = c.expr(e.init) if e.init is not None else None
    if init is not None and e.init is not None:
        try:
            if broadcast(init.ty.shape, ty.shape) != ty.shape and init.ty.rank > ty.rank:
                raise RuleError("init is larger than the unknown")
        except RuleError as exc:
            raise error("E0202", f"`init` does not fit {ty}: {exc.message}", e.init.span) from None
    saved = c.scope
    c.scope = Scope({e.var: Symbol("unknown", ty, e.span)}, parent=saved)
    try:
        body = c.expr(e.body)
        equalities, inequalities = _subject(c, e)
    finally:
        c.scope = saved
    if e.kind == "argmin":
        if body.ty.rank != 0:
            raise error(
                "E0202", f"the objective of `argmin` must be a scalar, not {body.ty}", e.body.span
            )
    else:
        what = "the map of `fix`" if e.kind == "fix" else "the residual of `root`"
        try:
            shape = broadcast(body.ty.shape, ty.shape)
        except RuleError:
            shape = None
        if (
            shape is None
            or len(shape) != ty.rank
            or any(dims_equal(a, b) is False for a, b in zip(shape, ty.shape))
        ):
            raise error(
                "E0202",
                f"{what} has type {body.ty} but the unknown `{e.var}` is {ty}",
                e.body.span,
                help="both sides must have the same shape",
            )
    solver, options = _solver(c, e)
    if solver and c.reg.solvers[solver].splitting:
        _check_split(c, e, body, solver)
    if solver and c.reg.solvers[solver].constrained != bool(e.constraints):
        usable = [
            n
            for n, s in c.reg.solvers.items()
            if s.constrained == bool(e.constraints) and "argmin" in s.kinds
        ]
        raise error(
            "E0206",
            f"`{solver}` does not solve `argmin` "
            + ("with" if e.constraints else "without")
            + " `subject to` constraints",
            e.solver.span if e.solver is not None else e.span,
            help="use one of " + ", ".join(f"`{u}`" for u in usable),
        )
    default = CONSTRAINED_SOLVER if e.constraints else DEFAULT_SOLVER[e.kind]
    grad, grad_options, warm = _grad_mode(c, e)
    if grad == "unrolled" and (solver or default) not in UNROLLABLE:
        raise error(
            "E0206",
            f"`grad=unrolled` cannot go through `{solver or default}`",
            e.solver.span if e.solver is not None else e.span,
            help="its loop has an inner while loop (a line search or a bracket search), "
            "which reverse mode cannot differentiate; use an unrollable solver: "
            + ", ".join(f"`{n}`" for n in UNROLLABLE if e.kind in c.reg.solvers[n].kinds),
        )
    c.node_count += 1
    return ir.Implicit(
        e.kind,
        e.var,
        body,
        init,
        solver,
        options,
        grad,
        grad_options,
        ty,
        e.span,
        c.node_count,
        warm,
        equalities,
        inequalities,
    )


def _subject(c: Checker, e: ast.Implicit) -> tuple[tuple[ir.Expr, ...], tuple[ir.Expr, ...]]:
    """The constraints of ``argmin ... subject to`` as g(var) == 0 and h(var) >= 0 (``a ==
    b`` and ``a >= b`` as a - b, ``a <= b`` as b - a, typed as that subtraction, so sides
    that do not broadcast are E0202): each must be a comparison that reads the unknown."""
    equalities: list[ir.Expr] = []
    inequalities: list[ir.Expr] = []
    for con in e.constraints:
        if not (isinstance(con, ast.Binary) and con.op in ("eq", "ge", "le")):
            raise error(
                "E0206",
                "a constraint of `argmin` is a comparison `a == b`, `a >= b` or `a <= b`",
                con.span,
                help=f"e.g. `subject to sum({e.var}) == 1, {e.var} >= 0`",
            )
        left, right = (con.right, con.left) if con.op == "le" else (con.left, con.right)
        g = c.expr(ast.Binary("sub", left, right, con.span))
        if not any(isinstance(x, ir.Ref) and x.name == e.var for x in ir.walk(g)):
            raise error(
                "E0206",
                f"this constraint does not depend on the unknown `{e.var}`",
                con.span,
                help="a constraint restricts the unknown; move a condition on data or "
                "params elsewhere",
            )
        (equalities if con.op == "eq" else inequalities).append(g)
    return tuple(equalities), tuple(inequalities)


def _solver(c: Checker, e: ast.Implicit) -> tuple[str, tuple]:
    """The solver a node names and its options, checked against the solver's class: the
    forms it serves, its fields (type and ``min``/``max`` metadata), the options it needs
    and its own ``invalid`` check (e.g. a bracket with ``lower >= upper``)."""
    from fpl.stdlib.solvers import options as solver_options

    if e.solver is None:
        return "", ()
    call = e.solver
    if not isinstance(call.func, ast.Name):
        raise error("E0206", "expected a solver name, e.g. `with newton(tol=1e-10)`", call.span)
    name = call.func.id
    solver = c.reg.solvers.get(name)
    if solver is None:
        raise error(
            "E0206",
            f"unknown solver `{name}`",
            call.func.span,
            help=did_you_mean(name, c.reg.solvers),
        )
    if e.kind not in solver.kinds:
        usable = sorted(n for n, s in c.reg.solvers.items() if e.kind in s.kinds)
        raise error(
            "E0206",
            f"`{name}` does not solve `{e.kind}` problems",
            call.func.span,
            help="use one of " + ", ".join(f"`{u}`" for u in usable),
        )
    if solver.scalar and e.type.shape:
        raise error(
            "E0206",
            f"`{name}` solves for one unknown, not an array",
            call.func.span,
            help=f"declare the unknown `{e.var}: real`",
        )
    if call.args:
        raise error("E0206", "solver options are named, e.g. `tol=1e-8`", call.args[0].span)
    spec = solver_options(solver)
    given: dict[str, float | int] = {}
    for kw in call.kwargs:
        option = spec.get(kw.name)
        if option is None:
            raise error(
                "E0206",
                f"`{name}` has no option `{kw.name}`",
                kw.span,
                help=did_you_mean(kw.name, spec) or "its options are " + ", ".join(sorted(spec)),
            )
        if kw.name in given:
            raise error("E0206", f"option `{kw.name}` is given twice", kw.span)
        given[kw.name] = _solver_option(option, _constant(c, kw.value), kw)
    missing = [o.name for o in spec.values() if o.required and o.name not in given]
    if missing:
        raise error(
            "E0206",
            f"`{name}` needs the option{'s' if len(missing) > 1 else ''} "
            + ", ".join(f"`{m}`" for m in missing),
            call.span,
            help=f"e.g. `{name}(" + ", ".join(f"{m}=..." for m in missing) + ")`",
        )
    why = solver(**given).invalid()
    if why is not None:
        raise error("E0206", f"`{name}`: {why}", call.span)
    return name, tuple(given.items())


def _check_split(c: Checker, e: ast.Implicit, body: ir.Expr, solver: str) -> None:
    """A splitting solver needs the map written ``prox(G(z), ...)``: a proximal map
    (``fpl.stdlib.functions.prox.PROXIMAL``) whose other arguments do not read the unknown."""
    from fpl.stdlib.functions.prox import PROXIMAL

    entry = c.reg.functions.get(body.name) if isinstance(body, ir.Op) else None
    reads = (
        isinstance(body, ir.Op)
        and entry is not None
        and any(
            isinstance(x, ir.Ref) and x.name == e.var for a in body.args[1:] for x in ir.walk(a)
        )
    )
    if entry is None or entry.name not in PROXIMAL or reads:
        raise error(
            "E0206",
            f"`{solver}` splits a map written `{e.var} = prox(G({e.var}), ...)`",
            e.body.span,
            help="write the body as a proximal map of the forward map, e.g. "
            f"`prox_nonneg(W @ {e.var} + b)`, whose other arguments do not depend on "
            f"`{e.var}`; the proximal maps are " + ", ".join(f"`{p}`" for p in PROXIMAL),
        )


def _solver_option(option, value: float | int, kw: ast.Keyword) -> float | int:
    """``value`` as the type of a solver ``option``, within its bounds (else E0206)."""
    lo, hi = option.min, option.max
    if option.type is int:
        hi = MAX_INT_OPTION if hi is None else hi  # iteration counts are int32 in the loops
        if (
            not isinstance(value, int)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            what = {0: "a non-negative integer", 1: "a positive integer"}.get(lo, "an integer")
            if lo not in (None, 0, 1) or hi is not None:
                what += f" in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            raise error("E0206", f"`{kw.name}` must be {what}", kw.value.span)
        return value
    if lo is not None and value < lo:
        what = "must not be negative" if lo == 0 else f"must be at least {lo:g}"
        raise error("E0206", f"`{kw.name}` {what}", kw.value.span)
    if hi is not None and value > hi:
        raise error("E0206", f"`{kw.name}` must be at most {hi:g}", kw.value.span)
    return option.type(value)


def _grad_mode(
    c: Checker, e: ast.Implicit
) -> tuple[ir.GradMode, tuple[tuple[str, int | float], ...], bool]:
    mode: ir.GradMode = "implicit"
    options: tuple[tuple[str, int | float], ...] = ()
    warm = False
    for kw in e.options:
        if kw.name == "warm":
            v = kw.value
            if not (isinstance(v, ast.Name) and v.id in ("true", "false")):
                raise error("E0206", "`warm=` takes true or false", v.span)
            warm = v.id == "true"
            continue
        if kw.name != "grad":
            raise error(
                "E0206",
                f"unknown option `{kw.name}` of `{e.kind}`",
                kw.span,
                help="options are `init ...`, `with solver(...)`, `grad=...` and `warm=true`",
            )
        v = kw.value
        written = (
            v.id
            if isinstance(v, ast.Name)
            else v.func.id
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name)
            else None
        )
        name = ir.literal(written, ir.GRAD_MODES)
        if name is None:
            raise error(
                "E0206",
                "`grad=` takes implicit, phantom(k=...), onestep, unrolled or lstsq",
                v.span,
                help=did_you_mean(str(written), GRAD_MODES) if written else None,
            )
        opts: list[tuple[str, int | float]] = []
        if isinstance(v, ast.Call):
            if v.args:
                raise error("E0206", "grad options are named, e.g. `phantom(k=5)`", v.span)
            for o in v.kwargs:
                if o.name not in GRAD_MODES[name]:
                    raise error("E0206", f"`{name}` has no option `{o.name}`", o.span)
                val = _constant(c, o.value)
                if o.name == "step":  # the step of T(z) = z - step R(z) (1: plain)
                    if not (isinstance(val, int | float) and 0 < val <= MAX_PHANTOM_STEP):
                        raise error(
                            "E0206",
                            f"`step` must be a number in (0, {MAX_PHANTOM_STEP}]",
                            o.value.span,
                            help="the series converges when step < 2 / (the largest "
                            "eigenvalue of the Jacobian of the residual, or the Hessian)",
                        )
                    opts.append((o.name, float(val)))
                    continue
                if not isinstance(val, int) or not 1 <= val <= MAX_PHANTOM_TERMS:
                    raise error(
                        "E0206",
                        f"`{o.name}` must be an integer in [1, {MAX_PHANTOM_TERMS}]",
                        o.value.span,
                        help="each term is traced once: a few (5 to 50) are usual",
                    )
                opts.append((o.name, val))
        mode, options = name, tuple(opts)
    return mode, options, warm


__all__ = ["GRAD_MODES", "check_implicit"]
