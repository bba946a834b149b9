"""Sizes computed from data: an integer `let` of data only (``let K = max(y)``) may
stand for a size, as a data integer does (issue 13).

The checker keeps it symbolic (``real[K - 1]``); binding computes it once from the data
(``fpl.compiler.binding.size_lets``) and checks the model at that size, so the compiled
program sees a Python integer.  Checked against an independent NumPy/SciPy log density
of a posteriordb-style ordinal model whose number of categories comes from the data."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import special, stats

import fpl
from fpl.compiler.printer import format_program
from fpl.dsl.diagnostics import FplError

# An ordered-logistic regression as posteriordb's ordinal models are written in Stan,
# but with the number of categories K = max(y) computed in the model rather than passed.
ORDINAL = """
data N: int<lower=1>
data x: real[N]
data y: int<lower=1>[N]
let K = max(y)
param beta ~ normal(0, 2)
param c: ordered[K - 1] ~ normal(0, 5)
param p: simplex[K]
y ~ ordered_logistic(beta * x, c)
target += categorical_lpmf(y | p)
out share = ones(K) / K
out first = y[1:K]
"""


def _ordinal_data():
    return {"N": 7, "x": [0.5, -1.0, 0.2, 1.5, -0.3, 0.8, 0.0], "y": [1, 3, 4, 2, 4, 1, 3]}


def _ordinal_reference(beta, c, p, data) -> float:
    """The log density (no Jacobian) from SciPy, written independently of FPL."""
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    eta = beta * x
    # P(y = k) = F(c_k - eta) - F(c_{k-1} - eta), with c_0 = -inf and c_K = +inf
    cuts = np.concatenate([[-np.inf], c, [np.inf]])
    prob = special.expit(cuts[y] - eta) - special.expit(cuts[y - 1] - eta)
    lp = stats.norm.logpdf(beta, 0, 2) + stats.norm.logpdf(c, 0, 5).sum()
    return float(lp + np.log(prob).sum() + np.log(p[y - 1]).sum())


def test_checker_keeps_a_data_size_symbolic():
    text = format_program(fpl.compile(ORDINAL, "ordinal").ir)
    assert "let    K: int = max(y)" in text
    assert "param  c: real[K - 1] as ordered" in text
    assert "param  p: real[K] as simplex" in text
    assert "out    share: real[K]" in text


def test_bound_sizes_come_from_the_data():
    cm = fpl.compile(ORDINAL, "ordinal").bind(_ordinal_data())
    assert cm.param_shapes == {"beta": (), "c": (3,), "p": (4,)}
    # beta, 3 cut points, a 4-simplex's 3 free coordinates
    assert cm.param_unc_num() == 1 + 3 + 3


def test_log_density_and_gradient_match_independent_computations():
    data = _ordinal_data()
    cm = fpl.compile(ORDINAL, "ordinal").bind(data)
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):

        @jax.jit
        def evaluate(theta):
            value, grad = jax.value_and_grad(lambda t: cm.log_density(t))(theta)
            return cm.log_density(theta, jacobian=False), value, grad, cm.constrain(theta)

        n = cm.param_unc_num()
        for _ in range(2):
            # moderate points: at cut points ~25 apart NumPyro's ordered logistic clamps
            # its probabilities and its gradient leaves the finite differences
            theta = 0.5 * rng.normal(size=n)
            plain, _, grad, values = evaluate(theta)
            want = _ordinal_reference(float(values["beta"]), values["c"], values["p"], data)
            # float64 throughout; the two routes differ only in rounding
            assert float(plain) == pytest.approx(want, rel=1e-10)
            np.testing.assert_allclose(values["share"], np.full(4, 0.25))
            np.testing.assert_array_equal(values["first"], data["y"][:4])
            h = 1e-6
            fd = [
                (float(evaluate(theta + h * e)[1]) - float(evaluate(theta - h * e)[1])) / (2 * h)
                for e in np.eye(n)
            ]
            # central differences of a smooth float64 function: error O(h^2) + O(eps / h)
            np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-7)


def test_other_data_give_other_sizes():
    model = fpl.compile(ORDINAL, "ordinal")
    small = model.bind({"N": 3, "x": [0.0, 1.0, 2.0], "y": [1, 2, 2]})
    assert small.param_shapes["c"] == (1,)
    assert small.param_shapes["p"] == (2,)


def test_a_size_chain_of_lets():
    src = """
data y: int[4]
let top = max(y)
let K = top + 1
let L = 2 * K
param z: real[L] ~ normal(0, 1)
"""
    cm = fpl.compile(src).bind({"y": [1, 5, 2, 3]})
    assert cm.param_shapes["z"] == (12,)


def _error(src: str, data=None) -> FplError:
    with pytest.raises(FplError) as info:
        model = fpl.compile(src)
        if data is not None:
            model.bind(data)
    return info.value


def test_a_size_that_depends_on_a_param_is_refused():
    err = _error("param a ~ normal(0, 1)\nlet K = to_int(a)\nparam z: real[K]\n")
    assert err.diagnostics[0].code == "E0201"
    assert "known before the model runs" in err.diagnostics[0].message


def test_a_negative_computed_size_is_located():
    err = _error("data y: int[3]\nlet K = min(y)\nparam z: real[K]\n", {"y": [2, -1, 3]})
    d = err.diagnostics[0]
    assert d.code == "E0202" and "negative size -1" in d.message
    assert d.span.line == 3


def test_a_computed_size_must_agree_with_a_data_length():
    src = "data y: int[3]\nlet K = max(y)\ndata x: real[K]\n"
    err = _error(src, {"y": [1, 2, 4], "x": [1.0, 2.0]})
    d = err.diagnostics[0]
    assert d.code == "E0302" and "`K` is 4 but `x` has length 2" in d.message
    assert d.span.line == 2
