"""Stan's ODE solvers (fpl/stdlib/ode.py): values and sensitivities against SciPy's
``solve_ivp`` (the sensitivities from the forward sensitivity equations, an independent
route), the forms and their argument orders, shapes and types, the failure path, and use
inside ``map``.

Tolerances: the FPL solves run at rel/abs 1e-10 (1e-8/1e-12 for the stiff one) and SciPy
at 1e-12, so the two differ by the FPL solver's global error, a small multiple of its
tolerance; the comparisons allow ~1e-6 relative (values) and ~1e-5 (sensitivities: the
derivative of the discrete solution differs from the exact sensitivity by the same order
as the solution's error, amplified by the condition of the problem).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fpl
from fpl.compiler import reporting
from fpl.compiler.printer import format_program
from fpl.dsl.diagnostics import FplError
from fpl.stdlib import ode, ode_solve
from fpl.stdlib.solvers import Result

# ---- the systems and their forward sensitivity equations (the independent route) -----


def lotka_volterra(t, y, theta):
    a, b, c, d = theta
    return jnp.stack([(a - b * y[1]) * y[0], (-c + d * y[0]) * y[1]])


def lotka_volterra_sensitivities(theta, y0, ts):
    """y(ts) and dy(ts)/d(theta, y0) (T, 2, 6) from S' = (df/dy) S + df/dp, S(0) = [0 | I]."""
    a, b, c, d = theta

    def rhs(t, w):
        u, v = w[:2]
        s = w[2:].reshape(2, 6)
        jy = np.array([[a - b * v, -b * u], [d * v, -c + d * u]])
        jp = np.zeros((2, 6))
        jp[0, :4] = [u, -u * v, 0, 0]
        jp[1, :4] = [0, 0, -v, u * v]
        return np.concatenate([[(a - b * v) * u, (-c + d * u) * v], (jy @ s + jp).ravel()])

    s0 = np.zeros((2, 6))
    s0[:, 4:] = np.eye(2)
    w0 = np.concatenate([y0, s0.ravel()])
    sol = solve_ivp(rhs, (0, ts[-1]), w0, t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-12)
    w = sol.y.T
    return w[:, :2], w[:, 2:].reshape(-1, 2, 6)


def robertson(t, y, k):
    return jnp.stack(
        [
            -k[0] * y[0] + k[1] * y[1] * y[2],
            k[0] * y[0] - k[1] * y[1] * y[2] - k[2] * y[1] ** 2,
            k[2] * y[1] ** 2,
        ]
    )


def robertson_sensitivities(k, y0, ts):
    """Robertson's y(ts) and dy(ts)/dk (T, 3, 3) by the sensitivity equations (Radau)."""
    k1, k2, k3 = k

    def rhs(t, w):
        y1, y2, y3 = w[:3]
        s = w[3:].reshape(3, 3)
        f = [-k1 * y1 + k2 * y2 * y3, k1 * y1 - k2 * y2 * y3 - k3 * y2**2, k3 * y2**2]
        jy = np.array(
            [[-k1, k2 * y3, k2 * y2], [k1, -k2 * y3 - 2 * k3 * y2, -k2 * y2], [0, 2 * k3 * y2, 0]]
        )
        jk = np.array([[-y1, y2 * y3, 0], [y1, -y2 * y3, -(y2**2)], [0, 0, y2**2]])
        return np.concatenate([f, (jy @ s + jk).ravel()])

    w0 = np.concatenate([y0, np.zeros(9)])
    sol = solve_ivp(rhs, (0, ts[-1]), w0, t_eval=ts, method="Radau", rtol=1e-12, atol=1e-16)
    w = sol.y.T
    return w[:, :3], w[:, 3:].reshape(-1, 3, 3)


LV_THETA = np.array([0.55, 0.028, 0.8, 0.024])
LV_Y0 = np.array([30.0, 4.0])
LV_TS = np.linspace(1.0, 15.0, 8)


