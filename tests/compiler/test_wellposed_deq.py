"""DEQs with well-posed weights train with Adam (issue 12): the shipped DEQ classifier
with a ``contractive`` W on a held-out-sized moons problem and the Jacobian regulariser
written in the language (Hutchinson's ‖∂f/∂z‖²_F at the solution, a fresh probe per
step).  The monotone DEQ example is trained by tests/examples/test_learning_examples.py."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import fpl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _data(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def _accuracy(source: str, logits: str, weights, data) -> float:
    """Held-out accuracy, the logits read from the same program plus one ``out`` line
    (the model's own forward solve, in float64 as in training)."""
    with jax.enable_x64(True):
        model = fpl.compile(source + f"out logits = {logits}\n")
        values = model.constrain({}, data, weights=weights)["logits"]
    return float(np.mean(np.argmax(values, axis=1) + 1 == np.asarray(data["label"])))


# ---- the DEQ classifier with a contractive W -------------------------------------------


@pytest.mark.slow
def test_contractive_deq_classifier_trains_with_adam_on_moons():
    """The held-out program of issue 12: moons, 32 units, anderson(memory=5), Adam 1e-2,
    400 steps.  With `real[32, 32]` it stops converging within ~25 steps (‖W‖ grows past
    contraction); with `contractive[32, 32]` every solve converges and held-out accuracy
    is >= 95% (measured: 100% on 400 held-out points, 100 training points)."""
    source = (EXAMPLES / "deq_classifier.fpl").read_text()
    assert "weight W: contractive[32, 32]" in source
    train = {**_data("monotone_deq"), "K": 2}  # moons: 100 training points
    heldout = {**_data("monotone_deq_heldout"), "K": 2}  # 400 others, another seed
    res = fpl.compile(source).optimize(
        train, optimizer=optax.adam(1e-2), steps=400, seed=0, progress=False
    )
    assert res.skipped == 0 and sum(res.solver_failures.values()) == 0
    assert np.linalg.norm(res.weights["W"], 2) <= 0.9 * (1 + 1e-9)
    assert _accuracy(source, "Z @ V", res.weights, heldout) >= 0.95


# ---- the monotone DEQ example -----------------------------------------------------------

# Trained once in the suite, by tests/examples/test_learning_examples.py (check_monotone_deq:
# Adam, the declared margin, held-out accuracy and `fpl diagnose`'s well-posed verdict).


# ---- the Jacobian regulariser -----------------------------------------------------------

# ‖∂f/∂z‖²_F at the solution z* by Hutchinson's estimator: E‖J v‖² over v ~ normal(0, I)
# is ‖J‖²_F; `jvp(layer)(z, v)` is J v at z = z*, and a `_rng` draw in a `loss` is a
# fresh probe at every step, so the penalty's gradient is unbiased.
PENALISED = """
data H: int
data x: real[H]
weight W: contractive<bound=0.8>[H, H] init normal(0, 0.4)
fn layer(z: real[H]) = tanh(W @ z + x)
let z = fix z: real[H] = layer(z)
loss sum(square(jvp(layer)(z, normal_rng(zeros(H), 1))))
"""
X = [0.3, -0.5, 0.8, 0.1]


def _frobenius2(w: np.ndarray) -> float:
    """‖J‖²_F exactly, J = diag(1 − tanh²(W z* + x)) W, z* by Picard (an independent
    route: NumPy, ‖W‖ <= 0.8 so 300 steps reach machine precision)."""
    z = np.zeros(len(X))
    for _ in range(300):
        z = np.tanh(w @ z + X)
    jac = (1 - np.tanh(w @ z + X) ** 2)[:, None] * w
    return float(np.sum(jac**2))


@pytest.mark.slow
def test_jacobian_penalty_is_hutchinsons_estimate_and_trains():
    model = fpl.compile(PENALISED, "jac.fpl")
    data = {"H": 4, "x": X}
    steps = 400
    held = model.optimize(
        data, optimizer=optax.sgd(0.0), steps=steps, seed=0, tol=0, progress=False
    )
    exact = _frobenius2(held.weights["W"])
    # the trace: `steps` i.i.d. estimates at fixed weights; 4 standard errors of the mean
    assert abs(held.trace.mean() - exact) < 4 * held.trace.std() / np.sqrt(steps)
    trained = model.optimize(data, optimizer=optax.adam(0.05), steps=150, seed=0, progress=False)
    assert _frobenius2(trained.weights["W"]) < 0.1 * exact  # the penalty shrinks J
