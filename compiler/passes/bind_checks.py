"""Checks of the data against the program at bind time, each a located error: every
declared constraint of a data field (through the transforms' own constraint objects),
bounds the data decide (finite and ordered), integer `%` and `/` by a zero the data
decide, and structured types of a size that has no value (``simplex[0]``).

Called by ``fpl.compiler.binding.bind_data`` once the sizes are concrete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fpl.compiler import ir
from fpl.dsl.diagnostics import error

_BOUNDS = ("lower", "upper", "interval")


#: structured kinds that have no value of size 0, and why
_NO_EMPTY = {
    "simplex": "a simplex has entries that sum to 1, so it needs at least one",
    "corr_matrix": "a correlation matrix needs a size of at least 1",
    "cholesky_corr": "a Cholesky factor of a correlation matrix needs a size of at least 1",
}


def check_structured_sizes(program: ir.Program) -> None:
    """``simplex[0]``, ``corr_matrix[0]`` and ``cholesky_corr[0]`` are E0202 at the
    declaration.  A simplex of no entries cannot sum to 1 (Stan refuses it too); a
    correlation matrix of size 0 would be an empty array, but its unconstrained array
    (K(K-1)/2 reals) is the same empty one as size 1's, so the two cannot be told apart.
    Every other type of size 0 is an empty array (``fpl.compiler.transforms.constrain``)."""
    declared: list[ir.ParamDecl | ir.WeightDecl] = [*program.params, *program.weights]
    for d in declared:
        kind = d.constraint.kind
        shape = d.ty.shape
        if kind in _NO_EMPTY and shape and shape[-1] == 0:
            raise error(
                "E0202",
                f"`{d.name}` is a {kind} of size 0",
                d.span,
                help=_NO_EMPTY[kind],
            )


def check_data_constraints(program: ir.Program, data: dict[str, Any]) -> None:
    """Every declared constraint of every data field, through the transforms' own
    constraint objects; the first violation is a located E0304 naming the element."""
    check_ode_times(program, data)  # E0202: an ODE's times the data decide, out of order
    bounded = [d for d in program.data if d.constraint.kind != "real"]
    if not bounded:
        return
    import jax

    from fpl.compiler.lower import Evaluator
    from fpl.compiler.transforms import numpyro_constraint
    from fpl.stdlib.registry import registry

    with jax.enable_x64(True):
        ev = Evaluator(registry(), dict(data))
        for d in bounded:
            c = d.constraint
            raw = np.asarray(data[d.name])
            arr = raw.astype(float)
            if c.kind in _BOUNDS:
                # Stan's rule for data: a value equal to its bound is inside it
                for side, bound_expr in (("lower", c.lower), ("upper", c.upper)):
                    if bound_expr is None:
                        continue
                    bound = np.asarray(ev.expr(bound_expr), dtype=float)
                    bad = arr < bound if side == "lower" else arr > bound
                    bad = np.broadcast_to(bad, arr.shape)
                    if np.any(bad):
                        idx = tuple(int(i) for i in np.argwhere(bad)[0])
                        b = np.broadcast_to(bound, arr.shape)[idx] if idx else bound
                        raise error(
                            "E0304",
                            f"data field `{d.name}{_where(idx)}` = {raw[idx]} violates its "
                            f"constraint {side}={float(b):g}",
                            d.span,
                        )
                continue
            ok = np.asarray(numpyro_constraint(c.kind).check(arr))  # one flag per event
            if not np.all(ok):
                idx = tuple(int(i) for i in np.argwhere(~ok)[0]) if ok.ndim else ()
                what = f"`{d.name}{_where(idx)}`" if idx else f"`{d.name}`"
                raise error(
                    "E0304",
                    f"data field {what} = {_show(arr[idx])} is not a valid {c.kind}",
                    d.span,
                    help=_STRUCTURED_HELP.get(c.kind),
                )


def check_ode_times(program: ir.Program, data: Mapping[str, Any]) -> None:
    """The times of every ODE solve that the data decide (``t0`` and ``ts`` read data
    fields, literals and lets or outs the data decide: ``let ts = cumulative_sum(dt)``)
    meet Stan's condition (``fpl.stdlib.ode.times_in_order``: finite, ``t0 < ts[1] <=
    ts[2] <= ...``), else E0202 at the time that breaks it, in the words of Stan's
    "initial time is greater than or equal to times" and "times is not a valid sorted
    vector".  Times that params decide are left to the solve, which fails there (the log
    density -inf).  Only the lets the times read are evaluated."""
    solves = [
        node
        for statement in program.statements
        for node in ir.walk(statement)
        if isinstance(node, ir.HigherOrder) and node.kind == "ode"
    ]
    if not solves:
        return
    decided = _DataDecided(program)
    solves = [n for n in solves if decided(n.args[1]) and decided(n.args[2])]
    if not solves:
        return
    import jax

    from fpl.stdlib.ode import times_in_order

    with jax.enable_x64(True), np.errstate(all="ignore"):
        ev = decided.evaluator(data)
        for node in solves:
            t0 = float(np.asarray(ev.expr(node.args[1]), dtype=float))
            ts = np.ravel(np.asarray(ev.expr(node.args[2]), dtype=float))
            if not ts.size or times_in_order(t0, ts, np):
                continue
            span = node.args[1].span  # Stan: "initial time is greater than or equal to times"
            what = f"the initial time t0 = {t0:g} is not before ts[1] = {ts[0]:g}"
            if np.isfinite(t0) and t0 < ts[0]:  # Stan: "times is not a valid sorted vector"
                bad = ~np.isfinite(ts) | np.r_[False, ts[1:] < ts[:-1]]
                i = int(np.flatnonzero(bad)[0])
                span, what = node.args[2].span, f"the output time ts[{i + 1}] = {ts[i]:g} is "
                what += f"before ts[{i}] = {ts[i - 1]:g}" if np.isfinite(ts[i]) else "not finite"
            raise error(
                "E0202",
                f"`{node.solver}`: {what}; the times must have t0 < ts[1] <= ts[2] <= ...",
                span,
                help="the output times are sorted (repeats allowed) and after t0, as in Stan",
            )


class _DataDecided:
    """Which expressions the data decide: they read data fields, literals and top-level
    lets/outs that are themselves decided (no param, weight, draw, solver or function
    call).  A name some function body also binds as a local is never taken for the
    top-level one.  :meth:`evaluator` evaluates the lets/outs that the decided
    expressions asked about read (and those they read), and no others."""

    def __init__(self, program: ir.Program):
        self.values = {
            s.name: s.value for s in program.statements if isinstance(s, (ir.Let, ir.Out))
        }
        self.position = {name: i for i, name in enumerate(self.values)}
        shadowed = {
            name
            for s in program.statements
            for node in ir.walk(s)
            if isinstance(node, ir.Lambda)
            for name in (*node.params, *(n for n, _ in node.lets))
        }
        for name in shadowed:
            self.values.pop(name, None)
        self._known: dict[str, bool] = {}
        self._used: set[str] = set()

    def __call__(self, expr: ir.Expr) -> bool:
        names = set()
        for node in ir.walk(expr):
            if isinstance(node, (ir.Rng, ir.Implicit, ir.Apply, ir.HigherOrder)):
                return False
            if isinstance(node, ir.Ref) and node.kind != "data":
                if node.kind not in ("local", "out") or not self._let(node.name):
                    return False
                names.add(node.name)
        self._used |= names
        return True

    def _let(self, name: str) -> bool:
        if name not in self._known:
            self._known[name] = False  # a cycle cannot occur; this only guards recursion
            value = self.values.get(name)
            self._known[name] = value is not None and self(value)
        return self._known[name]

    def evaluator(self, data: Mapping[str, Any]):
        """An ``Evaluator`` of the data with the lets/outs the decided expressions read
        evaluated, in the program's order (call it inside ``jax.enable_x64``)."""
        from fpl.compiler.lower import Evaluator
        from fpl.stdlib.registry import registry

        ev = Evaluator(registry(), dict(data))
        for name in sorted(self._used, key=self.position.__getitem__):
            ev.env[name] = ev.expr(self.values[name])
        return ev