def _lv_checks(method: str) -> None:
    """Values, reverse-mode gradient and forward-mode JVP of one method on Lotka-Volterra."""
    ts = jnp.asarray(LV_TS)
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(len(LV_TS), 2)))

    def solve(p):
        ys, steps, code = ode.integrate(
            method, lotka_volterra, p[4:], 0.0, ts, p[:4], rel_tol=1e-10, abs_tol=1e-10
        )
        return ys, code

    def objective(p):
        return jnp.sum(weights * solve(p)[0])

    p = jnp.concatenate([jnp.asarray(LV_THETA), jnp.asarray(LV_Y0)])
    v = jnp.asarray([0.1, 0.002, -0.05, 0.001, 1.0, -0.5])

    @jax.jit
    def everything(p, v):
        ys, code = solve(p)
        return ys, code, jax.grad(objective)(p), jax.jvp(objective, (p,), (v,))[1]

    ys, code, grad, tangent = everything(p, v)
    want, sens = lotka_volterra_sensitivities(LV_THETA, LV_Y0, LV_TS)
    assert int(code) == Result.CONVERGED
    assert ys.shape == (len(LV_TS), 2)
    np.testing.assert_allclose(ys, want, rtol=1e-6)
    want_grad = np.einsum("tn,tnp->p", weights, sens)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5)
    np.testing.assert_allclose(tangent, want_grad @ np.asarray(v), rtol=1e-5)


def test_lotka_volterra_rk45_values_and_sensitivities():
    _lv_checks("rk45")


@pytest.mark.slow  # one compile per method (~10 s each on a loaded machine)
@pytest.mark.parametrize("method", ["ckrk", "adams", "bdf"])
def test_lotka_volterra_every_method(method):
    _lv_checks(method)


