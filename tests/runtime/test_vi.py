"""Variational inference: agreement with a known Gaussian posterior, weights, the CLI."""

import json

import numpy as np
import optax
import pytest
from scipy import stats
from test_laplace import DRAWS, NOISE_SD, REGRESSION, closed_form, regression_data

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main
from fpl.runtime.io import load_fit
from fpl.runtime.vi import GUIDES

STEPS = 2000


def adam(steps=STEPS, lr=0.05):
    # a decaying rate makes the last iterates settle instead of jittering at lr's scale
    return optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))


def unconstrained_draws(fit):
    return np.column_stack(
        [
            fit.draws("alpha", merge_chains=True),
            fit.draws("beta", merge_chains=True),
            np.log(fit.draws("s", merge_chains=True)),
        ]
    )


def log_evidence(data):
    """log p(y): y ~ N(Z m0, sigma^2 I + Z S0 Z^T) (the lognormal `s` integrates to 1)."""
    X, y = np.asarray(data["X"]), np.asarray(data["y"])
    Z = np.column_stack([np.ones(len(y)), X])
    prior_cov = np.diag([3.0**2] + [2.0**2] * X.shape[1])
    prior_mean = np.r_[1.0, np.zeros(X.shape[1])]
    cov = NOISE_SD**2 * np.eye(len(y)) + Z @ prior_cov @ Z.T
    return stats.multivariate_normal(Z @ prior_mean, cov).logpdf(y)


@pytest.fixture(scope="module")
def model():
    return fpl.compile(REGRESSION, "regression.fpl")


def test_guide_names_match_the_cli(capsys):
    assert main(["vi", "--help"]) == 0
    text = capsys.readouterr().out
    assert "{" + ",".join(GUIDES) + "}" in text


def test_full_rank_guide_recovers_the_posterior(model):
    data = regression_data()
    mean, cov = closed_form(data)
    sd = np.sqrt(np.diag(cov))
    fit = model.vi(
        data, guide="mvn", steps=STEPS, optimizer=adam(), draws=DRAWS, seed=1, progress=False
    )
    draws = unconstrained_draws(fit)
    # The optimum of a full-rank Gaussian guide is the posterior itself.  Tolerances:
    # Monte Carlo error of the draws (0.016 sd for the mean, 1.1% for the sd, from 4000
    # draws) plus the stochastic-gradient optimiser's residual jitter (measured <= 0.06 sd
    # and 5%): 0.2 sd and 12%.
    assert np.all(np.abs(draws.mean(0) - mean) <= 0.2 * sd)
    assert np.all(np.abs(draws.std(0) / sd - 1) <= 0.12)
    corr = np.corrcoef(draws.T)[1, 3]
    truth = cov[1, 3] / (sd[1] * sd[3])
    assert abs(corr - truth) <= 0.05  # MC sd of a correlation ~ (1 - r^2)/sqrt(n) < 0.016
    # With the exact family the ELBO equals log p(y); measured gap 0.03 nats
    assert fit.elbo.shape == (STEPS,)
    assert abs(fit.attrs["elbo"] - log_evidence(data)) <= 0.15
    assert fit.attrs["method"] == "vi" and fit.attrs["guide"] == "mvn"
    assert fit.to_arviz().posterior["beta"].shape == (1, DRAWS, 3)


def test_mean_field_guide_gets_the_mean_and_the_conditional_spread(model):
    """Mean-field VI on a Gaussian posterior with precision P recovers the mean exactly but
    has sds 1/sqrt(P_ii) (the conditional sds), which underestimate the marginal sds of
    correlated params (here beta[1] and beta[3], by a factor of about 2.9)."""
    data = regression_data()
    mean, cov = closed_form(data)
    sd = np.sqrt(np.diag(cov))
    precision = np.linalg.inv(cov)
    conditional_sd = 1 / np.sqrt(np.diag(precision))
    fit = model.vi(
        data, guide="normal", steps=STEPS, optimizer=adam(), draws=DRAWS, seed=2, progress=False
    )
    draws = unconstrained_draws(fit)
    assert np.all(np.abs(draws.mean(0) - mean) <= 0.2 * sd)  # as for the mvn guide
    assert np.all(np.abs(draws.std(0) / conditional_sd - 1) <= 0.15)  # measured <= 12%
    assert np.all(draws.std(0)[[1, 3]] < 0.5 * sd[[1, 3]])
    # the ELBO falls short of log p(y) by KL(q*||p) = (sum log P_ii - log det P) / 2
    gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
    assert abs(log_evidence(data) - fit.attrs["elbo"] - gap) <= 0.15  # as for mvn


def test_bad_arguments_are_coded(model):
    data = regression_data()
    for kwargs in ({"guide": "gaussian"}, {"steps": 0}, {"optimizer": "adam"}):
        with pytest.raises(FplError) as exc:
            model.vi(data, progress=False, **kwargs)
        assert exc.value.code == "E0403"


WEIGHTED = """
data N: int
data y: real[N]
weight m: real init 0.0
param mu ~ normal(m, 1)
y ~ normal(mu, 1)
out shift = mu - m
"""


def test_cli_vi_fits_weights_jointly(tmp_path, capsys):
    """Maximising the ELBO in the weight `m` maximises p(y | m) here (the normal guide is
    exact for this one-dimensional Gaussian posterior): m = mean(y)."""
    y = np.random.default_rng(4).normal(2.0, 1.0, size=20)
    (tmp_path / "m.fpl").write_text(WEIGHTED)
    (tmp_path / "d.json").write_text(json.dumps({"N": 20, "y": y.tolist()}))
    out, plot = tmp_path / "vi.nc", tmp_path / "elbo.png"
    argv = ["vi", str(tmp_path / "m.fpl"), "--data", str(tmp_path / "d.json"), "--quiet"]
    code = main(
        [
            *argv,
            "--steps",
            "1500",
            "--lr",
            "0.05",
            "--schedule",
            "cosine",
            "--draws",
            "500",
            "--seed",
            "3",
            "-o",
            str(out),
            "--plot",
            str(plot),
        ]
    )
    assert code == 0
    assert plot.stat().st_size > 0
    back = load_fit(str(out))
    assert back.attrs["method"] == "vi"
    m = json.loads(back.attrs["weights"])["m"]
    # posterior sd of mu is 1/sqrt(21) = 0.22; the weight's optimiser jitter after a
    # decayed rate is far below 0.05 (a quarter of that sd)
    assert m == pytest.approx(y.mean(), abs=0.05)
    np.testing.assert_allclose(back.posterior["shift"], back.posterior["mu"] - m, atol=1e-12)
    capsys.readouterr()
    assert main([*argv, "--guide", "nonsense"]) == 2
    assert main([*argv, "--steps", "0"]) == 2
