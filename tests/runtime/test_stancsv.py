"""Stan CSV: one file per chain as CmdStan writes them, read by cmdstanpy and ArviZ with
the same draws and summary, and CmdStan's own files read back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fpl.dsl.diagnostics import FplError
from fpl.runtime.fit import Fit
from fpl.runtime.io import FitData, load_fit, save_fit
from fpl.runtime.netcdf import arviz_major
from fpl.runtime.stancsv import column_major, column_names

CHAINS, DRAWS, WARMUP = 3, 40, 6
STATS = ("lp", "accept_stat", "step_size", "tree_depth", "n_leapfrog", "diverging", "energy")


def sampler_stats(rng: np.random.Generator, draws: int) -> dict[str, np.ndarray]:
    shape = (CHAINS, draws)
    return {
        "lp": rng.normal(size=shape),
        "accept_stat": rng.random(shape),
        "step_size": np.full(shape, 0.25),
        "tree_depth": rng.integers(1, 6, shape),
        "n_leapfrog": rng.integers(1, 40, shape),
        "diverging": rng.random(shape) < 0.2,
        "energy": rng.normal(size=shape),
    }


def make_fit(*, dense: bool = False, seed: int = 0) -> FitData:
    rng = np.random.default_rng(seed)
    shape = (CHAINS, DRAWS)
    d = 8  # mu + theta (3) + Sigma (4)
    metric = rng.random((CHAINS, d, d)) if dense else rng.random((CHAINS, d))
    posterior = {
        "mu": rng.normal(size=shape),
        "theta": rng.normal(size=(*shape, 3)),
        "Sigma": rng.normal(size=(*shape, 2, 2)),
    }
    posterior["mu"][0, 1] = np.nan  # non-finite draws survive
    posterior["theta"][1, 0, 2] = -np.inf
    return FitData(
        posterior=posterior,
        posterior_predictive={"y_rep": rng.normal(size=(*shape, 4))},
        log_likelihood={
            "y": rng.normal(size=(*shape, 4)),  # recorded: no place in Stan CSV
            "log_lik": rng.normal(size=(*shape, 4)),  # declared by the model: a column
        },
        unconstrained_posterior={"mu": rng.normal(size=shape)},
        sample_stats=sampler_stats(rng, DRAWS),
        warmup_sample_stats=sampler_stats(rng, WARMUP),
        observed_data={"y": np.array([1.0, 2.5, -0.5, 3.0])},
        constant_data={"N": np.array(4), "x": np.array([[1.0, 2.0], [3.0, 4.0]])},
        adaptation={
            "step_size": rng.random(CHAINS),
            "inv_metric": metric,
            "metric_U": rng.normal(size=(CHAINS, d, 2)),  # extra arrays round-trip too
        },
        attrs={
            "model": "demo",
            "seed": 42,
            "warmup": WARMUP,
            "max_tree_depth": 10,
            "metric": "dense" if dense else "diag",
            "seconds": 1.25,
            "warmup_seconds": 0.75,
            "sampling_seconds": 0.5,
        },
    )


def files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir())


def test_column_major_names_and_values() -> None:
    assert column_names("Sigma", (2, 3)) == [
        "Sigma.1.1",
        "Sigma.2.1",
        "Sigma.1.2",
        "Sigma.2.2",
        "Sigma.1.3",
        "Sigma.2.3",
    ]
    assert column_names("mu", ()) == ["mu"]
    values = np.arange(12.0).reshape(2, 2, 3)  # 2 draws of a 2x3 matrix
    np.testing.assert_array_equal(column_major(values, 1)[0], [0, 3, 1, 4, 2, 5])


@pytest.mark.parametrize("dense", [False, True])
def test_round_trip_of_what_stan_csv_holds(tmp_path: Path, dense: bool) -> None:
    fit = make_fit(dense=dense)
    written = save_fit(str(tmp_path / "fit.csv"), fit)
    assert written == [str(tmp_path / f"fit_{c}.csv") for c in (1, 2, 3)]
    assert files(tmp_path) == written  # no temporaries left behind
    back = load_fit(str(tmp_path / "fit.csv"))
    kept = (
        "posterior",
        "posterior_predictive",
        "sample_stats",
        "warmup_sample_stats",
        "observed_data",
        "constant_data",
        "adaptation",
    )
    for group in kept:
        left, right = getattr(fit, group), getattr(back, group)
        assert list(left) == list(right), group
        for name in left:  # reals are written with repr: they read back bit for bit
            np.testing.assert_array_equal(left[name], right[name], err_msg=f"{group}.{name}")
    assert list(back.log_likelihood) == ["log_lik"]  # the recorded `y` is not in Stan CSV
    np.testing.assert_array_equal(back.log_likelihood["log_lik"], fit.log_likelihood["log_lik"])
    assert not back.unconstrained_posterior
    assert back.attrs == fit.attrs
    assert back.sample_stats["tree_depth"].dtype == np.int64
    assert back.sample_stats["diverging"].dtype == np.bool_


def test_layout_is_cmdstans(tmp_path: Path) -> None:
    fit = make_fit()
    save_fit(str(tmp_path / "fit.csv"), fit)
    lines = (tmp_path / "fit_2.csv").read_text().splitlines()
    header_at = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    comments = lines[:header_at]
    for expected in (
        "# model = demo",
        "# method = sample",
        f"#     num_samples = {DRAWS}",
        f"#     num_warmup = {WARMUP}",
        "#     save_warmup = 1",
        "#     algorithm = hmc",
        "#             max_depth = 10",
        "#         metric = diag_e",
        "# id = 2",
        "#   seed = 42",
    ):
        assert expected in comments
    header = lines[header_at].split(",")
    assert header[:7] == [
        "lp__",
        "accept_stat__",
        "stepsize__",
        "treedepth__",
        "n_leapfrog__",
        "divergent__",
        "energy__",
    ]
    assert header[7:15] == ["mu", "theta.1", "theta.2", "theta.3", *column_names("Sigma", (2, 2))]
    assert header[15:] == column_names("y_rep", (4,)) + column_names("log_lik", (4,))
    assert "chain__" not in header and "draw__" not in header
    rows = lines[header_at + 1 :]
    adapt = rows.index("# Adaptation terminated")
    assert adapt == WARMUP  # the warmup rows come first (save_warmup)
    assert rows[adapt + 1] == f"# Step size = {float(fit.adaptation['step_size'][1])!r}"
    assert rows[adapt + 2] == "# Diagonal elements of inverse mass matrix:"
    assert [float(v) for v in rows[adapt + 3][2:].split(",")] == list(
        fit.adaptation["inv_metric"][1]
    )
    draws = rows[adapt + 4 : adapt + 4 + DRAWS]
    assert all(not r.startswith("#") for r in draws)
    # Column-major: Sigma.2.1 (the second Sigma column) is Sigma[1, 0] of chain 2's draw 1.
    col = header.index("Sigma.2.1")
    assert float(draws[0].split(",")[col]) == fit.posterior["Sigma"][1, 0, 1, 0]
    assert "#  Elapsed Time: 0.75 seconds (Warm-up)" in rows
    assert "#                1.25 seconds (Total)" in rows


def test_one_chain_is_one_file_and_stale_chain_files_go(tmp_path: Path) -> None:
    path = tmp_path / "fit.csv"
    save_fit(str(path), make_fit())
    (tmp_path / "fit_10.csv").write_text("not ours either way")  # a stale chain 10
    one = FitData(posterior={"mu": np.zeros((1, 5))}, attrs={"model": "m"})
    assert save_fit(str(path), one) == [str(path)]
    assert files(tmp_path) == [str(path)]  # fit_1.csv ... of the 3-chain run are gone
    assert load_fit(str(path)).posterior["mu"].shape == (1, 5)


def test_cmdstanpy_reads_the_files(tmp_path: Path) -> None:
    cmdstanpy = pytest.importorskip("cmdstanpy")
    fit = make_fit(dense=True)
    written = save_fit(str(tmp_path / "fit.csv"), fit)
    stan = cmdstanpy.from_csv(written)  # needs no CmdStan installation
    assert stan.chains == CHAINS and stan.num_draws_sampling == DRAWS
    for name in ("mu", "theta", "Sigma", "y_rep"):
        source = fit.posterior.get(name, fit.posterior_predictive.get(name))
        want = source.reshape(CHAINS * DRAWS, *source.shape[2:])
        np.testing.assert_array_equal(stan.stan_variable(name), want, err_msg=name)
    np.testing.assert_array_equal(stan.step_size, fit.adaptation["step_size"])
    np.testing.assert_array_equal(stan.inv_metric, fit.adaptation["inv_metric"])
    np.testing.assert_array_equal(
        stan.method_variables()["divergent__"][WARMUP:], fit.sample_stats["diverging"].T
    )
    warmup = cmdstanpy.from_csv(written).draws(inc_warmup=True)
    assert warmup.shape[0] == WARMUP + DRAWS


def test_arviz_reads_the_files_with_the_same_summary(tmp_path: Path) -> None:
    import arviz as az

    fit = make_fit()
    fit.posterior["mu"] = np.random.default_rng(3).normal(size=(CHAINS, DRAWS))  # finite
    written = save_fit(str(tmp_path / "fit.csv"), fit)
    if arviz_major(az.__version__) >= 1:  # ArviZ 1.x reads CmdStan output via cmdstanpy
        cmdstanpy = pytest.importorskip("cmdstanpy")
        idata = az.from_cmdstanpy(cmdstanpy.from_csv(written))
    else:
        idata = az.from_cmdstan(written)
    mu = np.asarray(idata.posterior["mu"].transpose("chain", "draw"))
    assert mu.shape == (CHAINS, DRAWS)  # chains kept apart (R-hat is defined)
    np.testing.assert_array_equal(mu, fit.posterior["mu"])
    sigma = np.asarray(idata.posterior["Sigma"].transpose("chain", "draw", ...))
    np.testing.assert_array_equal(sigma, fit.posterior["Sigma"])
    ours = Fit.from_fitdata(load_fit(str(tmp_path / "fit.csv"))).summary()["mu"]
    # Both implement Vehtari et al. (2021); test_summary.py pins the agreement (rel 1e-6).
    assert float(az.ess(idata, var_names=["mu"])["mu"]) == pytest.approx(ours.ess_bulk, rel=1e-6)
    assert float(az.rhat(idata, var_names=["mu"])["mu"]) == pytest.approx(ours.r_hat, rel=1e-6)
    assert not math.isnan(ours.r_hat)


CMDSTAN_CHAIN = """# stan_version_major = 2
# model = bernoulli_model
# method = sample (Default)
#   sample
#     num_samples = 3
#     num_warmup = 1000 (Default)
#     save_warmup = false
#     algorithm = hmc (Default)
#       hmc
#         engine = nuts (Default)
#           nuts
#             max_depth = 10 (Default)
#         metric = dense_e
# random
#   seed = 1234
lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__,theta,z.1,z.2
# Adaptation terminated
# Step size = 0.9
# Elements of inverse mass matrix:
# 1, 0.5, 0
# 0.5, 2, 0
# 0, 0, 3
-7.1,0.9,0.9,1,3,0,7.5,0.25,1,2
-7.2,1,0.9,2,3,0,7.6,0.35,3,4
-7.3,0.8,0.9,1,1,0,7.4,0.15,5,6
#
#  Elapsed Time: 0.010 seconds (Warm-up)
#                0.020 seconds (Sampling)
#                {total} seconds (Total)
#
"""


def test_reads_cmdstans_own_files(tmp_path: Path) -> None:
    for chain, total in ((1, "0.030"), (2, "0.040")):
        (tmp_path / f"output_{chain}.csv").write_text(CMDSTAN_CHAIN.format(total=total))
    fit = load_fit(str(tmp_path / "output.csv"))
    np.testing.assert_array_equal(fit.posterior["theta"], [[0.25, 0.35, 0.15]] * 2)
    np.testing.assert_array_equal(fit.posterior["z"][0], [[1, 2], [3, 4], [5, 6]])
    assert fit.adaptation["inv_metric"].shape == (2, 3, 3)
    assert fit.adaptation["inv_metric"][1, 0, 1] == 0.5
    assert fit.attrs["model"] == "bernoulli_model" and fit.attrs["seed"] == 1234
    assert fit.attrs["max_tree_depth"] == 10
    assert fit.attrs["seconds"] == 0.04  # the longest chain
    assert fit.attrs["seconds_chain_1"] == 0.03 and fit.attrs["seconds_chain_2"] == 0.04
    text = str(Fit.from_fitdata(fit).summary())
    assert text.splitlines()[1].startswith("lp__")
    assert "Elapsed: 0.04 s (warmup 0.01 s, sampling 0.02 s); per chain: 0.03 s, 0.04 s" in text


def test_missing_and_mismatched_chain_files(tmp_path: Path) -> None:
    with pytest.raises(FplError) as info:
        load_fit(str(tmp_path / "nope.csv"))
    assert info.value.code == "E0501"
    (tmp_path / "run_1.csv").write_text("lp__,mu\n1,2\n")
    (tmp_path / "run_2.csv").write_text("lp__,nu\n1,2\n")
    with pytest.raises(FplError) as info:
        load_fit(str(tmp_path / "run.csv"))
    assert info.value.code == "E0404" and "run_2.csv" in str(info.value)
    (tmp_path / "run_2.csv").write_text("lp__,mu\n1,2\n3,4\n")
    with pytest.raises(FplError) as info:
        load_fit(str(tmp_path / "run.csv"))
    assert info.value.code == "E0404" and "different numbers of draws" in str(info.value)
