"""Constrained minimisers for ``argmin ... subject to ...``: ``augmented_lagrangian``.

The problem (``Problem.constraints``, a :class:`fpl.stdlib.solvers.Constraints`) is

    minimise f(w)  subject to  g(w) = 0 (m_e equalities),  h(w) >= 0 (m_i inequalities)

and its Karush-Kuhn-Tucker (KKT) conditions, with multipliers λ (for g) and μ (for h):

    ∇f(w) - J_g(w)ᵀ λ - J_h(w)ᵀ μ = 0,   g(w) = 0,   min(h(w), μ) = 0   (elementwise).

The last is the natural (semismooth) form of h >= 0, μ >= 0, μ h = 0. The unknown a
constrained solver returns is the stacked vector y = (w, λ, μ) of size n + m_e + m_i;
``Solution.residual`` is the norm of the whole KKT residual above (not only its
gradient part), so ``tol`` bounds the violation of every condition.

Method (Powell-Hestenes-Rockafellar augmented Lagrangian): for a penalty ρ > 0,

    L_ρ(w; λ, μ) = f(w) - λᵀ g(w) + ρ/2 ||g(w)||² + 1/(2ρ) Σ (max(0, μ - ρ h(w))² - μ²)

whose gradient is ∇f - J_gᵀ(λ - ρ g) - J_hᵀ max(0, μ - ρ h). Each outer step minimises
L_ρ in w (Newton with backtracking, ``fpl.stdlib.solvers.root.Newton``, from the last
w), then sets λ <- λ - ρ g(w), μ <- max(0, μ - ρ h(w)): after the update the gradient
of L_ρ is exactly the KKT stationarity residual, and μ >= 0 always. The penalty grows
tenfold (up to ``max_penalty``) when the constraint violation did not fall below a
quarter of the previous one. For a convex f with affine g and concave h this converges
to the KKT point from any start; otherwise to a local one.

Derivatives do not go through these iterations: ``fpl.compiler.implicit`` applies the
implicit function theorem to the KKT residual with the active set frozen at the solution
(see ``kkt_residual``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import REGISTRY
from fpl.stdlib.solvers import (
    Constraints,
    IterativeSolver,
    Problem,
    Solution,
    drive,
)


def split(y, n: int, constraints: Constraints):
    """The parts (w, λ, μ) of a stacked unknown y = (w, λ, μ)."""
    m_e = constraints.equalities
    return y[:n], y[n : n + m_e], y[n + m_e :]


def kkt_violation(objective, constraints: Constraints, w, lam, mu):
    """The norm of the KKT residual (module docstring) at (w, λ, μ): stationarity of the
    Lagrangian, equality violation and the natural complementarity residual min(h, μ)."""
    lagrangian = lambda v: (  # noqa: E731
        objective(v)
        - jnp.dot(lam, constraints.equality(v))
        - jnp.dot(mu, constraints.inequality(v))
    )
    parts = [
        jax.grad(lagrangian)(w),
        constraints.equality(w),
        jnp.minimum(constraints.inequality(w), mu),
    ]
    return jnp.sqrt(sum(jnp.sum(p * p) for p in parts))


def kkt_residual(objective, constraints: Constraints, n: int, active):
    """R(y) for y = (w, λ, μ) with the inequality active set ``active`` (a boolean
    array, one per inequality) frozen: stationarity ∇f - J_gᵀλ - J_hᵀμ, then g(w), then
    h_i(w) for active i and μ_i for inactive i. Its zero is the KKT point where the
    active set is ``active``; where strict complementarity holds (μ_i > 0 on every
    active constraint) it is smooth near the solution and its Jacobian (the KKT matrix
    [[H, -J_gᵀ, -J_Aᵀ], [J_g, 0, 0], [J_A, 0, 0]] with the inactive μ pinned) is
    nonsingular when the active gradients are independent and H is positive definite on
    their null space: the implicit function theorem then gives the derivative of the
    solution (checked: a singular system makes the tangent NaN, compiler/implicit.py)."""

    def residual(y):
        w, lam, mu = split(y, n, constraints)
        lagrangian = lambda v: (  # noqa: E731
            objective(v)
            - jnp.dot(lam, constraints.equality(v))
            - jnp.dot(mu, constraints.inequality(v))
        )
        pinned = jnp.where(active, constraints.inequality(w), mu)
        return jnp.concatenate([jax.grad(lagrangian)(w), constraints.equality(w), pinned])

    return residual


def active_set(constraints: Constraints, y, n: int):
    """The inequalities held active at y: those whose multiplier exceeds the slack
    (μ_i > h_i(w)), the choice the natural residual min(h, μ) makes."""
    w, _, mu = split(y, n, constraints)
    return mu > constraints.inequality(w)


@REGISTRY.solver
@dataclass(frozen=True, kw_only=True)
class AugmentedLagrangian(IterativeSolver):
    """Augmented Lagrangian (method of multipliers) for ``argmin ... subject to``.

    Each outer iteration minimises the augmented Lagrangian in the unknown with Newton
    (``inner_max_iter`` steps at most) and updates the multipliers; the penalty starts at
    ``penalty`` and grows tenfold while the constraint violation falls too slowly (up to
    ``max_penalty``). Converged when the whole KKT residual (stationarity, equality
    violation, complementarity) meets the tolerance. Its inner Newton has a line search
    (a while loop): ``grad=unrolled`` cannot go through it."""

    name = "augmented_lagrangian"
    kinds = ("argmin",)
    unrollable = False
    constrained = True

    max_iter: int = field(default=50, metadata={"min": 1})
    penalty: float = field(default=10.0, metadata={"min": 1e-12})
    max_penalty: float = field(default=1e8, metadata={"min": 1e-12})
    inner_max_iter: int = field(default=100, metadata={"min": 1})

    def invalid(self) -> str | None:
        if self.max_penalty < self.penalty:
            return "`max_penalty` must be at least `penalty`"
        return None

    def solve(self, problem: Problem, z0) -> Solution:
        from fpl.stdlib.solvers.root import Newton

        cons = problem.constraints
        assert cons is not None, "the checker admits constrained solvers on constrained nodes"
        objective = problem.fn
        n = z0.shape[0] - cons.equalities - cons.inequalities
        w0, lam0, mu0 = split(z0, n, cons)
        mu0 = jnp.maximum(mu0, 0.0)
        inner = Newton(tol=0.1 * self.tol, max_iter=self.inner_max_iter)

        def violation(w, mu, rho):
            g = cons.equality(w)
            h = cons.inequality(w)
            return jnp.sqrt(jnp.sum(g * g) + jnp.sum(jnp.minimum(h, mu / rho) ** 2))

        def step(s, k):
            w, lam, mu, rho, viol = s

            def augmented(v):
                g = cons.equality(v)
                shifted = jnp.maximum(0.0, mu - rho * cons.inequality(v))
                return (
                    objective(v)
                    - jnp.dot(lam, g)
                    + 0.5 * rho * jnp.sum(g * g)
                    + jnp.sum(shifted * shifted - mu * mu) / (2.0 * rho)
                )

            w2 = inner.solve(Problem("argmin", augmented), w).z
            lam2 = lam - rho * cons.equality(w2)
            mu2 = jnp.maximum(0.0, mu - rho * cons.inequality(w2))
            viol2 = violation(w2, mu2, rho)
            slow = viol2 > 0.25 * viol
            rho2 = jnp.where(slow, jnp.minimum(10.0 * rho, self.max_penalty), rho)
            state = (w2, lam2, mu2, rho2, viol2)
            return state, kkt_violation(objective, cons, w2, lam2, mu2)

        rho0 = jnp.asarray(self.penalty, z0.dtype)
        state0 = (w0, lam0, mu0, rho0, violation(w0, mu0, rho0))
        s, res, it, why = drive(
            step,
            state0,
            lambda s: s[0],
            kkt_violation(objective, cons, w0, lam0, mu0),
            self.tol,
            self.max_iter,
            problem.unrolled,
        )
        y = jnp.concatenate([s[0], s[1], s[2]])
        return Solution(y, res, it, why)
