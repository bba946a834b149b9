"""The derivative rule of an implicit node: ``make_attach`` builds the ``jax.custom_jvp``
identity ``attach(z*, theta) = z*`` through which ``fpl.compiler.implicit`` re-attaches a
solution to its operands, its JVP the implicit function theorem (``grad=implicit``,
``lstsq``) or the phantom / one-step approximations, with checked linear solves (a
tangent that does not check out is NaN, never a silent wrong number).  The maths below.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp

from fpl.compiler import reporting
from fpl.stdlib.solvers import norm

LINEAR_MAXITER = 20  # GMRES restarts for the tangent solve of large unknowns


# ---- implicit differentiation ---------------------------------------------------------
#
# Let R(z, θ) = 0 define z*(θ):  R = f(z, θ) - z for `fix`, R = F(z, θ) for `root`,
# R = ∇_z obj(z, θ) for `argmin` (first-order optimality).  Differentiating the
# identity R(z*(θ), θ) = 0 along a tangent θ̇ (implicit function theorem, valid where
# ∂R/∂z is invertible at z*):
#
#     ∂R/∂z ż + ∂R/∂θ θ̇ = 0      =>      ż = -(∂R/∂z)^{-1} ∂R/∂θ θ̇.
#
# For `fix` this is (I - ∂f/∂z) ż = ∂f/∂θ θ̇; for `argmin`, ∂R/∂z is the Hessian of the
# objective.  The JVP rule computes b = -∂R/∂θ θ̇ with one `jax.jvp` of R in θ, then
# solves A ż = b with A v = ∂R/∂z v (a jvp of R in z) through `lax.custom_linear_solve`:
# ż is linear in θ̇, so JAX can transpose the rule for reverse mode, and
# `custom_linear_solve` transposes to a solve with Aᵀ (our `transpose_solve`), which is
# the adjoint equation Aᵀ λ = z̄ of the usual backward pass.  The rule re-applies
# `attach` to its primal z, so the z inside A and b depends on θ again and
# higher-order derivatives (jacfwd of jacrev, hessian) are exact too.
#
# Linear solves: n <= TANGENT_DENSE_MAX materialises A (vmap of the matvec over the identity)
# and uses LU; larger n runs GMRES on the matvec.  Either way the residual
# ||A ż - b|| is checked: if it is not small (singular A, GMRES stalled), ż is NaN -
# a wrong gradient is never returned silently.  (A tangent cannot mark the node "not
# converged": stats are primal values; the NaN gradient makes NUTS diverge instead.)
# Such a failed *backward* solve is also reported to the host, where the forward solve
# had converged: under `lax.cond`, a `jax.debug.callback` tells the run's
# `fpl.compiler.reporting.SolverEvents` (chosen at trace time) the node id (counted per
# chain and node; Model.optimize names the node and step).  The callback sits inside the solve
# functions of `custom_linear_solve`, which JAX evaluates (never differentiates), so it
# fires for the tangent solve in forward mode and for the transpose solve in reverse
# mode alike, once per evaluation (per element under vmap, where the flag it carries
# tells a failed element from a healthy one); it changes no value.
#
# Approximate modes use the fixed-point map T(z) = z - a R(z), with the step a of
# `phantom(step=a)` (default 1: T = f for `fix`, the unit-step map z - R(z) for
# `root`/`argmin`, meaningful when ∂R/∂z ≈ I). Any a > 0 has the same fixed points and
# the same limit (I - ∂T/∂z)^{-1} ∂T/∂θ = -(∂R/∂z)^{-1} ∂R/∂θ; the series converges when
# the spectral radius of I - a ∂R/∂z is below 1 (for an argmin: a < 2 / λ_max(Hessian)):
#   phantom(k):  ż_0 = 0, ż_{j+1} = ∂T/∂z ż_j + ∂T/∂θ θ̇  (k terms of the Neumann series
#                of (I - ∂T/∂z)^{-1} ∂T/∂θ θ̇);
#   onestep:     ż = ∂T/∂θ θ̇   (Jacobian-free backprop; phantom with k = 1).
#
# `lstsq` is the implicit mode with the minimum-norm solution ż = A⁺ b: for a node whose
# solutions form a family (a gauge, e.g. Sinkhorn's potentials f + c, g − c), A = ∂R/∂z
# is singular along the family's direction v and the plain solve has no unique answer;
# b is still in A's range (differentiating R(z*(θ), θ) = 0 along any smooth selection
# z*(θ) shows it), so ż is exact up to a multiple of v, and the derivative of anything
# gauge-invariant (a transport plan, a cost) is exact. In reverse mode the adjoint
# system Aᵀλ = z̄ is consistent exactly when z̄ ⟂ v, i.e. when what is differentiated is
# gauge-invariant; otherwise the least-squares residual is not small and the gradient
# is NaN (reported as a backward failure), never a silently gauge-dependent number.


#: unknowns up to this size get a dense LU tangent solve.  Materialising A costs n
#: JVPs, while one GMRES solve (one right-hand side in reverse mode) costs about as many
#: matvecs as the forward solve's iterations; above ~64 unknowns GMRES is cheaper
#: (benchmarks/bench_implicit.py: gradient / forward time at n = 200).
TANGENT_DENSE_MAX = 64
#: relative residual GMRES aims for: two decades below the forward solves' default tol
#: (1e-8), which bounds the gradient's accuracy anyway
GMRES_TOL = 1e-10


def _report_backward(node_id: int, bad) -> None:
    reporting.report_backward(node_id, bad)


def _checked_solve(apply, rhs, node_id: int, fwd_ok, least_squares: bool = False):
    """Solve apply(x) = rhs (apply linear); NaN where the result does not check out (and
    then, if the forward solve ``fwd_ok``, a backward failure of ``node_id`` reported).
    ``least_squares``: the minimum-norm solution A^+ rhs (``grad=lstsq``), which checks
    out where rhs is in A's range, as it is for a consistent singular system."""
    n = rhs.shape[0]
    dt = rhs.dtype
    if least_squares:
        x, ok = least_squares_solve(apply, rhs)
    elif n <= TANGENT_DENSE_MAX:
        A = jax.vmap(apply, out_axes=1)(jnp.eye(n, dtype=dt))
        x = jnp.linalg.solve(A, rhs)
        r = A @ x - rhs
        scale = norm(rhs) + jnp.sqrt(jnp.sum(A * A)) * norm(x)
        ok = norm(r) <= jnp.sqrt(jnp.finfo(dt).eps) * scale
    else:
        x, _ = jax.scipy.sparse.linalg.gmres(
            apply, rhs, tol=GMRES_TOL, restart=min(n, 50), maxiter=LINEAR_MAXITER
        )
        ok = norm(apply(x) - rhs) <= 1e-6 * norm(rhs)
    ok = ok & jnp.all(jnp.isfinite(x))
    _report_backward(node_id, jnp.logical_and(fwd_ok, jnp.logical_not(ok)))
    return jnp.where(ok, x, jnp.nan)


