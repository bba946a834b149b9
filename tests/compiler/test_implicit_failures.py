"""Failure semantics end to end: a forward solve that does not converge gives a log
density of -inf (not NaN); NUTS rejects such points, counts them per chain and node
with the node's location, and records per-draw node stats in ``sample_stats``."""

import jax
import numpy as np
import pytest

import fpl
from fpl.compiler import implicit
from fpl.runtime.io import load_fit

# x^2 = a has a real root only for a >= 0: Newton from 1 fails for a < 0.  The density
# of `a` is the standard normal restricted to where the solve converges: half-normal.
SRC = """
param a ~ normal(0, 1)
let x = root x: real of x * x - a init 1.0 with newton(max_iter=30)
target += 0 * x
"""


def test_failed_solve_is_minus_inf_not_nan():
    model = fpl.compile(SRC)
    f = jax.jit(lambda a: model.log_density({"a": a}))
    assert float(f(-0.5)) == -np.inf
    assert float(f(0.5)) == pytest.approx(-0.5 * 0.25 - 0.5 * np.log(2 * np.pi), abs=1e-12)


@pytest.mark.slow
def test_nuts_rejects_failed_solves_and_reports_them(tmp_path):
    model = fpl.compile(SRC)
    fit = model.sample(chains=2, warmup=300, draws=1000, seed=4, progress=False)
    a = fit.draws("a", merge_chains=True)
    assert np.all(a > 0)  # no draw where the solve failed
    # half-normal: mean sqrt(2/pi), sd sqrt(1 - 2/pi); within 4 Monte Carlo standard
    # errors (the summary's, from the bulk ESS) of the mean
    row = fit.summary()["a"]
    assert abs(row.mean - np.sqrt(2 / np.pi)) < 4 * row.mcse
    assert row.sd == pytest.approx(np.sqrt(1 - 2 / np.pi), rel=0.15)  # ~ 1/sqrt(2 ESS)
    # failures counted per chain and node, with the location, in the summary
    ((node, counts),) = fit.solver_failures.items()
    assert node == "root#1 at <string>:3:9" and len(counts) == 2 and all(c > 0 for c in counts)
    assert "root#1 at <string>:3:9" in str(fit.summary())
    # per-draw node stats: at accepted draws every solve converged, in a few iterations
    conv = fit.sample_stats["converged:root#1@<string>:3:9"]
    its = fit.sample_stats["iterations:root#1@<string>:3:9"]
    res = fit.sample_stats["residual:root#1@<string>:3:9"]
    assert conv.shape == (2, 1000) and conv.all()
    assert np.all((its >= 1) & (its <= 30)) and np.all(
        res <= 1e-8 * np.maximum(1, np.sqrt(a.reshape(2, -1)))
    )
    idata = fit.to_arviz()
    assert "iterations:root#1@<string>:3:9" in idata.sample_stats
    for ext in ("nc", "json"):
        fit.save(str(tmp_path / f"fit.{ext}"))
        back = load_fit(str(tmp_path / f"fit.{ext}"))
        np.testing.assert_array_equal(back.sample_stats["iterations:root#1@<string>:3:9"], its)


def test_float32_is_warned_once_per_node():
    model = fpl.compile(SRC)
    implicit._WARNED_FLOAT32.clear()
    try:
        with jax.enable_x64(False):
            with pytest.warns(implicit.PrecisionWarning, match=r"root#1 at <string>:3:9.*x64"):
                model.log_density({"a": 0.5})
            model.log_density({"a": 0.7})  # once: a second warning would be an error here
    finally:
        implicit._WARNED_FLOAT32.clear()
    model.log_density({"a": 0.5})  # float64 (conftest): no warning
