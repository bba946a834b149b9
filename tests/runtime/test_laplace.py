"""Laplace approximation: exact on Gaussian posteriors, through transforms and implicit nodes."""

import json
from pathlib import Path

import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main
from fpl.runtime.io import load_fit
from fpl.runtime.laplace import laplace_approximation

# Linear regression with known noise sd and conjugate normal priors: the posterior of
# (alpha, beta) is exactly Gaussian.  `s` is independent of the rest and lognormal, so
# log(s) is exactly N(0.3, 0.5^2): on the unconstrained scale, Jacobian included, the
# whole posterior is Gaussian and the Laplace approximation is exact.
REGRESSION = """
data N: int
data K: int
data X: real[N, K]
data y: real[N]
param alpha ~ normal(1, 3)
param beta: real[K] ~ normal(0, 2)
param s ~ lognormal(0.3, 0.5)
y ~ normal(alpha + X @ beta, 0.5)
out total = sum(beta)
gen y_rep ~ normal(alpha + X @ beta, 0.5)
"""
NOISE_SD = 0.5
DRAWS = 4000
POSTERIORDB = Path(__file__).parents[1] / "posteriordb"


def regression_data(seed=0, n=30):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    X = np.column_stack([base + 0.3 * rng.normal(size=n), rng.normal(size=n), base])
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + NOISE_SD * rng.normal(size=n)
    return {"N": n, "K": 3, "X": X.tolist(), "y": y.tolist()}


def closed_form(data):
    """Mean and covariance of (alpha, beta[1..K], log s), in the approximation's order."""
    X, y = np.asarray(data["X"]), np.asarray(data["y"])
    Z = np.column_stack([np.ones(len(y)), X])
    prior_precision = np.diag([1 / 3**2] + [1 / 2**2] * X.shape[1])
    prior_mean = np.r_[1.0, np.zeros(X.shape[1])]
    precision = prior_precision + Z.T @ Z / NOISE_SD**2
    cov = np.linalg.inv(precision)
    mean = cov @ (prior_precision @ prior_mean + Z.T @ y / NOISE_SD**2)
    full_cov = np.zeros((len(mean) + 1, len(mean) + 1))
    full_cov[:-1, :-1] = cov
    full_cov[-1, -1] = 0.5**2
    return np.r_[mean, 0.3], full_cov


@pytest.fixture(scope="module")
def model():
    return fpl.compile(REGRESSION, "regression.fpl")


@pytest.fixture(scope="module")
def fit(model):
    return model.laplace(regression_data(), draws=DRAWS, seed=11)


