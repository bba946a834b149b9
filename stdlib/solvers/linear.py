"""The direct solve of a residual affine in the unknown: ``linear``."""

from __future__ import annotations

from dataclasses import dataclass

from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import REGISTRY
from fpl.stdlib.solvers import (
    DENSE_MAX,
    Problem,
    Result,
    Solution,
    Solver,
    code,
    converged,
    norm,
)


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class Linear(Solver):
    """One direct linear solve, for a residual affine in the unknown (the default of a
    `fix`/`root` body affine in it, or an `argmin` objective quadratic in it).

    R(z) = A z + R(0) with A = dR/dz the same at every z: one solve of A z = -R(0). For
    n <= DENSE_MAX, A is materialised (forward mode over the identity) and LU-factorised,
    with one step of iterative refinement; larger n runs GMRES on Jacobian-vector
    products. ``init`` is not used. For ``argmin`` A is the Hessian and the point is a
    minimum only if A is positive definite: otherwise (a Cholesky factor that is not
    finite) z and the residual are NaN and the result is ``indefinite``. The residual
    ||R(z)|| is measured, not assumed (above ``tol``: ``inaccurate``, e.g. a body that
    is not affine); the iteration count is 1."""

    name = "linear"
    kinds = ("fix", "root", "argmin")
    affine = True

    def solve(self, problem: Problem, z0) -> Solution:
        g_fn = problem.residual()
        n = z0.shape[0]
        base = jnp.zeros_like(z0)
        r0 = g_fn(base)
        minimum = jnp.asarray(True)
        if n <= DENSE_MAX:
            A = jax.jacfwd(g_fn)(base)
            lu = jax.scipy.linalg.lu_factor(A)
            z = jax.scipy.linalg.lu_solve(lu, -r0)
            z = z - jax.scipy.linalg.lu_solve(lu, g_fn(z))  # refinement: R(z) = A z + r0
            if problem.kind == "argmin":
                minimum = jnp.all(jnp.isfinite(jnp.linalg.cholesky(0.5 * (A + A.T))))
                z = jnp.where(minimum, z, jnp.nan)
        else:
            matvec = lambda v: jax.jvp(g_fn, (base,), (v,))[1]  # noqa: E731
            z, _ = jax.scipy.sparse.linalg.gmres(
                matvec, -r0, tol=1e-12, restart=min(n, 50), maxiter=20
            )
        res = norm(g_fn(z))
        res = jnp.where(jnp.all(jnp.isfinite(z)), res, jnp.nan)
        why = jnp.where(jnp.isfinite(res), code(Result.INACCURATE), code(Result.NONFINITE))
        why = jnp.where(converged(res, z, self.tol), code(Result.CONVERGED), why)
        why = jnp.where(minimum, why, code(Result.INDEFINITE))
        return Solution(z, res, jnp.asarray(1, jnp.int32), why)
