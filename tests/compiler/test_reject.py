"""Stan's ``reject("message", values...)`` (issue 13).

FPL has no ``if`` statements, so a reject stands in a conditional expression,
``test ? reject(...) : x``, and takes the other branch's type.  Reached in data-only
code it is a located error when the data are bound (E0413, with the message and the
values); reached where params are traced it makes the log density -inf (the point is
rejected, as Stan rejects a proposal) and never raises.  The sampling test checks the
posterior of a reject-truncated normal against its closed form."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

import fpl
from fpl.compiler.printer import format_program
from fpl.dsl.diagnostics import FplError

COUNTS = """
data N: int
data y: int[N]
let K = max(y) < 2 ? reject("need two categories or more, got ", max(y)) : max(y)
param z: real[K] ~ normal(0, 1)
"""


def _bind_error(src: str, data) -> FplError:
    with pytest.raises(FplError) as info:
        fpl.compile(src).bind(data)
    return info.value


def test_reject_takes_the_other_branch_type():
    src = """
data x: real[3]
data n: int
let a = x[1] > 0 ? x : reject("x[1] is ", x[1])
let b = n > 0 ? n : reject("n is ", n)
"""
    text = format_program(fpl.compile(src).ir)
    assert 'let    a: real[3] = ((x[1] > 0) ? x : reject("x[1] is ", x[1]))' in text
    assert 'let    b: int = ((n > 0) ? n : reject("n is ", n))' in text


def test_reached_at_bind_time_is_a_located_error_with_the_values():
    err = _bind_error(COUNTS, {"N": 3, "y": [1, 1, 1]})
    d = err.diagnostics[0]
    assert d.code == "E0413"
    assert d.message == "rejected: need two categories or more, got 1"
    assert (d.span.line, d.span.col) == (4, 22)  # the `reject(` call


def test_not_reached_binds():
    cm = fpl.compile(COUNTS).bind({"N": 3, "y": [1, 3, 2]})
    assert cm.param_shapes["z"] == (3,)


def test_reached_elementwise_shows_array_values():
    src = """
data x: real[3]
let safe = x > 0 ? log(x) : reject("x must be positive: ", x)
param mu ~ normal(sum(safe), 1)
"""
    assert fpl.compile(src).bind({"x": [1.0, 2.0, 3.0]}) is not None
    d = _bind_error(src, {"x": [1.0, -2.0, 3.0]}).diagnostics[0]
    assert d.code == "E0413" and d.message == "rejected: x must be positive: [ 1., -2.,  3.]"


def test_reached_inside_a_map_over_data():
    src = """
data x: real[3]
fn checked(v) = v < 0 ? reject("negative value ", v) : sqrt(v)
let roots = map(checked, x)
param mu ~ normal(sum(roots), 1)
"""
    assert fpl.compile(src).bind({"x": [1.0, 4.0, 9.0]}) is not None
    d = _bind_error(src, {"x": [1.0, -4.0, 9.0]}).diagnostics[0]
    assert d.code == "E0413" and d.message.startswith("rejected: negative value")
    assert d.span.line == 3


SIGMA = """
param mu ~ normal(0, 1)
param tau: real<lower=-1> ~ normal(0, 1)
let sigma = tau > 0 ? tau : reject("tau must be positive, got ", tau)
param z: real[2] ~ normal(mu, sigma)
"""


def _density(cm):
    return jax.jit(lambda t: cm.log_density(t, jacobian=False))


def test_reached_with_params_gives_minus_infinity_not_an_error():
    cm = fpl.compile(SIGMA).bind({})
    with jax.enable_x64(True):
        density = _density(cm)
        z = np.array([0.3, -0.4])
        for tau in (0.7, 1.9):
            theta = cm.unconstrain({"mu": 0.2, "tau": tau, "z": z})
            want = (
                stats.norm.logpdf(0.2)
                + stats.norm.logpdf(tau)
                + stats.norm.logpdf(z, 0.2, tau).sum()
            )
            # float64; the same formula in another order
            assert float(density(theta)) == pytest.approx(want, rel=1e-12)
            assert float(cm.log_density(theta, jacobian=False)) == pytest.approx(want, rel=1e-12)
        theta = cm.unconstrain({"mu": 0.2, "tau": -0.5, "z": z})
        assert float(density(theta)) == -np.inf
        assert float(cm.log_density(theta)) == -np.inf  # an eager call: no error either


def test_reached_inside_a_fold_with_params():
    src = """
data y: real[4]
param a ~ normal(0, 1)
fn step(s, v) = s + v * a > 3 ? reject("the running sum passed 3: ", s) : s + v * a
target += fold(step, 0.0, y)
"""
    cm = fpl.compile(src).bind({"y": [1.0, 1.0, 1.0, 1.0]})
    with jax.enable_x64(True):
        density = _density(cm)
        # the running sums are a, 2a, 3a, 4a: rejected once 4a > 3
        assert float(density(np.array([0.5]))) == pytest.approx(
            stats.norm.logpdf(0.5) + 4 * 0.5, rel=1e-12
        )
        assert float(density(np.array([0.8]))) == -np.inf


def test_a_string_is_only_a_reject_message():
    with pytest.raises(FplError) as info:
        fpl.compile('let s = "text"\n')
    assert info.value.diagnostics[0].code == "E0201"
    assert "only the message of `reject`" in info.value.diagnostics[0].message
    with pytest.raises(FplError) as info:
        fpl.compile("data x: real\nlet s = x > 0 ? x : reject(x)\n")
    assert info.value.diagnostics[0].code == "E0201"
    assert "takes a message first" in info.value.diagnostics[0].message


@pytest.mark.slow
def test_sampling_rejects_the_region_beyond_the_reject():
    # a standard normal truncated to x <= 1 by a reject: mean -phi(1)/Phi(1) and
    # variance 1 - phi(1)/Phi(1) - (phi(1)/Phi(1))^2 (closed form)
    src = 'param x ~ normal(0, 1)\ntarget += x > 1 ? reject("x beyond 1: ", x) : 0.0\n'
    fit = fpl.compile(src).sample({}, chains=2, warmup=500, draws=1500, seed=7, progress=False)
    draws = np.asarray(fit.draws("x")).ravel()
    row = fit.summary()["x"]
    ratio = stats.norm.pdf(1) / stats.norm.cdf(1)
    mean, sd = -ratio, np.sqrt(1 - ratio - ratio**2)
    # 3000 draws of ESS above ~800 (a one-dimensional target): mean's MCSE < 0.8 / sqrt(800)
    # ~ 0.03, so 0.1 is over 3 MCSE; the sd's relative error is smaller still
    assert abs(row.mean - mean) < 0.1
    assert abs(row.sd / sd - 1) < 0.1
    assert draws.max() <= 1.0


def test_a_data_only_reject_under_a_param_test_is_not_raised_at_bind():
    # `reject(..., x)` reads only data, but whether it is reached depends on mu: binding
    # must not evaluate it (hoisting it out of the density would)
    src = """
data x: real[2]
param mu ~ normal(0, 1)
target += mu > 2 ? reject("data ", x) : 0.0
"""
    cm = fpl.compile(src).bind({"x": [1.0, 2.0]})
    with jax.enable_x64(True):
        density = _density(cm)
        assert float(density(np.array([0.5]))) == pytest.approx(stats.norm.logpdf(0.5))
        assert float(density(np.array([2.5]))) == -np.inf
