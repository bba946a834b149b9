"""An ODE solve that fails inside ``optimize`` is a coded, located error (issue 13): the
ODE is treated like an implicit node, so running out of steps (``max_num_steps`` of
``ode_rk45_tol``) is E0402 where it fails at every initial point and E0410 where the
optimizer walks into a region where it fails (E0406 under ``on_failure="error"``); never a
NaN result or a traceback.  The messages name the ODE call and the failure in the ODE's
words, and the help its step budget and tolerances (an implicit node's residual means
nothing for an ODE).

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
    message, help_text = error.diagnostics[0].message, error.diagnostics[0].help
    # the call by its name and the failure in the ODE's words, not an implicit node's
    # residual; the help names the call's step budget and tolerances
    assert "the ODE solve `ode_rk45_tol` failed (max_iter_reached: " in message, text
    assert "max_num_steps" in message and "residual" not in text, text
    assert "raise `max_num_steps` or loosen `rel_tol`/`abs_tol` in this call" in help_text, text
    assert "`ode_bdf_tol`" in help_text, text  # rk45 is not a stiff method
    span = error.diagnostics[0].span
    assert span.location == "odeopt.fpl:4:9", text


def test_ode_failing_at_a_step_is_E0406_and_at_the_end_E0410_at_the_ode():
    """The messages of a step whose ODE solve failed (``on_failure="error"``) and of a
    run ending there, from the step's failure code and the model's node; the slow test
    above runs the whole path once."""
    from fpl.runtime.optimize_steps import check_final, raise_step
    from fpl.stdlib.solvers import Result

    (node,) = _model(300, 60).bind(DATA).nodes
    with pytest.raises(FplError) as exc:
        raise_step(7, [Result.MAX_ITER_REACHED], [node.node_id], {node.node_id: node}, 1.5)
    error, text = exc.value, exc.value.render()
    assert error.code == "E0406", text
    assert error.diagnostics[0].message == (
        "the ODE solve `ode_rk45_tol` failed (max_iter_reached: it used up `max_num_steps` "
        "steps before the last output time) at optimization step 7"
    )
    assert "raise `max_num_steps`" in error.diagnostics[0].help, text
    assert error.diagnostics[0].span.location == "odeopt.fpl:4:9", text
    with pytest.raises(FplError) as exc:
        check_final([node], 200, float("nan"), {"k": 300.0}, [node.label])
    error, text = exc.value, exc.value.render()
    assert error.code == "E0410", text
    assert "after optimization step 200 (loss nan): the ODE solve `ode_rk45_tol` failed" in text
    assert "raise `max_num_steps`" in error.diagnostics[0].help, text
    assert error.diagnostics[0].span.location == "odeopt.fpl:4:9", text


@pytest.mark.parametrize(
    ("call", "wanted"),
    [
        # a form without tolerances: its `_tol` form, with the defaults it runs at
        (
            "ode_adams(f, [1.0], 0.0, ts)",
            "call `ode_adams_tol(f, y0, t0, ts, rel_tol, abs_tol, max_num_steps, args...)` to "
            "raise `max_num_steps` (default 100000) or loosen the tolerances (default 1e-06), "
            "or a stiff method (`ode_bdf_tol`)",
        ),
        # a stiff method's `_tol` form: its own arguments, no other method to suggest
        (
            "ode_bdf_tol(f, [1.0], 0.0, ts, 1e-8, 1e-8, 500)",
            "raise `max_num_steps` or loosen `rel_tol`/`abs_tol` in this call",
        ),
    ],
    ids=["ode_adams", "ode_bdf_tol"],
)
def test_the_ode_help_names_the_call_and_its_step_budget(call, wanted):
    from fpl.stdlib import ode

    model = fpl.compile(
        f"data ts: real[3]\nparam k: real<lower=0>\nfn f(t, y) = -k * y\nout y = {call}\n"
    )
    (node,) = model.bind(DATA).nodes
    assert node.solver == call.split("(")[0]
    assert ode.failure_help(node.solver) == wanted
    assert ode.failure(node.solver, "stagnated") == (
        f"the ODE solve `{call.split('(')[0]}` failed (stagnated: {ode.FAILURES['stagnated']})"
    )


@pytest.mark.slow
def test_ode_failing_during_optimization_is_E0410_at_the_ode():
    """The prior pulls k to ~300, where 60 steps are too few; the initial points
    (k in [e^-2, e^2]) solve fine, so the failure comes mid-run."""
    with pytest.raises(FplError) as exc:
        _model(300, 60).optimize(DATA, steps=200, seed=1, progress=False)
    error = exc.value
    text = error.render()
    assert error.code == "E0410", text
    assert "the ODE solve `ode_rk45_tol` failed" in error.diagnostics[0].message, text
    assert "raise `max_num_steps`" in error.diagnostics[0].help, text
    span = error.diagnostics[0].span
    assert span.location == "odeopt.fpl:4:9", text
