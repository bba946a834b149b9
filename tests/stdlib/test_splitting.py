"""Operator-splitting solvers on a monotone DEQ (Winston and Kolter 2020).

z = relu(W z + u + s) with W = (1 - m) I - A'A + B - B' (so I - W is m-strongly
monotone) and ||W|| > 1: not a contraction, the plain iteration need not converge, but
the fixed point is unique and forward-backward (step < 2 m / L^2) and Peaceman-Rachford
(any step) find it. The reference is a direct solve: with the active set D = diag(W z +
u + s > 0) of the solution, z = (I - D W)^{-1} D (u + s) exactly; the implicit gradient
dz/ds = (I - D W)^{-1} D is that same closed form, and finite differences check it too.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError

N = 6
M = 0.5  # the monotonicity margin: I - W >= M I
RNG = np.random.default_rng(3)
A = 0.7 * RNG.normal(size=(N, N)) / np.sqrt(N)
B = 0.7 * RNG.normal(size=(N, N)) / np.sqrt(N)
W = (1 - M) * np.eye(N) - A.T @ A + B - B.T
L = np.linalg.norm(np.eye(N) - W, 2)  # the Lipschitz constant of F(z) = (I - W) z
U = RNG.normal(size=N)
S = 0.3 * RNG.normal(size=N)

SRC = """
data n: int
data W: real[n, n]
data u: real[n]
param s: real[n] ~ normal(0, 1)
let z = fix z: real[n] = prox_nonneg(W @ z + u + s) with SOLVER
out value = z
out its = z.iterations
"""


def direct(s):
    """The fixed point by a direct solve on its active set (found by a long FB run)."""
    z = np.zeros(N)
    for _ in range(5000):
        z = np.maximum(z - (M / L**2) * ((np.eye(N) - W) @ z - U - s), 0.0)
    D = np.diag((W @ z + U + s > 0).astype(float))
    inverse = np.linalg.inv(np.eye(N) - D @ W)
    return inverse @ D @ (U + s), inverse @ D


def test_the_problem_is_monotone_but_not_a_contraction():
    assert np.linalg.eigvalsh(np.eye(N) - 0.5 * (W + W.T)).min() >= M - 1e-12
    assert max(abs(np.linalg.eigvals(W))) > 1.0  # rho(W) = 1.19: Picard diverges


@pytest.mark.parametrize(
    "solver",
    [
        f"forward_backward(step={float(M / L**2)!r}, tol=1e-12, max_iter=5000)",
        "peaceman_rachford(tol=1e-12)",
    ],
)
def test_monotone_deq_values_and_gradients(solver):
    cm = fpl.compile(SRC.replace("SOLVER", solver)).bind({"n": N, "W": W, "u": U})
    with jax.enable_x64(True):
        value = jax.jit(lambda s: cm.constrain(s)["value"])
        z = np.asarray(value(jnp.asarray(S)))
        jac = np.asarray(jax.jit(jax.jacrev(value))(jnp.asarray(S)))
        h = 1e-6
        fd = np.stack(
            [
                (value(jnp.asarray(S + h * e)) - value(jnp.asarray(S - h * e))) / (2 * h)
                for e in np.eye(N)
            ],
            axis=1,
        )
        its = int(cm.constrain(jnp.asarray(S))["its"])
    exact, exact_jac = direct(S)
    assert 0 < (exact > 0).sum() < N  # both active and inactive units: the prox matters
    # the solves stop at residual 1e-12 and (I - D W)^-1 is modest (cond < 10 here):
    # 1e-9 absolute
    np.testing.assert_allclose(z, exact, atol=1e-9)
    np.testing.assert_allclose(jac, exact_jac, atol=1e-8)
    # central differences of a piecewise-linear map away from its kinks: exact up to
    # round-off of the 1e-12 solves divided by h
    np.testing.assert_allclose(jac, fd, atol=1e-5)
    if solver.startswith("peaceman"):
        assert its < 100  # PR contracts on a strongly monotone F


def test_forward_backward_unrolled_matches_the_implicit_gradient():
    # reverse mode through 2000 forward-backward steps (contraction ~0.98 per step:
    # 0.98^2000 ~ 1e-18) is a third route to dz/ds
    solver = f"forward_backward(step={float(M / L**2)!r}, max_iter=2000) grad=unrolled"
    cm = fpl.compile(SRC.replace("SOLVER", solver)).bind({"n": N, "W": W, "u": U})
    with jax.enable_x64(True):
        value = jax.jit(lambda s: cm.constrain(s)["value"])
        jac = np.asarray(jax.jit(jax.jacrev(value))(jnp.asarray(S)))
    np.testing.assert_allclose(jac, direct(S)[1], atol=1e-8)


def test_a_splitting_solver_needs_a_prox_map():
    src = """
data u: real[3]
let z = fix z: real[3] = 0.5 * tanh(z) + u with douglas_rachford()
"""
    with pytest.raises(FplError) as info:
        fpl.compile(src)
    assert info.value.code == "E0206"
    assert "prox" in info.value.diagnostics[0].message
