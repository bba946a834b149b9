"""hmm_example's Viterbi generated quantities, ported line by line into FPL's ``gen``
(``negative_infinity()``, ``argmax``, ``scan``/``fold``), against a NumPy Viterbi
written from Stan's loops, at fixed params (a few random points and the posterior mean).

The decoded path is integers and must be equal; ``log_p_z_star`` is the same sum of
N = 100 float64 terms in another order, so it agrees to ~1e-12 relative (1e-9 asked)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import fpl

HERE = Path(__file__).parent
NAME = "hmm_example-hmm_example"


def numpy_viterbi(y, theta, mu):
    """Stan's generated quantities of hmm_example, loop for loop."""
    n, k_states = len(y), len(mu)
    best_logp = np.empty((n, k_states))
    back_ptr = np.zeros((n, k_states), dtype=int)
    best_logp[0] = stats.norm.logpdf(y[0], mu, 1)
    for t in range(1, n):
        for k in range(k_states):
            best_logp[t, k] = -np.inf
            for j in range(k_states):
                logp = best_logp[t - 1, j] + np.log(theta[j, k]) + stats.norm.logpdf(y[t], mu[k], 1)
                if logp > best_logp[t, k]:
                    back_ptr[t, k] = j + 1
                    best_logp[t, k] = logp
    log_p_z_star = best_logp[n - 1].max()
    z_star = np.zeros(n, dtype=int)
    for k in range(k_states):
        if best_logp[n - 1, k] == log_p_z_star:
            z_star[n - 1] = k + 1
    for t in range(1, n):
        z_star[n - 1 - t] = back_ptr[n - t, z_star[n - t] - 1]
    return z_star, log_p_z_star


def test_viterbi_gens_match_numpy():
    data = json.loads((HERE / "data" / NAME / "data.json").read_text())
    reference = json.loads((HERE / "data" / NAME / "reference.json").read_text())["components"]
    model = fpl.load(str(HERE / "models" / f"{NAME}.fpl")).bind(data)
    generate = jax.jit(model.generate)
    y = np.asarray(data["y"], float)
    rng = np.random.default_rng(7)
    mean = {
        "theta1": [reference[f"theta1[{k}]"]["mean"] for k in (1, 2)],
        "theta2": [reference[f"theta2[{k}]"]["mean"] for k in (1, 2)],
        "mu": [reference[f"mu[{k}]"]["mean"] for k in (1, 2)],
    }
    points = [model.unconstrain(mean)]
    points += [jnp.asarray(rng.normal(0, 1, model.param_unc_num())) for _ in range(3)]
    switches = 0
    for theta in points:
        out = generate(jnp.asarray(theta), jax.random.PRNGKey(0))
        transition = np.stack([np.asarray(out["theta1"]), np.asarray(out["theta2"])])
        z_star, log_p = numpy_viterbi(y, transition, np.asarray(out["mu"]))
        np.testing.assert_array_equal(np.asarray(out["z_star"]), z_star)
        assert float(out["log_p_z_star"]) == pytest.approx(log_p, rel=1e-9)
        switches += int(np.sum(z_star[1:] != z_star[:-1]))
    assert switches > 0  # the paths visit both states: the back pointers are exercised
