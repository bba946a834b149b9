"""Lowering of the implicit forms ``fix``, ``root`` and ``argmin`` (LANGUAGE.md §4).

``lower_implicit(ev, node)`` is called by the trace-time evaluator.  It

1. closure-converts the body: the free names of the body (every ``Ref`` other than the
   unknown; ``x.residual``-style attributes too) whose current values are JAX arrays
   become explicit operands ``theta`` (a dict), so that ``f(z, theta)`` is a pure
   function and differentiation w.r.t. params, weights and data goes through
   ``theta`` (Python numbers and NumPy constants stay closed over; integer operands
   are carried but never differentiated);
2. runs the node's solver (a ``fpl.stdlib.solvers`` object) on ``stop_gradient(theta)``
   - no derivative ever flows through the iterations, except with ``grad=unrolled``;
3. re-attaches the dependence on ``theta`` with a ``jax.custom_jvp`` identity
   ``attach(z*, theta) = z*`` whose JVP rule is the implicit function theorem (or the
   phantom / one-step approximations); reverse mode is JAX's transpose of that JVP;
4. records ``ev.solver_stats[node.node_id] = {residual, iterations, converged, reason}``
   (``reason``: the int32 ``fpl.stdlib.solvers.Result`` code; ``converged`` is
   ``reason == CONVERGED``; plus ``solves``/``failures`` counts, see "solver results as
   data" below) and returns ``z* · (1 if converged else NaN)``: a solve that did not
   converge makes the value NaN *and its derivative NaN* (never the exact zero of
   ``where(converged, z*, nan)``), and the log density -inf (``lower.run``).

A node that names no solver and whose body is affine in the unknown (an argmin objective
quadratic in it), decided on the IR by ``degree``, skips step 2's iteration: one direct
linear solve (the ``linear`` solver; iterations = 1, residual measured), with the
same implicit derivative.  A ``warm=true`` node starts from its previous converged
solution when the caller threads a warm state through ``lower.run(..., warm=)``; a
``probe`` given to ``lower.run`` sees each node's map at its solution
(``fpl.runtime.diagnose``).  A failed *backward* solve (singular ∂R/∂z at z*) is never
a silent zero or wrong number: the tangent is NaN (see below), so the gradient of the
log density is NaN and NUTS treats the step as divergent; where the forward solve had
converged it is also reported to the host (``fpl.compiler.reporting``), so NUTS counts it per
chain and node and ``optimize`` names the node and step; ``fpl diagnose`` names the node
and why.

Nested implicit nodes (one inside another's body) work: the inner node is just part
of ``f``; its stats (at the outer solution) are recorded as well, and the outer node
counts as converged only if the inner ones did.

Beside this module: the derivative rule of step 3 and its maths
(``fpl.compiler.implicit_derivatives``), and the results of step 4 as data, reduced over
map/scan/fold and merged (``fpl.compiler.implicit_stats``); both are re-exported here.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from fpl.compiler import ir, reporting
from fpl.compiler.affine import degree, is_affine
from fpl.compiler.implicit_derivatives import make_attach
from fpl.compiler.implicit_stats import merge_probes, merge_stats, node_stats, reduce_stats
from fpl.stdlib.solvers import (
    CONSTRAINED_SOLVER,
    Constraints,
    Problem,
    Result,
    Solver,
    Split,
    default_solver,
    residual_fn,
)
from fpl.stdlib.solvers.constrained import active_set, kkt_residual

ACTIVE = "%active"  # the operand holding a constrained argmin's active set (no name clash)


# ---- closure conversion -------------------------------------------------------------


def free_names(node: ir.Implicit) -> set[str]:
    """Names the body may read from the environment (a superset is harmless)."""
    names: set[str] = set()
    for sub in [node.body, *node.equalities, *node.inequalities]:
        for x in ir.walk(sub):
            if isinstance(x, ir.Ref):
                names.add(x.name)
            elif isinstance(x, ir.Attr):
                names.add(f"{x.target.name}.{x.name}")
    names.discard(node.var)
    return names


def _is_operand(value) -> bool:
    if isinstance(value, jax.core.Tracer):
        return True
    return isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jnp.inexact)


def _inexact(value) -> bool:
    return jnp.issubdtype(jnp.result_type(value), jnp.inexact)


def node_solver(ev, node: ir.Implicit) -> Solver:
    """The solver object of ``node``: the class it names (else the registry's default for
    its kind, or the direct ``linear`` solve where ``direct``) with its checked options."""
    name = node.solver or default_solver(node.kind, affine=direct(node))
    if not node.solver and constrained(node):
        name = CONSTRAINED_SOLVER
    return ev.reg.solvers[name](**dict(node.solver_options))


# ---- affine bodies ----------------------------------------------------------------------
#
# A node that names no solver and whose residual is affine in the unknown (an argmin whose
# objective is quadratic) is solved by one direct linear solve (the `linear` solver of
# fpl.stdlib.solvers); the degree analysis on the IR is compiler/affine.py.


def direct(node: ir.Implicit) -> bool:
    """Whether ``node`` is lowered to a direct linear solve: affine, no solver named, and
    not ``grad=unrolled`` (which differentiates through an iteration by definition)."""
    return not node.solver and node.grad != "unrolled" and not constrained(node) and is_affine(node)


def constrained(node: ir.Implicit) -> bool:
    """Whether ``node`` is an ``argmin ... subject to``: its unknown is then solved for
    with the constraints' multipliers, y = (w, λ, μ) (``fpl.stdlib.solvers.constrained``),
    and differentiated through the KKT residual with the active set frozen at y*."""
    return bool(node.equalities or node.inequalities)


# ---- warm starts ------------------------------------------------------------------------


def _shape(node: ir.Implicit) -> tuple[int, ...]:
    """The unknown's shape (sizes are numbers once data are bound)."""
    dims = []
    for d in node.ty.shape:
        if isinstance(d, str) or d is None:
            raise AssertionError(f"size {d!r} of an implicit unknown is unresolved")
        dims.append(int(d))
    return tuple(dims)


