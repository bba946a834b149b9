"""posteriordb's item response and spatial models, which have no reference draws, ported
line by line (issue 13):

- irt_2pl-irt_2pl: the two-parameter logistic IRT model with hierarchical priors, its
  I x J response matrix one broadcast array (the column of discriminations against the
  row of abilities);
- sat-hier_2pl: the hierarchical 2PL, the items' (log discrimination, difficulty) pairs
  multivariate normal through diag_pre_multiply and an LKJ Cholesky factor, the
  responses in long form through paired index arrays;
- fims_Aus_Jpn_irt-2pl_latent_reg_irt: the 2PL with sum-to-zero difficulties and a latent
  regression of the abilities on person covariates, centred and scaled by Stan's
  obtain_adjustments (data-only `let`s and a `map` over the columns);
- traffic_accident_nyc-bym2_offset_only: the BYM2 Poisson model on 1921 census tracts,
  the ICAR prior as pairwise differences over the 5461-edge list and the soft
  sum-to-zero constraint, as in Stan.

Each log density (no Jacobian) is checked against an independent NumPy/SciPy evaluation
written from the Stan code, the ICAR term by a different route (the quadratic form of the
graph Laplacian D - A, not the edge loop), and its gradient (with the Jacobian) against
central differences; all bind posteriordb's data (sat's and fims's persons subsampled). The
2PL model is sampled on data simulated with known item parameters and must recover them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import sparse, special, stats

import fpl

from .test_unreferenced import check_density

HERE = Path(__file__).parent / "unreferenced"


def _data(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text())


def _bernoulli_logit_logpmf(y, eta) -> float:
    """log inv_logit(eta) where y = 1, log(1 - inv_logit(eta)) where y = 0."""
    return float(np.sum(np.where(y == 1, special.log_expit(eta), special.log_expit(-eta))))


# ---- irt_2pl --------------------------------------------------------------------------


def _irt_2pl_reference(v, y) -> float:
    """irt_2pl's model block statement by statement, its loop over items kept."""
    theta, a, b = (np.asarray(v[k]) for k in ("theta", "a", "b"))
    sigma_theta, sigma_a, mu_b, sigma_b = (
        float(v[k]) for k in ("sigma_theta", "sigma_a", "mu_b", "sigma_b")
    )
    lp = stats.cauchy.logpdf(sigma_theta, 0, 2)
    lp += stats.norm.logpdf(theta, 0, sigma_theta).sum()
    lp += stats.cauchy.logpdf(sigma_a, 0, 2)
    lp += stats.lognorm.logpdf(a, sigma_a).sum()  # lognormal(0, sigma_a)
    lp += stats.norm.logpdf(mu_b, 0, 5)
    lp += stats.cauchy.logpdf(sigma_b, 0, 2)
    lp += stats.norm.logpdf(b, mu_b, sigma_b).sum()
    for i in range(len(a)):
        lp += _bernoulli_logit_logpmf(y[i], a[i] * (theta - b[i]))
    return float(lp)


def test_irt_2pl_density_on_the_posteriordb_data():
    data = _data("irt_2pl")
    cm = fpl.load(HERE / "irt_2pl-irt_2pl.fpl").bind(data)
    I, J = data["I"], data["J"]
    assert cm.param_shapes == {
        "sigma_theta": (),
        "theta": (J,),
        "sigma_a": (),
        "a": (I,),
        "mu_b": (),
        "sigma_b": (),
        "b": (I,),
    }
    # posteriordb's dimensions for this posterior
    assert cm.param_unc_num() == 1 + 100 + 1 + 20 + 1 + 1 + 20
    check_density(cm, lambda v: _irt_2pl_reference(v, np.asarray(data["y"])), n_random=8)


