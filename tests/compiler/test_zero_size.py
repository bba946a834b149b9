"""Params of size zero (issue 11): Stan's empty arrays.

With ``N = 0``, every bounded type (``real<lower=0>[N]``, ``real<lower=0, upper=1>[N]``,
bounds that params decide) and every structured type whose size-0 value exists
(``ordered[N]``, ``positive_ordered[N]``, ``cov_matrix[N]``, ``cholesky_cov[N]``, and
arrays ``T[N, K]`` of any structured type) is an empty array that adds nothing to the
log density: compiling, the log density, ``constrain`` / ``unconstrain`` and sampling
work, where NumPyro's transforms once divided by the zero size (an internal error).
``simplex[0]`` (no entries can sum to 1), ``corr_matrix[0]`` and ``cholesky_corr[0]``
(their unconstrained array is the same empty one as size 1's) are E0202 at bind; size 1
of those three is the one value 1 (``[1]``, ``[[1]]``), with no unconstrained component.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main

MU = 0.2  # the one non-empty param; the log density must be normal(0, 1)'s at MU alone
ALONE = float(stats.norm.logpdf(MU))

# (declared type, data, the shape of its value)
EMPTY = [
    ("real<lower=0>[N]", {"N": 0}, (0,)),
    ("real<upper=0>[N]", {"N": 0}, (0,)),
    ("real<lower=0, upper=1>[N]", {"N": 0}, (0,)),
    ("real<lower=mu>[N]", {"N": 0}, (0,)),
    ("real<lower=mu, upper=mu + 1>[N]", {"N": 0}, (0,)),
    ("real<lower=0>[2, N]", {"N": 0}, (2, 0)),
    ("ordered[N]", {"N": 0}, (0,)),
    ("positive_ordered[N]", {"N": 0}, (0,)),
    ("cov_matrix[N]", {"N": 0}, (0, 0)),
    ("cholesky_cov[N]", {"N": 0}, (0, 0)),
    ("simplex[N, 3]", {"N": 0}, (0, 3)),
    ("corr_matrix[N, 2]", {"N": 0}, (0, 2, 2)),
    ("cholesky_corr[N, 2]", {"N": 0}, (0, 2, 2)),
    ("cov_matrix[N, 2]", {"N": 0}, (0, 2, 2)),
]


def _model(declared: str) -> fpl.Model:
    return fpl.compile(f"data N: int\nparam mu ~ normal(0, 1)\nparam x: {declared}\n", "z.fpl")


@pytest.mark.parametrize(("declared", "data", "shape"), EMPTY)
def test_an_empty_param_is_an_empty_array_with_no_density(declared, data, shape):
    model = _model(declared)
    cm = model.bind(data)
    assert cm.param_unc_num() == 1  # mu only
    theta = jnp.asarray([MU])
    # nothing but mu's prior: no Jacobian term, no NaN from a reduction over nothing
    np.testing.assert_allclose(float(cm.log_density(theta)), ALONE, rtol=1e-12)
    _, grad = cm.log_density_gradient(theta)
    np.testing.assert_allclose(np.asarray(grad), [-MU], rtol=1e-12)  # d/dmu of -mu^2/2
    values = cm.constrain(theta)
    assert np.asarray(values["x"]).shape == shape
    # and back: the empty value unconstrains to the empty array, mu to itself
    np.testing.assert_allclose(np.asarray(cm.param_unconstrain(cm.param_constrain(theta))), [MU])
    # the constrained-scale route (Model.log_density), with and without the Jacobian
    for jacobian in (False, True):
        given = {"mu": MU, "x": np.zeros(shape)}
        lp = model.log_density(given, data, jacobian=jacobian)
        np.testing.assert_allclose(lp, ALONE, rtol=1e-12)


@pytest.mark.parametrize(("declared", "data", "shape"), EMPTY[:2] + EMPTY[8:10])
def test_an_empty_param_compiles_on_the_command_line(tmp_path, capsys, declared, data, shape):
    model = tmp_path / "z.fpl"
    model.write_text(f"data N: int\nparam mu ~ normal(0, 1)\nparam x: {declared}\n")
    (tmp_path / "d.json").write_text('{"N": 0}')
    code = main(["compile", str(model), "--emit", "jaxpr", "--data", str(tmp_path / "d.json")])
    text = capsys.readouterr()
    assert code == 0, text.out + text.err


# (declared type, its one value): size 1 of the kinds with no size-0 value
ONE = [
    ("simplex[1]", [1.0]),
    ("corr_matrix[1]", [[1.0]]),
    ("cholesky_corr[1]", [[1.0]]),
]


@pytest.mark.parametrize(("declared", "value"), ONE)
def test_size_one_is_its_one_value(declared, value):
    cm = _model(declared).bind({"N": 0})
    assert cm.param_unc_num() == 1
    theta = jnp.asarray([MU])
    np.testing.assert_allclose(float(cm.log_density(theta)), ALONE, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(cm.constrain(theta)["x"]), value)


@pytest.mark.parametrize(
    "declared", ["simplex[N]", "corr_matrix[N]", "cholesky_corr[N]", "simplex[2, N]"]
)
def test_size_zero_with_no_value_is_e0202_at_the_declaration(declared):
    with pytest.raises(FplError) as raised:
        _model(declared).bind({"N": 0})
    assert raised.value.code == "E0202" and raised.value.diagnostics[0].span.line == 3


@pytest.mark.slow  # ~15 s on a loaded 2-core machine, nearly all of it compiling
def test_empty_params_sample():
    # the empty params beside a real one: draws of shape (chains, draws, 0, ...), and mu
    # is sampled from its prior alone (mean 0, sd 1: 200 draws of a well-mixed chain,
    # mean within 4 standard errors ~ 4/sqrt(200/2) = 0.4 allowing ESS of half the draws)
    source = (
        "data N: int\nparam mu ~ normal(0, 1)\nparam a: real<lower=mu>[N]\n"
        "param b: cov_matrix[N]\nparam c: simplex[1]\nparam d: real<lower=0, upper=1>[N]\n"
    )
    fit = fpl.compile(source).sample(
        {"N": 0}, chains=1, warmup=150, draws=200, seed=5, progress=False
    )
    draws = fit.draws()
    assert draws["a"].shape == (1, 200, 0) and draws["b"].shape == (1, 200, 0, 0)
    np.testing.assert_array_equal(draws["c"], np.ones((1, 200, 1)))
    assert abs(float(np.mean(draws["mu"]))) < 0.4
