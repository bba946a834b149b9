"""Forward solvers for the implicit forms (``fix``, ``root``, ``argmin``).

Every solver works on a flat unknown ``z`` (shape ``(n,)``) and is pure JAX: a
``lax.while_loop`` that stops when the residual meets the tolerance or after
``max_iter`` steps, so it runs under ``jit`` and ``vmap``.  Under ``vmap`` the loop runs
until every lane has stopped; a lane that has stopped keeps its state (each step is
guarded by ``where``), so its answer and iteration count are its own.

Residuals (what ``tol`` is compared with, and what ``z.residual`` reports):
``||f(z) - z||`` for ``fix``, ``||F(z)||`` for ``root``, ``||grad obj(z)||`` for
``argmin`` (Euclidean norms over all entries).  The test is relative+absolute:
``residual <= tol * max(1, ||z||)``, so a tolerance means the same for unknowns of
any scale (an absolute one for ``||z|| <= 1``).

With ``unrolled=True`` a solver runs ``max_iter`` steps of a ``lax.fori_loop`` (steps
after convergence leave the state unchanged, through the same ``where`` guard) so that
JAX can differentiate through the loop (``grad=unrolled``).  Reverse mode then needs a
solver without inner while loops:
``iterate``, ``halpern``, ``anderson``, ``broyden`` and ``gradient_descent`` (and
``newton``, whose line search is dropped in this mode); ``lbfgs``'s zoom line search is a
while loop, so ``grad=unrolled`` with ``lbfgs`` supports forward mode only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from fpl.stdlib.solvers import DEFAULT_SOLVER

DENSE_MAX = 200  # unknowns up to this size use dense Jacobians; larger ones go matrix-free
BROYDEN_MEMORY = 30  # rank-one updates kept by Broyden before it restarts from H0
HALPERN_RESTART = 0.5  # Halpern re-anchors once the residual has fallen by this factor


def norm(x):
    return jnp.sqrt(jnp.sum(x * x))


def converged(res, z, tol):
    return res <= tol * jnp.maximum(1.0, norm(z))


def residual_fn(kind: str, fun: Callable) -> Callable:
    """The residual map R(z) whose zero is the solution."""
    if kind == "fix":
        return lambda z: fun(z) - z
    if kind == "root":
        return fun
    return jax.grad(fun)


def _select(done, old, new):
    return jax.tree.map(lambda a, b: jnp.where(done, a, b), old, new)


def drive(step, state, z_of, res0, tol: float, max_iter: int, unrolled: bool):
    """Run ``step(state, k) -> (state, residual)``; returns (state, residual, iterations)."""

    def stop(s, r, k):
        return (k >= max_iter) | converged(r, z_of(s), tol) | ~jnp.isfinite(r)

    def cond(carry):
        return ~stop(*carry)

    def body(carry):
        s, r, k = carry
        s2, r2 = step(s, k)
        done = stop(s, r, k)  # a lane that has already stopped (under vmap) keeps its state
        return _select(done, s, s2), jnp.where(done, r, r2), jnp.where(done, k, k + 1)

    if unrolled:  # a fixed trip count, so that reverse mode can go through the loop
        carry = (state, res0, jnp.asarray(0, jnp.int32))
        return jax.lax.fori_loop(0, max_iter, lambda i, c: body(c), carry)

    return jax.lax.while_loop(cond, body, (state, res0, jnp.asarray(0, jnp.int32)))


# ---- fixed points ---------------------------------------------------------------------


def _picard(fun, z0, f0, damping, tol, max_iter, unrolled):
    """z <- z + damping (f(z) - z) from (z0, f(z0)); returns (z, f(z), residual, iterations)."""

    def step(s, k):
        z, fz = s
        z2 = z + damping * (fz - z)
        f2 = fun(z2)
        return (z2, f2), norm(f2 - z2)

    (z, fz), res, it = drive(step, (z0, f0), lambda s: s[0], norm(f0 - z0), tol, max_iter,
                             unrolled)  # fmt: skip
    return z, fz, res, it


def iterate(fun, z0, opts, unrolled):
    """Krasnosel'skii-Mann: z <- z + damping (f(z) - z)."""
    z, _, res, it = _picard(fun, z0, fun(z0), opts["damping"], opts["tol"], opts["max_iter"],
                            unrolled)  # fmt: skip
    return z, res, it