def warm_state(program: ir.Program) -> dict[int, Any]:
    """The initial warm-start state of ``program`` (at bound sizes): one all-NaN flat
    vector per ``warm=true`` node, meaning "no previous solution yet".  Pass it as
    ``run(..., warm=state)`` and feed ``Result.warm`` back on the next call; a fixed
    structure from the first call on, so a jitted loop compiles once."""
    state = {}
    for node in program.implicit_nodes:
        if node.warm:
            n = math.prod(_shape(node))
            state[node.node_id] = jnp.full((n,), jnp.nan, jnp.result_type(float))
    return state


# ---- float32 ----------------------------------------------------------------------------


class PrecisionWarning(UserWarning):
    """An implicit node is solved in float32 (JAX's x64 mode is off)."""


_WARNED_FLOAT32: set[str] = set()  # nodes warned about (once per process), by location


def _warn_float32(node: ir.Implicit) -> None:
    where = f"{node.kind}#{node.node_id} at {node.span.location}"
    if where in _WARNED_FLOAT32:
        return
    _WARNED_FLOAT32.add(where)
    warnings.warn(
        f"implicit node {node.kind}#{node.node_id} at {node.span.location} is solved in "
        "float32 because JAX's x64 mode is off: tolerances below ~1e-6 cannot be met and "
        "implicit gradients lose accuracy; enable it with "
        "`jax.config.update('jax_enable_x64', True)` (the fpl CLI and samplers do)",
        PrecisionWarning,
        stacklevel=2,
    )


# ---- the node ------------------------------------------------------------------------


