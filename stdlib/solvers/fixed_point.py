"""Fixed-point iterations for ``fix`` (z = f(z)): ``iterate``, ``halpern``, ``anderson``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import REGISTRY
from fpl.stdlib.solvers import IterativeSolver, Problem, Result, Solution, code, drive, norm

HALPERN_RESTART = 0.5  # Halpern re-anchors once the residual has fallen by this factor


def budget(solver, tol: float, max_iter: int) -> tuple[float, int]:
    """The (tol, max_iter) a solve runs with: ``steps = K > 0`` is a fixed budget of
    exactly K steps (no tolerance test: tol 0 stops early only at an exact fixed point,
    where further steps change nothing)."""
    return (0.0, solver.steps) if solver.steps else (tol, max_iter)


def budget_result(solver, why):
    """A fixed budget is not a failure: K steps done with a finite residual is
    ``converged`` (the residual after K steps is reported as the node's residual)."""
    if not solver.steps:
        return why
    return jnp.where(why == Result.NONFINITE, why, code(Result.CONVERGED))


def picard(fun, z0, f0, damping, tol, max_iter, unrolled, keep_best=None):
    """z <- z + damping (f(z) - z) from (z0, f(z0)); returns
    (z, f(z), residual, iterations, result)."""

    def step(s, k):
        z, fz = s
        z2 = z + damping * (fz - z)
        f2 = fun(z2)
        return (z2, f2), norm(f2 - z2)

    (z, fz), res, it, why = drive(
        step, (z0, f0), lambda s: s[0], norm(f0 - z0), tol, max_iter, unrolled, None, keep_best
    )
    return z, fz, res, it, why


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class Iterate(IterativeSolver):
    """Picard / Krasnosel'skii-Mann iteration z <- (1 - damping) z + damping f(z)."""

    name = "iterate"
    kinds = ("fix",)

    damping: float = field(default=1.0, metadata={"min": 0.0})
    #: a fixed budget: exactly this many steps, not a failure (0: iterate to ``tol``)
    steps: int = field(default=0, metadata={"min": 0})

    def solve(self, problem: Problem, z0) -> Solution:
        fun = problem.fn
        tol, max_iter = budget(self, self.tol, self.max_iter)
        z, _, res, it, why = picard(
            fun,
            z0,
            fun(z0),
            self.damping,
            tol,
            max_iter,
            problem.unrolled,
            keep_best=False if self.steps else None,  # a budget's answer is the K-th iterate
        )
        return Solution(z, res, it, budget_result(self, why))


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class Halpern(IterativeSolver):
    """Halpern iteration z_{k+1} = a_k z_0 + (1 - a_k) f(z_k), a_k = 1/(k+2).

    Restarted: plain Halpern converges as O(1/k) even for contractions; re-anchoring at
    the current iterate whenever the residual has fallen by HALPERN_RESTART since the
    last anchor keeps its robustness for nonexpansive maps and makes it linear for
    contractions."""

    name = "halpern"
    kinds = ("fix",)

    #: a fixed budget: exactly this many steps, not a failure (0: iterate to ``tol``);
    #: plain Halpern (no restarts) then, whose residual after K steps of a nonexpansive
    #: map is certified: ||f(z_K) - z_K|| <= 2 ||z_0 - z*|| / (K + 1) (Lieder 2021)
    steps: int = field(default=0, metadata={"min": 0})

    def solve(self, problem: Problem, z0) -> Solution:
        fun = problem.fn
        f0 = fun(z0)
        r0 = norm(f0 - z0)

        def step(s, k):
            z, fz, anchor, j, r_anchor = s
            a = 1.0 / (j + 2.0)
            z2 = a * anchor + (1.0 - a) * fz
            f2 = fun(z2)
            r2 = norm(f2 - z2)
            restart = (r2 <= HALPERN_RESTART * r_anchor) & (self.steps == 0)
            anchor = jnp.where(restart, z2, anchor)
            j = jnp.where(restart, 0.0, j + 1.0)
            r_anchor = jnp.where(restart, r2, r_anchor)
            return (z2, f2, anchor, j, r_anchor), r2

        state = (z0, f0, z0, jnp.zeros((), z0.dtype), r0)
        tol, max_iter = budget(self, self.tol, self.max_iter)
        s, res, it, why = drive(
            step,
            state,
            lambda s: s[0],
            r0,
            tol,
            max_iter,
            problem.unrolled,
            keep_best=False if self.steps else None,  # a budget's answer is the K-th iterate
        )
        return Solution(s[0], res, it, budget_result(self, why))


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class Anderson(IterativeSolver):
    """Anderson acceleration with `memory` past iterates, after `delay` plain Picard steps
    (cheap; a fast contraction is done by then) (at most n are used for n
    unknowns; the default 20 cuts iterations >= 3x vs `iterate` on DEQ-like maps, see
    docs/benchmarks.md); the least-squares regularisation is relative to the residual
    scale.

    Type II, in difference form relative to the current iterate z (residual g = f(z) - z):
    gamma minimises ||g + sum_i gamma_i (g_i - g)||^2 + reg ||gamma||^2, i.e. the affine
    combination of the current and past residuals of least norm, and then
    z <- mixing * (f(z) + sum gamma_i (f_i - f(z))) + (1 - mixing) * (z + sum gamma_i (z_i - z)).
    Differences keep the update's round-off proportional to the (small) differences, not
    to ||f|| times the size of the weights, which in the plain weighted-sum form limits
    the attainable residual when the history is nearly collinear. The differences are
    divided by their root-mean-square norm, so ``regularization`` is relative to the
    residual scale (it also keeps the small normal equations solvable when the history is
    rank-deficient, as whenever the iterates span fewer than ``memory`` directions). A
    step that grew the residual restarts the history."""

    name = "anderson"
    kinds = ("fix",)

    memory: int = field(default=20, metadata={"min": 1})
    mixing: float = field(default=1.0, metadata={"min": 0.0})
    regularization: float = field(default=1e-10, metadata={"min": 0.0})
    delay: int = field(default=10, metadata={"min": 0})

    def solve(self, problem: Problem, z0) -> Solution:
        fun, unrolled = problem.fn, problem.unrolled
        delay = min(int(self.delay), int(self.max_iter))
        if delay == 0:
            return self._accelerate(fun, z0, fun(z0), int(self.max_iter), unrolled)
        # plain Picard steps first: an Anderson step costs a small least-squares solve,
        # tens of times a cheap map's evaluation, and a fast contraction converges in a
        # few Picard steps anyway. If they did not, Anderson continues from where they
        # got to - or from the start, if the residual grew (the map may not contract).
        f0 = fun(z0)
        zp, fp, rp, itp, _ = picard(fun, z0, f0, 1.0, self.tol, delay, unrolled, keep_best=False)
        keep = rp <= norm(f0 - z0)
        z, res, it, why = self._accelerate(
            fun,
            jnp.where(keep, zp, z0),
            jnp.where(keep, fp, f0),
            int(self.max_iter) - delay,
            unrolled,
        )
        return Solution(z, res, it + itp, why)

    def _accelerate(self, fun, z0, f0, max_iter: int, unrolled: bool) -> Solution:
        """Anderson steps from (z0, f(z0)), at most ``max_iter`` of them."""
        beta, reg = self.mixing, self.regularization
        n = z0.shape[0]
        # more than n differences of n unknowns are linearly dependent: extra memory only
        # makes the least-squares problem rank-deficient (and slows small problems down)
        m = max(1, min(self.memory, n))
        dt = z0.dtype
        tiny = jnp.finfo(dt).tiny

        def step(s, k):
            z, fz, X, F, c = s
            g = fz - z
            valid = (jnp.arange(m) < jnp.minimum(c, m))[:, None]
            DX = jnp.where(valid, X - z, 0.0)
            DF = jnp.where(valid, F - fz, 0.0)
            DG = DF - DX
            scale = jnp.sqrt(jnp.sum(DG * DG) / jnp.maximum(jnp.sum(valid), 1) + tiny)
            DGs, gs = DG / scale, g / scale
            H = DGs @ DGs.T + reg * jnp.eye(m, dtype=dt)
            gamma = -jnp.linalg.solve(H, DGs @ gs)
            z2 = beta * (fz + gamma @ DF) + (1.0 - beta) * (z + gamma @ DX)
            slot = c % m
            X = X.at[slot].set(z)
            F = F.at[slot].set(fz)
            f2 = fun(z2)
            r2 = norm(f2 - z2)
            # safeguard: a step that grew the residual restarts the history (a long memory
            # of iterates from far away can otherwise stall or diverge the extrapolation)
            c = jnp.where(r2 > norm(g), 0, c + 1)
            return (z2, f2, X, F, c), r2

        history = jnp.zeros((m, n), dt)
        state = (z0, f0, history, history, jnp.asarray(0, jnp.int32))
        s, res, it, why = drive(
            step, state, lambda s: s[0], norm(f0 - z0), self.tol, max_iter, unrolled
        )
        return Solution(s[0], res, it, why)
