"""``CompiledModel``'s functions called from Python run as one compiled program each
(cached per object and static option): the same values as the eager evaluation they are
built from, no new trace for a new ``theta``, still traceable inside a user's ``jit``,
``grad`` and ``vmap``, eager inside a solver-events scope (which decides at trace time
where failures go), and a coded error for a ``theta`` of the wrong size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler import lower, reporting
from fpl.dsl.diagnostics import FplError

jax.config.update("jax_enable_x64", True)

#: a constrained param, a vector, an out, a gen: small (the eager route compiles every
#: operation on its own: seconds per derivative even so)
MODEL = """
data N: int
data y: real[N]
param sigma: real<lower=0> ~ lognormal(0, 1)
param b: real[2] ~ normal(0, 1)
out scale = sigma * 2
y ~ normal(b[1] * b[2], sigma)
gen y_rep = normal_rng(b[1], scale)
"""
#: an implicit node: its solver results are part of ``log_density(..., stats=True)``
IMPLICIT = (
    "param a: real<lower=0, upper=0.9> ~ uniform(0, 0.9)\n"
    "let z = fix z: real = a * z + 1\ntarget += z\n"
)
DATA = {"N": 4, "y": [0.3, -1.2, 0.8, 2.0]}

#: XLA may fuse and reorder the compiled program's floating-point operations (the eager
#: route runs them one by one): the two agree to a few ulps, far inside 1e-12 relative
#: for values of order 1-100 in float64
RTOL = 1e-12


@pytest.fixture(scope="module")
def cm():
    return fpl.compile(MODEL).bind(DATA)


def _theta(cm, seed):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, cm.param_unc_num()))


def _close(actual, expected):
    for x, y in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=1e-14)


def test_methods_equal_the_eager_evaluation(cm):
    """Every compiled function against the eager route written out here from
    ``evaluate`` (op by op: no jit anywhere)."""
    theta, v = _theta(cm, 0), _theta(cm, 1)

    def f(t):
        return cm.evaluate(t).log_density

    lp, grad = jax.value_and_grad(f)(theta)
    hvp = jax.jvp(jax.grad(f), (theta,), (v,))[1]
    _close(cm.log_density(theta), lp)
    _close(cm.log_density(theta, jacobian=False), cm.evaluate(theta, jacobian=False).log_density)
    _close(cm.log_density_gradient(theta), (lp, grad))
    _close(cm.log_density_hessian_vector_product(theta, v), (lp, hvp))
    # the Hessian (an eager Hessian would cost ~10 s of op-by-op compiles): its lp and
    # gradient, and its product with v against the eager HVP; the product sums n = 3
    # rounded terms of both signs, so relative to the largest term, not to the result
    lp_h, grad_h, hess = cm.log_density_hessian(theta)
    _close((lp_h, grad_h), (lp, grad))
    scale = np.max(np.abs(np.asarray(hess) * np.asarray(v)))
    np.testing.assert_allclose(np.asarray(hess) @ np.asarray(v), hvp, rtol=0, atol=1e-12 * scale)
    # symmetric to rounding (the two mixed partials are computed apart)
    np.testing.assert_allclose(hess, np.transpose(hess), rtol=RTOL)
    # not trivially zero or diagonal (the comparison would prove little)
    assert np.count_nonzero(np.abs(np.asarray(hess)) > 1e-6) > cm.param_unc_num()
    # flat constrained values with outs and gens: the key, from a seed, is an operand
    values = cm.evaluate(theta, key=jax.random.PRNGKey(3), generate=True).values
    flat = cm.param_constrain(theta, include_tp=True, include_gq=True, rng=3)
    expected = np.concatenate(
        [np.ravel(np.asarray(values[n]), order="F") for n in ["sigma", "b", "scale"]]
        + [np.ravel(np.asarray(values["y_rep"]))]
    )
    _close(flat, expected)
    _close(cm.param_unconstrain(cm.param_constrain(theta)), theta)
    by_name = cm.constrain(theta)
    _close(by_name, {n: values[n] for n in by_name})
    gens = cm.generate(theta, jax.random.PRNGKey(3))
    _close(gens, {n: values[n] for n in gens})
    pointwise = cm.pointwise_log_likelihood(theta)
    sigma, b = values["sigma"], values["b"]
    y = np.asarray(DATA["y"])
    direct = -0.5 * ((y - b[0] * b[1]) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    _close(pointwise["y"], direct)


def test_solver_results_as_with_the_eager_evaluation():
    implicit = fpl.compile(IMPLICIT).bind({})
    theta = jnp.asarray([0.3])
    lp, stats = implicit.log_density(theta, stats=True)
    ev = implicit.evaluate(theta)
    assert set(stats) == set(ev.stats) == {implicit.nodes[0].node_id}
    _close((lp, stats), (ev.log_density, ev.stats))
    assert bool(stats[implicit.nodes[0].node_id]["converged"])


def test_a_second_call_does_not_trace_again(cm, monkeypatch):
    """The program is traced (``lower.run`` called) on the first call only: a new
    ``theta``, new data values of the same shapes and new weights reuse it."""
    calls = []
    original = lower.run
    monkeypatch.setattr(lower, "run", lambda *a, **k: calls.append(1) or original(*a, **k))
    for method, extra in [
        (cm.log_density_gradient, ()),
        (cm.log_density_hessian, ()),
        (cm.log_density_hessian_vector_product, (_theta(cm, 9),)),
    ]:
        first = method(_theta(cm, 4), *extra, jacobian=False)
        traced = len(calls)
        assert traced >= 1
        second = method(_theta(cm, 5), *extra, jacobian=False)
        assert len(calls) == traced, method.__name__
        assert not np.array_equal(np.asarray(first[1]), np.asarray(second[1]))
    # data are operands (the held ones by default): other values, no new trace
    data = cm.prepare_data({"y": jnp.asarray(DATA["y"]) + 1.0})
    before = cm.log_density(_theta(cm, 4), jacobian=False)
    traced = len(calls)
    moved = cm.log_density(_theta(cm, 4), jacobian=False, data=data)
    again = cm.log_density(_theta(cm, 4), jacobian=False, data={**data, "y": data["y"] + 1.0})
    assert len(calls) == traced
    assert float(before) != float(moved) != float(again)
    # the eager evaluation with those data: the operand is used, not a baked-in constant
    expected = cm.evaluate(_theta(cm, 4), jacobian=False, data=data).log_density
    _close(moved, expected)


def test_still_traceable_inside_jit_grad_and_vmap(cm):
    thetas = jnp.stack([_theta(cm, k) for k in range(3)])
    lp, grad = cm.log_density_gradient(thetas[0])
    _close(jax.jit(cm.log_density_gradient)(thetas[0]), (lp, grad))
    _close(jax.grad(cm.log_density)(thetas[0]), grad)
    _close(jax.vmap(cm.log_density)(thetas), jnp.stack([cm.log_density(t) for t in thetas]))
    hvps = jax.jit(jax.vmap(cm.log_density_hessian_vector_product))(thetas, thetas)
    _close(
        hvps,
        jax.tree.map(
            lambda *x: jnp.stack(x), *map(cm.log_density_hessian_vector_product, thetas, thetas)
        ),
    )
    # a traced key inside the user's jit
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    flat = jax.jit(jax.vmap(lambda k: cm.param_constrain(thetas[0], True, True, k)))(keys)
    _close(flat[0], cm.param_constrain(thetas[0], True, True, keys[0]))


def test_float32_follows_jax_mode(cm):
    """Without x64 the compiled call computes in float32, as the eager one does."""
    theta = np.asarray(_theta(cm, 0))
    with jax.enable_x64(False):
        lp = cm.log_density(theta)
        eager = cm.evaluate(theta).log_density
    assert lp.dtype == eager.dtype == jnp.float32
    # float32 rounding over a dozen terms: relative 1e-5
    np.testing.assert_allclose(float(lp), float(cm.log_density(theta)), rtol=1e-5)


def test_failures_report_inside_a_scope():
    """Inside a solver-events scope the call runs eagerly, so a failed solve reaches
    that run's events (a cached program would report to the scope it was traced in)."""
    cm = fpl.compile(
        "param a: real<lower=1.5, upper=2> ~ uniform(1.5, 2)\n"
        "let z = fix z: real = a * z + 1 with iterate(max_iter=20)\ntarget += z\n"
    ).bind({})
    node = cm.nodes[0].node_id
    assert not np.isfinite(float(cm.log_density(jnp.zeros(1))))  # compiled, nowhere
    for run in range(2):
        with reporting.collecting() as events:
            lp = cm.log_density(jnp.zeros(1))
            jax.effects_barrier()
        assert not np.isfinite(float(lp))
        assert events.per_node(1) == {node: [1]}, run


def test_wrong_sizes_are_coded_errors(cm):
    n = cm.param_unc_num()
    with pytest.raises(FplError, match="E0405"):
        cm.log_density(jnp.zeros(n + 1))
    with pytest.raises(FplError, match="E0405"):
        cm.log_density_gradient(jnp.zeros((2, n)))
    with pytest.raises(FplError, match="E0405"):
        cm.log_density_hessian_vector_product(jnp.zeros(n), jnp.zeros(n - 1))
    with pytest.raises(FplError, match="E0405"):
        cm.param_unconstrain(jnp.zeros(cm.param_num() + 1))