def test_mode_and_covariance_are_closed_form(model):
    data = regression_data()
    approx = laplace_approximation(model, data, seed=3)
    mean, cov = closed_form(data)
    assert approx.names == ["alpha", "beta[1]", "beta[2]", "beta[3]", "s"]
    # the gradient tolerance 1e-8 * |log density| bounds the mode error by ~1e-8 times
    # the largest posterior variance here; 1e-6 relative leaves two orders of margin
    np.testing.assert_allclose(approx.mode, mean, rtol=1e-6, atol=1e-8)
    # the Hessian of a quadratic is exact up to rounding: float64 agreement to 1e-9
    np.testing.assert_allclose(approx.covariance, cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(approx.cholesky @ approx.cholesky.T, -approx.hessian, rtol=1e-12)


def test_draws_follow_the_gaussian(fit):
    mean, cov = closed_form(regression_data())
    draws = np.column_stack(
        [
            fit.draws("alpha", merge_chains=True),
            fit.draws("beta", merge_chains=True),
            np.log(fit.draws("s", merge_chains=True)),
        ]
    )
    assert draws.shape == (DRAWS, 5)
    sd = np.sqrt(np.diag(cov))
    # iid Gaussian draws: the sample mean has sd sd/sqrt(n); 5 of those is a false-alarm
    # rate below 1e-6 per component (and the seed is fixed)
    assert np.all(np.abs(draws.mean(0) - mean) <= 5 * sd / np.sqrt(DRAWS))
    # sample covariance entry (i, j) has sd sqrt((S_ii S_jj + S_ij^2) / n) <= sqrt(2/n)
    # in units of sqrt(S_ii S_jj): allow 5 of those
    scaled = (np.cov(draws.T) - cov) / np.outer(sd, sd)
    assert np.max(np.abs(scaled)) <= 5 * np.sqrt(2 / DRAWS)
    # outs are computed per draw from that draw's params
    np.testing.assert_allclose(fit.draws("total")[0], fit.draws("beta")[0].sum(-1), rtol=1e-12)
    assert fit.draws("y_rep").shape == (1, DRAWS, 30)
    assert fit.chains == 1 and fit.num_draws == DRAWS


def test_fit_records_the_mode_and_saves(fit, tmp_path):
    mean, _ = closed_form(regression_data())
    assert fit.attrs["method"] == "laplace"
    mode = json.loads(fit.attrs["mode"])
    np.testing.assert_allclose(mode["beta"], mean[1:4], rtol=1e-6)  # as above
    np.testing.assert_allclose(mode["s"], np.exp(0.3), rtol=1e-6)  # the mode of log s, mapped
    assert np.isfinite(fit.attrs["log_density_at_mode"])
    lp = fit.sample_stats["lp"]
    # exactly Gaussian: the log density of each draw equals its quadratic approximation
    np.testing.assert_allclose(lp, fit.sample_stats["lp_approx"], rtol=1e-8)
    # so the importance ratios have no heavy tail: Pareto k̂ far below the 0.7 alarm
    assert float(fit.attrs["pareto_k"]) < 0.5
    idata = fit.to_arviz()
    assert idata.posterior["beta"].shape == (1, DRAWS, 3)
    assert "y" in idata.posterior_predictive  # named after the observed field (ArviZ)
    path = str(tmp_path / "laplace.nc")
    fit.save(path)
    back = load_fit(path)
    assert back.attrs["method"] == "laplace"
    np.testing.assert_array_equal(back.posterior["beta"], fit.posterior["beta"])


def test_bad_arguments_are_coded(model):
    with pytest.raises(FplError) as exc:
        model.laplace(regression_data(), draws=0)
    assert exc.value.code == "E0403"


def test_flat_direction_is_a_coded_error():
    model = fpl.compile("param a ~ normal(0, 1)\nparam b: real\n", "flat.fpl")
    with pytest.raises(FplError) as exc:
        model.laplace({}, draws=10, seed=1)
    assert exc.value.code == "E0407"
    assert (
        "not negative definite (flat or upward in b)" in exc.value.diagnostics[0].message
    )  # b alone


FIX_MODEL = """
data c: real[2]
data y: real[2]
param theta ~ normal(0, 1)
let z = fix z: real[2] = 0.5 * tanh(z) + theta * c
y ~ normal(z, 0.2)
"""
FIX_DATA = {"c": [1.0, -0.5], "y": [0.8, -0.3]}


def fix_log_density(theta):
    """The same log density by plain NumPy fixed-point iteration (an independent route)."""
    c, y = np.asarray(FIX_DATA["c"]), np.asarray(FIX_DATA["y"])
    z = np.zeros(2)
    for _ in range(200):  # a contraction with rate 0.5: 200 steps reach rounding level
        z = 0.5 * np.tanh(z) + theta * c
    return -0.5 * theta**2 - 0.5 * np.sum((y - z) ** 2) / 0.2**2


def test_hessian_through_a_fixed_point():
    model = fpl.compile(FIX_MODEL, "fix.fpl")
    approx = laplace_approximation(model, FIX_DATA, seed=1)
    t, h = float(approx.mode[0]), 1e-4
    # central differences: truncation ~h^2 f'''' ~ 1e-8, rounding ~1e-16 |f| / h^2 ~ 1e-7
    slope = (fix_log_density(t + h) - fix_log_density(t - h)) / (2 * h)
    curvature = (fix_log_density(t + h) - 2 * fix_log_density(t) + fix_log_density(t - h)) / h**2
    assert abs(slope) <= 1e-6
    assert approx.hessian[0, 0] == pytest.approx(curvature, rel=1e-5)
    assert approx.hessian[0, 0] < -1


def kidiq():
    name = "kidiq-kidscore_momiq"
    model = fpl.load(POSTERIORDB / "models" / f"{name}.fpl")
    data = json.loads((POSTERIORDB / "data" / name / "data.json").read_text())
    reference = json.loads((POSTERIORDB / "data" / name / "reference.json").read_text())
    return model, data, reference["components"]


@pytest.mark.slow
def test_posteriordb_linear_regression_matches_reference():
    """kidiq-kidscore_momiq (434 rows, sigma unknown): close to Gaussian, not exactly."""
    model, data, reference = kidiq()
    summary = model.laplace(data, draws=DRAWS, seed=5).summary()
    for comp, ref in reference.items():
        # The posteriordb agreement rule (shared/posteriordb/README.md), except for the
        # mean of sigma: Laplace at the *joint* mode estimates sigma^2 by SSR/(N+1) where
        # the marginal posterior has about SSR/(N-2), a relative bias of 3/(2N) = 0.35%
        # for N = 434, i.e. 0.10 posterior sds here (measured 0.107): a property of the
        # method, so sigma's mean gets 0.2 sds.
        tol = 0.2 if comp == "sigma" else 0.1
        assert abs(summary[comp].mean - ref["mean"]) <= tol * ref["sd"], comp
        assert abs(summary[comp].sd / ref["sd"] - 1) <= 0.15, comp


def test_cli_laplace(tmp_path, capsys):
    (tmp_path / "m.fpl").write_text("data y: real[3]\nparam mu ~ normal(0, 1)\ny ~ normal(mu, 1)\n")
    (tmp_path / "d.json").write_text(json.dumps({"y": [1.0, 2.0, 3.0]}))
    out = tmp_path / "laplace.json"
    argv = ["laplace", str(tmp_path / "m.fpl"), "--data", str(tmp_path / "d.json")]
    assert main([*argv, "--draws", "200", "--seed", "2", "-o", str(out)]) == 0
    assert "mode found" in capsys.readouterr().out
    back = load_fit(str(out))
    assert back.posterior["mu"].shape == (1, 200)
    # conjugate: posterior N(sum(y) / 4, 1 / 4); the mode is recorded exactly (as above)
    assert json.loads(back.attrs["mode"])["mu"] == pytest.approx(1.5, rel=1e-6)
    assert main([*argv, "--draws", "0"]) == 2
    assert main([*argv, "--draws", "many"]) == 2
    assert "W0403" not in capsys.readouterr().err  # Gaussian: no warning


def test_heavy_tails_give_a_large_pareto_k_and_a_warning(tmp_path, capsys):
    # a Student t with 2 degrees of freedom: the Gaussian at its mode has far lighter
    # tails, so the ratios p/q have a very heavy tail (k̂ ~ 0.9 at 4000 draws; the
    # seed is fixed, and any k̂ > 0.7 is what the warning is for)
    (tmp_path / "t.fpl").write_text("param x ~ student_t(2, 0, 1)\n")
    fit = fpl.compile("param x ~ student_t(2, 0, 1)\n").laplace({}, draws=4000, seed=1)
    assert float(fit.attrs["pareto_k"]) > 0.7
    rc = main(["laplace", str(tmp_path / "t.fpl"), "--draws", "4000", "--seed", "1"])
    captured = capsys.readouterr()
    assert rc == 0 and "Pareto k̂" in captured.out
    assert "warning[W0403]" in captured.err and "fpl sample" in captured.err