def halpern(fun, z0, opts, unrolled):
    """Restarted Halpern: z_{j+1} = a_j anchor + (1 - a_j) f(z_j), a_j = 1/(j+2).  Plain
    Halpern converges as O(1/k) even for contractions; re-anchoring at the current
    iterate whenever the residual has fallen by HALPERN_RESTART since the last anchor
    keeps its robustness for nonexpansive maps and makes it linear for contractions."""
    f0 = fun(z0)
    r0 = norm(f0 - z0)

    def step(s, k):
        z, fz, anchor, j, r_anchor = s
        a = 1.0 / (j + 2.0)
        z2 = a * anchor + (1.0 - a) * fz
        f2 = fun(z2)
        r2 = norm(f2 - z2)
        restart = r2 <= HALPERN_RESTART * r_anchor
        anchor = jnp.where(restart, z2, anchor)
        j = jnp.where(restart, 0.0, j + 1.0)
        r_anchor = jnp.where(restart, r2, r_anchor)
        return (z2, f2, anchor, j, r_anchor), r2

    state = (z0, f0, z0, jnp.zeros((), z0.dtype), r0)
    s, res, it = drive(step, state, lambda s: s[0], r0, opts["tol"], opts["max_iter"], unrolled)
    return s[0], res, it


def anderson(fun, z0, opts, unrolled, f0=None):
    """Anderson acceleration (type II) with ``memory`` past pairs (z_i, f(z_i)).

    Written in difference form relative to the current iterate z (residual g = f(z) - z):
    gamma minimises ||g + sum_i gamma_i (g_i - g)||^2 + reg ||gamma||^2, i.e. the affine
    combination of the current and past residuals of least norm, and then
    z <- mixing * (f(z) + sum gamma_i (f_i - f(z))) + (1 - mixing) * (z + sum gamma_i (z_i - z)).
    Differences keep the update's round-off proportional to the (small) differences, not
    to ||f|| times the size of the weights, which in the plain weighted-sum form limits
    the attainable residual when the history is nearly collinear.  The differences are
    divided by their root-mean-square norm, so ``regularization`` is relative to the
    residual scale (it also keeps the small normal equations solvable when the history is
    rank-deficient, as whenever the iterates span fewer than ``memory`` directions)."""
    beta, reg = opts["mixing"], opts["regularization"]
    n = z0.shape[0]
    delay = min(int(opts.get("delay", 0)), int(opts["max_iter"]))
    if delay > 0:
        # plain Picard steps first: an Anderson step costs a small least-squares solve,
        # tens of times a cheap map's evaluation, and a fast contraction converges in a
        # few Picard steps anyway.  If they did not, Anderson continues from where they
        # got to - or from the start, if the residual grew (the map may not contract).
        f0 = fun(z0)
        zp, fp, rp, itp = _picard(fun, z0, f0, 1.0, opts["tol"], delay, unrolled)
        keep = rp <= norm(f0 - z0)
        rest = dict(opts, delay=0, max_iter=int(opts["max_iter"]) - delay)
        z, res, it = anderson(fun, jnp.where(keep, zp, z0), rest, unrolled,
                              f0=jnp.where(keep, fp, f0))  # fmt: skip
        return z, res, it + itp
    # more than n differences of n unknowns are linearly dependent: extra memory only
    # makes the least-squares problem rank-deficient (and slows small problems down)
    m = max(1, min(opts["memory"], n))
    dt = z0.dtype
    f0 = fun(z0) if f0 is None else f0  # f(z0), when the caller already has it
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

    state = (z0, f0, jnp.zeros((m, n), dt), jnp.zeros((m, n), dt), jnp.asarray(0, jnp.int32))
    s, res, it = drive(step, state, lambda s: s[0], norm(f0 - z0), opts["tol"],
                       opts["max_iter"], unrolled)  # fmt: skip
    return s[0], res, it