@pytest.mark.slow  # the implicit solver's compile (~30 s on a loaded machine)
def test_robertson_stiff_with_bdf():
    """Robertson's stiff chemical kinetics (rates spanning 9 decades) with bdf: values and
    the sensitivities to the rates, relative to each rate (grad * k, jvp along k * dir)."""
    k = np.array([0.04, 1e4, 3e7])
    y0 = np.array([1.0, 0.0, 0.0])
    ts = np.array([0.4, 4.0, 40.0])
    want, sens = robertson_sensitivities(k, y0, ts)
    scale = np.array([1.0, 1e4, 1.0])  # y2 is ~1e-5: weigh it up

    def solve(kk):
        return ode.integrate(
            "bdf",
            robertson,
            jnp.asarray(y0),
            0.0,
            jnp.asarray(ts),
            kk,
            rel_tol=1e-8,
            abs_tol=1e-12,
        )

    def objective(kk):
        return jnp.sum(solve(kk)[0] * scale)

    direction = jnp.asarray([1.0, -0.5, 0.25]) * k

    @jax.jit
    def everything(kk):
        ys, steps, code = solve(kk)
        grad = jax.grad(objective)(kk)
        return ys, steps, code, grad, jax.jvp(objective, (kk,), (direction,))[1]

    ys, steps, code, grad, tangent = everything(jnp.asarray(k))
    assert int(code) == Result.CONVERGED
    # Newton's stage solves (ode_solve._kvaerno5_newton) take 113 steps here; diffrax's
    # default chord iterations fail to converge and have steps rejected: 894 steps even at
    # the user's tolerances, before the controller's tightening (benchmarks/ode_stiff.py)
    assert int(steps) < 300
    # rel 1e-8 solves: values to ~1e-6 relative, y2 (~1e-5) also absolutely to 1e-11
    np.testing.assert_allclose(ys, want, rtol=1e-6, atol=1e-11)
    want_grad = np.einsum("n,tnp->p", scale, sens)
    np.testing.assert_allclose(np.asarray(grad) * k, want_grad * k, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(tangent, want_grad @ np.asarray(direction), rtol=1e-4)


@pytest.mark.slow  # two compiles of a gradient and a Hessian-vector product (~20 s each)
@pytest.mark.parametrize("route", ["coupled", "loop"])
def test_sensitivity_routes_in_every_input(route, monkeypatch):
    """Both sensitivity routes (fpl.stdlib.ode_solve.ROUTES: the coupled system, forward
    mode through the loop) on Lotka-Volterra, differentiating with respect to the rates,
    y0, t0 and ts at once: the gradient against SciPy's sensitivity equations (rates,
    y0) and central differences (the times), the Hessian-vector product (forward over
    reverse) against central differences of the gradient."""
    monkeypatch.setitem(ode_solve.ROUTES, "rk45", route)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(len(LV_TS), 2)))

    def objective(p, t0, ts):
        ys, _, code = ode.integrate(
            "rk45", lotka_volterra, p[4:], t0, ts, p[:4], rel_tol=1e-10, abs_tol=1e-10
        )
        return jnp.sum(weights * ys)

    p = jnp.concatenate([jnp.asarray(LV_THETA), jnp.asarray(LV_Y0)])
    ts = jnp.asarray(LV_TS)
    gradient = jax.jit(jax.grad(objective, argnums=(0, 1, 2)))
    v = jnp.asarray([0.01, 0.0005, -0.01, 0.0002, 0.5, -0.2])

    @jax.jit
    def hvp(p):  # d/de of the gradient at p + e v: forward over reverse
        return jax.jvp(lambda q: jax.grad(objective)(q, 0.0, ts), (p,), (v,))[1]

    dp, dt0, dts = gradient(p, 0.0, ts)
    _, sens = lotka_volterra_sensitivities(LV_THETA, LV_Y0, LV_TS)
    np.testing.assert_allclose(dp, np.einsum("tn,tnp->p", weights, sens), rtol=1e-5)
    # the times by central differences of the solution at rel 1e-10 (h = 1e-4: truncation
    # error ~h^2 |y'''| ~ 1e-7 relative, above the solver noise ~1e-10 / h = 1e-6 of a
    # difference quotient; 1e-4 relative allows both)
    value = jax.jit(objective)
    h = 1e-4
    want_t0 = (value(p, h, ts) - value(p, -h, ts)) / (2 * h)
    assert float(dt0) == pytest.approx(float(want_t0), rel=1e-4)
    for i in (0, 3, len(LV_TS) - 1):
        e = jnp.zeros_like(ts).at[i].set(h)
        want = (value(p, 0.0, ts + e) - value(p, 0.0, ts - e)) / (2 * h)
        assert float(dts[i]) == pytest.approx(float(want), rel=1e-4, abs=1e-6)
    # the Hessian along v against central differences of the gradient (step 1e-4 along v:
    # the same truncation/noise balance)
    want_hv = (gradient(p + h * v, 0.0, ts)[0] - gradient(p - h * v, 0.0, ts)[0]) / (2 * h)
    np.testing.assert_allclose(hvp(p), want_hv, rtol=1e-4, atol=1e-4 * np.abs(want_hv).max())


def test_unread_operands_add_no_sensitivities():
    """An operand the vector field never reads (a closure name a local shadows) is left
    out of the sensitivity system; one it reads, and y0, t0, ts, are kept."""
    leaves, tree = jax.tree.flatten((jnp.ones(2), jnp.asarray(0.0), jnp.ones(3), (1.0, 2.0)))
    problem = ode_solve._Problem("rk45", lambda t, y, a: -a[0] * y, 1, tree, (True,) * 5)
    assert ode_solve._read_leaves(problem, leaves, []) == (True, True, True, True, False)


# ---- the forms --------------------------------------------------------------------------


