"""A fit as ArviZ data follows ArviZ's schema, so ArviZ's functions take it with their
defaults: ``loo``, ``compare``, ``plot_ppc`` (``plot_ppc_dist`` on 1.x) and
``plot_trace``, in memory and from a saved ``.nc`` file, under the installed major.

The fits are built by hand from the exact posterior of a conjugate normal model, so the
leave-one-out predictive densities are known in closed form."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fpl.runtime.fit import Fit, load_fit, split_data
from fpl.runtime.netcdf import arviz_major

N, CHAINS, DRAWS = 20, 4, 1000
PRIOR_SD = 10.0  # mu ~ normal(0, PRIOR_SD); y_i ~ normal(mu, 1)


def log_normal(y, mean, var):
    return -0.5 * (np.log(2 * np.pi * var) + (y - mean) ** 2 / var)


def posterior_of(y: np.ndarray) -> tuple[float, float]:
    precision = 1.0 / PRIOR_SD**2 + len(y)
    return float(np.sum(y) / precision), 1.0 / precision


def normal_fit(y: np.ndarray, seed: int, shift: float = 0.0) -> Fit:
    """Exact posterior draws of mu (moved by ``shift`` for a worse model), the pointwise
    log-likelihood of ``y`` and replicated data ``y_rep``."""
    rng = np.random.default_rng(seed)
    mean, var = posterior_of(y)
    mu = mean + shift + math.sqrt(var) * rng.normal(size=(CHAINS, DRAWS))
    observed, constant = split_data({"y": y, "N": np.array(N), "x": np.arange(N)}, ["y"])
    return Fit(
        model="normal",
        posterior={"mu": mu},
        generated={"y_rep": mu[..., None] + rng.normal(size=(CHAINS, DRAWS, N))},
        sample_stats={
            "lp": -0.5 * (mu - mean) ** 2 / var,
            "diverging": np.zeros((CHAINS, DRAWS), bool),
            "energy": rng.normal(size=(CHAINS, DRAWS)),
        },
        observed=observed,
        constant_data=constant,
        log_likelihood={"y": log_normal(y, mu[..., None], 1.0)},
    )


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(1.0, 1.0, size=N)


def exact_elpd_loo(y: np.ndarray) -> float:
    """sum_i log p(y_i | y_-i): the posterior predictive of the other N - 1 values is
    normal(mean_-i, 1 + var_-i)."""
    total = 0.0
    for i in range(len(y)):
        mean, var = posterior_of(np.delete(y, i))
        total += float(log_normal(y[i], mean, 1.0 + var))
    return total


def test_groups_follow_the_schema(data) -> None:
    idata = normal_fit(data, 1).to_arviz()
    assert set(idata.observed_data.data_vars) == {"y"}  # only what `~` observes
    assert set(idata.constant_data.data_vars) == {"N", "x"}  # covariates and sizes
    assert set(idata.log_likelihood.data_vars) == {"y"}
    assert set(idata.posterior_predictive.data_vars) == {"y"}  # y_rep, paired with y
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "y_dim_0")
    assert idata.posterior["mu"].shape == (CHAINS, DRAWS)


def test_loo_with_defaults_matches_the_exact_value(data, tmp_path: Path) -> None:
    import arviz as az

    fit = normal_fit(data, 1)
    fit.save(str(tmp_path / "fit.nc"))
    exact = exact_elpd_loo(data)
    for idata in (fit.to_arviz(), az.from_netcdf(str(tmp_path / "fit.nc"))):
        loo = az.loo(idata)
        elpd, p = (loo.elpd, loo.p) if hasattr(loo, "elpd") else (loo.elpd_loo, loo.p_loo)
        # 4000 exact draws: the Monte Carlo error of each of the 20 terms is about 0.005
        # (PSIS adds little here, Pareto k < 0.5), so 0.2 is several standard errors.
        assert float(elpd) == pytest.approx(exact, abs=0.2)
        assert float(p) == pytest.approx(1.0, abs=0.3)  # one parameter


def test_compare_ranks_the_right_model_first(data) -> None:
    import arviz as az

    good, bad = normal_fit(data, 1), normal_fit(data, 2, shift=1.5)
    table = az.compare({"good": good.to_arviz(), "bad": bad.to_arviz()})
    assert list(table.index) == ["good", "bad"]
    # moving mu by 1.5 (unit-variance data) costs about N * 1.5**2 / 2 = 22.5 in elpd;
    # ArviZ 0.x reports the difference as positive, 1.x as negative
    assert abs(table.loc["bad", "elpd_diff"]) > 10


def test_ppc_and_trace_plots_with_defaults(data) -> None:
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idata = normal_fit(data, 1).to_arviz()
    if arviz_major(az.__version__) >= 1:
        az.plot_ppc_dist(idata)
    else:
        az.plot_ppc(idata, num_pp_samples=20)
    az.plot_trace(idata)
    plt.close("all")


def test_declared_log_lik_wins_over_the_recorded_one(data, tmp_path: Path) -> None:
    fit = normal_fit(data, 1)
    declared = np.zeros((CHAINS, DRAWS, N))
    fit.generated["log_lik"] = declared
    fit.log_likelihood["log_lik"] = np.ones((CHAINS, DRAWS, N))  # a recorded namesake
    fd = fit.to_fitdata()
    assert list(fd.log_likelihood) == ["y", "log_lik"]
    np.testing.assert_array_equal(fd.log_likelihood["log_lik"], declared)
    fit.save(str(tmp_path / "fit.json"))
    back = load_fit(str(tmp_path / "fit.json"))
    assert list(back.log_likelihood) == ["y"] and "log_lik" in back.generated
    assert list(back.constant_data) == ["N", "x"] and list(back.observed) == ["y"]
