"""Root finders for ``root`` (F(z) = 0) and ``fix`` (as the root of f(z) - z):
``broyden``, ``newton`` and, for one unknown in a bracket, ``bisection``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import REGISTRY
from fpl.stdlib.solvers import (
    DENSE_MAX,
    IterativeSolver,
    Problem,
    Result,
    Solution,
    code,
    drive,
    norm,
)

BROYDEN_MEMORY = 30  # rank-one updates kept by Broyden before it restarts from H0
LINE_SEARCH_HALVINGS = 30  # Newton's backtracking gives up after this many halvings


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class Broyden(IterativeSolver):
    """Broyden's (good) quasi-Newton method on the residual.

    The inverse Jacobian is kept as H = H0 + sum_i u_i v_i^T (Sherman-Morrison form of
    the rank-one updates; restarted from H0 after BROYDEN_MEMORY updates). H0 = -I for
    ``fix`` (the first step is a Picard step); for ``root`` the inverse of the exact
    Jacobian at the initial point (n <= DENSE_MAX; identity if singular), else the
    identity scaled by a Rayleigh quotient of the Jacobian."""

    name = "broyden"
    kinds = ("fix", "root")

    def solve(self, problem: Problem, z0) -> Solution:
        g_fn = problem.residual()
        n = z0.shape[0]
        dt = z0.dtype
        m = max(1, min(BROYDEN_MEMORY, self.max_iter))
        g0 = g_fn(z0)
        if problem.kind == "fix":
            h0 = -jnp.ones((), dt)
        elif n <= DENSE_MAX:
            inv = jnp.linalg.inv(jax.jacfwd(g_fn)(z0))
            h0 = jnp.where(jnp.all(jnp.isfinite(inv)), inv, jnp.eye(n, dtype=dt))
        else:
            jg = jax.jvp(g_fn, (z0,), (g0,))[1]
            ray = jnp.sum(g0 * jg) / jnp.maximum(jnp.sum(g0 * g0), jnp.finfo(dt).tiny)
            ok = jnp.isfinite(ray) & (jnp.abs(ray) > jnp.finfo(dt).eps)
            h0 = jnp.where(ok, 1.0 / jnp.where(ok, ray, 1.0), 1.0)

        def apply_h(U, V, x):
            base = h0 @ x if h0.ndim == 2 else h0 * x
            return base + U.T @ (V @ x)

        def apply_ht(U, V, x):
            base = h0.T @ x if h0.ndim == 2 else h0 * x
            return base + V.T @ (U @ x)

        def step(s, k):
            z, g, U, V, c = s
            d = -apply_h(U, V, g)
            z2 = z + d
            g2 = g_fn(z2)
            y = g2 - g
            hy = apply_h(U, V, y)
            den = jnp.dot(d, hy)
            ok = jnp.isfinite(den) & (jnp.abs(den) > jnp.finfo(dt).tiny * 1e10)
            u = jnp.where(ok, (d - hy) / jnp.where(ok, den, 1.0), 0.0)
            v = apply_ht(U, V, d)
            full = c >= m
            U = jnp.where(full, 0.0, U)
            V = jnp.where(full, 0.0, V)
            c = jnp.where(full, 0, c)
            U = U.at[c].set(u)
            V = V.at[c].set(v)
            return (z2, g2, U, V, c + 1), norm(g2)

        history = jnp.zeros((m, n), dt)
        state = (z0, g0, history, history, jnp.asarray(0, jnp.int32))
        s, res, it, why = drive(
            step, state, lambda s: s[0], norm(g0), self.tol, self.max_iter, problem.unrolled
        )
        return Solution(s[0], res, it, why)


def newton_direction(g_fn, z, g):
    """Solve J(z) d = -g: dense (jacfwd + LU) for n <= DENSE_MAX, else GMRES on jvps;
    the steepest-descent-like -g where the solve is not finite."""
    n = z.shape[0]
    if n <= DENSE_MAX:
        d = jnp.linalg.solve(jax.jacfwd(g_fn)(z), -g)
    else:
        matvec = lambda v: jax.jvp(g_fn, (z,), (v,))[1]  # noqa: E731
        d, _ = jax.scipy.sparse.linalg.gmres(matvec, -g, tol=1e-10, restart=min(n, 40), maxiter=10)
    return jnp.where(jnp.all(jnp.isfinite(d)), d, -g)


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class Newton(IterativeSolver):
    """Newton's method: dense Jacobian by forward mode for small unknowns, matrix-free
    Krylov (GMRES) for large ones.

    With a backtracking (Armijo on ||g||) line search: halve the step up to
    LINE_SEARCH_HALVINGS times until ||g(z + t d)|| <= (1 - 1e-4 t) ||g(z)||. The line
    search is left out when unrolled (reverse mode cannot go through its while loop).

    For ``argmin`` the step solves the Hessian system H d = -grad obj (forward over
    reverse; GMRES on Hessian-vector products for large unknowns), falls back to -grad
    where that is not a descent direction (an indefinite Hessian), and backtracks on
    the objective instead (Armijo: obj(z + t d) <= obj(z) + 1e-4 t grad.d, or the
    gradient test above where the objective is flat to round-off near the minimum):
    quadratic convergence near a minimum with a positive definite Hessian."""

    name = "newton"
    kinds = ("fix", "root", "argmin")

    max_iter: int = field(default=100, metadata={"min": 1})

    def solve(self, problem: Problem, z0) -> Solution:
        if problem.kind == "argmin":
            return self._minimize(problem, z0)
        g_fn = problem.residual()
        unrolled = problem.unrolled
        g0 = g_fn(z0)

        def step(s, k):
            z, g = s
            gn = norm(g)
            d = newton_direction(g_fn, z, g)
            if unrolled:
                z2 = z + d
                g2 = g_fn(z2)
                return (z2, g2), norm(g2)
            g_full = g_fn(z + d)

            def cond(c):
                t, i, _, r = c
                return ~(r <= (1.0 - 1e-4 * t) * gn) & (i < LINE_SEARCH_HALVINGS)

            def body(c):
                t, i, _, _ = c
                t = 0.5 * t
                g_try = g_fn(z + t * d)
                return t, i + 1, g_try, norm(g_try)

            one = jnp.ones((), z.dtype)
            t, _, g2, r2 = jax.lax.while_loop(cond, body, (one, 0, g_full, norm(g_full)))
            return (z + t * d, g2), r2

        s, res, it, why = drive(
            step, (z0, g0), lambda s: s[0], norm(g0), self.tol, self.max_iter, unrolled
        )
        return Solution(s[0], res, it, why)

    def _minimize(self, problem: Problem, z0) -> Solution:
        obj, unrolled = problem.fn, problem.unrolled
        grad = jax.grad(obj)
        g0 = grad(z0)

        def step(s, k):
            z, g = s
            d = newton_direction(grad, z, g)
            slope = jnp.dot(g, d)
            descent = slope < 0
            d = jnp.where(descent, d, -g)
            slope = jnp.where(descent, slope, -jnp.dot(g, g))
            if unrolled:
                z2 = z + d
                g2 = grad(z2)
                return (z2, g2), norm(g2)
            f0, gn = obj(z), norm(g)

            def accept(t, f, r):  # Armijo, or (the objective flat to round-off) ||g|| falls
                return (f <= f0 + 1e-4 * t * slope) | (r <= (1.0 - 1e-4 * t) * gn)

            def cond(c):
                t, i, f, _, r = c
                return ~accept(t, f, r) & (i < LINE_SEARCH_HALVINGS)

            def body(c):
                t, i, _, _, _ = c
                t = 0.5 * t
                g_try = grad(z + t * d)
                return t, i + 1, obj(z + t * d), g_try, norm(g_try)

            one = jnp.ones((), z.dtype)
            g_full = grad(z + d)
            start = (one, 0, obj(z + d), g_full, norm(g_full))
            t, _, _, g2, r2 = jax.lax.while_loop(cond, body, start)
            return (z + t * d, g2), r2

        s, res, it, why = drive(
            step, (z0, g0), lambda s: s[0], norm(g0), self.tol, self.max_iter, unrolled
        )
        return Solution(s[0], res, it, why)


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class Bisection(IterativeSolver):
    """Bisection for one unknown with a sign change of the residual in [lower, upper].

    Keeps a bracket [lo, hi] with F(lo) and F(hi) of opposite signs and tests its
    midpoint, halving the bracket each step: it converges from any bracket (the error
    at least halves per step) but only linearly, and only for a scalar unknown (checked
    by the checker). ``init`` is not used. Stops as the others do (|F(mid)| <= tol *
    max(1, |mid|)); a bracket without a sign change is the result ``bad_bracket``, and
    one that has shrunk to adjacent floats without meeting the tolerance (a sign change
    without a root, e.g. a pole) is ``stagnated``. Reverse mode through the loop would
    give a zero derivative (the midpoints do not depend on the parameters), so it is
    not ``unrollable``; the implicit derivative is exact as for every solver."""

    name = "bisection"
    kinds = ("root",)
    unrollable = False
    scalar = True

    lower: float
    upper: float

    def invalid(self) -> str | None:
        if not self.lower < self.upper:
            return f"the bracket needs `lower` < `upper`, not {self.lower!r} >= {self.upper!r}"
        return None

    def solve(self, problem: Problem, z0) -> Solution:
        if z0.shape != (1,):  # an invariant: the checker allows scalar unknowns only
            raise ValueError(f"bisection solves one unknown, not {z0.shape[0]}")
        g_fn = problem.residual()
        dt = z0.dtype
        lo = jnp.full((1,), self.lower, dt)
        hi = jnp.full((1,), self.upper, dt)
        f_lo, f_hi = g_fn(lo), g_fn(hi)
        # an end that is a root is the answer; otherwise start from the midpoint
        mid = 0.5 * (lo + hi)
        z = jnp.where(f_lo == 0, lo, jnp.where(f_hi == 0, hi, mid))
        fz = g_fn(z)
        finite = jnp.all(jnp.isfinite(f_lo)) & jnp.all(jnp.isfinite(f_hi))
        bracketed = finite & (self.lower < self.upper) & jnp.all(jnp.sign(f_lo) != jnp.sign(f_hi))
        bracketed = bracketed | jnp.all(f_lo == 0) | jnp.all(f_hi == 0)

        def step(s, k):
            lo, hi, f_lo, z, fz = s
            left = jnp.sign(fz) == jnp.sign(f_lo)  # the root is in [z, hi]
            lo, f_lo = jnp.where(left, z, lo), jnp.where(left, fz, f_lo)
            hi = jnp.where(left, hi, z)
            z = 0.5 * (lo + hi)
            fz = g_fn(z)
            return (lo, hi, f_lo, z, fz), norm(fz)

        def halted(s):  # the bracket cannot shrink any further
            lo, hi, _, z, _ = s
            return jnp.all((z <= lo) | (z >= hi))

        # a bad bracket runs no step: its loop starts with the budget spent
        budget = jnp.where(bracketed, self.max_iter, 0)
        s, res, it, why = drive(
            step, (lo, hi, f_lo, z, fz), lambda s: s[3], norm(fz), self.tol, budget, False, halted
        )
        why = jnp.where(bracketed, why, code(Result.BAD_BRACKET))
        return Solution(s[3], res, it, why)
