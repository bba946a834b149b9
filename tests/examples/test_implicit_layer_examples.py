"""The implicit-layer examples of issue 12 (``pnp_deblur``, ``self_tuning_ridge``,
``halpern_nnls``), trained and checked against independent answers: NumPy solves of the
same problems (ISTA, closed-form ridge, SciPy's NNLS) and the Halpern certificate.

``CHECKS`` maps each example to its check (``test_learning_examples.py``'s completeness
test can take them from here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optax
import pytest
from scipy.optimize import nnls

import fpl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED = 11


def data(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def train(name: str, optimizer, steps: int):
    model = fpl.load(EXAMPLES / f"{name}.fpl")
    result = model.optimize(data(name), optimizer=optimizer, steps=steps, seed=SEED, progress=False)
    return model, result


# ---- pnp_deblur: a proximal DEQ per example under `map` ------------------------------


def ista(K, Y, t, iterations=3000):
    """Plain ISTA (step 1 = 1/‖K‖²) for min ½‖K z − y‖² + t‖z‖₁, every row of Y."""
    Z = np.zeros_like(Y)
    for _ in range(iterations):
        V = Z + (Y - Z @ K.T) @ K
        Z = np.sign(V) * np.maximum(np.abs(V) - t, 0.0)
    return Z


def check_pnp_deblur():
    model, res = train("pnp_deblur", optax.adam(0.01), 100)
    d, held = data("pnp_deblur"), data("pnp_deblur_heldout")
    K = np.asarray(d["K"])
    # the untrained layer (c = 0) is ISTA at t = e^-3: its fixed points match NumPy's
    start = {"log_t": -3.0, "c": np.zeros(5)}
    untrained = np.asarray(model.constrain({}, d, weights=start)["restored"])
    reference = ista(K, np.asarray(d["Y"]), np.exp(-3.0))
    # ISTA's contraction factor here is 1 - 0.4^2 = 0.84: 3000 steps leave < 1e-12, and
    # the node solves to ~1e-8 relative
    np.testing.assert_allclose(untrained, reference, atol=1e-6)

    def mse(weights, dataset):
        restored = np.asarray(model.constrain({}, dataset, weights=weights)["restored"])
        return float(np.mean((restored - np.asarray(dataset["X"])) ** 2))

    # training cuts the error on the training signals and on 40 fresh ones (measured in
    # examples/README.md); the bar: a third off the untrained ISTA's
    assert mse(res.weights, d) < 0.67 * mse(start, d)
    assert mse(res.weights, held) < 0.67 * mse(start, held)


# ---- self_tuning_ridge: two objectives in one loss, split by stop_gradient -----------


def ridge_validation(log_lam: float, d: dict) -> float:
    Xtr, ytr = np.asarray(d["Xtr"]), np.asarray(d["ytr"])
    w = np.linalg.solve(Xtr.T @ Xtr + np.exp(log_lam) * np.eye(Xtr.shape[1]), Xtr.T @ ytr)
    return float(np.mean((np.asarray(d["Xval"]) @ w - np.asarray(d["yval"])) ** 2))


def check_self_tuning_ridge():
    _, res = train("self_tuning_ridge", optax.adam(optax.cosine_decay_schedule(0.1, 600)), 600)
    d = data("self_tuning_ridge")
    grid = np.linspace(-2.0, 4.0, 601)
    curve = np.array([ridge_validation(g, d) for g in grid])
    best = float(grid[np.argmin(curve)])  # 1.29, as bilevel_ridge's implicit gradient finds
    log_lam = float(res.weights["log_lam"])
    # The best response is fitted by secants over ±0.5 in log_lam, so the hypergradient
    # is that of a smoothed curve: the stationary point is near, not at, the optimum
    # (measured 1.17 vs 1.29).  The validation curve is flat there: the exact ridge's
    # validation error at the learned penalty is within 0.5% of the minimum (measured
    # 0.12%), against 8% at the start (log_lam = 0).
    assert abs(log_lam - best) <= 0.25
    assert ridge_validation(log_lam, d) <= 1.005 * curve.min()
    assert ridge_validation(0.0, d) > 1.05 * curve.min()


# ---- halpern_nnls: a fixed budget of Halpern steps with a certified residual ----------

BUDGET = 50


def check_halpern_nnls():
    model, res = train("halpern_nnls", optax.adam(0.1), 100)
    for name in ("halpern_nnls", "halpern_nnls_heldout"):
        d = data(name)
        A, B = np.asarray(d["A"]), np.asarray(d["B"])
        mu = float(np.exp(res.weights["log_mu"]))
        outs = model.constrain({}, d, weights=res.weights)
        residual = np.asarray(outs["residual"])
        # z* of each problem by SciPy's active-set NNLS on the stacked system
        # [A; √mu I] z ≈ [b; 0] (the same minimiser), then Lieder's bound from z_0 = 0
        stacked = np.vstack([A, np.sqrt(mu) * np.eye(A.shape[1])])
        exact = np.array([nnls(stacked, np.r_[b, np.zeros(A.shape[1])])[0] for b in B])
        bound = 2 * np.linalg.norm(exact, axis=1) / (BUDGET + 1)
        assert np.all(residual <= bound), (name, residual / bound)
        assert np.all(residual > 0)  # 50 steps, not a converged solve: the budget is real

    # the learned penalty beats the initial one on both files (the loss is the fit of
    # the budgeted solutions to the true coefficients)
    def error(weights, d):
        estimate = np.asarray(model.constrain({}, d, weights=weights)["estimate"])
        return float(np.mean((estimate - np.asarray(d["Z"])) ** 2))

    for name in ("halpern_nnls", "halpern_nnls_heldout"):
        assert error(res.weights, data(name)) < error({"log_mu": -2.0}, data(name))


CHECKS = {
    "pnp_deblur": check_pnp_deblur,
    "self_tuning_ridge": check_self_tuning_ridge,
    "halpern_nnls": check_halpern_nnls,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_implicit_layer_example(name):
    CHECKS[name]()