# ---- roots (and fixed points as roots of f(z) - z) -------------------------------------


def broyden(kind, fun, z0, opts, unrolled):
    """Good Broyden on the residual g(z), with the inverse Jacobian kept as
    H = H0 + sum_i u_i v_i^T (Sherman-Morrison form of the rank-one updates; restarted
    from H0 after BROYDEN_MEMORY updates).  H0 = -I for ``fix`` (the first step is a
    Picard step); for ``root`` the inverse of the exact Jacobian at the initial point
    (n <= DENSE_MAX; identity if singular), else the identity scaled by a Rayleigh
    quotient of the Jacobian."""
    g_fn = residual_fn(kind, fun)
    n = z0.shape[0]
    dt = z0.dtype
    m = max(1, min(BROYDEN_MEMORY, opts["max_iter"]))
    g0 = g_fn(z0)
    if kind == "fix":
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

    state = (z0, g0, jnp.zeros((m, n), dt), jnp.zeros((m, n), dt), jnp.asarray(0, jnp.int32))
    s, res, it = drive(step, state, lambda s: s[0], norm(g0), opts["tol"], opts["max_iter"],
                       unrolled)  # fmt: skip
    return s[0], res, it


def newton_direction(g_fn, z, g):
    """Solve J(z) d = -g: dense (jacfwd + LU) for n <= DENSE_MAX, else GMRES on jvps."""
    n = z.shape[0]
    if n <= DENSE_MAX:
        d = jnp.linalg.solve(jax.jacfwd(g_fn)(z), -g)
    else:
        matvec = lambda v: jax.jvp(g_fn, (z,), (v,))[1]  # noqa: E731
        d, _ = jax.scipy.sparse.linalg.gmres(matvec, -g, tol=1e-10, restart=min(n, 40),
                                             maxiter=10)  # fmt: skip
    return jnp.where(jnp.all(jnp.isfinite(d)), d, -g)


def newton(kind, fun, z0, opts, unrolled):
    """Newton's method on the residual with a backtracking (Armijo on ||g||) line
    search: halve the step up to 30 times until ||g(z + t d)|| <= (1 - 1e-4 t) ||g(z)||.
    The line search is left out when ``unrolled``."""
    g_fn = residual_fn(kind, fun)
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
            return ~(r <= (1.0 - 1e-4 * t) * gn) & (i < 30)

        def body(c):
            t, i, _, _ = c
            t = 0.5 * t
            g_try = g_fn(z + t * d)
            return t, i + 1, g_try, norm(g_try)

        one = jnp.ones((), z.dtype)
        t, _, g2, r2 = jax.lax.while_loop(cond, body, (one, 0, g_full, norm(g_full)))
        return (z + t * d, g2), r2

    s, res, it = drive(step, (z0, g0), lambda s: s[0], norm(g0), opts["tol"], opts["max_iter"],
                       unrolled)  # fmt: skip
    return s[0], res, it


# ---- argmins --------------------------------------------------------------------------


def lbfgs(obj, z0, opts, unrolled):
    """L-BFGS (optax, zoom line search), iterated until ||grad|| meets the tolerance."""
    import optax

    opt = optax.lbfgs(memory_size=opts["memory"])
    value_and_grad = optax.value_and_grad_from_state(obj)
    g0 = jax.grad(obj)(z0)

    def step(s, k):
        z, state, _ = s
        value, grad = value_and_grad(z, state=state)
        updates, state = opt.update(grad, state, z, value=value, grad=grad, value_fn=obj)
        z2 = optax.apply_updates(z, updates)
        g2 = optax.tree_utils.tree_get(state, "grad")
        return (z2, state, g2), norm(g2)

    s, res, it = drive(step, (z0, opt.init(z0), g0), lambda s: s[0], norm(g0), opts["tol"],
                       opts["max_iter"], unrolled)  # fmt: skip
    return s[0], res, it