def lower_implicit(ev, node: ir.Implicit):
    from fpl.compiler.lower import Evaluator

    shape = _shape(node)
    n = math.prod(shape)
    dt = jnp.result_type(float)
    kind = node.kind

    theta = {}
    for name in free_names(node):
        if name in ev.env and _is_operand(ev.env[name]):
            theta[name] = ev.env[name]
    float_keys = frozenset(key for key, v in theta.items() if _inexact(v))

    def evaluate(expr, z, th, stats=None):
        sub = Evaluator(ev.reg, {**ev.env, **th, node.var: z.reshape(shape)})
        sub.solver_stats = {} if stats is None else stats
        return sub.expr(expr)

    def body(z, th, stats=None):
        value = jnp.asarray(evaluate(node.body, z, th, stats), dt)
        if kind == "argmin":
            return jnp.reshape(value, ())
        return jnp.ravel(jnp.broadcast_to(value, shape))

    def subject(th) -> Constraints | None:  # argmin subject to: g(w) = 0, h(w) >= 0
        if not constrained(node):
            return None

        def stacked(exprs):
            def values(w):
                parts = [jnp.ravel(jnp.asarray(evaluate(g, w, th), dt)) for g in exprs]
                return jnp.concatenate([jnp.zeros((0,), dt), *parts])

            return values

        eq, ineq = stacked(node.equalities), stacked(node.inequalities)
        w = jnp.zeros((n,), dt)  # sizes only: dead code under jit
        return Constraints(eq, ineq, eq(w).shape[0], ineq(w).shape[0])

    def R(z, th):
        cons = subject(th)
        if cons is not None:  # the KKT residual in y = (w, λ, μ), the active set frozen
            return kkt_residual(lambda w: body(w, th), cons, n, th[ACTIVE])(z)
        return residual_fn(kind, lambda zz: body(zz, th))(z)

    # phantom's step a: T(z) = z - a R(z) (a = 1: f itself for fix, z - R(z) otherwise)
    step = float(dict(node.grad_options).get("step", 1.0)) if node.grad == "phantom" else 1.0

    def T(z, th):
        if kind == "fix" and step == 1.0:
            return body(z, th)
        return z - step * R(z, th)

    if node.init is not None:
        z0 = jnp.ravel(jnp.broadcast_to(jnp.asarray(ev.expr(node.init), dt), shape))
    else:
        z0 = jnp.zeros((n,), dt)
    if dt == jnp.float32:
        _warn_float32(node)
    # warm start: the previous solution of this node, where the caller threads one
    # through (lower.run's `warm`) and it is finite (NaN: none yet, or it had failed)
    warm_in = getattr(ev, "warm", None)
    prev = None
    if node.warm and warm_in is not None and node.node_id in warm_in:
        prev = jnp.ravel(jnp.asarray(warm_in[node.node_id], dt))
        z0 = jnp.where(jnp.all(jnp.isfinite(prev)), prev, z0)
    cons_sg = subject(jax.tree.map(jax.lax.stop_gradient, theta))
    if cons_sg is not None:  # the multipliers start at 0
        z0 = jnp.concatenate([z0, jnp.zeros((cons_sg.equalities + cons_sg.inequalities,), dt)])

    solver = node_solver(ev, node)
    th_sg = jax.tree.map(jax.lax.stop_gradient, theta)
    if node.grad == "unrolled":
        split = _split(ev, node, evaluate, theta) if solver.splitting else None
        problem = Problem(kind, lambda zz: body(zz, theta), unrolled=True, split=split)
        sol = solver.solve(problem, z0)
        z = sol.z
        z_sg = jax.lax.stop_gradient(z)
    else:
        fun = lambda zz: body(zz, th_sg)  # noqa: E731
        split = _split(ev, node, evaluate, th_sg) if solver.splitting else None
        problem = Problem(kind, fun, split=split, constraints=cons_sg)
        sol = solver.solve(problem, jax.lax.stop_gradient(z0))
        z_sg = sol.z
        if cons_sg is not None:  # an operand of attach (custom_jvp closes over no tracer)
            theta = {**theta, ACTIVE: active_set(cons_sg, z_sg, n)}
    res, iters, reason = sol.residual, sol.iterations, sol.result

    if any(isinstance(x, ir.Implicit) for x in ir.walk(node.body)):
        inner: dict[int, dict[str, Any]] = {}
        body(z_sg[:n], th_sg, inner)
        ev.absorb(inner, {}, batched=False)
        for stats in inner.values():
            failed = (reason == Result.CONVERGED) & ~stats["converged"]
            reason = jnp.where(failed, jnp.int32(Result.NESTED_FAILED), reason)
    ok = reason == Result.CONVERGED
    if node.grad != "unrolled":
        k = int(dict(node.grad_options).get("k", 5)) if node.grad == "phantom" else 1
        attach = make_attach(kind, node.grad, k, R, T, float_keys, node.node_id)
        z = attach(z_sg, theta, jax.lax.stop_gradient(ok))
    one = node_stats(res, iters, ok, reason)
    have = ev.solver_stats.get(node.node_id)  # the same node met before (a second call)
    ev.solver_stats[node.node_id] = one if have is None else merge_stats(have, one)
    if node.warm and warm_in is not None:
        keep = jnp.full_like(z_sg, jnp.nan) if prev is None else jax.lax.stop_gradient(prev)
        ev.warm_out[node.node_id] = jnp.where(ok, z_sg[:n], keep)  # the last converged one
    probe = getattr(ev, "probe", None)
    if probe is not None:  # well-posedness diagnostics (fpl.runtime.diagnose)
        found = probe(node, lambda zz: body(zz, th_sg), z_sg[:n], z0[:n])
        have = ev.probes.get(node.node_id)
        ev.probes[node.node_id] = found if have is None else merge_probes(have, found)
    # NaN where the solve failed, as a product (not `where`): its derivative is NaN
    # too, never the exact zero that `where(ok, z, nan)` would give; optimize's
    # on_failure="best" keeps the last iterate instead (reporting.keeping_unconverged)
    z = z[:n]  # the unknown, without the multipliers of a constrained argmin
    if reporting.keep_unconverged():  # the best iterate, if the solve had one at all
        usable = ok | jnp.isfinite(res)
        return (z * jax.lax.stop_gradient(jnp.where(usable, 1.0, jnp.nan)).astype(z.dtype)).reshape(
            shape
        )
    return (z * jax.lax.stop_gradient(jnp.where(ok, 1.0, jnp.nan)).astype(z.dtype)).reshape(shape)