def least_squares_solve(apply, rhs):
    """The minimum-norm least-squares solution of apply(x) = rhs and whether it solves
    the system (rhs in the range). Dense: the pseudo-inverse (SVD; singular values below
    n eps sigma_max count as zero). Matrix-free: conjugate gradients on the normal
    equations A'A x = A' rhs from x = 0, whose iterates stay in range(A') = null(A)^perp,
    so the limit is the minimum-norm solution (A' by ``jax.linear_transpose``)."""
    n = rhs.shape[0]
    dt = rhs.dtype
    if n <= TANGENT_DENSE_MAX:
        A = jax.vmap(apply, out_axes=1)(jnp.eye(n, dtype=dt))
        x = jnp.linalg.pinv(A) @ rhs
        scale = norm(rhs) + jnp.sqrt(jnp.sum(A * A)) * norm(x)
        ok = norm(A @ x - rhs) <= jnp.sqrt(jnp.finfo(dt).eps) * scale
    else:
        adjoint = jax.linear_transpose(apply, rhs)
        x, _ = jax.scipy.sparse.linalg.cg(
            lambda v: adjoint(apply(v))[0], adjoint(rhs)[0], tol=GMRES_TOL, maxiter=10 * n
        )
        ok = norm(apply(x) - rhs) <= 1e-6 * norm(rhs)
    return x, ok & jnp.all(jnp.isfinite(x))


def _tangent(
    kind, mode, k, R, T, z, theta, theta_dot, float_keys, node_id, fwd_ok, skip_zero=False
):
    fixed = {key: v for key, v in theta.items() if key not in float_keys}
    th_f = {key: theta[key] for key in float_keys}
    dth = {key: theta_dot[key] for key in float_keys}

    def jvp_theta(g):
        return jax.jvp(lambda t: g(z, {**fixed, **t}), (th_f,), (dth,))[1]

    def jvp_z(g, v):
        return jax.jvp(lambda zz: g(zz, theta), (z,), (v,))[1]

    if mode in ("implicit", "lstsq"):
        b = -jvp_theta(R)
        lstsq = mode == "lstsq"
        solve = _solver(node_id, fwd_ok, lstsq, skip_zero)
        return jax.lax.custom_linear_solve(
            lambda v: jvp_z(R, v), b, solve=solve, transpose_solve=solve
        )
    b = jvp_theta(T)
    if mode == "onestep":
        return b
    zdot = b
    for _ in range(k - 1):  # phantom(k)
        zdot = jvp_z(T, zdot) + b
    return zdot


