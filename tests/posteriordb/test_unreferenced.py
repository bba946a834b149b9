"""posteriordb models without reference draws, ported line by line (issue 13): the
Gaussian hidden Markov model with K from the data (hmm_gaussian) and latent Dirichlet
allocation with K = 5 topics (ldaK5), both on arrays of simplexes.

Their log densities are checked against independent NumPy/SciPy loops written from
the Stan code, their gradients against finite differences; LDA is sampled on data
simulated with 5 topics and must recover them (up to their order)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import optimize, special, stats

import fpl

HERE = Path(__file__).parent / "unreferenced"


def _hmm_reference(values, y) -> float:
    """Stan's forward loops of hmm_gaussian, element by element (no Jacobian)."""
    A, pi1, mu, sigma = (np.asarray(values[k]) for k in ("A", "pi1", "mu", "sigma"))
    K = len(mu)
    logalpha = np.log(pi1) + stats.norm.logpdf(y[0], mu, sigma)
    for t in range(1, len(y)):
        logalpha = np.array(
            [
                special.logsumexp([logalpha[i] + np.log(A[i, j]) for i in range(K)])
                + stats.norm.logpdf(y[t], mu[j], sigma[j])
                for j in range(K)
            ]
        )
    return float(special.logsumexp(logalpha))


def _check_density(cm, reference, n_points: int = 2, seed: int = 0) -> None:
    with jax.enable_x64(True):

        @jax.jit
        def evaluate(theta):
            value, grad = jax.value_and_grad(lambda t: cm.log_density(t))(theta)
            return cm.log_density(theta, jacobian=False), value, grad, cm.constrain(theta)

        rng = np.random.default_rng(seed)
        n = cm.param_unc_num()
        for _ in range(n_points):
            theta = 0.5 * rng.normal(size=n)
            plain, _, grad, values = evaluate(theta)
            # float64 both ways, sums of a few thousand terms in different orders
            assert float(plain) == pytest.approx(reference(values), rel=1e-10)
            h = 1e-6
            for i in rng.choice(n, size=min(n, 6), replace=False):
                e = np.zeros(n)
                e[i] = h
                fd = (float(evaluate(theta + e)[1]) - float(evaluate(theta - e)[1])) / (2 * h)
                # central differences: error O(h^2) + O(eps |lp| / h) ~ 1e-7 at |lp| ~ 1e3
                assert float(grad[i]) == pytest.approx(fd, rel=1e-5, abs=1e-5)


def test_gaussian_hmm_with_k_from_the_data():
    model = fpl.load(HERE / "hmm_gaussian_simulated-hmm_gaussian.fpl")
    data = json.loads((HERE / "hmm_gaussian_simulated.json").read_text())
    data = {**data, "T": 60, "y": data["y"][:60]}  # a prefix: the same model, cheaper loops
    cm = model.bind(data)
    K = data["K"]
    assert cm.param_shapes == {"pi1": (K,), "A": (K, K), "mu": (K,), "sigma": (K,)}
    _check_density(cm, lambda v: _hmm_reference(v, np.asarray(data["y"])))


def _lda_data(rng, M=30, V=12, per_doc=60):
    """Five topics on distinct word blocks (so they are identifiable), documents mixing
    a few of them."""
    phi = np.full((5, V), 0.02)
    for k in range(5):
        phi[k, [(2 * k) % V, (2 * k + 1) % V, (2 * k + 2) % V]] = [0.45, 0.35, 0.15]
    phi /= phi.sum(1, keepdims=True)
    theta = rng.dirichlet(np.full(5, 0.3), size=M)
    doc = np.repeat(np.arange(M), per_doc)
    z = np.array([rng.choice(5, p=theta[m]) for m in doc])
    w = np.array([rng.choice(V, p=phi[k]) for k in z])
    data = {
        "V": V,
        "M": M,
        "N": len(w),
        "w": w + 1,
        "doc": doc + 1,
        "alpha": np.full(5, 0.5),
        "beta": np.full(V, 0.5),
    }
    return phi, theta, data


def _lda_reference(values, data) -> float:
    """Stan's ldaK5 loops (no Jacobian)."""
    theta, phi = np.asarray(values["theta"]), np.asarray(values["phi"])
    lp = sum(stats.dirichlet.logpdf(t, data["alpha"]) for t in theta)
    lp += sum(stats.dirichlet.logpdf(p, data["beta"]) for p in phi)
    for n in range(data["N"]):
        m, v = data["doc"][n] - 1, data["w"][n] - 1
        lp += special.logsumexp([np.log(theta[m, k]) + np.log(phi[k, v]) for k in range(5)])
    return float(lp)


def test_lda_log_density_and_gradient():
    _, _, data = _lda_data(np.random.default_rng(1), M=4, V=6, per_doc=10)
    cm = fpl.load(HERE / "ldaK5.fpl").bind(data)
    assert cm.param_shapes == {"theta": (4, 5), "phi": (5, 6)}
    _check_density(cm, lambda v: _lda_reference(v, data), n_points=1)


@pytest.mark.slow
def test_lda_recovers_simulated_topics():
    phi, _, data = _lda_data(np.random.default_rng(2), M=20, per_doc=50)
    fit = fpl.load(HERE / "ldaK5.fpl").sample(
        data, chains=1, warmup=200, draws=200, seed=3, progress=False
    )
    # one chain: the topics' labels do not switch within it (their order is arbitrary, so
    # the estimate is matched to the truth by the best assignment)
    est = np.asarray(fit.draws("phi")).reshape(-1, 5, data["V"]).mean(0)
    cost = np.abs(est[:, None, :] - phi[None, :, :]).sum(-1)
    rows, cols = optimize.linear_sum_assignment(cost)
    # 1000 words, ~200 per topic: each word's share is estimated to about
    # sqrt(0.45 * 0.55 / 200) ~ 0.035; "roughly" is a total variation under 0.2 per topic
    # (a topic confused with another has total variation ~0.9)
    assert np.all(0.5 * cost[rows, cols] < 0.2), 0.5 * cost[rows, cols]
