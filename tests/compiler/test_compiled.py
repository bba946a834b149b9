"""The compiler/runtime boundary: ``CompiledModel``'s BridgeStan-style functions, checked
against independent routes (finite differences, ``Model.log_density`` on constrained
values, closed forms), and a foreign sampler (BlackJAX's NUTS) run on it alone."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError

jax.config.update("jax_enable_x64", True)

MIXED = """
data N: int
data y: real[N]
param mu ~ normal(0, 10)
param sigma: real<lower=0> ~ lognormal(0, 1)
param p: simplex[3] ~ dirichlet([2.0, 3.0, 4.0])
param L: cholesky_corr[2] ~ lkj_corr_cholesky(2)
param B: real[2, 3] ~ normal(0, 1)
out scale = sigma * 2
y ~ normal(mu, sigma)
gen y_rep = normal_rng(mu, sigma)
"""
DATA = {"N": 5, "y": [0.3, -1.2, 0.8, 2.0, 0.1]}


@pytest.fixture(scope="module")
def cm():
    return fpl.compile(MIXED).bind(DATA)


def test_names_counts_and_shapes(cm):
    assert cm.param_shapes == {"mu": (), "sigma": (), "p": (3,), "L": (2, 2), "B": (2, 3)}
    # unconstrained sizes: simplex[3] -> 2, cholesky_corr[2] -> 1
    assert cm.param_unc_num() == 1 + 1 + 2 + 1 + 6
    assert cm.param_num() == 1 + 1 + 3 + 4 + 6
    names = cm.param_names()
    # Stan's (BridgeStan's) order: matrices column-major, 1-based
    assert names[5:9] == ["L.1.1", "L.2.1", "L.1.2", "L.2.2"]
    assert names[9:] == ["B.1.1", "B.2.1", "B.1.2", "B.2.2", "B.1.3", "B.2.3"]
    assert cm.param_names(include_tp=True)[-1] == "scale"
    assert cm.param_names(include_tp=True, include_gq=True)[-1] == "y_rep"
    assert len(cm.param_unc_names()) == cm.param_unc_num()


def _theta(cm, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, cm.param_unc_num()))


def test_log_density_matches_the_constrained_route(cm):
    """lp(θ) with the Jacobian equals Model.log_density at the constrained values with
    jacobian=True (an independent route: constrained values, inverse transforms)."""
    model = fpl.compile(MIXED)
    theta = _theta(cm)
    values = cm.constrain(theta)
    params = {p: values[p] for p in cm.param_shapes}
    expected = model.log_density(params, DATA, jacobian=True)
    assert float(cm.log_density(theta)) == pytest.approx(float(expected), rel=1e-10)
    # without the Jacobian: the density of the constrained values
    expected0 = model.log_density(params, DATA)
    assert float(cm.log_density(theta, jacobian=False)) == pytest.approx(float(expected0), 1e-10)


def test_gradient_hessian_and_hvp_against_finite_differences(cm):
    """Each function compiled (``jax.jit``): called eagerly, JAX compiles the first call's
    operations one by one, ~30 s of CPU for these three against a few seconds."""
    theta = np.asarray(_theta(cm, 1))
    lp, grad = jax.jit(cm.log_density_gradient)(theta)
    h = 1e-6  # central differences: truncation O(h²) ~ 1e-12, rounding ~ eps/h ~ 1e-10
    # the differences' 4d evaluations in two compiled calls, not one by one (eagerly)
    steps = np.eye(theta.size)
    density = jax.jit(jax.vmap(cm.log_density))
    fd = (np.asarray(density(theta + h * steps)) - np.asarray(density(theta - h * steps))) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)
    lp2, grad2, hess = jax.jit(cm.log_density_hessian)(theta)
    assert float(lp2) == pytest.approx(float(lp), rel=1e-13)  # another program's rounding
    np.testing.assert_allclose(hess, hess.T, atol=1e-9)
    gradient = jax.jit(jax.vmap(lambda t: cm.log_density_gradient(t)[1]))
    fd_h = (
        np.asarray(gradient(theta + 1e-5 * steps)) - np.asarray(gradient(theta - 1e-5 * steps))
    ) / 2e-5
    np.testing.assert_allclose(hess, fd_h, rtol=1e-5, atol=1e-5)
    v = np.linspace(-1, 1, theta.size)
    _, hv = jax.jit(cm.log_density_hessian_vector_product)(theta, v)
    np.testing.assert_allclose(hv, hess @ v, rtol=1e-9, atol=1e-9)


def test_functions_are_pure_under_jit_and_vmap(cm):
    thetas = jnp.stack([_theta(cm, s) for s in range(4)])
    eager = np.array([float(cm.log_density(t)) for t in thetas])
    np.testing.assert_allclose(jax.jit(jax.vmap(cm.log_density))(thetas), eager, rtol=1e-12)
    # data passed as operands give the same values as the held data
    data = {k: jnp.asarray(v) for k, v in cm.data.items()}
    f = jax.jit(lambda t, d: cm.log_density(t, data=d))
    assert float(f(thetas[0], data)) == pytest.approx(eager[0], rel=1e-12)


def test_constrain_unconstrain_round_trip(cm):
    theta = _theta(cm, 2)
    x = cm.param_constrain(theta)
    assert x.shape == (cm.param_num(),)
    np.testing.assert_allclose(cm.param_unconstrain(x), theta, atol=1e-10)
    values = cm.constrain(theta)
    assert float(jnp.sum(values["p"])) == pytest.approx(1.0)
    assert float(values["scale"]) == pytest.approx(2 * float(values["sigma"]))
    # column-major: the flat value of B.2.1 is B[2, 1]
    k = cm.param_names().index("B.2.1")
    assert float(x[k]) == float(values["B"][1, 0])
    full = cm.param_constrain(theta, include_tp=True, include_gq=True, rng=3)
    assert full.shape == (cm.param_num(True, True),)
    with pytest.raises(FplError, match="E0403"):
        cm.param_constrain(theta, include_gq=True)


def test_solver_results_travel_as_data():
    cm = fpl.compile(
        "param a: real<lower=0, upper=0.9> ~ uniform(0, 0.9)\n"
        "let z = fix z: real = a * z + 1\ntarget += z\n"
    ).bind({})
    lp, stats = cm.log_density(jnp.zeros(1), stats=True)
    ((node_id, st),) = stats.items()
    assert bool(st["converged"]) and float(st["residual"]) < 1e-8
    assert cm.nodes[0].node_id == node_id and cm.nodes[0].kind == "fix"
    # at θ = 0: a = 0.9 sigmoid(0) = 0.45, z* = 1 / (1 - a); uniform density 1/0.9;
    # log-Jacobian log(0.9 * sigmoid'(0)) = log(0.9 / 4)
    expected = 1 / (1 - 0.45) + math.log(1 / 0.9) + math.log(0.9 / 4)
    assert float(lp) == pytest.approx(expected, rel=1e-10)


# ---- a foreign sampler on the CompiledModel alone -------------------------------------

CONJUGATE = """
data N: int
data y: real[N]
param mu ~ normal(0, 10)
param s: real<lower=0> ~ exponential(1)
y ~ normal(mu, 1)
"""


def test_blackjax_nuts_samples_a_compiled_model():
    """BlackJAX's NUTS with window adaptation, given nothing but ``cm.log_density``:
    mu's posterior is N(m, v) in closed form, s (untouched by the data) is Exponential(1)."""
    blackjax = pytest.importorskip("blackjax", reason="blackjax is in the test extra")
    rng = np.random.default_rng(4)
    y = rng.normal(1.5, 1.0, size=30)
    cm = fpl.compile(CONJUGATE).bind({"N": 30, "y": y})
    v = 1.0 / (1.0 / 100 + 30)
    m = v * np.sum(y)
    warmup = blackjax.window_adaptation(blackjax.nuts, cm.log_density)
    key = jax.random.PRNGKey(7)
    (state, params), _ = warmup.run(key, jnp.zeros(cm.param_unc_num()), num_steps=500)
    kernel = blackjax.nuts(cm.log_density, **params).step

    def step(state, k):
        state, info = kernel(k, state)
        return state, state.position

    _, positions = jax.lax.scan(step, state, jax.random.split(jax.random.PRNGKey(8), 4000))
    draws = jax.vmap(cm.constrain)(positions)
    mu, s = np.asarray(draws["mu"]), np.asarray(draws["s"])
    # 4000 NUTS draws of a 2-d near-Gaussian: ESS > 1000, so the MCSE of the mean is
    # < sd/30; 5 MCSE-sized margins keep a false failure below 1e-6
    assert abs(mu.mean() - m) < 5 * math.sqrt(v) / 30
    assert abs(mu.std() - math.sqrt(v)) < 0.1 * math.sqrt(v)
    assert abs(s.mean() - 1.0) < 5 / 30  # Exponential(1): sd 1
    assert np.all(s > 0)