def _solver(node_id: int, fwd_ok, least_squares: bool, skip_zero: bool):
    """The checked solve of ``custom_linear_solve`` (and of its transpose).  With
    ``skip_zero`` (``_correction`` only) an all-zero right-hand side returns zeros, exactly
    the solution, without solving or reporting (under ``vmap``, where ``cond`` runs both
    branches, such an element reports nothing).  Only there: the rule's own solve must
    still find a singular system (NaN) even where its right-hand side happens to be zero.
    (Measured: XLA's CPU programs still pay about a dense solve for the ``cond``.)"""

    def solve(apply, rhs):
        if not skip_zero:
            return _checked_solve(apply, rhs, node_id, fwd_ok, least_squares)
        live = jnp.any(rhs != 0)

        def nonzero(r):
            return _checked_solve(apply, r, node_id, fwd_ok & live, least_squares)

        return jax.lax.cond(live, nonzero, jnp.zeros_like, rhs)

    return solve


#: whether the node being lowered sits in a ``lax.scan`` body (``loop_body``)
_IN_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("fpl_in_loop", default=False)


@contextlib.contextmanager
def loop_body():
    """Lower the implicit nodes traced inside this block with ``make_attach``'s
    correction: wrap the tracing of every ``lax.scan`` body that may hold one."""
    token = _IN_LOOP.set(True)
    try:
        yield
    finally:
        _IN_LOOP.reset(token)


def in_loop_body() -> bool:
    """Whether tracing is inside a ``loop_body`` block (a key of anything that caches a
    trace holding implicit nodes: the trace differs inside a loop body)."""
    return _IN_LOOP.get()


def _correction(kind, mode, k, R, T, z, theta, fwd_ok, float_keys, node_id):
    """ż(δ) at the stopped primal (z, θ₀ = stop_gradient(θ)) applied to δ = θ - θ₀: its
    value is exactly 0 and its first derivative in θ the node's tangent map."""
    stop = jax.lax.stop_gradient
    theta0 = jax.tree.map(stop, theta)
    delta = {key: theta[key] - theta0[key] for key in float_keys}
    delta.update({key: jnp.zeros_like(v) for key, v in theta.items() if key not in float_keys})
    return _tangent(kind, mode, k, R, T, stop(z), theta0, delta, float_keys, node_id, fwd_ok, True)


def make_attach(kind, mode, k, R, T, float_keys, node_id):
    """The identity ``attach(z*, θ, ok) = z*`` with the derivative rule above.

    Inside a ``loop_body`` block its primal function is ``z* + _correction(...)``
    (value z*, the correction exactly 0, its solve skipped) rather than plain ``z*``:
    JAX may drop a ``custom_jvp`` rule and differentiate the primal function instead.
    It does so inside ``lax.scan`` under reverse mode: the linearised scan re-traces
    its primal body to hoist loop-invariant residuals (``_scan_known_hoisting`` in
    ``jax._src.lax.control_flow.loops``, a ``JaxprTrace``), and
    ``JaxprTrace.process_custom_jvp_call`` inlines a ``custom_jvp`` whose inputs vary
    along the loop without its rule.  The residuals of the backward pass (the carry,
    z* inside the rule) then had zero derivative in θ, so the Hessian (``jacfwd`` or
    ``jacrev`` of the gradient) of a ``fold``/``scan`` with an implicit node in its
    body was wrong while the gradient was right.  With the correction the inlined
    primal still has the exact first derivative, which is what a Hessian needs (third
    derivatives through such a scan are not exact).  Only in loops: the correction
    costs about one more dense solve per gradient.  Checked by
    ``tests/compiler/test_implicit_in_scan.py``."""
    corrected = _IN_LOOP.get()

    @jax.custom_jvp
    def attach(z, theta, fwd_ok):
        if not corrected:
            return z
        return z + _correction(kind, mode, k, R, T, z, theta, fwd_ok, float_keys, node_id)

    @attach.defjvp
    def attach_jvp(primals, tangents):
        z, theta, fwd_ok = primals
        _, theta_dot, _ = tangents
        z = attach(z, theta, fwd_ok)  # z as a function of theta again, for higher orders
        zdot = _tangent(kind, mode, k, R, T, z, theta, theta_dot, float_keys, node_id, fwd_ok)
        return z, zdot

    return attach


__all__ = [
    "GMRES_TOL",
    "TANGENT_DENSE_MAX",
    "in_loop_body",
    "least_squares_solve",
    "loop_body",
    "make_attach",
]