def test_every_stan_form_and_its_argument_order():
    names = {f"ode_{m}{t}" for m in ("rk45", "bdf", "adams", "ckrk") for t in ("", "_tol")}
    names |= {f"integrate_ode_{m}" for m in ("rk45", "bdf", "adams")}
    assert set(ode.FORMS) == names
    args = list("abcdefghij")  # after f: y0 t0 ts, then the rest
    assert ode.arrange(ode.FORMS["ode_bdf"], args[:5]) == (["a", "b", "c"], None, ["d", "e"])
    assert ode.arrange(ode.FORMS["ode_bdf_tol"], args[:7]) == (
        ["a", "b", "c"],
        ["d", "e", "f"],
        ["g"],
    )
    # the deprecated forms: theta, x_r, x_i first, the tolerances after them
    assert ode.arrange(ode.FORMS["integrate_ode_rk45"], args[:9]) == (
        ["a", "b", "c"],
        ["g", "h", "i"],
        ["d", "e", "f"],
    )
    assert ode.arrange(ode.FORMS["integrate_ode_rk45"], args[:6])[1] is None
    with pytest.raises(ValueError, match="7 or 10 arguments"):
        ode.arrange(ode.FORMS["integrate_ode_bdf"], args[:5])
    # Stan's defaults: 1e-6 for ode_*, 1e-10 for the old stiff and Adams forms
    assert ode.FORMS["ode_rk45"].defaults[:2] == (1e-6, 1e-6)
    assert ode.FORMS["integrate_ode_bdf"].defaults[:2] == (1e-10, 1e-10)


def test_cash_karp_tableau_order_conditions():
    """The 5th-order weights meet every order condition up to 5 and the embedded ones up
    to 4 (not 5): the coefficients are Cash & Karp's."""
    c, a, b5, b4 = ode.cash_karp_tableau()
    np.testing.assert_allclose(a.sum(axis=1), c, atol=1e-15)  # row sums are the nodes

    def conditions(b):
        ac, ac2, aac = a @ c, a @ c**2, a @ (a @ c)
        return [
            (b.sum(), 1),
            (b @ c, 1 / 2),
            (b @ c**2, 1 / 3),
            (b @ ac, 1 / 6),
            (b @ c**3, 1 / 4),
            (b @ (c * ac), 1 / 8),
            (b @ ac2, 1 / 12),
            (b @ aac, 1 / 24),
            (b @ c**4, 1 / 5),
            (b @ (c**2 * ac), 1 / 10),
            (b @ (c * ac2), 1 / 15),
            (b @ (c * aac), 1 / 30),
            (b @ (ac * ac), 1 / 20),
            (b @ (a @ c**3), 1 / 20),
            (b @ (a @ (c * ac)), 1 / 40),
            (b @ (a @ ac2), 1 / 60),
            (b @ (a @ aac), 1 / 120),
        ]

    for got, want in conditions(b5):
        assert got == pytest.approx(want, abs=1e-14)
    for got, want in conditions(b4)[:8]:
        assert got == pytest.approx(want, abs=1e-14)
    assert any(abs(got - want) > 1e-6 for got, want in conditions(b4)[8:])


# ---- through the language ----------------------------------------------------------------

DECAY = """
data ts: real[4]
param k ~ normal(1, 1)
fn decay(t, y) = -k * y
out y = ode_rk45_tol(decay, [2.0, 3.0], 0, ts, 1e-10, 1e-10, 10000)
target += sum(y)
"""


def test_closure_gradient_and_hessian_against_the_closed_form():
    """``decay`` reads the param ``k`` from outside (no argument): the solve is
    differentiated with respect to it. y = y0 exp(-k t), so d/dk sum(y) = -sum(t y) and
    d2/dk2 = sum(t^2 y) (the Hessian is forward over reverse: forward mode through the
    solve's reverse-mode derivative)."""
    ts = np.array([0.5, 1.0, 2.0, 3.0])
    cm = fpl.compile(DECAY).bind({"ts": ts})
    k = 0.7
    theta = jnp.asarray([k])
    lp, grad, hess = jax.jit(cm.log_density_hessian)(theta)
    y = np.array([2.0, 3.0])[None, :] * np.exp(-k * ts)[:, None]
    t = ts[:, None]
    prior = -0.5 * (k - 1) ** 2 - 0.5 * np.log(2 * np.pi)
    assert float(lp) == pytest.approx(y.sum() + prior, rel=1e-8)
    assert float(grad[0]) == pytest.approx(-(t * y).sum() - (k - 1), rel=1e-7)
    assert float(hess[0, 0]) == pytest.approx((t**2 * y).sum() - 1, rel=1e-6)
    values = cm.constrain(theta)
    assert values["y"].shape == (4, 2)


