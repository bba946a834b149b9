"""Warm starts (`warm=true`): the previous solution of a node as its next initial guess,
threaded functionally through ``lower.run(..., warm=)`` / ``Result.warm``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler.implicit import warm_state
from fpl.compiler.lower import from_constrained, run
from fpl.compiler.printer import format_program

RNG = np.random.default_rng(5)
N = 4
A = RNG.normal(size=(N, N))
A = 0.9 * A / np.linalg.norm(A, 2)
U = RNG.normal(size=N)
SRC = """
data n: int
data A: real[n, n]
data u: real[n]
param c: real
let z = fix z: real[n] = tanh(A @ z + c * u) with iterate(tol=1e-10) WARM
target += sum(u * z)
"""


def step_fn(warm: bool):
    model = fpl.compile(SRC.replace("WARM", "warm=true" if warm else ""))
    b = model.bind({"n": N, "A": A, "u": U})
    env = {**b.static, **b.data}

    def objective(c, state):
        res = run(b.program, env, from_constrained({"c": c}), warm=state)
        return res.target, (res.warm, res.env["z.iterations"])

    return model, b, jax.jit(jax.value_and_grad(objective, has_aux=True))


def test_warm_option_parses_and_prints():
    model, b, _ = step_fn(True)
    assert b.program.implicit_nodes[0].warm
    assert " warm" in format_program(model.ir)
    with pytest.raises(fpl.FplError) as exc:
        fpl.compile(SRC.replace("WARM", "warm=maybe"))
    assert exc.value.code == "E0206"


def test_warm_start_cuts_iterations_and_keeps_values_and_gradients():
    _, b, step = step_fn(True)
    _, _, cold = step_fn(False)
    state = warm_state(b.program)
    assert set(state) == {1} and bool(jnp.all(jnp.isnan(state[1])))  # none yet
    cs = [0.5, 0.51, 0.52, 0.53]  # an optimizer-like path of small steps
    its_warm, its_cold = [], []
    for c in cs:
        (v, (state, it)), g = step(c, state)
        (v0, (_, it0)), g0 = cold(c, {})
        its_warm.append(int(it))
        its_cold.append(int(it0))
        # both solves stop at ||f(z) - z|| <= 1e-10, so each is within 1e-10 / (1 - 0.9)
        # of the fixed point: values and implicit gradients agree to ~1e-9
        assert float(v) == pytest.approx(float(v0), abs=1e-8)
        assert float(g) == pytest.approx(float(g0), rel=1e-7, abs=1e-9)
        assert bool(jnp.all(jnp.isfinite(state[1])))  # the converged solution is kept
    assert its_warm[0] == its_cold[0]  # the first call has no previous solution
    assert all(w < c for w, c in zip(its_warm[1:], its_cold[1:]))


def test_failed_solve_keeps_the_previous_solution():
    model = fpl.compile(
        SRC.replace("iterate(tol=1e-10)", "iterate(max_iter=3)").replace("WARM", "warm=true")
    )
    b = model.bind({"n": N, "A": A, "u": U})
    prev = {1: jnp.arange(N, dtype=float)}
    res = run(b.program, {**b.static, **b.data}, from_constrained({"c": 0.5}), warm=prev)
    assert float(res.target) == -np.inf
    np.testing.assert_array_equal(res.warm[1], prev[1])
