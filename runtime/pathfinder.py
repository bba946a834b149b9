"""``Model.pathfinder`` / ``fpl pathfinder``: single-path Pathfinder variational inference
(Zhang, Carpenter, Gelman & Vehtari 2022, "Pathfinder: parallel quasi-Newton variational
inference", JMLR 23(306)).

The maths.  Let ``ℓ(u)`` be the log density on the unconstrained scale (the Jacobian of
the constraining transforms included, as the samplers see it) and ``f = -ℓ``.

1. *The optimization path.*  L-BFGS (optax's, zoom line search) runs on ``f`` from a
   point drawn like the samplers' inits, recording ``u_0, ..., u_L`` and the gradients
   ``g_l = ∇ℓ(u_l)``; it stops when ``max |g| <= tol * max(1, |ℓ|)`` or after ``max_lbfgs``
   iterations.
2. *A Gaussian at every point of the path.*  From the differences ``s_k = u_{k+1} - u_k``
   and ``y_k = -(g_{k+1} - g_k)`` (steps and changes of ∇f) that satisfy the curvature
   condition ``sᵀy > ε yᵀy``, the last ``history`` pairs before ``l`` give the L-BFGS
   inverse-Hessian estimate ``H_l``: the BFGS recursion
   ``H ← (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ`` (ρ = 1/yᵀs) applied to ``γ I`` with
   ``γ = sᵀy / yᵀy`` of the newest pair (the standard initial scaling; the paper's diagonal
   update of the initial matrix is not used).  Each update keeps ``H`` symmetric positive
   definite because ``sᵀy > 0``.  The approximation at ``l`` is
   ``q_l = N(μ_l, H_l)`` with ``μ_l = u_l + H_l g_l`` (one quasi-Newton step to the local
   mode of the quadratic model).
3. *Choosing the point.*  For each ``l`` the ELBO ``E_q[ℓ(u) - log q_l(u)]`` is estimated
   with ``elbo_draws`` draws (common random numbers across ``l``); the path point with
   the largest estimate is kept.  A draw with a non-finite ``ℓ`` counts as ``-inf``.
4. *Draws.*  ``draws`` draws from ``q_{l*}``, mapped back through the constraints, with
   ``lp`` = ``ℓ`` and ``lp_approx`` = ``log q`` per draw in ``sample_stats``; with
   ``importance=True`` (the default, as Stan's ``psis_resample``) they are resampled with
   replacement in proportion to the importance ratios ``exp(ℓ - log q)`` (plain, not
   Pareto-smoothed, ratios; their effective sample size is reported).

Checked: the path has at least one accepted curvature pair (else E0407); each ``H_l`` is
positive definite by construction and its Cholesky factor is finite (a point whose
factor is not is skipped, its ELBO -inf).  Not checked: that ``q`` covers the posterior —
like any variational fit it can be too narrow; use it for fast answers and as NUTS inits
(``model.sample(data, init=pathfinder_fit)`` starts each chain at a different draw).
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.methods import Method, Settings, option


@dataclass(frozen=True)
class PathfinderSettings(Settings):
    draws: int = option(1000, "draws from the approximation", min=1)
    seed: int | None = option(None, "random seed", min=0)
    init: Any = option(None, "initial param values (constrained, by name)", file=True)
    max_lbfgs: int = option(1000, "L-BFGS iterations at most", min=1)
    tol: float = option(1e-8, "relative gradient tolerance of the L-BFGS search", gt=0)
    history: int = option(6, "curvature pairs in each inverse-Hessian estimate", min=1)
    elbo_draws: int = option(25, "draws per ELBO estimate along the path", min=1)
    importance: bool = option(True, "resample the draws by importance ratios", cli=False)


@dataclass(frozen=True)
class PathfinderGaussian:
    """The chosen approximation ``N(mean, cholesky choleskyᵀ)`` on the flat unconstrained
    scale (``cm.ravel`` order), with its ELBO estimate and where on the path it lies."""

    mean: Any
    cholesky: Any
    elbo: float
    lbfgs_iterations: int
    best_iteration: int


def approximate(
    cm, args, *, seed: int, init=None, s: PathfinderSettings | None = None
) -> PathfinderGaussian:
    """Steps 1-3 of the module docstring: the L-BFGS path and the Gaussian with the best
    ELBO on it (call inside ``_float64``).  E0407 when the path has no curvature pair or
    no point with a finite ELBO."""
    import jax
    import jax.numpy as jnp

    from fpl.runtime.inits import find_inits

    s = PathfinderSettings() if s is None else s
    start = cm.ravel(find_inits(cm, args, 1, seed, init)[0])

    def log_density(u, a):
        return cm.log_density(u, data=a)

    path, grads, n_iter = _lbfgs_path(log_density, start, args, s.tol, s.max_lbfgs)
    path, grads = np.asarray(path)[: n_iter + 1], np.asarray(grads)[: n_iter + 1]
    pairs = _history(path, grads, s.history)
    if pairs is None:
        raise error(
            "E0407",
            "Pathfinder: the L-BFGS path has no step with positive curvature",
            help="the log density may be flat or improper there; give `init` values or priors",
        )
    k_elbo = jax.random.split(jax.random.PRNGKey(seed), 4)[0]  # as `run` splits the seed
    z_elbo = jax.random.normal(k_elbo, (s.elbo_draws, path.shape[1]), dtype=jnp.float64)
    elbos = np.asarray(_elbos(log_density, path, grads, pairs, z_elbo, args))
    best = int(np.argmax(np.where(np.isfinite(elbos), elbos, -np.inf)))
    if not np.isfinite(elbos[best]):
        raise error(
            "E0407",
            "Pathfinder: no point of the L-BFGS path gives a finite ELBO",
            help="give `init` values near the posterior's bulk, or use `fpl sample`",
        )
    mean, chol = _gaussian(path[best], grads[best], *(p[best] for p in pairs))
    return PathfinderGaussian(mean, chol, float(elbos[best]), int(n_iter), best)


def run(model, data, s: PathfinderSettings):
    import jax
    import jax.numpy as jnp

    from fpl.runtime.draws import draws_fit, per_draw
    from fpl.runtime.sampling import _float64

    seed = secrets.randbelow(2**31) if s.seed is None else int(s.seed)
    began = time.perf_counter()
    with _float64():
        cm = model.bind(data)
        if not cm.params:
            raise error("E0403", "the model has no params", help="Pathfinder needs a `param`")
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        fitted = approximate(cm, args, seed=seed, init=s.init, s=s)
        _, k_draw, k_resample, k_gen = jax.random.split(jax.random.PRNGKey(seed), 4)
        mu, chol = fitted.mean, fitted.cholesky
        z = jax.random.normal(k_draw, (s.draws, mu.shape[0]), dtype=jnp.float64)
        u = mu + z @ chol.T
        log_q = _log_q(z, chol)
        lp = jax.jit(jax.vmap(lambda x, a: cm.log_density(x, data=a), in_axes=(0, None)))(u, args)
        lp, log_q, u = np.asarray(lp), np.asarray(log_q), np.asarray(u)
        log_w = np.where(np.isfinite(lp), lp - log_q, -np.inf)
        weights = np.exp(log_w - np.max(log_w))
        weights /= np.sum(weights)
        ess = float(1.0 / np.sum(weights**2))
        if s.importance:
            pick = np.asarray(jax.random.choice(k_resample, s.draws, (s.draws,), p=weights))
            u, lp, log_q = u[pick], lp[pick], log_q[pick]
        positions = {k: np.asarray(v)[None] for k, v in jax.vmap(cm.unravel)(u).items()}
        values = per_draw(cm, args, positions, k_gen, unconstrained=True)
    return draws_fit(
        cm,
        values,
        sample_stats={"lp": lp[None], "lp_approx": log_q[None]},
        attrs={
            "method": "pathfinder",
            "seed": seed,
            "draws": s.draws,
            "lbfgs_iterations": fitted.lbfgs_iterations,
            "best_iteration": fitted.best_iteration,
            "elbo": fitted.elbo,
            "importance_ess": ess,
            "seconds": round(time.perf_counter() - began, 3),
        },
    )


def _lbfgs_path(log_density, x0, args, tol: float, max_iter: int):
    """L-BFGS on ``-log_density`` from ``x0``: :func:`lbfgs_search`, compiled."""
    import jax

    return jax.jit(lbfgs_search(log_density, tol, max_iter))(x0, args)


def lbfgs_search(log_density, tol: float, max_iter: int, linesearch=None):
    """``search(x0, args) -> (xs, gs, L)``: L-BFGS on ``-log_density(x, args)`` from
    ``x0``, the iterates and ``∇log_density`` there as ``(max_iter + 1, n)`` arrays (rows
    past the last iterate are zero) and L.  One ``lax.while_loop`` that stops at
    convergence (``max |∇| <= tol * max(1, |log_density|)``), at a non-finite start or
    step, or after ``max_iter``, writing each iterate into preallocated rows: a short
    path costs only its own evaluations.  Not compiled: callers ``jit`` (and ``vmap``)
    it.  ``linesearch``: optax's (default: its zoom search)."""
    import jax
    import jax.numpy as jnp
    import optax

    solver = optax.lbfgs() if linesearch is None else optax.lbfgs(linesearch=linesearch)

    def search(x0, a):
        def f(x):
            return -log_density(x, a)

        value_and_grad = optax.value_and_grad_from_state(f)
        v0, g0 = jax.value_and_grad(f)(x0)
        xs = jnp.zeros((max_iter + 1, x0.size), x0.dtype).at[0].set(x0)
        gs = jnp.zeros((max_iter + 1, x0.size), x0.dtype).at[0].set(-g0)

        def small(value, grad):
            return jnp.max(jnp.abs(grad)) <= tol * jnp.maximum(1.0, jnp.abs(value))

        def cond(carry):
            _, _, done, i, _, _ = carry
            return ~done & (i < max_iter)

        def body(carry):
            x, state, _, i, xs, gs = carry
            value, grad = value_and_grad(x, state=state)
            updates, new_state = solver.update(grad, state, x, value=value, grad=grad, value_fn=f)
            new_x = optax.apply_updates(x, updates)
            new_value = optax.tree_utils.tree_get(new_state, "value")
            new_grad = optax.tree_utils.tree_get(new_state, "grad")
            ok = jnp.isfinite(new_value) & jnp.all(jnp.isfinite(new_grad))
            x = jnp.where(ok, new_x, x)
            state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_state, state)
            i = i + ok.astype(jnp.int32)  # not ok: row i is x already, rewritten as is
            xs = xs.at[i].set(jnp.where(ok, new_x, xs[i]))
            gs = gs.at[i].set(jnp.where(ok, -new_grad, gs[i]))
            return x, state, ~ok | small(new_value, new_grad), i, xs, gs

        finite = jnp.isfinite(v0) & jnp.all(jnp.isfinite(g0))
        init = (x0, solver.init(x0), ~finite | small(v0, g0), jnp.int32(0), xs, gs)
        _, _, _, i, xs, gs = jax.lax.while_loop(cond, body, init)
        return xs, gs, i

    return search