def _split(ev, node: ir.Implicit, evaluate, th) -> Split:
    """The parts of a ``fix`` map written ``prox(G(z), rest...)`` (the checker admits
    only that form for a splitting solver): G on flat z, and the prox of ``step * g``
    (the arguments ``PROXIMAL`` names scaled by the step; the rest do not read z)."""
    from fpl.stdlib.functions.prox import PROXIMAL

    op = node.body
    assert isinstance(op, ir.Op), "the checker admits prox(G(z), ...) only"
    entry = ev.reg.functions[op.name]
    scaled = PROXIMAL[entry.name]
    shape = _shape(node)
    dt = jnp.result_type(float)

    def flat(value):
        return jnp.ravel(jnp.broadcast_to(jnp.asarray(value, dt), shape))

    def forward(z):
        return flat(evaluate(op.args[0], z, th))

    def prox(v, step):
        rest = [evaluate(a, v, th) for a in op.args[1:]]
        rest = [step * r if i in scaled else r for i, r in enumerate(rest, start=1)]
        return flat(entry.impl(v.reshape(shape), *rest))

    return Split(forward, prox)


__all__ = [
    "lower_implicit",
    "free_names",
    "merge_probes",
    "merge_stats",
    "node_stats",
    "reduce_stats",
    "degree",
    "is_affine",
    "direct",
    "warm_state",
    "PrecisionWarning",
]
