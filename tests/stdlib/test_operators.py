"""Integer ``%`` and ``/`` by a divisor that params decide (issue 11).

A divisor the data decide is E0208 when the data are bound
(``fpl.compiler.passes.bind_checks``); one that params decide (``let k = int_step(mu)``
then ``5 % k``) is known only when the density is evaluated, where JAX would silently
give 0 (``%``) or inf (``/``).  Stan's integer division by zero is a domain error that
rejects the point, so the log density is -inf there, finite (and unchanged) elsewhere."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

import fpl
from fpl.dsl.diagnostics import FplError

# k = 1 where mu > 0 and 0 where mu <= 0: `5 % k` and `5 / k` divide by 0 for mu <= 0
MOD = """
data y: real
param mu: real
let k = int_step(mu)
y ~ normal(mu + 5 % k, 1)
"""


def _density(src: str, data):
    cm = fpl.compile(src).bind(data)
    return jax.jit(lambda t: cm.log_density(t, jacobian=False)), cm


# at k = 1: 5 % 1 = 0 and exp(-(5 / 1)); at k = 0 JAX gives 0 and exp(-inf) = 0, finite
@pytest.mark.parametrize(
    ("expression", "value"), [("5 % k", 0.0), ("exp(-(5 / k))", np.exp(-5.0))], ids=["%", "/"]
)
def test_a_zero_divisor_decided_by_params_gives_minus_infinity(expression, value):
    src = MOD.replace("5 % k", expression)
    with jax.enable_x64(True):
        density, cm = _density(src, {"y": 1.0})
        grad = jax.jit(jax.grad(lambda t: cm.log_density(t, jacobian=False)))
        for mu in (-0.3, 0.0):
            assert float(density(np.array([mu]))) == -np.inf
            assert float(cm.log_density(np.array([mu]))) == -np.inf  # an eager call too
        for mu in (0.4, 2.5):
            theta = np.array([mu])
            # the same formula in another order (float64)
            want = stats.norm.logpdf(1.0, mu + value, 1)
            assert float(density(theta)) == pytest.approx(want, rel=1e-12)
            g = float(grad(theta)[0])
            # d/dmu log N(y | mu + v, 1) = y - mu - v; central differences with h = 1e-6
            # on a quadratic are exact to rounding (~1e-10 relative)
            h = 1e-6
            fd = (float(density(theta + h)) - float(density(theta - h))) / (2 * h)
            assert np.isfinite(g)
            assert g == pytest.approx(1.0 - mu - value, rel=1e-12)
            assert g == pytest.approx(fd, rel=1e-7, abs=1e-8)


def test_a_zero_divisor_in_the_branch_not_taken_is_not_a_rejection():
    src = MOD.replace("5 % k", "(k == 0 ? 0 : 5 % k)")
    with jax.enable_x64(True):
        density, _ = _density(src, {"y": 1.0})
        for mu in (-0.3, 0.4):
            assert float(density(np.array([mu]))) == pytest.approx(stats.norm.logpdf(1.0, mu))


def test_one_zero_element_rejects_the_point():
    src = """
data c: real[3]
param mu: real
let k = int_step(mu - c)
target += sum(7 % k) - mu^2
"""
    with jax.enable_x64(True):
        density, _ = _density(src, {"c": [-1.0, 0.0, 1.0]})
        # mu = 2 clears every c: k = [1, 1, 1], 7 % 1 = 0
        assert float(density(np.array([2.0]))) == pytest.approx(-4.0, rel=1e-12)
        # mu = 0.5 clears two of three: one divisor is 0
        assert float(density(np.array([0.5]))) == -np.inf


def test_a_zero_divisor_inside_a_function_over_data_is_located_at_bind():
    src = """
data n: int[2]
fn remainder(m) = 5 % m
let r = map(remainder, n)
param mu ~ normal(sum(r), 1)
"""
    assert fpl.compile(src).bind({"n": [2, 3]}) is not None
    with pytest.raises(FplError) as info:
        fpl.compile(src).bind({"n": [2, 0]})
    d = info.value.diagnostics[0]
    assert d.code == "E0208" and d.message == "integer `%` by zero"
    assert (d.span.line, d.span.col) == (3, 23)  # the divisor `m`


@pytest.mark.slow  # ~12 s, NUTS compiles; the -inf above is what the sampler sees
def test_sampling_never_returns_a_draw_with_a_zero_divisor():
    # mu ~ normal(0, 1) truncated to mu > 0 by the zero divisor: a half-normal
    src = "param mu: real ~ normal(0, 1)\nlet k = int_step(mu)\ntarget += 5 % k\n"
    fit = fpl.compile(src).sample({}, chains=1, warmup=150, draws=300, seed=3, progress=False)
    draws = np.asarray(fit.draws("mu")).ravel()
    assert draws.min() > 0
    # half-normal mean sqrt(2 / pi) ~ 0.80, sd ~ 0.60; 300 draws of ESS above ~100 give a
    # mean MCSE below 0.06, so 0.25 is over 4 MCSE (the check is the support, above)
    assert abs(draws.mean() - np.sqrt(2 / np.pi)) < 0.25


def test_a_divisor_zero_at_every_initial_point_is_named_by_e0402():
    # k = int_step(mu) * 0 is zero everywhere, so no initial point has a finite density:
    # E0402 points at the divisor (fpl.compiler.reporting.has_rejects counts integer
    # `%`/`/`), not the generic "no finite log density" of the whole model
    src = "param mu: real ~ normal(0, 1)\nlet k = int_step(mu) * 0\ntarget += 5 % k\n"
    with pytest.raises(FplError) as info:
        fpl.compile(src).sample({}, chains=1, warmup=10, draws=10, seed=1, progress=False)
    d = info.value.diagnostics[0]
    assert d.code == "E0402"
    assert "integer division by zero was reached" in d.message
    assert (d.span.line, d.span.col) == (3, 15)  # the divisor `k`
