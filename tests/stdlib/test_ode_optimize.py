"""An ODE solve that fails inside ``optimize`` is a coded, located error (issue 13): the
ODE is treated like an implicit node, so running out of steps (``max_num_steps`` of
``ode_rk45_tol``) is E0402 where it fails at every initial point and E0410 where the
optimizer walks into a region where it fails; never a NaN result or a traceback.

The system is y' = -k y, which rk45 at tolerance 1e-6 integrates to t = 4 in a few steps
for k of order 1 and in hundreds for k ~ 300 (its stability region bounds the step by
~3/k), so ``max_num_steps`` decides where the solve fails."""

from __future__ import annotations

import pytest

import fpl
from fpl.dsl.diagnostics import FplError

DATA = {"ts": [1.0, 2.0, 4.0]}


def _model(prior_mean: float, max_steps: int):
    return fpl.compile(
        "data ts: real[3]\n"
        f"param k: real<lower=0> ~ normal({prior_mean}, 1)\n"
        "fn f(t, y) = -k * y\n"
        f"out y = ode_rk45_tol(f, [1.0, 2.0], 0.0, ts, 1e-6, 1e-6, {max_steps})\n"
        "target += sum(y)\n",
        "odeopt.fpl",
    )


def test_ode_out_of_steps_everywhere_is_E0402_at_the_ode():
    """Two steps never reach t = 1 whatever k: no initial point has a finite density."""
    with pytest.raises(FplError) as exc:
        _model(1, 2).optimize(DATA, steps=20, seed=1, progress=False)
    error = exc.value
    text = error.render()
    assert error.code == "E0402", text
    assert "the ode here did not converge" in text, text
    assert "max_iter_reached" in text, text
    span = error.diagnostics[0].span
    assert span.location == "odeopt.fpl:4:9", text


@pytest.mark.slow
def test_ode_failing_during_optimization_is_E0410_at_the_ode():
    """The prior pulls k to ~300, where 60 steps are too few; the initial points
    (k in [e^-2, e^2]) solve fine, so the failure comes mid-run."""
    with pytest.raises(FplError) as exc:
        _model(300, 60).optimize(DATA, steps=200, seed=1, progress=False)
    error = exc.value
    text = error.render()
    assert error.code == "E0410", text
    assert "ode" in error.diagnostics[0].message and "did not converge" in text, text
    span = error.diagnostics[0].span
    assert span.location == "odeopt.fpl:4:9", text
