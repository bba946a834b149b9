"""Convolutions in a model: sizes from the data (the rule leaves them to bind time),
values against SciPy, the derivative in the kernel against its closed form (a
convolution is linear in the kernel: d/dw_j sum_i c_i (x * w)_i = sum_i c_i x_{i+j}, a
correlation of the padded signal with c) and finite differences; the rule's errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

import fpl

RNG = np.random.default_rng(2)
X = RNG.normal(size=10)
C = RNG.normal(size=5)  # the weights of the output, stride 2: ceil(10 / 2) = 5 values
K = np.array([0.3, -0.5, 0.8])

SRC = """
data n: int
data x: real[n]
data m: int
data c: real[m]
param w: real[3] ~ normal(0, 1)
let y = conv1d_same(x, w, 2)
out value = y
target += dot_product(c, y)
"""


def test_in_a_model_with_its_derivative():
    cm = fpl.compile(SRC).bind({"n": 10, "m": 5, "x": X, "c": C})
    with jax.enable_x64(True):
        value = np.asarray(cm.constrain(jnp.asarray(K))["value"])
        lp, grad = cm.log_density_gradient(jnp.asarray(K))
        prior = jax.grad(lambda w: -0.5 * jnp.sum(w * w))(jnp.asarray(K))

        def objective(w):
            return float(cm.log_density(jnp.asarray(w)))

        h = 1e-6
        fd = np.array([(objective(K + h * e) - objective(K - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(value, scipy.signal.correlate(X, K, "same")[::2], rtol=1e-13)
    # closed form: the padded signal (1 zero before and after, k // 2 = 1) correlated
    # with c spread out by the stride
    padded = np.concatenate([[0.0], X, [0.0]])
    spread = np.zeros(9)
    spread[::2] = C
    exact = scipy.signal.correlate(padded, spread, "valid")[:3]  # lags 0, 1, 2
    np.testing.assert_allclose(np.asarray(grad - prior), exact, rtol=1e-12)
    # the log density is linear + quadratic in w: central differences exact up to
    # round-off (1e-16 * |lp| / h)
    np.testing.assert_allclose(np.asarray(grad), fd, atol=1e-7)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ("conv1d(x, k)", "longer than the signal"),
        ("conv2d(x, k)", "must be a matrix"),
        ("conv1d(x, w, 0)", "stride must be at least 1"),
        ("conv1d(x, w, s)", "known before"),
    ],
)
def test_rule_errors_are_coded(call, words):
    src = f"""
data x: real[4]
data w: real[2]
data k: real[6]
param s: real ~ normal(0, 1)
out y = {call}
"""
    with pytest.raises(fpl.FplError) as info:
        fpl.compile(src)
    assert info.value.code.startswith("E02"), info.value.render()
    assert words in info.value.render()