def _history(path: np.ndarray, grads: np.ndarray, memory: int):
    """Per path point ``l``: the last ``memory`` accepted (s, y) pairs before it, as
    ``(S, Y, mask)`` arrays of shape (L+1, memory, n) / (L+1, memory); None if no pair
    satisfies the curvature condition."""
    s = np.diff(path, axis=0)
    y = -np.diff(grads, axis=0)  # the change of ∇f, f = -ℓ
    sy = np.sum(s * y, axis=1)
    yy = np.sum(y * y, axis=1)
    accepted = sy > 2.2e-16 * yy  # curvature condition (relative to |y|², as Stan)
    if not accepted.any():
        return None
    L1, n = path.shape
    S = np.zeros((L1, memory, n))
    Y = np.zeros((L1, memory, n))
    mask = np.zeros((L1, memory), bool)
    kept: list[int] = []
    for l in range(L1):
        if l > 0 and accepted[l - 1]:
            kept = [*kept, l - 1][-memory:]
        for j, k in enumerate(kept):
            S[l, j], Y[l, j], mask[l, j] = s[k], y[k], True
    return S, Y, mask


def _inverse_hessian(S, Y, mask):
    """The L-BFGS inverse-Hessian estimate from the (masked) pairs, oldest first."""
    import jax
    import jax.numpy as jnp

    n = S.shape[1]
    last = jnp.max(jnp.where(mask, jnp.arange(mask.shape[0]), -1))
    s_new, y_new = S[jnp.maximum(last, 0)], Y[jnp.maximum(last, 0)]
    gamma = jnp.where(last >= 0, jnp.dot(s_new, y_new) / jnp.dot(y_new, y_new), 1.0)
    eye = jnp.eye(n, dtype=S.dtype)

    def update(H, pair):
        s, y, use = pair
        rho = 1.0 / jnp.dot(y, s)
        V = eye - rho * jnp.outer(y, s)
        new = V.T @ H @ V + rho * jnp.outer(s, s)
        return jnp.where(use, new, H), None

    H, _ = jax.lax.scan(update, gamma * eye, (S, Y, mask))
    return 0.5 * (H + H.T)


