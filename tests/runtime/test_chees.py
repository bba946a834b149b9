"""Many-chain mode (``sample(sampler="chees")``, fpl.runtime.chees): ChEES-HMC with all
chains in one vectorised program, checked against a closed-form posterior, with R-hat and
ESS computed across the 64 chains by the usual summary."""

from __future__ import annotations

import numpy as np
import pytest

import fpl

#: a correlated, badly scaled Gaussian: x ~ N(m, Σ) with sds 1 and 10, correlation 0.9
MEAN = np.array([1.0, -3.0])
SD = np.array([1.0, 10.0])
RHO = 0.9
COV = np.array([[SD[0] ** 2, RHO * SD[0] * SD[1]], [RHO * SD[0] * SD[1], SD[1] ** 2]])
MODEL = "data m: real[2]\ndata S: real[2, 2]\nparam x: real[2] ~ multi_normal(m, S)\n"
DATA = {"m": MEAN.tolist(), "S": COV.tolist()}
CHAINS, WARMUP, DRAWS = 64, 300, 100


@pytest.fixture(scope="module")
def fit():
    return fpl.compile(MODEL).sample(
        DATA,
        sampler="chees",
        chains=CHAINS,
        warmup=WARMUP,
        draws=DRAWS,
        seed=11,
        progress=False,
    )


def test_chees_recovers_a_correlated_gaussian(fit):
    """Mean, sds and correlation of N(m, Σ) from 64 x 100 draws.  Tolerances from the
    summary's own ESS: each mean within 5 Monte Carlo standard errors (sd / sqrt(ESS));
    the sds within 15 % and the correlation within 0.05 (with ESS ≥ 500 the relative
    error of an sd estimate is ≤ 1/sqrt(2·500) ≈ 3 %, so these are ≥ 4 errors wide)."""
    x = np.asarray(fit.posterior["x"])
    assert x.shape == (CHAINS, DRAWS, 2)
    summary = fit.summary()
    flat = x.reshape(-1, 2)
    for i in range(2):
        row = summary[f"x[{i + 1}]"]
        assert row.ess_bulk >= 500, row  # the run is long enough for the tolerances
        assert abs(flat[:, i].mean() - MEAN[i]) < 5 * SD[i] / np.sqrt(row.ess_bulk)
        assert flat[:, i].std() == pytest.approx(SD[i], rel=0.15)
    assert np.corrcoef(flat.T)[0, 1] == pytest.approx(RHO, abs=0.05)


def test_rhat_and_ess_are_computed_across_all_chains(fit):
    """The summary's R-hat and ESS pool the 64 chains: ESS can exceed one chain's draws
    many times over (it could not if computed per chain), and R-hat is near 1 for
    chains that mixed.  The fit records the sampler, one step size (shared by the
    ensemble) and the adapted diagonal metric, and keeps warmup's statistics."""
    summary = fit.summary()
    for name in ("x[1]", "x[2]"):
        assert summary[name].ess_bulk > 5 * DRAWS
        # split R-hat of short chains sits above 1 even when they mix: about
        # sqrt(1 + 1/ESS per half-chain) ≈ 1.02 here (ESS/draw ≈ 0.35, 50-draw halves);
        # chains stuck apart (what R-hat detects) give far more
        assert summary[name].r_hat < 1.05
    assert fit.attrs["sampler"] == "chees" and fit.attrs["metric"] == "diag"
    step = fit.adaptation["step_size"]
    assert step.shape == (CHAINS,) and np.all(step == step[0]) and step[0] > 0
    inv_metric = fit.adaptation["inv_metric"]
    assert inv_metric.shape == (CHAINS, 2)
    # the pooled-draws diagonal metric: the variances 1 and 100, within a factor 2
    assert np.all(np.abs(np.log(inv_metric[0] / SD**2)) < np.log(2))
    # every chain of a transition takes the same number of leapfrog steps (lockstep)
    steps = fit.sample_stats["n_leapfrog"]
    assert np.all(steps == steps[:1]) and np.all(steps >= 1)
    assert fit.warmup_sample_stats["n_leapfrog"].shape == (CHAINS, WARMUP)
    assert int(np.sum(fit.sample_stats["diverging"])) == 0


def test_chees_settings_are_checked():
    model = fpl.compile(MODEL)
    for bad in ({"chains": 1}, {"shard_data": True}, {"metric": "dense"}):
        with pytest.raises(fpl.FplError) as e:
            model.sample(DATA, sampler="chees", progress=False, **bad)
        assert e.value.diagnostics[0].code == "E0403", bad
    with pytest.raises(fpl.FplError) as e:
        model.sample(DATA, sampler="hmc", progress=False)
    assert e.value.diagnostics[0].code == "E0403"
