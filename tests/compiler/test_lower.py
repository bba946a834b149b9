"""Lowering: log densities of small models against hand-written NumPy/SciPy ones,
the log-Jacobian of constrained params (jacobian=True), bounds that depend on other
params, and that ``Model.log_density`` is a plain JAX function (jit, grad, vmap)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import fpl

EIGHT_SCHOOLS = (Path(__file__).parents[2] / "examples" / "eight_schools.fpl").read_text()
SCHOOLS = {
    "J": 8,
    "y": [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0],
    "sigma": [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0],
}
SCHOOLS_PARAMS = {"mu": 4.0, "tau": 3.2, "theta_tilde": np.linspace(-1, 1, 8)}


def _eight_schools_numpy(mu, tau, tt):
    theta = mu + tau * tt
    return (
        st.norm.logpdf(mu, 0, 5)
        + st.cauchy.logpdf(tau, 0, 5)
        + st.norm.logpdf(tt).sum()
        + st.norm.logpdf(SCHOOLS["y"], theta, SCHOOLS["sigma"]).sum()
    )


def test_eight_schools_log_density():
    m = fpl.compile(EIGHT_SCHOOLS)
    p = SCHOOLS_PARAMS
    want = _eight_schools_numpy(p["mu"], p["tau"], p["theta_tilde"])
    np.testing.assert_allclose(float(m.log_density(p, SCHOOLS)), want, rtol=1e-12)
    # with the Jacobian of tau = exp(u): + log tau
    got = m.log_density(p, SCHOOLS, jacobian=True)
    np.testing.assert_allclose(float(got), want + np.log(p["tau"]), rtol=1e-12)


def test_outside_the_support_is_minus_infinity():
    m = fpl.compile(EIGHT_SCHOOLS)
    assert float(m.log_density({**SCHOOLS_PARAMS, "tau": -1.0}, SCHOOLS)) == -np.inf


@pytest.mark.parametrize(
    "decl, x, log_jac",
    [
        ("real<lower=2>", 3.5, lambda x: np.log(x - 2)),
        ("real<upper=2>", 0.5, lambda x: np.log(2 - x)),
        ("real<lower=-1, upper=3>", 0.5, lambda x: np.log((x + 1) * (3 - x) / 4)),
    ],
)
def test_log_jacobian_of_bounds(decl, x, log_jac):
    m = fpl.compile(f"param x: {decl}\ntarget += -0.5 * square(x)")
    np.testing.assert_allclose(float(m.log_density({"x": x})), -0.5 * x * x, rtol=1e-12)
    np.testing.assert_allclose(
        float(m.log_density({"x": x}, jacobian=True)), -0.5 * x * x + log_jac(x), rtol=1e-12
    )


def test_dependent_bounds():
    """b in (0, 1 - a): its log-Jacobian uses the current a, log(b (w - b) / w) with
    w = 1 - a; a in (0, 1) adds log(a (1 - a))."""
    src = "param a: real<lower=0, upper=1> ~ beta(2, 2)\nparam b: real<lower=0, upper=1 - a>\n"
    src += "target += normal_lpdf(b | 0.2, 0.1)"
    m = fpl.compile(src)
    for a, b in [(0.3, 0.5), (0.6, 0.1)]:
        w = 1 - a
        base = st.beta.logpdf(a, 2, 2) + st.norm.logpdf(b, 0.2, 0.1)
        np.testing.assert_allclose(float(m.log_density({"a": a, "b": b})), base, rtol=1e-12)
        jac = np.log(a * (1 - a)) + np.log(b * (w - b) / w)
        np.testing.assert_allclose(
            float(m.log_density({"a": a, "b": b}, jacobian=True)), base + jac, rtol=1e-12
        )
    # b above its bound 1 - a is outside the support
    assert float(m.log_density({"a": 0.6, "b": 0.5})) == -np.inf


def test_dependent_bounds_map_back_with_current_values():
    """Unconstrained -> constrained must use the bound at the current a."""
    m = fpl.compile("param a: real<lower=0, upper=1>\nparam b: real<lower=0, upper=1 - a>")
    for a, b in [(0.3, 0.5), (0.9, 0.05)]:
        u = m.unconstrain({"a": a, "b": b})
        back = m.constrain(u)
        np.testing.assert_allclose([back["a"], back["b"]], [a, b], rtol=1e-10)


@pytest.mark.parametrize(
    "decl, value",
    [
        ("simplex[3]", np.array([0.2, 0.3, 0.5])),
        ("ordered[3]", np.array([-1.0, 0.5, 2.0])),
        ("positive_ordered[3]", np.array([0.3, 0.5, 2.0])),
        (
            "cholesky_corr[3]",
            np.linalg.cholesky(np.array([[1, 0.3, -0.2], [0.3, 1, 0.4], [-0.2, 0.4, 1.0]])),
        ),
        ("cov_matrix[2]", np.array([[2.0, 0.3], [0.3, 1.0]])),
    ],
)
def test_structured_jacobian_matches_the_unconstrained_route(decl, value):
    """log_density(x, jacobian=True) is the density the sampler sees at u = unconstrain(x):
    an independent route through the unconstrained potential."""
    m = fpl.compile(f"param x: {decl}\ntarget += -0.5 * sum(square(x))")
    b = m.bind({})
    u = m.unconstrain({"x": value})
    np.testing.assert_allclose(
        float(m.log_density({"x": value}, jacobian=True)),
        float(b.log_density(b.ravel(u))),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        float(m.log_density({"x": value})), -0.5 * np.sum(value**2), rtol=1e-12
    )


def test_truncated_prior_is_unnormalised_as_in_stan():
    m = fpl.compile("param s: real<lower=0> ~ normal(0, 1)")
    np.testing.assert_allclose(float(m.log_density({"s": 0.7})), st.norm.logpdf(0.7), rtol=1e-12)


def test_categorical_outcomes_are_one_based():
    m = fpl.compile(
        "data N: int\ndata k: int<lower=1, upper=3>[N]\nparam b: real[3]\nk ~ categorical_logit(b)"
    )
    b = np.array([0.2, -1.0, 0.5])
    k = np.array([1, 3, 3, 2])
    lsm = b - np.log(np.exp(b).sum())
    np.testing.assert_allclose(
        float(m.log_density({"b": b}, {"k": k})), lsm[k - 1].sum(), rtol=1e-12
    )


def test_regression_with_matrix_data():
    src = """
