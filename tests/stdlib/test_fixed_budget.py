"""Fixed-budget solves (issue 12): ``iterate(steps=K)`` / ``halpern(steps=K)`` run exactly
K steps, are not failures, expose their residual, and are differentiated implicitly
(the IFT at the point reached) or through the K steps (``grad=unrolled``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl

K = 6
SRC = """
param a ~ normal(0, 1)
let z = fix z: real = 0.5 * z + a with iterate(steps=6) GRAD
out value = z
out r = z.residual
out its = z.iterations
target += -0.5 * square(z)
"""


def run(grad=""):
    cm = fpl.compile(SRC.replace("GRAD", grad)).bind({})

    def f(a):
        return cm.constrain(jnp.asarray([a]))

    return cm, f


def test_exactly_k_steps_not_a_failure():
    cm, f = run()
    with jax.enable_x64(True):
        out = f(1.3)
        lp = cm.log_density(jnp.asarray([1.3]))
    # from 0: z_K = 2a (1 - 0.5^K) (z* = 2a), residual |f(z_K) - z_K| = a 0.5^K (exact arithmetic)
    assert float(out["value"]) == pytest.approx(2 * 1.3 * (1 - 0.5**K), rel=1e-14)
    assert float(out["r"]) == pytest.approx(1.3 * 0.5**K, rel=1e-12)
    assert int(out["its"]) == K
    assert np.isfinite(float(lp))  # not -inf: a budget is not a failure


@pytest.mark.parametrize(
    ("grad", "expected"),
    [
        ("grad=unrolled", 2 * (1 - 0.5**K)),  # d z_K / da through the K steps
        ("", 1 / (1 - 0.5)),  # the IFT: (1 - df/dz)^-1 df/da at the point reached
    ],
)
def test_gradient_at_the_budget(grad, expected):
    _, f = run(grad)
    with jax.enable_x64(True):
        g = float(jax.grad(lambda a: f(a)["value"])(1.3))
        # central finite differences agree with the unrolled derivative (the map from a
        # to z_K is linear: FD is exact up to round-off)
        fd = (float(f(1.3 + 1e-6)["value"]) - float(f(1.3 - 1e-6)["value"])) / 2e-6
    assert g == pytest.approx(expected, rel=1e-10)
    assert fd == pytest.approx(2 * (1 - 0.5**K), rel=1e-8)


def test_halpern_budget_meets_its_certified_residual():
    # a rotation by 90 degrees plus a shift is nonexpansive (an isometry) with fixed
    # point z* = (I - R)^-1 b; plain Halpern's residual after K steps is at most
    # 2 ||z_0 - z*|| / (K + 1)
    src = """
data R: real[2, 2]
data b: real[2]
let z = fix z: real[2] = R @ z + b with halpern(steps=40)
out r = z.residual
out its = z.iterations
"""
    R = np.array([[0.0, -1.0], [1.0, 0.0]])
    b = np.array([1.0, 2.0])
    cm = fpl.compile(src).bind({"R": R, "b": b})
    with jax.enable_x64(True):
        out = cm.constrain(jnp.zeros((0,)))
    star = np.linalg.solve(np.eye(2) - R, b)
    assert int(out["its"]) == 40
    assert 0 < float(out["r"]) <= 2 * np.linalg.norm(star) / 41