def check_integer_divisors(program: ir.Program, data: Mapping[str, Any]) -> None:
    """Integer ``%`` and ``/`` by a divisor the data decide are E0208 at the divisor
    where it is 0 (``5 % N`` with ``N = 0``; ``let k = N - 1`` then ``5 % k``), as the
    checker does for a literal 0 (``fpl.compiler.passes.literals.check_division``); JAX
    would give 0 or inf.  Not checked here: divisors inside function bodies (their
    arguments decide them) and divisors that params decide through an int-valued
    function (``5 % int_step(mu)``), which only the evaluation can see."""
    decided = _DataDecided(program)
    divisions = [
        node
        for statement in program.statements
        for node in _top_level_nodes(statement)
        if ir.integer_division(node) and decided(node.args[1])
    ]
    if not divisions:
        return
    import jax

    with jax.enable_x64(True), np.errstate(all="ignore"):
        ev = decided.evaluator(data)
        for node in divisions:  # in the program's order: the first zero is reported
            _check_divisor(node.name, node.args[1], np.asarray(ev.expr(node.args[1])))


def _check_divisor(name: str, divisor: ir.Expr, value: np.ndarray) -> None:
    zero = value == 0
    if np.any(zero):
        idx = tuple(int(i) for i in np.argwhere(zero)[0])
        what = "`%`" if name == "mod" else "`/`"
        raise error(
            "E0208",
            f"integer {what} by zero: the divisor{_where(idx)} is 0 in the data",
            divisor.span,
            label="this is zero",
        )