def _irt_2pl_simulated(rng, I=20, J=100) -> tuple[dict, np.ndarray, np.ndarray]:
    """Responses of J persons to I items (posteriordb's sizes), abilities standard
    normal, log discriminations normal(0, 0.3) and difficulties evenly over [-1.5, 1.5].
    (With a wider spread of discriminations, sigma_a's funnel mixes badly in a short
    chain: R-hat 1.14 over 2 x 500 draws, the most discriminating item pulled 4 sds in.)"""
    a = np.exp(rng.normal(0.0, 0.3, size=I))
    b = np.linspace(-1.5, 1.5, I)
    theta = rng.normal(size=J)
    p = special.expit(a[:, None] * (theta[None, :] - b[:, None]))
    y = (rng.uniform(size=(I, J)) < p).astype(int)
    return {"I": I, "J": J, "y": y}, a, b


@pytest.mark.slow
def test_irt_2pl_recovers_simulated_item_parameters():
    """The likelihood depends on a (theta - b) only, so the abilities' scale is fixed by
    the priors alone (sigma_theta mixes slowly: ESS ~ 5 in 250 draws); the identified
    item parameters are those of the standardised abilities theta / sigma_theta,
    a sigma_theta and b / sigma_theta, whose true values are the simulated a and b."""
    data, a, b = _irt_2pl_simulated(np.random.default_rng(7))
    fit = fpl.load(HERE / "irt_2pl-irt_2pl.fpl").sample(
        data, chains=1, warmup=250, draws=250, seed=8, progress=False
    )
    scale = np.asarray(fit.draws("sigma_theta")).reshape(-1, 1)
    I = data["I"]
    for name, draws, truth in (
        ("a", np.asarray(fit.draws("a")).reshape(-1, I) * scale, a),
        ("b", np.asarray(fit.draws("b")).reshape(-1, I) / scale, b),
    ):
        mean, sd = draws.mean(0), draws.std(0)
        # the truth within 4 posterior sds of the posterior mean (a calibrated posterior
        # misses by more with probability 6e-5 per parameter, 3e-3 over all 40; the
        # means' Monte Carlo error, ~0.1-0.2 sd at these ESS, barely moves that)
        assert np.all(np.abs(mean - truth) < 4 * sd), (name, (mean - truth) / sd)
        # and the data inform them: 100 responses an item pin a difficulty to ~0.3 and
        # a discrimination to ~0.2 (prior sds are several times larger)
        assert np.all(sd < 0.6), (name, sd)
        # the items are told apart (a wrong sign or a swapped index scores ~0 or < 0);
        # the discriminations vary by a factor ~2 only, against sds ~0.2, and are partly
        # pooled: their correlation is weaker (0.54 here), the difficulties' near 1
        floor = 0.9 if name == "b" else 0.4
        assert np.corrcoef(mean, truth)[0, 1] > floor, (name, mean, truth)


# ---- sat-hier_2pl ---------------------------------------------------------------------


def _lkj_2x2_logpdf(L, eta: float) -> float:
    """LKJ(eta) on a 2 x 2 correlation matrix: its one correlation r = L[2, 1] is
    2 Beta(eta, eta) - 1, and for K = 2 the map from r to L has unit Jacobian."""
    r = L[1, 0]
    return float(stats.beta.logpdf((r + 1) / 2, eta, eta) - np.log(2))


def _hier_2pl_reference(v, data) -> float:
    """hier_2pl's model block statement by statement, its loop over items kept."""
    theta, xi1, xi2, mu, tau = (np.asarray(v[k]) for k in ("theta", "xi1", "xi2", "mu", "tau"))
    L_Omega = np.asarray(v["L_Omega"])
    Omega = L_Omega @ L_Omega.T
    Sigma = np.diag(tau) @ Omega @ np.diag(tau)
    lp = sum(stats.multivariate_normal.logpdf([xi1[i], xi2[i]], mu, Sigma) for i in range(len(xi1)))
    lp += stats.norm.logpdf(theta).sum()
    lp += _lkj_2x2_logpdf(L_Omega, 4.0)
    lp += stats.norm.logpdf(mu[0], 0, 1) + stats.expon.logpdf(tau[0], scale=10)
    lp += stats.norm.logpdf(mu[1], 0, 5) + stats.expon.logpdf(tau[1], scale=10)
    ii, jj = np.asarray(data["ii"]) - 1, np.asarray(data["jj"]) - 1
    eta = np.exp(xi1)[ii] * (theta[jj] - xi2[ii])
    return float(lp + _bernoulli_logit_logpmf(np.asarray(data["y"]), eta))


