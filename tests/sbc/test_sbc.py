"""Simulation-based calibration of FPL's NUTS on five small models that together cover
every constrained param type: positive, interval, simplex, ordered, cholesky_corr and
cov_matrix (the sbc module says how).

Level: the family of all components checked (14) is tested at 1% overall, so each
component's chi-square p-value must exceed 0.01 / 14 (Bonferroni).  With M = 100
replications, L = 99 posterior draws (thinned by 2 from 198 after 150 warmup
iterations) and B = 10 bins, a fixed seed makes the result deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import fpl

from .sbc import chi_square_uniform, rank_statistics, run_sbc

M, WARMUP, L, THIN, BINS, SEED = 100, 150, 99, 2, 10, 20240607
N_COMPONENTS = 14  # all components of all models below
LEVEL = 0.01 / N_COMPONENTS  # Bonferroni over every component tested
N = 10  # observations per simulated data set: small data, cheap fits


def _positive_interval(rng):
    sigma = np.exp(rng.normal(0, 0.5))
    p = rng.beta(2, 2)
    data = {"N": N, "y": rng.normal(0, sigma, N), "k": rng.binomial(1, p, N)}
    return {"sigma": sigma, "p": p}, data


def _simplex(rng):
    theta = rng.dirichlet([2.0, 2.0, 2.0])
    return {"theta": theta}, {"N": N, "y": rng.choice(3, N, p=theta) + 1}


def _ordered(rng):
    beta = rng.normal(0, 1)
    c = np.sort(rng.normal(0, 2, 2))  # normal(0, 2) restricted to ordered: sorted iid
    x = rng.normal(0, 1, N)
    z = x * beta + rng.logistic(0, 1, N)  # latent; y = 1 + #(cutpoints below z)
    y = 1 + np.sum(c[None, :] < z[:, None], axis=1)
    return {"beta": beta, "c": c}, {"N": N, "x": x, "y": y}


def _cholesky_corr(rng):
    import jax

    from fpl.stdlib.registry import registry

    lkj = registry().distributions["lkj_corr_cholesky"].build(2.0, event_shape=(3, 3))
    chol = np.asarray(lkj.sample(jax.random.PRNGKey(int(rng.integers(2**31)))))
    y = rng.normal(0, 1, (N, 3)) @ chol.T
    return {"L": chol}, {"N": N, "y": y}


def _cov_matrix(rng):
    sigma = scipy.stats.invwishart(df=6, scale=np.eye(2)).rvs(random_state=rng)
    y = rng.multivariate_normal(np.zeros(2), sigma, N)
    return {"Sigma": sigma}, {"N": N, "y": y}


def _corr_parts(p):
    omega = p["L"] @ np.swapaxes(p["L"], -1, -2)
    return {f"Omega[{i + 1},{j + 1}]": omega[..., i, j] for i, j in ((1, 0), (2, 0), (2, 1))}


def _cov_parts(p):
    s = p["Sigma"]
    return {f"Sigma[{i + 1},{j + 1}]": s[..., i, j] for i, j in ((0, 0), (1, 0), (1, 1))}


MODELS = {
    "positive_interval": (
        """
        data N: int
        data y: real[N]
        data k: int[N]
        param sigma ~ lognormal(0, 0.5)
        param p: real<lower=0, upper=1> ~ beta(2, 2)
        y ~ normal(0, sigma)
        k ~ bernoulli(p)
        """,
        _positive_interval,
        lambda p: {"sigma": p["sigma"], "p": p["p"]},
    ),
    "simplex": (
        """
        data N: int
        data y: int[N]
        param theta: simplex[3] ~ dirichlet(rep_vector(2, 3))
        y ~ categorical(theta)
        """,
        _simplex,
        lambda p: {f"theta[{i + 1}]": p["theta"][..., i] for i in range(3)},
    ),
    "ordered": (
        """
        data N: int
        data x: real[N]
        data y: int[N]
        param beta ~ normal(0, 1)
        param c: ordered[2] ~ normal(0, 2)
        y ~ ordered_logistic(x * beta, c)
        """,
        _ordered,
        lambda p: {"beta": p["beta"], "c[1]": p["c"][..., 0], "c[2]": p["c"][..., 1]},
    ),
    "cholesky_corr": (
        """
        data N: int
        data y: real[N, 3]
        param L: cholesky_corr[3] ~ lkj_corr_cholesky(2)
        y ~ multi_normal_cholesky(zeros(3), L)
        """,
        _cholesky_corr,
        _corr_parts,
    ),
    "cov_matrix": (
        """
        data N: int
        data y: real[N, 2]
        param Sigma: cov_matrix[2] ~ inv_wishart(6, eye(2))
        y ~ multi_normal(zeros(2), Sigma)
        """,
        _cov_matrix,
        _cov_parts,
    ),
}


def test_component_count_matches_the_correction():
    rng = np.random.default_rng(0)
    total = sum(len(parts(sim(rng)[0])) for _, sim, parts in MODELS.values())
    assert total == N_COMPONENTS


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_sbc_ranks_are_uniform(name):
    check_uniform_ranks(name, MODELS[name], LEVEL)


def check_uniform_ranks(name: str, spec, level: float) -> None:
    """Run SBC on one ``(source, simulate, parts)`` model and fail if any component's
    ranks are not uniform at ``level`` (shared with test_sbc_arrays.py)."""
    source, simulate, parts = spec
    model = fpl.compile("\n".join(line.strip() for line in source.strip().splitlines()))
    result = run_sbc(
        model,
        simulate,
        parts,
        replications=M,
        warmup=WARMUP,
        n_draws=L,
        thin=THIN,
        bins=BINS,
        seed=SEED,
    )
    print(f"\n{name}: {result.seconds:.1f} s, divergences {result.divergences}")
    for k, p in result.p_values.items():
        print(f"  {k}: chi-square p = {p:.3f}")
    bad = {k: p for k, p in result.p_values.items() if p < level}
    assert not bad, f"ranks not uniform (p < {level:.2g}): {bad}"


# ---- the harness can fail -------------------------------------------------------------


def _conjugate_ranks(rng, sd_factor: float, m: int = 200, n_draws: int = L):
    """θ ~ normal(0, 1), y_i ~ normal(θ, 1) (n = 5): the exact posterior is
    normal(sum(y) / 6, 1 / sqrt(6)).  Draws from it with its sd scaled by sd_factor."""
    theta = rng.normal(0, 1, m)
    y = theta[:, None] + rng.normal(0, 1, (m, 5))
    mean, sd = y.sum(1) / 6, 1 / np.sqrt(6)
    post = mean[:, None] + sd_factor * sd * rng.normal(0, 1, (m, n_draws))
    return rank_statistics(theta, post)


def test_harness_accepts_the_exact_posterior():
    ranks = _conjugate_ranks(np.random.default_rng(1), 1.0)
    assert chi_square_uniform(ranks, L, BINS) > LEVEL


@pytest.mark.parametrize("factor", [0.6, 1.6])
def test_harness_rejects_a_posterior_with_the_wrong_variance(factor):
    """Too narrow a posterior piles ranks at both ends (U shape), too wide one in the
    middle (hump); both fail the test at the level used above."""
    ranks = _conjugate_ranks(np.random.default_rng(2), factor)
    assert chi_square_uniform(ranks, L, BINS) < LEVEL


def test_harness_rejects_a_biased_posterior():
    """A posterior shifted by half its sd moves the ranks down."""
    rng = np.random.default_rng(4)
    theta = rng.normal(0, 1, 200)
    y = theta[:, None] + rng.normal(0, 1, (200, 5))
    sd = 1 / np.sqrt(6)
    post = (y.sum(1) / 6 + sd / 2)[:, None] + sd * rng.normal(0, 1, (200, L))
    assert chi_square_uniform(rank_statistics(theta, post), L, BINS) < LEVEL