# ---- data constraints are checked once, with the transforms' own constraints --------

CASES = [
    ("simplex[3]", [5.0, -3.0, 0.1], "simplex"),
    ("simplex[3]", [0.5, 0.6, 0.1], "simplex"),
    ("ordered[3]", [1.0, 3.0, 2.0], "ordered"),
    ("positive_ordered[2]", [-1.0, 2.0], "positive_ordered"),
    ("cov_matrix[2]", [[1.0, 2.0], [2.0, 1.0]], "cov_matrix"),
    ("corr_matrix[2]", [[1.0, 0.5], [0.5, 2.0]], "corr_matrix"),
    ("cholesky_corr[2]", [[1.0, 0.0], [0.9, 0.9]], "cholesky_corr"),
    ("cholesky_cov[2]", [[1.0, 0.5], [0.2, 1.0]], "cholesky_cov"),
]


@pytest.mark.parametrize(
    "decl, value, kind", CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_structured_data_constraints_are_enforced(decl, value, kind):
    model = fpl.compile(f"data x: {decl}\nparam m ~ normal(0, 1)\n")
    with pytest.raises(FplError, match="E0304") as info:
        model.bind({"x": value})
    assert f"not a valid {kind}" in str(info.value)


VALID = [
    ("simplex[3]", [0.2, 0.3, 0.5]),
    ("ordered[3]", [-1.0, 0.0, 2.0]),
    ("positive_ordered[2]", [0.5, 2.0]),
    ("cov_matrix[2]", [[2.0, 0.5], [0.5, 1.0]]),
    ("corr_matrix[2]", [[1.0, 0.3], [0.3, 1.0]]),
    ("cholesky_corr[2]", [[1.0, 0.0], [0.6, 0.8]]),
    ("cholesky_cov[2]", [[1.5, 0.0], [0.2, 0.7]]),
    ("real<lower=0>[2]", [0.0, 1.0]),  # a value equal to its bound is inside (Stan's rule)
    ("real<lower=0, upper=1>", 1.0),
]


@pytest.mark.parametrize("decl, value", VALID, ids=[v[0] for v in VALID])
def test_valid_structured_data_are_accepted(decl, value):
    fpl.compile(f"data x: {decl}\nparam m ~ normal(0, 1)\n").bind({"x": value})
