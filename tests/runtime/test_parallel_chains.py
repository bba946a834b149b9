"""Chains in parallel over devices (fpl.runtime.nuts, fpl.runtime.platform), the saved
adaptation and its reuse, warmup statistics, and the per-draw pass's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fpl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

NORMAL = """
data N: int
data y: real[N]
param mu ~ normal(0, 5)
param sigma: real<lower=0> ~ exponential(1)
y ~ normal(mu, sigma)
"""
RNG = np.random.default_rng(0)
DATA = {"N": 12, "y": RNG.normal(1.0, 2.0, size=12).tolist()}


OPTIMISATION_FLAG = "--xla_backend_optimization_level"


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (XLA's device count is fixed when JAX starts).
    ``XLA_FLAGS`` keeps only the suite's optimisation level (tests/conftest.py: faster
    compiles), so that ``import fpl`` sets the device count itself."""
    full = {**os.environ, **env}
    kept = [f for f in full.pop("XLA_FLAGS", "").split() if f.startswith(OPTIMISATION_FLAG)]
    if kept:
        full["XLA_FLAGS"] = " ".join(kept)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_same_seed_same_draws_on_1_2_and_4_devices(tmp_path):
    """Every chain runs the same single-chain program wherever it is placed, so the
    draws, the warmup and the adapted metric do not depend on the number of devices."""
    (tmp_path / "m.fpl").write_text(NORMAL)
    (tmp_path / "d.json").write_text(json.dumps(DATA))
    code = """
        import numpy as np, fpl, jax
        fit = fpl.load("m.fpl").sample("d.json", chains=4, warmup=150, draws=60, seed=5,
                                      progress=False)
        np.savez("out_%d.npz" % len(jax.local_devices()),
                 mu=fit.posterior["mu"], sigma=fit.posterior["sigma"],
                 lp=fit.warmup_sample_stats["lp"], metric=fit.adaptation["inv_metric"],
                 devices=fit.attrs["devices"])
    """
    for n in (1, 2, 4):
        out = _python(code, {"FPL_HOST_DEVICES": str(n)}, tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
    runs = {n: np.load(tmp_path / f"out_{n}.npz") for n in (1, 2, 4)}
    assert [int(runs[n]["devices"]) for n in (1, 2, 4)] == [1, 2, 4]  # really spread
    for n in (2, 4):
        for key in ("mu", "sigma", "lp", "metric"):
            np.testing.assert_array_equal(runs[n][key], runs[1][key])


def test_import_fpl_makes_the_cores_into_devices(tmp_path):
    out = _python("import fpl, jax; print(len(jax.devices()))", {"FPL_HOST_DEVICES": "3"}, tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "3", out.stderr
    # opting out, and a flag the user set, are respected
    out = _python("import fpl, jax; print(len(jax.devices()))", {"FPL_HOST_DEVICES": "1"}, tmp_path)
    assert out.stdout.strip() == "1"


def test_warmup_stats_and_adaptation_are_kept():
    """The warmup's sampler stats (ArviZ's warmup_sample_stats: the cost of warmup) and
    the adapted step size and metric per chain are in the fit; ESS per gradient can be
    computed from the fit alone."""
    model = fpl.compile(NORMAL)
    fit = model.sample(DATA, chains=2, warmup=200, draws=100, seed=3, progress=False)
    w = fit.warmup_sample_stats
    assert w["n_leapfrog"].shape == (2, 200) and np.all(w["n_leapfrog"] >= 1)
    assert fit.attrs["metric"] == "low_rank"
    ad = fit.adaptation
    assert ad["step_size"].shape == (2,) and np.all(ad["step_size"] > 0)
    assert ad["inv_metric"].shape == (2, 2, 2)  # dense form of a 2-d low-rank metric
    # the sampling step size is the adapted one
    np.testing.assert_array_equal(fit.sample_stats["step_size"][:, 0], ad["step_size"])
    # the posterior sd of (mu, log sigma) sets the metric's scale: within a factor 3
    # (200 warmup draws, the last windows of ~100 draws each)
    log_sigma_sd = float(np.std(np.log(fit.posterior["sigma"])))
    assert 1 / 3 < ad["inv_metric"][0, 1, 1] / log_sigma_sd**2 < 3


@pytest.mark.parametrize("metric", ["diag", "dense", "low_rank"])
def test_every_metric_samples_a_known_posterior(metric):
    """A conjugate normal posterior (known sigma): mean and sd match the closed form for
    every metric form.  4 x 500 draws: the mean's MC error is ~sd/40; 5 sigma margin."""
    src = "data N: int\ndata y: real[N]\nparam mu ~ normal(0, 10)\ny ~ normal(mu, 2)\n"
    y = np.asarray(DATA["y"])
    post_var = 1 / (1 / 100 + len(y) / 4)
    post_mean = post_var * y.sum() / 4
    fit = fpl.compile(src).sample(
        DATA, chains=4, warmup=300, draws=500, seed=1, metric=metric, progress=False
    )
    mu = fit.posterior["mu"]
    assert abs(mu.mean() - post_mean) < 5 * np.sqrt(post_var) / 40
    assert np.std(mu) == pytest.approx(np.sqrt(post_var), rel=0.1)
    assert fit.attrs["metric"] == metric


def test_a_fits_metric_is_reused():
    """``metric=fit`` (cmdstanpy's ``inv_metric=``): the chains start from the fit's
    metric and keep it; warmup adapts only the step size."""
    model = fpl.compile(NORMAL)
    first = model.sample(DATA, chains=2, warmup=300, draws=50, seed=1, progress=False)
    again = model.sample(DATA, chains=3, warmup=60, draws=50, seed=2, metric=first, progress=False)
    for k in ("metric_sigma", "metric_U", "metric_lam", "inv_metric"):
        np.testing.assert_array_equal(again.adaptation[k][:2], first.adaptation[k])
        np.testing.assert_array_equal(again.adaptation[k][2], first.adaptation[k][0])
    assert again.attrs["metric"] == "low_rank"
    # a fit of another model is refused
    other = fpl.compile("param x ~ normal(0, 1)\n")
    with pytest.raises(fpl.FplError) as e:
        other.sample({}, chains=1, warmup=10, draws=10, metric=first, progress=False)
    assert e.value.diagnostics[0].code == "E0403"


def test_metric_setting_is_checked():
    model = fpl.compile(NORMAL)
    with pytest.raises(fpl.FplError) as e:
        model.sample(DATA, metric="unit", progress=False)
    assert e.value.diagnostics[0].code == "E0403" and "low_rank" in str(e.value)


@pytest.mark.slow
def test_generated_quantities_memory_is_bounded(tmp_path):
    """A gen of N = 10⁵ values per draw: going from 2 x 50 to 2 x 300 draws, the peak
    resident memory may grow by the output itself (500 more draws x 10⁵ x 8 bytes = 400
    MB) plus the per-batch temporaries (GEN_BATCH draws), not by draws x N temporaries
    (all at once: 1.33 GB more, measured, for this gen's sort and cumulative sum).  The growth is
    measured in one process (the first run pays compilation and the runtime's own
    baseline, which vary with the machine), and the total stays under a 2 GB budget
    where the machine's baseline allows (1.3-1.5 GB measured on the 2-core VM)."""
    n = 100_000
    (tmp_path / "big.fpl").write_text(
        "data N: int\ndata x: real[N]\nparam a ~ normal(0, 1)\nparam s: real<lower=0> ~ "
        "exponential(1)\ngen y_rep ~ normal(cumulative_sum(sort_asc(sin(a * x))) / N, s)\n"
    )
    (tmp_path / "big.json").write_text(json.dumps({"N": n, "x": np.linspace(0, 1, n).tolist()}))
    code = """
        import resource, fpl
        model = fpl.load("big.fpl")
        peaks = []
        for draws in (50, 300):
            fit = model.sample("big.json", chains=2, warmup=100, draws=draws, seed=1,
                               progress=False)
            assert fit.generated["y_rep"].shape == (2, draws, 100000)
            del fit
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB
        print(*peaks)
    """
    out = _python(code, {"FPL_HOST_DEVICES": "1"}, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    small, big = (int(v) / 2**20 for v in out.stdout.strip().splitlines()[-1].split())
    growth = big - small
    # output growth 0.4 GB (+ its NumPy copy when reshaped: 0.8 GB) + batches: under 1 GB
    assert growth < 1.0, f"peak grew by {growth:.2f} GB from 100 to 600 draws"