data N: int
data K: int
data X: real[N, K]
data y: real[N]
param alpha: real
param beta: real[K]
param sigma: real<lower=0> ~ exponential(1)
y ~ normal(alpha + X @ beta, sigma)
"""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 2)), rng.normal(size=5)
    p = {"alpha": 0.3, "beta": np.array([0.5, -1.0]), "sigma": 1.4}
    want = st.expon.logpdf(1.4) + st.norm.logpdf(y, 0.3 + X @ p["beta"], 1.4).sum()
    np.testing.assert_allclose(
        float(fpl.compile(src).log_density(p, {"X": X, "y": y})), want, rtol=1e-12
    )


def test_jit_grad_vmap_of_log_density():
    m = fpl.compile(
        "data N: int\ndata y: real[N]\nparam mu: real\nparam s: real<lower=0>\ny ~ normal(mu, s)"
    )
    y = np.array([0.5, -0.3, 1.2])
    data = {"y": y}

    def f(mu, s):
        return m.log_density({"mu": mu, "s": s}, data)

    want = st.norm.logpdf(y, 0.4, 1.3).sum()
    np.testing.assert_allclose(float(jax.jit(f)(0.4, 1.3)), want, rtol=1e-12)
    g_mu, g_s = jax.grad(f, argnums=(0, 1))(0.4, 1.3)
    # analytic: d/dmu = sum(y - mu) / s^2; d/ds = sum((y - mu)^2) / s^3 - N / s
    np.testing.assert_allclose(float(g_mu), np.sum(y - 0.4) / 1.3**2, rtol=1e-10)
    np.testing.assert_allclose(float(g_s), np.sum((y - 0.4) ** 2) / 1.3**3 - 3 / 1.3, rtol=1e-10)
    mus = jnp.array([0.0, 0.4, 1.0])
    batch = jax.vmap(lambda mu: f(mu, 1.3))(mus)
    np.testing.assert_allclose(
        np.asarray(batch), [st.norm.logpdf(y, mu, 1.3).sum() for mu in mus], rtol=1e-12
    )


def test_index_array_out_of_range_is_located_error():
    """An integer-array index outside 1:n is an error, never a clipped (wrong) value."""
    from fpl.dsl.diagnostics import FplError

    m = fpl.compile("data n: int\ndata g: int[3]\nparam a: real[n]\ntarget += sum(a[g])\n")
    with pytest.raises(FplError) as exc:
        m.log_density({"a": np.zeros(2)}, {"n": 2, "g": [1, 2, 3]})
    # index data are range-checked when bound (E0307 naming the field, located at the
    # index); a computed index out of range is E0202 at evaluation (below)
    assert exc.value.code == "E0307" and "`g`" in str(exc.value)
    assert any(
        d.span is not None and d.span.line == 4
        for d in (exc.value.diagnostics[0], *exc.value.diagnostics[0].notes)
    )
    m2 = fpl.compile("data n: int\ndata g: int[3]\nparam a: real[n]\ntarget += sum(a[g + 1])\n")
    with pytest.raises(FplError) as exc:
        m2.log_density({"a": np.zeros(2)}, {"n": 2, "g": [1, 1, 2]})
    assert exc.value.code == "E0202" and "index 3 is out of range 1:2" in str(exc.value)
    assert exc.value.diagnostics[0].span.line == 4