MAPPED = """
data ts: real[3]
param theta: real<lower=0>[4]
param z0: real<lower=0>[2, 2]
fn lv(t, z, p) = [(p[1] - p[2] * z[2]) * z[1], (-p[3] + p[4] * z[1]) * z[2]]
fn solve(z) = ode_bdf_tol(lv, z, 0.0, ts, 1e-10, 1e-10, 100000, theta)
out zs = map(solve, z0)
out few = ode_rk45_tol(lv, z0[1], 0.0, ts, 1e-6, 1e-6, 3, theta)
"""


def test_inside_map_shapes_and_the_failure_path():
    """Two solves inside ``map`` (a real[2, 3, 2] result) match SciPy; a solve given 3
    steps fails: its value is NaN, the log density -inf, its node reports
    max_iter_reached with the map's node converged, and a collecting run counts it."""
    model = fpl.compile(MAPPED, "mapped.fpl")
    ts = np.array([1.0, 2.0, 4.0])
    cm = model.bind({"ts": ts})
    z0 = np.array([[30.0, 4.0], [20.0, 6.0]])
    params = {"theta": LV_THETA, "z0": z0}
    theta = cm.unconstrain(params)
    with reporting.collecting() as events:
        values, stats, log_density = jax.jit(
            lambda th: (lambda ev: (ev.values, ev.stats, ev.log_density))(cm.evaluate(th))
        )(theta)
    assert values["zs"].shape == (2, 3, 2)
    for i in range(2):
        want, _ = lotka_volterra_sensitivities(LV_THETA, z0[i], ts)
        np.testing.assert_allclose(values["zs"][i], want, rtol=1e-6)
    mapped, few = sorted(stats)
    assert bool(stats[mapped]["converged"]) and int(stats[mapped]["solves"]) == 2
    assert not bool(stats[few]["converged"])
    assert int(stats[few]["reason"]) == Result.MAX_ITER_REACHED
    assert int(stats[few]["iterations"]) == 3
    assert np.all(np.isnan(values["few"]))
    assert float(log_density) == -np.inf
    jax.effects_barrier()
    assert events.per_node(1) == {few: [1]}
    printed = format_program(cm.program)  # the IR names the call's form and the node
    assert "ode_bdf_tol#1(lv, z, 0.0, ts, 1e-10, 1e-10, 100000, theta)" in printed
    assert "ode_rk45_tol#2(lv, z0[1], 0.0, ts, 1e-06, 1e-06, 3, theta)" in printed


def test_failed_solve_poisons_the_gradient():
    """A failed solve is NaN in value and derivative, never a silent zero: y' = y^2 blows
    up at t = 1, so the step size collapses before ts = 2 (reason `stagnated`)."""

    def solve(y0):
        return ode.integrate("rk45", lambda t, y, a: y * y, y0, 0.0, jnp.asarray([0.5, 2.0]), ())

    ys, steps, code = jax.jit(solve)(jnp.asarray([1.0]))
    assert int(code) == Result.STAGNATED
    assert int(steps) < ode.DEFAULT_MAX_NUM_STEPS  # failed fast, not at the step budget
    grad = jax.jit(jax.grad(lambda y0: jnp.sum(solve(y0)[0])))(jnp.asarray([1.0]))
    assert np.all(np.isnan(grad))
    # a NaN from the vector field is `nonfinite`
    nan_field = lambda t, y, a: jnp.where(t > 0.3, jnp.nan, -y)  # noqa: E731
    _, _, code = jax.jit(
        lambda: ode.integrate("rk45", nan_field, jnp.ones(1), 0.0, jnp.asarray([1.0]), ())
    )()
    assert int(code) == Result.NONFINITE