def _top_level_nodes(node: ir.Node):
    """Every node under ``node``, function bodies not entered."""
    stack: list[ir.Node] = [node]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ir.Lambda):
            stack.extend(ir.children(node))


def check_declared_bounds(program: ir.Program, data: dict[str, Any]) -> None:
    """The bounds of params and weights that the data decide are finite and ordered,
    element by element (E0204 at the declaration); bounds that depend on params are
    left to run time, as in Stan."""
    declared: list[ir.ParamDecl | ir.WeightDecl] = [*program.params, *program.weights]
    decided = _DataDecided(program)
    decls = [
        d
        for d in declared
        if d.constraint.kind in _BOUNDS
        and all(b is None or decided(b) for b in (d.constraint.lower, d.constraint.upper))
    ]
    if not decls:
        return
    import jax

    with jax.enable_x64(True):
        with np.errstate(all="ignore"):
            ev = decided.evaluator(data)
        for d in decls:
            c = d.constraint
            values = {}
            for side, bound_expr in (("lower", c.lower), ("upper", c.upper)):
                if bound_expr is None:
                    continue
                with np.errstate(all="ignore"):
                    bound = np.asarray(ev.expr(bound_expr), dtype=float)
                if not np.all(np.isfinite(bound)):
                    idx = tuple(int(i) for i in np.argwhere(~np.isfinite(bound))[0])
                    raise error(
                        "E0204",
                        f"the {side} bound of `{d.name}` is {float(bound[idx])}"
                        + (f" at {_where(idx)}" if idx else ""),
                        d.span,
                        help="bounds must be finite; leave the bound out for an unbounded side",
                    )
                values[side] = bound
            if len(values) == 2:
                lower, upper = np.broadcast_arrays(values["lower"], values["upper"])
                bad = ~(lower < upper)
                if np.any(bad):
                    idx = tuple(int(i) for i in np.argwhere(bad)[0])
                    raise error(
                        "E0204",
                        f"the lower bound of `{d.name}{_where(idx)}` ({float(lower[idx]):g}) "
                        f"is not below its upper bound ({float(upper[idx]):g})",
                        d.span,
                    )


_STRUCTURED_HELP = {
    "simplex": "a simplex has non-negative entries that sum to 1",
    "ordered": "an ordered vector is strictly increasing",
    "positive_ordered": "a positive_ordered vector is positive and strictly increasing",
    "cholesky_corr": "a Cholesky factor of a correlation matrix is lower triangular with "
    "positive diagonal and rows of unit length",
    "corr_matrix": "a correlation matrix is symmetric positive definite with a unit diagonal",
    "cov_matrix": "a covariance matrix is symmetric positive definite",
    "cholesky_cov": "a Cholesky factor is lower triangular with a positive diagonal",
}


def _where(idx: tuple[int, ...]) -> str:
    return f"[{', '.join(str(i + 1) for i in idx)}]" if idx else ""


def _show(value: np.ndarray) -> str:
    return np.array2string(np.asarray(value), precision=4, threshold=8, separator=", ")