def gradient_descent(obj, z0, opts, unrolled):
    """z <- z - learning_rate * grad obj(z)."""
    grad = jax.grad(obj)
    lr = opts["learning_rate"]
    g0 = grad(z0)

    def step(s, k):
        z, g = s
        z2 = z - lr * g
        g2 = grad(z2)
        return (z2, g2), norm(g2)

    s, res, it = drive(step, (z0, g0), lambda s: s[0], norm(g0), opts["tol"], opts["max_iter"],
                       unrolled)  # fmt: skip
    return s[0], res, it


# ---- affine bodies -------------------------------------------------------------------


def linear(kind, fun, z0, opts):
    """A residual that is affine in z, R(z) = A z + R(0) (``fix``/``root`` bodies affine in
    the unknown, ``argmin`` objectives quadratic in it): one direct solve of A z = -R(0).

    A = dR/dz is the same at every z; for n <= DENSE_MAX it is materialised (forward
    mode over the identity) and LU-factorised, with one step of iterative refinement;
    larger n runs GMRES on Jacobian-vector products.  For ``argmin`` A is the Hessian and
    the point is a minimum only if A is positive definite: otherwise (a Cholesky factor
    that is not finite) the residual is reported as NaN, i.e. the solve failed.  The
    residual ||R(z)|| is measured, not assumed; the iteration count is 1."""
    g_fn = residual_fn(kind, fun)
    n = z0.shape[0]
    base = jnp.zeros_like(z0)
    r0 = g_fn(base)
    if n <= DENSE_MAX:
        A = jax.jacfwd(g_fn)(base)
        lu = jax.scipy.linalg.lu_factor(A)
        z = jax.scipy.linalg.lu_solve(lu, -r0)
        z = z - jax.scipy.linalg.lu_solve(lu, g_fn(z))  # refinement: R(z) = A z + r0
        if kind == "argmin":
            spd = jnp.all(jnp.isfinite(jnp.linalg.cholesky(0.5 * (A + A.T))))
            z = jnp.where(spd, z, jnp.nan)
    else:
        matvec = lambda v: jax.jvp(g_fn, (base,), (v,))[1]  # noqa: E731
        z, _ = jax.scipy.sparse.linalg.gmres(matvec, -r0, tol=1e-12, restart=min(n, 50),
                                             maxiter=20)  # fmt: skip
    res = norm(g_fn(z))
    res = jnp.where(jnp.all(jnp.isfinite(z)), res, jnp.nan)
    return z, res, jnp.asarray(1, jnp.int32)


DEFAULT = DEFAULT_SOLVER


def solve(kind: str, name: str, fun: Callable, z0, opts: dict[str, Any], unrolled: bool = False):
    """Solve the ``kind`` problem given by ``fun`` (f, F or obj on flat z) from ``z0``.
    Returns (z, residual norm, iterations)."""
    name = name or DEFAULT[kind]
    if name in ("iterate", "halpern", "anderson"):
        return {"iterate": iterate, "halpern": halpern, "anderson": anderson}[name](
            fun, z0, opts, unrolled
        )
    if name in ("broyden", "newton"):
        return {"broyden": broyden, "newton": newton}[name](kind, fun, z0, opts, unrolled)
    if name == "lbfgs":
        return lbfgs(fun, z0, opts, unrolled)
    if name == "gradient_descent":
        return gradient_descent(fun, z0, opts, unrolled)
    raise ValueError(f"unknown solver {name!r}")


__all__ = ["solve", "linear", "converged", "residual_fn", "norm", "DENSE_MAX", "DEFAULT"]
