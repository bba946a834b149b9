"""The implicit-node examples beyond their posteriors (those are checked by
test_examples.py): values against NumPy references, gradients against finite
differences of those references and against a second route through FPL (``scan`` or
``grad=unrolled``)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler.lower import from_constrained, run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> tuple[str, dict]:
    source = (EXAMPLES / f"{name}.fpl").read_text()
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    return source, data


def evaluate(model, data, params, names: list[str]) -> dict:
    """Values of ``names`` (lets and outs included) at constrained ``params``."""
    bound = model.bind(data)

    @jax.jit
    def values(p, arrays):
        env = run(bound.program, {**bound.static, **arrays}, from_constrained(p)).env
        return {name: env[name] for name in names}

    params = {k: jnp.asarray(v) for k, v in params.items()}
    return values(params, {k: jnp.asarray(v) for k, v in bound.data.items()})


def central_difference(f, x: np.ndarray, h: float) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


# ---- recursion_fixed_point: one `fix` over the sequence == `scan` -------------------------

RECURSION = "recursion_fixed_point"
RECURSION_POINT = {"rho": 0.55, "beta": 1.1, "sigma": 0.2}


def recursion_reference(rho, beta, data):
    x, prev = np.empty(data["T"]), data["x0"]
    for t, u_t in enumerate(data["u"]):
        prev = x[t] = np.tanh(rho * prev + beta * u_t)
    return x


def test_recursion_fixed_point_is_the_scan():
    source, data = example(RECURSION)
    env = evaluate(fpl.compile(source), data, RECURSION_POINT, ["x", "x_scan", "gap"])
    reference = recursion_reference(RECURSION_POINT["rho"], RECURSION_POINT["beta"], data)
    # Jacobi sweeps are exact after T sweeps; the solve stops at residual 1e-13 * ||x||
    # and the map is a 0.55-contraction in the max norm, so the error is < ~1e-12.
    np.testing.assert_allclose(env["x"], reference, rtol=0, atol=1e-11)
    np.testing.assert_allclose(env["x_scan"], reference, rtol=0, atol=1e-13)  # round-off
    assert float(env["gap"]) < 1e-11


def test_recursion_gradient_matches_scan_and_finite_differences():
    source, data = example(RECURSION)
    last = "y ~ normal(x, sigma)"
    assert last in source
    by_fix = fpl.compile(source)
    by_scan = fpl.compile(source.replace(last, "y ~ normal(x_scan, sigma)"))

    def density(model):
        return jax.jit(jax.value_and_grad(lambda p: model.log_density(p, data)))

    point = {k: jnp.asarray(v) for k, v in RECURSION_POINT.items()}
    value_fix, grad_fix = density(by_fix)(point)
    value_scan, grad_scan = density(by_scan)(point)
    # Same function by two routes (implicit differentiation of the fixed point vs reverse
    # mode through the scan); both exact up to the 1e-13 solve tolerance (amplified by
    # the likelihood's 1 / sigma^2 = 25 and the sum over T = 40 terms: < 1e-10).
    assert float(value_fix) == pytest.approx(float(value_scan), abs=1e-10)
    for name in point:
        assert float(grad_fix[name]) == pytest.approx(float(grad_scan[name]), abs=1e-9)

    y = np.asarray(data["y"])

    def reference_density(theta):  # likelihood + beta's normal(0, 1) prior (rho's is flat)
        x = recursion_reference(theta[0], theta[1], data)
        return -0.5 * np.sum(np.square(y - x)) / RECURSION_POINT["sigma"] ** 2 - 0.5 * theta[1] ** 2

    # Central differences, h = 1e-5: truncation ~h^2 * |f'''| ~ 1e-8, round-off
    # ~1e-16 * |f| / h ~ 1e-9 (|f| ~ 50), so relative 1e-6 on gradients of size ~10-100.
    theta = np.array([RECURSION_POINT["rho"], RECURSION_POINT["beta"]])
    fd = central_difference(reference_density, theta, 1e-5)
    np.testing.assert_allclose([float(grad_fix["rho"]), float(grad_fix["beta"])], fd, rtol=1e-6)


# ---- equilibrium_calibration (the LANGUAGE.md §5 program) ----------------------------------

CALIBRATION = "equilibrium_calibration"


def calibration_reference(a, b, data):
    A, u = np.asarray(data["A"]), np.asarray(data["u"])
    x = np.zeros(data["n"])
    for _ in range(200):  # contraction of rate <= a ||A|| = 0.36 here: exact to round-off
        x = np.tanh(a * (A @ x) + b * u)
    return x


def test_calibration_value_and_gradient():
    source, data = example(CALIBRATION)
    model = fpl.compile(source)
    a, b = 0.6, 0.3
    env = evaluate(model, data, {"a": a, "b": b}, ["x"])
    # Anderson stops at residual <= 1e-8 * max(1, ||x||); error <= residual / (1 - 0.36).
    np.testing.assert_allclose(env["x"], calibration_reference(a, b, data), atol=1e-7)

    y = np.asarray(data["y"])

    def loglik(theta):
        x = calibration_reference(theta[0], theta[1], data)
        return -0.5 * np.sum(np.square(y - x)) / 0.01

    # The gradient of the likelihood term alone: the full log density adds the priors
    # and, for the constrained a, nothing (log_density is on the constrained scale).
    lik = fpl.compile(source.replace("param a: real<lower=0> ~ lognormal(0, 0.5)", "param a: real")
                      .replace("param b ~ normal(0, 1)", "param b: real"))
    grad = jax.jit(jax.grad(lambda p: lik.log_density(p, data)))(
        {"a": jnp.asarray(a), "b": jnp.asarray(b)}
    )
    # Central differences, h = 1e-5 (see above); the likelihood is ~1e3 in size, its
    # gradient ~1e2-1e3: relative 1e-5 covers round-off 1e-16 * 1e3 / 1e-5 = 1e-8.
    fd = central_difference(loglik, np.array([a, b]), 1e-5)
    np.testing.assert_allclose([float(grad["a"]), float(grad["b"])], fd, rtol=1e-5)


# ---- market_equilibrium: `root` over M x K log prices ---------------------------------------

MARKET = "market_equilibrium"
MARKET_E = np.array([0.8, 1.3, 0.9])


def market_reference(e, data):
    """Log prices by the contraction of make_data.py (rate c / (min e + eta) < 0.25)."""
    log_d, log_s = np.asarray(data["log_d"]), np.asarray(data["log_s"])
    Q = np.zeros_like(log_d)
    for _ in range(200):
        index = np.log(np.mean(np.exp(Q), axis=1, keepdims=True))
        Q = (log_d - log_s + data["c"] * index) / (e + data["eta"])
    return Q


def test_market_equilibrium_clears_markets_and_differentiates():
    source, data = example(MARKET)
    model = fpl.compile(source)
    params = {"e": MARKET_E, "sigma": 0.05}
    env = evaluate(model, data, params, ["Q"])
    # Newton stops at ||F|| <= 1e-8 max(1, ||Q||); F has Jacobian >= ~1.4 in norm.
    np.testing.assert_allclose(env["Q"], market_reference(MARKET_E, data), atol=1e-8)

    obs = np.asarray(data["log_price"])

    def loglik(e):
        return -0.5 * np.sum(np.square(obs - market_reference(e, data))) / 0.05**2

    f = jax.jit(jax.grad(lambda e: model.log_density({"e": e, "sigma": 0.05}, data)))
    grad = np.asarray(f(jnp.asarray(MARKET_E)))
    prior = jax.grad(
        lambda e: jnp.sum(jax.scipy.stats.norm.logpdf(jnp.log(e), 0, 0.5) - jnp.log(e))
    )
    # Central differences, h = 1e-6 (log density ~1e3: round-off ~1e-16 * 1e3 / 1e-6
    # = 1e-7 against gradients of ~1e2; truncation ~h^2): relative 1e-6.
    fd = central_difference(loglik, MARKET_E, 1e-6) + np.asarray(prior(jnp.asarray(MARKET_E)))
    np.testing.assert_allclose(grad, fd, rtol=1e-6)

    # A second route inside FPL: differentiate through 8 Newton steps (grad=unrolled);
    # Newton converges quadratically from zeros here, so 8 steps are exact to round-off.
    unrolled = fpl.compile(
        source.replace("init zeros(M, K)", "init zeros(M, K) with newton(max_iter=8) grad=unrolled")
    )
    g = jax.jit(jax.grad(lambda e: unrolled.log_density({"e": e, "sigma": 0.05}, data)))
    np.testing.assert_allclose(np.asarray(g(jnp.asarray(MARKET_E))), grad, rtol=1e-8)