def test_hier_2pl_density_on_the_posteriordb_data():
    data = _data("sat")  # the first 100 of posteriordb's 600 persons, all 32 items
    cm = fpl.load(HERE / "sat-hier_2pl.fpl").bind(data)
    I, J = data["I"], data["J"]
    assert cm.param_shapes == {
        "theta": (J,),
        "xi1": (I,),
        "xi2": (I,),
        "mu": (2,),
        "tau": (2,),
        "L_Omega": (2, 2),
    }
    check_density(cm, lambda v: _hier_2pl_reference(v, data), n_random=8)
    with jax.enable_x64(True):
        theta = 0.5 * np.random.default_rng(1).normal(size=cm.param_unc_num())
        values = jax.jit(cm.generate)(theta, jax.random.key(0))  # one compilation
    # the transformed parameters and the generated correlation matrix, as Stan's loops
    np.testing.assert_allclose(values["alpha"], np.exp(values["xi1"]), rtol=1e-14)
    np.testing.assert_array_equal(values["beta"], values["xi2"])
    np.testing.assert_array_equal(values["xi"], np.column_stack([values["xi1"], values["xi2"]]))
    L = np.asarray(values["L_Omega"])
    np.testing.assert_allclose(values["Omega"], L @ L.T, rtol=1e-14, atol=1e-15)


# ---- fims_Aus_Jpn_irt-2pl_latent_reg_irt ----------------------------------------------


def _obtain_adjustments(W) -> np.ndarray:
    """Stan's obtain_adjustments, loop by loop, its counter evaluated as Stan parses it:
    ``minmax_count + W[j, k] == min_w || W[j, k] == max_w`` is
    ``((minmax_count + W[j, k]) == min_w) || (W[j, k] == max_w)``."""
    rows, cols = W.shape
    adj = np.zeros((2, cols))
    adj[1, 0] = 1
    for k in range(1, cols):
        min_w, max_w = W[:, k].min(), W[:, k].max()
        minmax_count = 0
        for j in range(rows):
            minmax_count = int((minmax_count + W[j, k] == min_w) or (W[j, k] == max_w))
        adj[0, k] = W[:, k].mean()
        adj[1, k] = max_w - min_w if minmax_count == rows else 2 * W[:, k].std(ddof=1)
    return adj


def _latent_reg_reference(v, data) -> float:
    """2pl_latent_reg_irt's model block statement by statement."""
    W = np.asarray(data["W"], dtype=float)
    adj = _obtain_adjustments(W)
    W_adj = (W - adj[0]) / adj[1]
    alpha, beta_free, theta, lam = (
        np.asarray(v[k]) for k in ("alpha", "beta_free", "theta", "lambda_adj")
    )
    beta = np.append(beta_free, -beta_free.sum())
    lp = stats.lognorm.logpdf(alpha, 1, scale=np.e).sum()  # lognormal(1, 1)
    lp += stats.norm.logpdf(beta, 0, 3).sum()
    lp += stats.t.logpdf(lam, 3).sum()
    lp += stats.norm.logpdf(theta, W_adj @ lam, 1).sum()
    ii, jj = np.asarray(data["ii"]) - 1, np.asarray(data["jj"]) - 1
    eta = alpha[ii] * theta[jj] - beta[ii]
    return float(lp + _bernoulli_logit_logpmf(np.asarray(data["y"]), eta))


