"""An ODE's times out of order (Stan: ``t0 < ts[1] <= ts[2] <= ...``, repeats allowed).

Where the data decide ``t0`` and ``ts``, binding refuses them with a located E0202
(``fpl.compiler.passes.bind_checks.check_ode_times``), from the API and the command line
(exit 1, never the internal error's 3).  Where params decide them, the solve is a failed
one (``Result.INACCURATE``: NaN, the log density -inf, counted like any ODE failure) and
never reaches diffrax's run-time ``SaveAt`` check (a ``JaxRuntimeError``): the solve gets
stand-in times (``fpl.stdlib.ode_solve._safe_times``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler import reporting
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main
from fpl.stdlib import ode
from fpl.stdlib.solvers import Result

# ---- where the data decide the times: a located error at bind time -----------------------

DATA_TIMES = """data t0: real
data ts: real[3]
data y: real[3]
param k: real<lower=0> ~ lognormal(0, 1)
fn f(t, z, k) = -k * z
let zs = ode_rk45(f, [1.0], t0, ts, k)
y ~ normal(zs[:, 1], 0.1)
"""


@pytest.mark.parametrize(
    ("t0", "ts", "column", "words"),
    [
        (0.0, [1.0, 2.0, 0.5], 33, "the output time ts[3] = 0.5 is before ts[2] = 2"),
        (1.0, [1.0, 2.0, 3.0], 29, "the initial time t0 = 1 is not before ts[1] = 1"),
        (3.0, [1.0, 2.0, 4.0], 29, "the initial time t0 = 3 is not before ts[1] = 1"),
    ],
)
def test_data_times_out_of_order_are_a_located_bind_error(t0, ts, column, words):
    model = fpl.compile(DATA_TIMES, "times.fpl")
    with pytest.raises(FplError) as info:
        model.bind({"t0": t0, "ts": ts, "y": [0.4, 0.2, 0.6]})
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "E0202"
    assert words in diagnostic.message and "`ode_rk45`" in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.col) == (6, column)


def test_data_times_in_order_bind_and_repeats_are_allowed():
    """Stan's condition, not a stricter one: repeated output times are valid (they
    solve: the method tests below)."""
    model = fpl.compile(DATA_TIMES, "times.fpl")
    for ts in ([1.0, 1.0, 2.0], [0.5, 1.0, 2.0]):
        assert model.bind({"t0": 0.0, "ts": ts, "y": [0.4, 0.2, 0.6]}).param_unc_num() == 1


def test_data_times_inside_a_function_body_are_checked():
    text = """data ts: real[3]
data z0: real[2]
fn f(t, z) = -z
fn solve(z) = ode_bdf(f, [z], 0.0, ts)
param s ~ normal(0, 1)
out zs = map(solve, z0 * s)
"""
    with pytest.raises(FplError) as info:
        fpl.compile(text, "inside.fpl").bind({"ts": [2.0, 1.0, 3.0], "z0": [1.0, 2.0]})
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "E0202" and "`ode_bdf`" in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.col) == (4, 36)


LET_TIMES = """data dt: real[3]
data y: real[3]
param k: real<lower=0> ~ lognormal(0, 1)
fn f(t, z, k) = -k * z
let start = -dt[1]
let ts = cumulative_sum(dt) + start
let zs = ode_rk45(f, [1.0], start - 1, ts, k)
y ~ normal(zs[:, 1], 0.1)
"""


def test_times_that_data_decided_lets_compute_are_checked_at_bind():
    """``let ts = cumulative_sum(dt)``: the data decide the times through lets (one
    reading another), so binding checks them like data fields."""
    model = fpl.compile(LET_TIMES, "lets.fpl")
    assert model.bind({"dt": [1.0, 0.5, 2.0], "y": [0.4, 0.2, 0.6]}).param_unc_num() == 1
    with pytest.raises(FplError) as info:
        model.bind({"dt": [1.0, 0.5, -2.0], "y": [0.4, 0.2, 0.6]})
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "E0202" and "ts[3] = -1.5 is before ts[2] = 0.5" in (
        diagnostic.message
    )
    assert (diagnostic.span.line, diagnostic.span.col) == (7, 40)


def test_a_function_local_name_is_not_taken_for_a_top_level_let():
    """``ts`` inside ``solve`` is its argument, not the top-level ``let ts`` (which is out
    of order): the solve's times are the argument's, in order, so binding accepts them."""
    text = """data y: real[3]
