"""A ``reject`` reached has its own code, E0413 (issue 13/12).

At bind time (data-only code) it is the located error with the message and the values;
where a run ends on a point the model rejects — an optimization's last point, a step
that fails under ``on_failure="error"``, a given ``init`` — it is E0413 naming the
``reject``'s location and message (found by re-evaluating the point in a scope that
reports rejects: ``fpl.compiler.reporting.rejections``); when every random initial point
is rejected, E0402 names the ``reject``.  Inside NUTS a reject stays a rejected proposal
(``tests/compiler/test_reject.py`` checks the truncated posterior)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import fpl
from fpl.compiler import reporting
from fpl.dsl.diagnostics import CODES, FplError

# a normal(3, 1) prior cut at x = 1 by a reject: the optimizer climbs from x = 0 toward 3
# and crosses into the rejected region
CUT = 'param x ~ normal(3, 1)\ntarget += x > 1 ? reject("x beyond 1: ", x) : 0.0\n'
REJECT_AT = (2, 19)  # line and column of `reject(` in CUT


def _located(err: FplError, code: str):
    d = err.diagnostics[0]
    assert d.code == code, err.render()
    assert (d.span.line, d.span.col) == REJECT_AT, err.render()
    assert d.span.source.name == "cut.fpl"
    return d


def test_the_code_is_declared():
    assert reporting.REJECT_CODE == "E0413" and "reject" in CODES["E0413"]


def test_reached_at_bind_time():
    src = 'data x: real\nlet safe = x > 0 ? log(x) : reject("x must be positive: ", x)\n'
    fpl.compile(src).bind({"x": 2.0})
    with pytest.raises(FplError) as info:
        fpl.compile(src, "data.fpl").bind({"x": -2.0})
    d = info.value.diagnostics[0]
    assert d.code == "E0413" and d.message == "rejected: x must be positive: -2"
    assert (d.span.line, d.span.col) == (2, 29)


def test_only_a_run_that_asks_is_told_which_reject():
    cm = fpl.compile(CUT, "cut.fpl").bind({})
    points = jnp.array([[0.0], [2.0], [3.0]])  # x = 0 is accepted, 2 and 3 rejected
    with jax.enable_x64(True):
        reached = reporting.rejections(lambda theta: cm.log_density(theta), points)
        (site, count), *others = reached
        assert count == 2 and not others
        assert site.message == "x beyond 1: " and (site.span.line, site.span.col) == REJECT_AT
        events = reporting.SolverEvents()  # NUTS's: no callback compiled for rejects
        with reporting.collecting(events):
            jax.block_until_ready(jax.jit(jax.vmap(lambda th: cm.log_density(th)))(points))
        jax.effects_barrier()
        assert not events.rejections


def test_optimization_ending_on_a_rejected_point():
    model = fpl.compile(CUT, "cut.fpl")
    with pytest.raises(FplError) as info:
        model.optimize({}, init={"x": 0.0}, steps=300, progress=False)
    d = _located(info.value, "E0413")
    # adam(1e-2) moves x by about 0.01 a step: it passes 1 a little after step 100, and
    # every step from there starts at a rejected point (skipped)
    head = "rejected: x beyond 1: (at the point optimization step "
    assert d.message.startswith(head), d.message
    reached = int(d.message.removeprefix(head).split()[0])
    assert 100 < reached < 200 and f"the {300 - reached} steps after it" in d.message


def test_a_rejected_step_under_on_failure_error():
    # adam(1e-2) moves x by about 0.01 a step: the step that starts beyond 1 is a
    # little after step 100, and the error names it
    model = fpl.compile(CUT, "cut.fpl")
    with pytest.raises(FplError) as info:
        model.optimize({}, init={"x": 0.0}, steps=300, on_failure="error", progress=False)
    d = _located(info.value, "E0413")
    step = int(d.message.split("where optimization step ")[1].split()[0])
    assert 100 < step < 200, d.message


def test_a_starting_point_the_model_rejects():
    model = fpl.compile(CUT, "cut.fpl")
    with pytest.raises(FplError) as info:
        model.optimize({}, init={"x": 2.0}, steps=20, progress=False)
    d = _located(info.value, "E0413")
    assert d.message == "rejected: x beyond 1: (at the starting point; all 20 steps were skipped)"


def test_a_given_init_the_model_rejects():
    model = fpl.compile(CUT, "cut.fpl")
    with pytest.raises(FplError) as info:
        model.laplace({}, init={"x": 2.0}, draws=10)
    d = _located(info.value, "E0413")
    assert d.message == "rejected: x beyond 1: (at the given `init`)"


def test_every_initial_point_rejected_names_the_reject():
    src = 'param x ~ normal(0, 1)\ntarget += x > -10 ? reject("always here ", x) : 0.0\n'
    with pytest.raises(FplError) as info:
        fpl.compile(src, "cut.fpl").optimize({}, steps=10, progress=False)
    d = info.value.diagnostics[0]
    assert d.code == "E0402" and (d.span.line, d.span.col) == (2, 21), info.value.render()
    assert "was reached at 16 of the last 16" in d.message and "always here" in d.message
