"""Proximal maps against their definition (an independent route: the argmin of
½‖z − x‖² + g(z) by SciPy), their Jacobians against the closed forms, and
``stop_gradient``'s zero derivative inside a model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import fpl
from fpl.stdlib.registry import registry

X = np.array([0.9, -1.4, 0.2, 2.3, -0.1])


def impl(name):
    return registry().functions[name].impl


def test_prox_l1_is_the_argmin_of_its_definition():
    t = 0.5
    z = np.asarray(impl("prox_l1")(jnp.asarray(X), t))
    # Powell on the nonsmooth objective, from the data: ~1e-6 accurate
    obj = lambda w: 0.5 * np.sum((w - X) ** 2) + t * np.sum(np.abs(w))  # noqa: E731
    ref = minimize(obj, X, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14}).x
    np.testing.assert_allclose(z, ref, atol=1e-5)
    # Jacobian: diag(|x| > t) (exact away from the kinks)
    J = jax.jacfwd(lambda x: impl("prox_l1")(x, t))(jnp.asarray(X))
    np.testing.assert_array_equal(np.asarray(J), np.diag((np.abs(X) > t).astype(float)))


@pytest.mark.parametrize("name", ["project_simplex", "project_box", "prox_nonneg"])
def test_projections_are_the_nearest_feasible_points(name):
    lo, hi = -0.5, 1.0
    args = {"project_box": (lo, hi)}.get(name, ())
    z = np.asarray(impl(name)(jnp.asarray(X), *args))
    cons, bounds = [], None
    if name == "project_simplex":
        cons = [{"type": "eq", "fun": lambda w: np.sum(w) - 1}]
        bounds = [(0, None)] * len(X)
    elif name == "project_box":
        bounds = [(lo, hi)] * len(X)
    else:
        bounds = [(0, None)] * len(X)
    ref = minimize(
        lambda w: 0.5 * np.sum((w - X) ** 2),
        np.full(len(X), 0.2),
        jac=lambda w: w - X,
        bounds=bounds,
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-14},
    ).x
    np.testing.assert_allclose(z, ref, atol=1e-7)  # SLSQP on a QP: to its ftol


def test_simplex_jacobian_is_the_projection_onto_its_face():
    # on the support S, dz/dx = I_S - 1_S 1_S' / |S| (zero off S)
    z = np.asarray(impl("project_simplex")(jnp.asarray(X)))
    S = z > 0
    expected = np.zeros((len(X), len(X)))
    expected[np.ix_(S, S)] = np.eye(S.sum()) - 1.0 / S.sum()
    J = jax.jacrev(impl("project_simplex"))(jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(J), expected, atol=1e-14)


def test_stop_gradient_in_a_model():
    src = """
param a ~ normal(0, 1)
out y = a * a + stop_gradient(a * a)
target += -0.5 * square(y)
"""
    cm = fpl.compile(src).bind({})
    with jax.enable_x64(True):
        f = lambda a: cm.constrain(jnp.asarray([a]))["y"]  # noqa: E731
        assert float(f(1.5)) == pytest.approx(2 * 2.25)
        assert float(jax.grad(f)(1.5)) == pytest.approx(3.0)  # 2a, not 4a