def _gaussian(u, g, S, Y, mask):
    """``(μ, chol(H))`` of the approximation at a path point."""
    import jax.numpy as jnp

    H = _inverse_hessian(jnp.asarray(S), jnp.asarray(Y), jnp.asarray(mask))
    return u + H @ g, jnp.linalg.cholesky(H)


def _log_q(z, chol):
    """log N(μ + C z; μ, C Cᵀ) for standard-normal ``z`` (rows)."""
    import jax.numpy as jnp

    n = z.shape[-1]
    log_det = jnp.sum(jnp.log(jnp.diag(chol)))
    return -0.5 * jnp.sum(z * z, axis=-1) - log_det - 0.5 * n * math.log(2 * math.pi)


def _elbos(log_density, path, grads, pairs, z, args):
    """The ELBO estimate at every path point: common random numbers ``z``, one
    ``(draws, n)`` array for every point, or ``(points, draws, n)`` (a set per point:
    ``fpl.runtime.inits.pathfinder_starts`` gives each path its own); a draw with a
    non-finite density counts as ``-inf``.  One compiled program over all points."""
    import jax
    import jax.numpy as jnp

    S, Y, mask = pairs
    z = np.asarray(z)
    if z.ndim == 2:
        z = np.broadcast_to(z, (len(path), *z.shape))

    def one(item, a):
        u, g, s, y, m, z = item
        mu, chol = _gaussian(u, g, s, y, m)
        x = mu + z @ chol.T
        lp = jax.vmap(log_density, in_axes=(0, None))(x, a)
        terms = jnp.where(jnp.isfinite(lp), lp - _log_q(z, chol), -jnp.inf)
        elbo = jnp.mean(terms)
        return jnp.where(jnp.all(jnp.isfinite(chol)), elbo, -jnp.inf)

    items = tuple(jnp.asarray(a) for a in (path, grads, S, Y, mask, z))
    return jax.jit(lambda it, a: jax.lax.map(lambda item: one(item, a), it))(items, args)


def headline(fit) -> str:
    a = fit.attrs
    return (
        f"path of {a['lbfgs_iterations']} L-BFGS iterations; the approximation at "
        f"iteration {a['best_iteration']} (ELBO {a['elbo']:.6g}); importance ESS "
        f"{a['importance_ess']:.0f} of {a['draws']}\n"
    )


METHOD = Method(
    name="pathfinder",
    help="Pathfinder variational inference (a Gaussian along the L-BFGS path)",
    settings=PathfinderSettings,
    run="fpl.runtime.pathfinder:run",
    headline=headline,
)

__all__ = [
    "METHOD",
    "PathfinderGaussian",
    "PathfinderSettings",
    "approximate",
    "lbfgs_search",
    "run",
]
