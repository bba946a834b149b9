"""Newton's method on ``argmin``: Hessian solves with an Armijo line search on the
objective, checked on an L2-regularised logistic regression (strongly convex) against
SciPy's minimiser, for quadratic convergence, and through a model for its implicit
derivative (finite differences and the closed form dw/dlam = -H^{-1} w)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

import fpl
from fpl.stdlib.registry import registry
from fpl.stdlib.solvers import Problem, Result

RNG = np.random.default_rng(5)
X = RNG.normal(size=(30, 3))
Y = (RNG.uniform(size=30) < 1 / (1 + np.exp(-X @ np.array([1.5, -2.0, 0.5])))).astype(float)
LAM = 0.7


def objective(w, lam=LAM, xp=jnp):
    eta = X @ w
    return xp.sum(xp.logaddexp(0.0, eta) - Y * eta) + 0.5 * lam * xp.dot(w, w)


def scipy_minimum(lam=LAM):
    def fun(w):
        return objective(w, lam, np)

    def jac(w):
        return X.T @ (1 / (1 + np.exp(-X @ w)) - Y) + lam * w

    return minimize(fun, np.zeros(3), jac=jac, method="BFGS", options={"gtol": 1e-12}).x


def hessian(w, lam=LAM):
    p = 1 / (1 + np.exp(-X @ w))
    return X.T @ (X * (p * (1 - p))[:, None]) + lam * np.eye(3)


def newton(**options):
    return registry().solvers["newton"](**options)


def test_converges_to_scipys_minimum_quadratically():
    with jax.enable_x64(True):
        sol = newton(tol=1e-12).solve(Problem("argmin", objective), jnp.zeros(3))
        # the gradient norm after k steps exactly (tol 0: every step is taken)
        norms = [
            float(
                newton(tol=0.0, max_iter=k)
                .solve(Problem("argmin", objective), jnp.zeros(3))
                .residual
            )
            for k in range(3, 6)  # from step 3 on, in the basin
        ]
    assert int(sol.result) == Result.CONVERGED
    assert int(sol.iterations) <= 8  # gradient descent needs hundreds here
    # BFGS to gtol 1e-12 and a Hessian with lambda_min >= 0.7: both within ~1e-12
    np.testing.assert_allclose(np.asarray(sol.z), scipy_minimum(), atol=1e-9)
    # quadratic convergence: once in the basin, ||g_{k+1}|| <= C ||g_k||^2 with C of the
    # order of ||H^{-1}||^2 ||d^3 obj|| (< 10 here); linear convergence would fail this
    pairs = [(a, b) for a, b in zip(norms, norms[1:]) if a < 0.1 and b > 1e-13]
    assert pairs, norms
    for a, b in pairs:
        assert b <= 10.0 * a * a, norms


def test_an_indefinite_start_still_descends():
    # a double well: the Hessian 3 z^2 - 1 is negative at 0.1; the step falls back to -grad
    def well(z):
        return jnp.sum(0.25 * z**4 - 0.5 * z**2)

    with jax.enable_x64(True):
        sol = newton().solve(Problem("argmin", well), jnp.array([0.1, -0.1]))
    assert int(sol.result) == Result.CONVERGED
    np.testing.assert_allclose(np.asarray(sol.z), [1.0, -1.0], atol=1e-8)  # minima, not 0


SRC = """
data n: int
data X: real[n, 3]
data y: real[n]
param lam: real<lower=0> ~ lognormal(0, 1)
fn loss(w) = sum(log1p_exp(X @ w) - y .* (X @ w)) + 0.5 * lam * dot_self(w)
let w = argmin w: real[3] of loss(w) with newton(tol=1e-12)
out coef = w
"""


def test_implicit_derivative_through_newton():
    cm = fpl.compile(SRC).bind({"n": 30, "X": X, "y": Y})
    with jax.enable_x64(True):
        theta = cm.unconstrain({"lam": jnp.asarray(LAM)})

        coef = jax.jit(lambda u: cm.constrain(u)["coef"])

        w = np.asarray(coef(theta))
        jac = np.asarray(jax.jit(jax.jacrev(coef))(theta))[:, 0]
        h = 1e-6
        fd = (np.asarray(coef(theta + h)) - np.asarray(coef(theta - h))) / (2 * h)
    np.testing.assert_allclose(w, scipy_minimum(), atol=1e-9)
    # d w / d log(lam) = -H^{-1} (lam w) (the IFT of lam w + X'(p - y) = 0)
    exact = -np.linalg.solve(hessian(w), LAM * w)
    np.testing.assert_allclose(jac, exact, rtol=1e-8)
    # central differences of a smooth map: O(h^2) + round-off 1e-12 / h
    np.testing.assert_allclose(jac, fd, atol=1e-6)
