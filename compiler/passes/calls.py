"""Checking calls: built-in functions, user functions, distribution-function forms
(``_lpdf``, ``_rng`` ...), higher-order forms (map/scan/fold), derivatives
(grad/jacobian/hessian/jvp/vjp) and the implicit forms fix/root/argmin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fpl.compiler import ir
from fpl.dsl import ast
from fpl.dsl.diagnostics import did_you_mean, error
from fpl.stdlib import ode
from fpl.stdlib.rules import log_prob_shape
from fpl.stdlib.solvers import CONSTRAINED_SOLVER, DEFAULT_SOLVER, UNROLLABLE
from fpl.stdlib.types import RuleError, Ty, broadcast, dim_text, dims_equal

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
#: map/scan/fold by name (the ODE solvers, kind `ode`, go by Stan's names: `ode.FORMS`)
HIGHER_ORDER = tuple(k for k in ir.HIGHER_ORDER_KINDS if k != "ode")
DERIVATIVES = ir.DERIVATIVE_KINDS
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


def check_call(c: Checker, e: ast.Call) -> ir.Expr:
    if isinstance(e.func, ast.Call):
        return _apply_derivative(c, e)
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
        return _ode(c, e, ode.FORMS[name])
    if name == "reject" and "reject" not in c.functions:
        return _reject(c, e)
    higher_order = ir.literal(name, HIGHER_ORDER)
    if higher_order is not None:
        return _higher_order(c, e, higher_order)
    for suffix, kind in DIST_SUFFIXES.items():
        base = name[: -len(suffix)]
        if name.endswith(suffix) and base in c.reg.distributions:
            return _dist_function(c, e, base, kind)
    if e.kwargs:
        raise error("E0203", f"`{name}` takes no keyword arguments", e.kwargs[0].span)
    if e.conditional:
        raise error("E0201", f"`|` is only used in `_lpdf`/`_lpmf` calls, not in `{name}`", e.span)
    if name in c.functions:
        args = [c.expr(a) for a in e.args]
        lam = c.instantiate(name, [a.ty for a in args], e.span)
        return ir.Apply(lam, tuple(args), lam.ty, e.span)
    if name in c.reg.functions:
        return c.op(name, [c.expr(a) for a in e.args], e.span)
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
    values = tuple(c.expr(a) for a in e.args[1:])
    for v in values:
        if v.ty.base not in ("int", "real", "bool"):
            raise error("E0201", "`reject` shows numbers after its message", v.span)
    return ir.Reject("reject", values, Ty("int"), e.span, first.id[1:-1])


def function_value(c: Checker, node: ast.Expr, tys: list[Ty], span) -> ir.Lambda:
    """A function passed by name (user-defined or built-in) instantiated at ``tys``."""
    if not isinstance(node, ast.Name):
        raise error("E0201", "expected the name of a function", node.span)
    name = node.id
    if name in c.functions:
        return c.instantiate(name, tys, span)
    if name in c.reg.functions:
        params = tuple(f"_x{i}" for i in range(len(tys)))
        refs: list[ir.Expr] = [ir.Ref(p, "arg", t, node.span) for p, t in zip(params, tys)]
        result = c.op(name, refs, span)
        return ir.Lambda(name, params, (), result, result.ty, node.span)
    known = set(c.functions) | set(c.reg.functions)
    raise error("E0104", f"unknown function `{name}`", node.span, help=did_you_mean(name, known))


def _higher_order(c: Checker, e: ast.Call, kind: ir.HigherOrderKind) -> ir.Expr:
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


def _ode(c: Checker, e: ast.Call, form: ode.Form) -> ir.Expr:
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
    return ir.HigherOrder("ode", lam, tuple(args), ty, e.span, form.method, c.node_count)


def _apply_derivative(c: Checker, e: ast.Call) -> ir.Expr:
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
        args = tuple(c.expr(a) for a in e.args)
        d = c.dist_type(entry, args, e.span, e.func.span)
        return ir.Rng(d, d.ty, e.span)
    if not e.args:
        raise error(
            "E0203", f"`{base}_{kind}` needs the value first: `{base}_{kind}(y | ...)`", e.span
        )
    value = c.expr(e.args[0])
    args = tuple(c.expr(a) for a in e.args[1:])
    d = c.dist_type(entry, args, e.span, e.func.span, value=value)
    try:
        out = log_prob_shape(entry, value.ty.shape, [a.ty.shape for a in args])
    except RuleError as exc:
        raise error("E0202", exc.message, e.span) from None
    return ir.LogProb(kind, d, value, Ty("real", out), e.span)


def _constant(c: Checker, node: ast.Expr) -> float | int:
    value = c.expr(node)
    if isinstance(value, ir.Op) and value.name == "neg" and isinstance(value.args[0], ir.Const):
        return -value.args[0].value
    if isinstance(value, ir.Const):
        return value.value
    raise error("E0206", "solver options must be numbers written in the program", node.span)


def check_implicit(c: Checker, e: ast.Implicit) -> ir.Expr:
    from fpl.compiler.passes.check import Scope, Symbol

    ty, cons = c.type_expr(e.type, allow_params=True)
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


__all__ = ["check_call", "check_implicit"]