let ts = [3.0, 2.0, 1.0]
fn f(t, z) = -z
fn solve(ts) = ode_rk45(f, [1.0], 0.0, ts)
param s ~ normal(0, 1)
out zs = solve(sort_asc(ts) * exp(s))
y ~ normal(zs[:, 1], 0.1)
"""
    cm = fpl.compile(text, "local.fpl").bind({"y": [0.4, 0.2, 0.6]})
    with jax.enable_x64(True):
        assert np.isfinite(float(cm.log_density(jnp.array([0.0]))))


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("command", ["check", "sample"])
def test_command_line_exits_1_at_the_times(tmp_path, capsys, command):
    """`fpl check --data` and `fpl sample` stop at binding: exit 1 (not 3) with
    file:line:col, before anything is compiled."""
    path = tmp_path / "times.fpl"
    path.write_text(DATA_TIMES)
    data = tmp_path / "data.json"
    data.write_text('{"t0": 0, "ts": [1, 2, 0.5], "y": [0.4, 0.2, 0.6]}')
    extra = ["--warmup", "5", "--draws", "5", "--chains", "1"] if command == "sample" else []
    code, text = _run(capsys, command, path, "--data", data, *extra)
    assert code == 1, text
    assert "error[E0202]" in text and f"{path}:6:33" in text
    assert "internal error" not in text and "Traceback" not in text


def test_check_with_data_reports_times_that_lets_compute(tmp_path, capsys):
    path = tmp_path / "lets.fpl"
    path.write_text(LET_TIMES)
    data = tmp_path / "data.json"
    data.write_text('{"dt": [1, 0.5, -2], "y": [0.4, 0.2, 0.6]}')
    code, text = _run(capsys, "check", path, "--data", data)
    assert code == 1, text
    assert "error[E0202]" in text and f"{path}:7:40" in text and "Traceback" not in text


# ---- where params decide the times: a failed solve, the log density -inf ------------------

PARAM_TIMES = """data t_obs: real[3]
data y: real[3]
param t0 ~ normal(0, 1)
param scale ~ normal(1, 1)
fn f(t, z) = -z
let zs = ode_rk45_tol(f, [1.0], t0, t_obs * scale, 1e-10, 1e-10, 10000)
y ~ normal(zs[:, 1], 0.1)
"""
T_OBS = np.array([0.5, 1.0, 2.0])
Y = np.array([0.6, 0.37, 0.14])


def _closed_form_log_density(t0, scale):
    """z' = -z, z(t0) = 1: z(t) = exp(-(t - t0)); normal densities written out."""

    def log_normal(x, mu, sigma):
        return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)

    z = np.exp(-(T_OBS * scale - t0))
    return log_normal(t0, 0, 1) + log_normal(scale, 1, 1) + log_normal(Y, z, 0.1).sum()


def test_param_times_out_of_order_give_minus_infinity_not_an_exception():
    """Through ``CompiledModel.log_density``: finite (the closed form) where the times
    are in order; -inf, not an exception, where the scale reverses them, makes them all
    0, or t0 passes ts[1]; each failure counted as the solve's (reason INACCURATE), like
    any ODE failure."""
    cm = fpl.compile(PARAM_TIMES, "param_times.fpl").bind({"t_obs": T_OBS, "y": Y})
    with jax.enable_x64(True), reporting.collecting() as events:
        log_density = jax.jit(cm.log_density)
        for t0, scale in [(0.0, 1.0), (0.2, 0.8)]:
            lp = float(log_density(jnp.array([t0, scale])))
            # the solve runs at 1e-10 tolerances: its error is far below 1e-6 relative
            np.testing.assert_allclose(lp, _closed_form_log_density(t0, scale), rtol=1e-6)
        for t0, scale in [(0.0, -1.0), (0.0, 0.0), (0.7, 1.0)]:
            assert float(log_density(jnp.array([t0, scale]))) == -np.inf
        jax.effects_barrier()
    assert list(events.reasons_per_node().values()) == [{Result.INACCURATE: 3}]


def test_param_times_evaluated_outside_jit_give_minus_infinity():
    """Eager evaluation (no tracer: ``log_density`` called directly, as ``unconstrain``
    and the init search do) of times that params put out of order is the same failed
    solve as under jit, not an E0202."""
    cm = fpl.compile(PARAM_TIMES, "param_times.fpl").bind({"t_obs": T_OBS, "y": Y})
    with jax.enable_x64(True):
        assert float(cm.log_density(jnp.array([0.0, -1.0]))) == -np.inf
        lp = float(cm.log_density(jnp.array([0.2, 0.8])))
    # the solve runs at 1e-10 tolerances: its error is far below 1e-6 relative
    np.testing.assert_allclose(lp, _closed_form_log_density(0.2, 0.8), rtol=1e-6)


def _total(method):
    """The sum of z' = -z, z(t0) = 1, at ``ts``, and the solve's code."""

    def total(t0, ts):
        ys, _, code = ode.integrate(
            method, lambda t, y, a: -y, jnp.ones(1), t0, ts, (), rel_tol=1e-10, abs_tol=1e-10
        )
        return jnp.sum(ys), code

    return total


OUT_OF_ORDER = [(0.0, [1.0, 2.0, 0.5]), (3.0, [1.0, 2.0, 4.0]), (np.nan, [1.0, 2.0, 3.0])]


@pytest.mark.parametrize(
    "method",
    # explicit (coupled sensitivities); ckrk also steps to each output time; bdf (implicit,
    # forward mode through the loop) compiles for ~10 s: whole-suite tier; adams: as rk45
    ["rk45", "ckrk", pytest.param("bdf", marks=pytest.mark.slow)],
)
def test_every_method_fails_on_times_out_of_order(method):
    """A solve with times out of order (or t0 NaN) is INACCURATE, NaN in value and in
    gradient (never a silent zero), not an exception; in order, repeats included, value
    and gradient are the closed form's: z(t) = exp(-(t - t0)) gives d sum z / d t0 =
    sum z and d sum z / d ts_i = -z_i (the stand-in times change nothing there)."""
    with jax.enable_x64(True):
        solve = jax.jit(jax.value_and_grad(_total(method), argnums=(0, 1), has_aux=True))
        for t0, ts in OUT_OF_ORDER:
            (value, code), (d_t0, d_ts) = solve(jnp.asarray(t0), jnp.asarray(ts))
            assert int(code) == Result.INACCURATE and np.isnan(float(value))
            assert np.isnan(float(d_t0)) and np.all(np.isnan(d_ts))
        ts = np.array([0.5, 0.5, 2.0])
        (value, code), (d_t0, d_ts) = solve(jnp.asarray(0.0), jnp.asarray(ts))
    assert int(code) == Result.CONVERGED
    z = np.exp(-ts)
    # at 1e-10 tolerances the solution and its derivatives are within ~1e-8 of the
    # closed form (relative): 1e-6 leaves room for the methods' different error constants
    np.testing.assert_allclose(float(value), z.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(d_t0), z.sum(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(d_ts), -z, rtol=1e-6)
