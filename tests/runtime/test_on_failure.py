"""``optimize(on_failure=...)``: the policy table (best / skip / error) on an implicit
node made to fail on every other step, and the final non-finite rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.optimize import load_result
from fpl.stdlib.solvers import Problem
from fpl.stdlib.solvers.fixed_point import Iterate

# One row per step (batch_size=1, two rows: every epoch sees both).  Row 1's map
# x = 0.2 x + 1 converges in ~15 Picard steps; row 2's x = 0.9 x + 1 needs ~220, so
# with max_iter=30 its solve fails on every step that draws row 2.  Each row trains its
# own weight (w[id]), so what each policy does to the failing steps shows in w[2] alone.
MODEL = """
data N: int
data id: int<lower=1, upper=2>[N]
data r: real[N]
data c: real[N]
data t: real[N]
weight w: real[2] init 0.5
let x = fix x: real = r[1] * x + 1 with iterate(max_iter=30, tol=1e-10)
loss square(w[id[1]] * x * c[1] - t[1])
"""
DATA = {"N": 2, "id": [1, 2], "r": [0.2, 0.9], "c": [1.0, 0.1], "t": [2.0, 3.0]}
STEPS = 80  # 40 per row; SGD contracts each weight's error by <= 0.64 per step of its row
# (the gradient scale 2 (N/B) * 2 x^2 c^2 * lr: 0.625 for row 1, 0.367 for row 2), so
# 0.64^40 ~ 2e-8: the weights are at their optima to ~1e-7 (tolerances below)


def _optimize(on_failure, **kw):
    model = fpl.compile(MODEL, "policy.fpl")
    return model.optimize(
        DATA,
        optimizer=optax.sgd(0.1),
        steps=STEPS,
        batch_size=1,
        seed=3,
        progress=False,
        on_failure=on_failure,
        **kw,
    )


def _last_iterate():
    """Row 2's last iterate, from the solver itself (an independent route)."""
    with jax.enable_x64(True):
        problem = Problem("fix", lambda z: 0.9 * z + 1.0)
        sol = Iterate(max_iter=30, tol=1e-10).solve(problem, jnp.zeros(1))
        assert int(sol.result) != 0  # it did not converge: the test's premise
        return float(sol.z[0])


LABEL = "fix#1 at policy.fpl:8:9"


@pytest.mark.slow
def test_best_goes_on_from_the_last_iterate_and_counts():
    res = _optimize("best")
    assert res.skipped == 0
    assert res.solver_failures == {LABEL: STEPS // 2}  # every row-2 step, located
    assert f"non-converged solves ({LABEL}: {STEPS // 2})" in res.message
    x1 = 1 / (1 - 0.2)
    assert res.weights["w"][0] == pytest.approx(2.0 / x1, abs=1e-6)
    # row 2 trained on its best iterate, here its last (Picard's residual on a contraction
    # falls every step): w c x' = t
    assert res.weights["w"][1] == pytest.approx(3.0 / (0.1 * _last_iterate()), abs=1e-6)
    assert res.attrs["on_failure"] == "best"


def test_best_is_the_default():
    model = fpl.compile(MODEL, "policy.fpl")
    res = model.optimize(
        DATA, optimizer=optax.sgd(0.1), steps=4, batch_size=1, seed=3, progress=False
    )
    assert res.attrs["on_failure"] == "best" and res.solver_failures == {LABEL: 2}


@pytest.mark.slow
def test_skip_skips_the_failing_steps(tmp_path):
    res = _optimize("skip")
    assert res.skipped == STEPS // 2
    assert res.solver_failures == {LABEL: STEPS // 2}
    assert res.weights["w"][0] == pytest.approx(2.0 / 1.25, abs=1e-6)
    assert res.weights["w"][1] == 0.5  # never updated: exactly its init
    res.save(tmp_path / "r.json")
    assert load_result(tmp_path / "r.json").solver_failures == res.solver_failures


def test_error_names_the_node_and_the_step():
    with pytest.raises(FplError) as e:
        _optimize("error")
    d = e.value.diagnostics[0]
    assert d.code == "E0406" and "policy.fpl:8:9" in d.span.location
    step = int(d.message.split("step ")[1].split()[0])
    assert step in (1, 2)  # the first step that draws row 2 (epoch 1 has both rows)
    assert "(max_iter_reached:" in d.message


# log(-a) is NaN for every a > 0: no iterate has a finite residual, so not even "best"
# has an iterate to go on from (a map that merely diverges has one: its start)
DIVERGING = """
weight a: real init 1.5
let x = fix x: real = a * x + log(-a) with iterate(max_iter=50)
loss square(x)
"""


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["best", "skip"])
def test_a_final_loss_that_is_not_finite_is_an_error_naming_step_and_node(policy):
    # no step can be taken, the final loss is NaN
    model = fpl.compile(DIVERGING, "diverge.fpl")
    with pytest.raises(FplError) as e:
        model.optimize(optimizer=optax.sgd(0.1), steps=3, progress=False, on_failure=policy)
    d = e.value.diagnostics[0]
    assert d.code == "E0410"
    assert "after optimization step 3" in d.message
    assert "fix#1 at diverge.fpl:3:9" in d.message and d.span.line == 3


def test_cli_flag(tmp_path, capsys):
    import json

    from fpl.runtime.cli import main

    (tmp_path / "m.fpl").write_text(MODEL)
    (tmp_path / "d.json").write_text(json.dumps(DATA))
    args = [
        "optimize",
        str(tmp_path / "m.fpl"),
        "--data",
        str(tmp_path / "d.json"),
        "--steps",
        "4",
        "--batch-size",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--quiet",
    ]
    assert main([*args, "--on-failure", "skip"]) == 0
    assert "2 steps skipped" in capsys.readouterr().out
    assert main([*args, "--on-failure", "sometimes"]) == 2
    np.testing.assert_(capsys.readouterr().err)  # a usage error, with the choices


def test_best_means_the_lowest_residual_iterate_not_the_last():
    # Picard on z = -1.5 z + 1 oscillates outwards: the residual grows every step, so the
    # best iterate is the start (residual 1) and the last one is far away. Under the "best"
    # policy's scope the solver returns the start and its residual; outside it, the last
    # iterate; a fixed budget (steps=K) returns the K-th iterate either way.
    from fpl.compiler.reporting import keeping_unconverged

    problem = Problem("fix", lambda z: -1.5 * z + 1.0)
    with jax.enable_x64(True):
        plain = Iterate(max_iter=20, tol=1e-10).solve(problem, jnp.zeros(1))
        with keeping_unconverged():
            best = Iterate(max_iter=20, tol=1e-10).solve(problem, jnp.zeros(1))
            budget = Iterate(steps=5).solve(problem, jnp.zeros(1))
        budget_plain = Iterate(steps=5).solve(problem, jnp.zeros(1))
    assert int(plain.result) == int(best.result) != 0  # both report the failure
    assert abs(float(plain.z[0])) > 100  # the last iterate has run away
    assert float(best.z[0]) == 0.0 and float(best.residual) == pytest.approx(1.0)
    np.testing.assert_array_equal(budget.z, budget_plain.z)
    assert float(budget.residual) == pytest.approx(1.5**5, rel=1e-12)