def test_latent_regression_2pl_density_on_the_posteriordb_data():
    data = _data("fims_Aus_Jpn_irt")  # every fifth of posteriordb's 500 persons
    cm = fpl.load(HERE / "fims_Aus_Jpn_irt-2pl_latent_reg_irt.fpl").bind(data)
    I, J, K = data["I"], data["J"], data["K"]
    assert cm.param_shapes == {
        "alpha": (I,),
        "beta_free": (I - 1,),
        "theta": (J,),
        "lambda_adj": (K,),
    }
    check_density(cm, lambda v: _latent_reg_reference(v, data), n_random=8)
    with jax.enable_x64(True):
        theta = 0.5 * np.random.default_rng(2).normal(size=cm.param_unc_num())
        values = jax.jit(cm.generate)(theta, jax.random.key(0))  # one compilation
    # the sum-to-zero difficulties and the generated quantities' loop-free form
    beta = np.asarray(values["beta"])
    assert beta[-1] == pytest.approx(-beta[:-1].sum(), rel=1e-14)
    W = np.asarray(data["W"], dtype=float)
    adj = _obtain_adjustments(W)
    lam_adj = np.asarray(values["lambda_adj"])
    lam = np.zeros(K)
    lam[1:] = lam_adj[1:] / adj[1, 1:]
    lam[0] = ((W[0] - adj[0]) / adj[1]) @ lam_adj - W[0, 1:] @ lam[1:]
    np.testing.assert_allclose(values["lambda"], lam, rtol=1e-12, atol=1e-14)


# ---- traffic_accident_nyc-bym2_offset_only --------------------------------------------


def _laplacian(data) -> sparse.csr_matrix:
    """The ICAR precision D - A of the adjacency graph (A symmetric, D its degrees)."""
    N = data["N"]
    i, j = np.asarray(data["node1"]) - 1, np.asarray(data["node2"]) - 1
    A = sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(N, N)).tocsr()
    A = A + A.T
    return (sparse.diags(np.asarray(A.sum(1)).ravel()) - A).tocsr()


def _bym2_reference(v, data, Q) -> float:
    """bym2_offset_only's model block, the ICAR term as -phi' Q phi / 2."""
    theta, phi = np.asarray(v["theta"]), np.asarray(v["phi"])
    beta0, sigma, rho = (float(v[k]) for k in ("beta0", "sigma", "rho"))
    N = data["N"]
    convolved = np.sqrt(1 - rho) * theta + np.sqrt(rho / data["scaling_factor"]) * phi
    eta = np.log(np.asarray(data["E"])) + beta0 + convolved * sigma
    lp = stats.poisson.logpmf(np.asarray(data["y"]), np.exp(eta)).sum()
    lp += -0.5 * phi @ (Q @ phi)
    lp += stats.norm.logpdf(beta0) + stats.norm.logpdf(theta).sum() + stats.norm.logpdf(sigma)
    lp += stats.beta.logpdf(rho, 0.5, 0.5)
    lp += stats.norm.logpdf(phi.sum(), 0, 0.001 * N)
    return float(lp)


@functools.cache
def _bym2():
    data = _data("traffic_accident_nyc")
    return fpl.load(HERE / "traffic_accident_nyc-bym2_offset_only.fpl").bind(data), data


def test_bym2_density_on_the_posteriordb_data():
    cm, data = _bym2()
    N = data["N"]
    assert (N, data["N_edges"]) == (1921, 5461)
    assert cm.param_shapes == {"beta0": (), "sigma": (), "rho": (), "theta": (N,), "phi": (N,)}
    Q = _laplacian(data)
    # about the data's overall rate (beta0 = log(sum y / sum E); E is ~1e4 times the
    # counts, so at beta0 = 0 |lp| ~ 1e7 and central differences lose 1e-9 * |lp| / h);
    # a small spread (0.1): the sum-to-zero term sum(phi) ~ normal(0, 1.9) grows with
    # sqrt(N) times it
    center = np.zeros(cm.param_unc_num())
    center[0] = np.log(np.sum(data["y"]) / np.sum(data["E"]))
    check_density(cm, lambda v: _bym2_reference(v, data, Q), center=center, spread=0.1, n_random=8)
