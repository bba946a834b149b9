"""``argmin ... subject to`` (equality and inequality constraints, KKT by the IFT).

A nonnegative, equality-constrained ridge regression

    w* = argmin ||X w - y||² + lam ||w||²  subject to  A w = b,  w >= 0

is solved by the ``augmented_lagrangian`` solver and checked against SciPy's SLSQP; its
derivatives in ``lam`` and in ``b`` (reverse mode, and forward over reverse for the
Hessian) against central finite
differences and against an independent route: with the active set I = {i : w*_i = 0}
fixed, the free coordinates F solve the equality-constrained QP whose KKT linear system

    [[2 (X_Fᵀ X_F + lam I), A_Fᵀ], [A_F, 0]] [w_F; ν] = [2 X_Fᵀ y; b]

is solved here directly with NumPy, and differentiated by solving it again with the
derivative of its right-hand side (d/dlam: [-2 w_F; 0]; d/db: [0; I]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import fpl
from fpl.compiler.printer import format_program
from fpl.stdlib.solvers import Result

RNG = np.random.default_rng(3)
K, N, M = 10, 5, 2
X = RNG.normal(size=(K, N))
Y = RNG.normal(size=K)
A = np.abs(RNG.normal(size=(M, N)))
LAM = 0.5
B = np.array([1.0, 0.8])
WEIGHTS = np.array([1.0, -2.0, 0.5, 3.0, -1.0])  # a scalar of w for the second order
DATA = {"k": K, "n": N, "m": M, "X": X, "y": Y, "A": A}

SRC = """
data k: int
data n: int
data m: int
data X: real[k, n]
data y: real[k]
data A: real[m, n]
param lam: real<lower=0> ~ lognormal(0, 1)
param b: real[m] ~ normal(1, 1)
let w = argmin w: real[n] of sum(square(X @ w - y)) + lam * dot_self(w) SUBJECT
out coef = w
"""
SUBJECT = "subject to A @ w == b, w >= 0"


def objective(w, lam=LAM):
    return np.sum((X @ w - Y) ** 2) + lam * w @ w


def slsqp(lam=LAM, b=B):
    found = minimize(
        objective,
        np.full(N, 0.2),
        args=(lam,),
        jac=lambda w, lam: 2 * X.T @ (X @ w - Y) + 2 * lam * w,
        method="SLSQP",
        constraints=[{"type": "eq", "fun": lambda w: A @ w - b, "jac": lambda w: A}],
        bounds=[(0.0, None)] * N,
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert found.success, found.message
    return found.x


def active_set_kkt(free, lam=LAM, b=B):
    """The solution and its derivatives in lam and b with the zero set fixed: the KKT
    system of the equality-constrained QP on the free coordinates, solved directly."""
    Xf, Af = X[:, free], A[:, free]
    f = len(free)
    kkt = np.block([[2 * (Xf.T @ Xf + lam * np.eye(f)), Af.T], [Af, np.zeros((M, M))]])
    solution = np.linalg.solve(kkt, np.concatenate([2 * Xf.T @ Y, b]))
    w = np.zeros(N)
    w[free] = solution[:f]
    d_lam = np.linalg.solve(kkt, np.concatenate([-2 * w[free], np.zeros(M)]))[:f]
    d_b = np.linalg.solve(kkt, np.vstack([np.zeros((f, M)), np.eye(M)]))[:f]
    jac = np.zeros((N, 1 + M))  # columns: lam, b_1, b_2
    jac[free, 0] = d_lam
    jac[free, 1:] = d_b
    return w, jac


@pytest.fixture(scope="module")
def fitted():
    model = fpl.compile(SRC.replace("SUBJECT", SUBJECT))
    cm = model.bind(DATA)
    with jax.enable_x64(True):
        theta = cm.unconstrain({"lam": jnp.asarray(LAM), "b": jnp.asarray(B)})
        coef = jax.jit(lambda u: cm.constrain(u)["coef"])
        w = np.asarray(coef(theta))
        jacobian = jax.jit(jax.jacrev(coef))
        reverse = np.asarray(jacobian(theta))
        h = 1e-6
        fd = np.stack(
            [
                (np.asarray(coef(theta + h * e)) - np.asarray(coef(theta - h * e))) / (2 * h)
                for e in np.eye(theta.shape[0])
            ],
            axis=1,
        )
        lp, stats = cm.log_density(theta, stats=True)
        # second order: the Hessian of a scalar of w (forward over reverse through the
        # node) and central differences of the reverse-mode Jacobian (compiled once)
        hessian = np.asarray(jax.jit(jax.hessian(lambda u: coef(u) @ WEIGHTS))(theta))
        fd_second = np.stack(
            [
                WEIGHTS
                @ (np.asarray(jacobian(theta + h * e)) - np.asarray(jacobian(theta - h * e)))
                / (2 * h)
                for e in np.eye(theta.shape[0])
            ],
            axis=1,
        )
    derivatives = {"reverse": reverse, "fd": fd}
    derivatives |= {"hessian": hessian, "fd_second": fd_second}
    return model, w, derivatives, float(lp), stats


def test_values_match_slsqp_and_the_constraints_hold(fitted):
    _, w, *_ = fitted
    # SLSQP to ftol 1e-15 and our KKT residual <= 1e-8: both within ~1e-7 of the minimum
    np.testing.assert_allclose(w, slsqp(), atol=1e-6)
    np.testing.assert_allclose(A @ w, B, atol=1e-7)
    assert np.all(w >= -1e-7)
    assert np.sum(w < 1e-6) >= 1  # the bounds bind: the case tests the active set


def test_derivatives_match_the_active_set_kkt_system_and_finite_differences(fitted):
    _, w, derivatives, _, _ = fitted
    reverse, fd = derivatives["reverse"], derivatives["fd"]
    free = np.nonzero(w > 1e-6)[0]
    exact_w, jac = active_set_kkt(free)
    np.testing.assert_allclose(w, exact_w, atol=1e-7)  # the independent route's value
    # theta = (log lam, b): d/dlog(lam) = lam d/dlam; b is unconstrained
    exact = jac * np.array([LAM, 1.0, 1.0])
    # the IFT tangent is one dense LU solve of the frozen KKT matrix (condition ~1e2):
    # agreement to ~1e-12 relative, 1e-7 leaves room for the 1e-8 forward residual
    np.testing.assert_allclose(reverse, exact, atol=1e-7)
    # central differences, h = 1e-6, away from an active-set change (every free w_i is
    # > 0.1 and every active multiplier > 0 here): O(h^2) + solver noise 1e-8 / h
    np.testing.assert_allclose(fd, exact, atol=5e-3)


def test_the_node_reports_its_kkt_residual_and_prints_its_constraints(fitted):
    model, _, _, lp, stats = fitted
    (node,) = stats.values()
    assert bool(node["converged"]) and int(node["reason"]) == Result.CONVERGED
    assert 0 < float(node["residual"]) <= 1e-8 * max(1.0, np.linalg.norm(fitted[1]))
    assert np.isfinite(lp)
    text = format_program(model.ir)
    assert "subject to" in text and ">= 0" in text and "== 0" in text


def test_an_infeasible_problem_is_reported_and_the_density_is_minus_infinity():
    # w >= 1 and w <= 0 have no common point: the violation cannot reach the tolerance
    src = SRC.replace("SUBJECT", "subject to w >= 1, w <= 0 with augmented_lagrangian(max_iter=3)")
    cm = fpl.compile(src).bind(DATA)
    with jax.enable_x64(True):
        theta = cm.unconstrain({"lam": jnp.asarray(LAM), "b": jnp.asarray(B)})
        lp, stats = cm.log_density(theta, stats=True)
    (node,) = stats.values()
    assert not bool(node["converged"])
    assert int(node["reason"]) == Result.MAX_ITER_REACHED
    assert int(node["failures"]) == 1
    assert float(lp) == -np.inf


@pytest.mark.parametrize(
    "subject,code,words",
    [
        ("subject to b == A @ b", "E0206", "does not depend on the unknown"),
        # real[n] against real[m]: caught when the sizes are known (n = 5, m = 2)
        ("subject to w == b", "E0202", "w == b"),
        ("subject to A @ w == w", "E0202", "A @ w == w"),
        ("subject to w", "E0206", "is a comparison"),
        ("subject to w > 0", "E0206", "is a comparison"),
        ("subject to w >= 0 with lbfgs()", "E0206", "with `subject to`"),
        ("with augmented_lagrangian()", "E0206", "without `subject to`"),
        ("subject to w >= 0 grad=unrolled", "E0206", "cannot go through"),
    ],
)
def test_bad_constraints_are_coded_errors(subject, code, words):
    with pytest.raises(fpl.FplError) as exc:
        fpl.compile(SRC.replace("SUBJECT", subject)).bind(DATA)
    assert exc.value.code == code
    assert words in exc.value.render()


@pytest.mark.parametrize(
    "subject,word", [("subjekt to w >= 0", "subjekt"), ("subject t w >= 0", "t")]
)
def test_a_misspelt_subject_to_is_a_syntax_error(subject, word):
    with pytest.raises(fpl.FplError) as exc:
        fpl.compile(SRC.replace("SUBJECT", subject))
    assert exc.value.code == "E0101"
    assert f"unexpected `{word}`" in exc.value.render()


def test_subject_and_to_remain_ordinary_names():
    src = "param subject ~ normal(0, 1)\nlet to = 2 * subject\nout twice = to"
    assert fpl.compile(src).ir.outs


def test_second_derivatives_match_the_closed_form_and_finite_differences(fitted):
    _, w, derivatives, _, _ = fitted
    free = np.nonzero(w > 1e-6)[0]

    def gradient(log_lam, b):  # the closed form's gradient of WEIGHTS . w in theta
        # (theta = (log lam, b): d/dlog(lam) = lam d/dlam)
        return WEIGHTS @ active_set_kkt(free, np.exp(log_lam), b)[1] * [np.exp(log_lam), 1, 1]

    h = 1e-5
    theta0 = np.concatenate([[np.log(LAM)], B])
    exact = np.stack(
        [
            (gradient(t[0], t[1:]) - gradient(s[0], s[1:])) / (2 * h)
            for t, s in ((theta0 + h * e, theta0 - h * e) for e in np.eye(3))
        ],
        axis=1,
    )
    hessian = derivatives["hessian"]
    # the closed form is differenced in double precision with h = 1e-5 (O(h^2) ~ 1e-10,
    # round-off 1e-16 / h): 1e-6 covers both; the FD of the node's own Jacobian (h =
    # 1e-6, IFT tangents exact to ~1e-10) is within ~1e-4
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-9)
    np.testing.assert_allclose(hessian, exact, atol=1e-6)
    np.testing.assert_allclose(derivatives["fd_second"], hessian, atol=1e-4)