def test_ode_node_is_reported_with_its_location():
    cm = fpl.compile(MAPPED, "mapped.fpl").bind({"ts": np.array([1.0, 2.0, 4.0])})
    labels = [n.label for n in cm.nodes]
    assert labels == ["ode#1 at mapped.fpl:6:15", "ode#2 at mapped.fpl:8:11"]


# ---- checking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        ("out y = ode_rk45(f, y0, 0.0)", "E0203", "needs at least y0, t0 and ts"),
        ("out y = ode_rk45_tol(f, y0, 0.0, ts)", "E0203", "needs the tolerances"),
        ("out y = integrate_ode_bdf(f, y0, 0.0, ts, y0)", "E0203", "7 or 10 arguments"),
        ("out y = ode_rk45(f, Y, 0.0, ts)", "E0201", "y0 must be real[N]"),
        ("out y = ode_rk45(f, y0, ts, ts)", "E0201", "t0 must be a real"),
        ("out y = ode_rk45(g, y0, 0.0, ts)", "E0202", "returns real[3] but the state"),
        ("out y = ode_rk45(f, y0, 0.0, ts, k=1)", "E0203", "positional"),
        ("out y = ode_rk99(f, y0, 0.0, ts)", "E0104", "unknown function `ode_rk99`"),
    ],
)
def test_checker_errors(line, code, words):
    text = f"""
data ts: real[3]
data y0: real[2]
data Y: real[2, 2]
fn f(t, y) = -y
fn g(t, y) = [1.0, 2.0, 3.0]
{line}
"""
    with pytest.raises(FplError) as info:
        fpl.compile(text).bind({"ts": [1.0, 2.0, 3.0], "y0": [1.0, 2.0], "Y": np.eye(2)})
    assert info.value.diagnostics[0].code == code
    assert words in info.value.diagnostics[0].message


def test_times_out_of_order_are_a_located_error():
    text = """
data ts: real[3]
fn f(t, y) = -y
out y = ode_rk45(f, [1.0], 0.0, ts)
"""
    with pytest.raises(FplError) as info:  # when the data are bound (a data-only solve)
        fpl.compile(text).bind({"ts": [1.0, 3.0, 2.0]})
    assert info.value.diagnostics[0].code == "E0202"
    assert "t0 < ts[1] <= ts[2]" in info.value.diagnostics[0].message


# ---- posteriordb's sir (no reference draws: it compiles and samples) -------------------

POSTERIORDB = Path(__file__).parents[1] / "posteriordb"


@pytest.mark.slow  # compiles NUTS around an ODE (minutes on a loaded 2-core machine)
def test_sir_translation_samples():
    """posteriordb's sir-sir, ported line by line (posteriordb has no reference draws for
    it: tests/posteriordb only compiles it): it samples, its draws are finite, and the
    fitted epidemic is the data's (the new cases it implies track the observed counts)."""
    data = json.loads((POSTERIORDB / "data" / "sir-sir" / "data.json").read_text())
    fit = fpl.load(POSTERIORDB / "models" / "sir-sir.fpl").sample(
        data, chains=1, warmup=150, draws=100, seed=3, progress=False
    )
    y = np.asarray(fit.draws("y"))  # (chains, draws, N_t, 4)
    assert np.all(np.isfinite(y))
    new_cases = np.concatenate([data["y0"][:1] - y[..., :1, 0], -np.diff(y[..., 0], axis=-1)], -1)
    observed = np.asarray(data["stoi_hat"], float)
    # Poisson counts of a few hundred: the posterior mean rate is within ~25% of the counts
    # where they are large (the model's fit, not a tolerance of the solver)
    big = observed > 200
    ratio = new_cases.mean(axis=(0, 1))[big] / observed[big]
    assert np.all(np.abs(ratio - 1) < 0.25), ratio
