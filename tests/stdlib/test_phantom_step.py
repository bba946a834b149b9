"""``grad=phantom(k=..., step=a)`` on an ``argmin``: the truncated Neumann series of the
map T(w) = w - a grad obj(w). On a ridge objective the Hessian H is constant, so the
phantom derivative is known exactly, dw/dt ~ -a sum_{j<k} (I - a H)^j dR/dt (an
independent NumPy route); with a < 2 / lambda_max(H) and many terms it tends to the
implicit derivative (checked with finite differences), and with the old fixed step 1
(here > 2 / lambda_max) it diverges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl

RNG = np.random.default_rng(4)
X = np.linalg.qr(RNG.normal(size=(12, 3)))[0] * np.array([1.0, 1.2, 1.5])  # cond(H) ~ 1.6
Y = RNG.normal(size=12)
T0 = 0.2  # lam = exp(t)

SRC = """
data X: real[12, 3]
data y: real[12]
param t ~ normal(0, 1)
let w = argmin w: real[3] of sum(square(X @ w - y)) + exp(t) * dot_self(w) GRAD
out coef = w
"""


def coef_fn(grad):
    cm = fpl.compile(SRC.replace("GRAD", grad)).bind({"X": X, "y": Y})
    return jax.jit(lambda t: cm.constrain(jnp.reshape(t, (1,)))["coef"])


def exact():
    lam = np.exp(T0)
    H = 2 * (X.T @ X + lam * np.eye(3))
    w = np.linalg.solve(X.T @ X + lam * np.eye(3), X.T @ Y)
    return H, w, 2 * lam * w  # the Hessian, the solution, dR/dt


def phantom_series(step, k):
    H, _, dR = exact()
    b = -step * dR
    zdot = b
    for _ in range(k - 1):
        zdot = (np.eye(3) - step * H) @ zdot + b
    return zdot


def tangent(grad):
    with jax.enable_x64(True):
        f = coef_fn(grad)
        return np.asarray(jax.jacfwd(f)(jnp.asarray(T0)))


def test_the_series_with_a_step_is_the_truncated_neumann_series():
    H, _, _ = exact()
    step = float(1.0 / np.linalg.eigvalsh(H).max())
    got = tangent(f"grad=phantom(k=5, step={step!r})")
    np.testing.assert_allclose(got, phantom_series(step, 5), rtol=1e-10)


def test_many_terms_tend_to_the_implicit_derivative():
    H, _, dR = exact()
    low, high = np.linalg.eigvalsh(H)[[0, -1]]
    step = float(2.0 / (low + high))  # the step that minimises the spectral radius
    # of I - a H: (high - low) / (high + low) < 0.25 here, so 25 terms leave a
    # relative error below 1e-14
    assert (high - low) / (high + low) < 0.25
    got = tangent(f"grad=phantom(k=25, step={step!r})")
    with jax.enable_x64(True):
        f = coef_fn("")
        h = 1e-6
        fd = (np.asarray(f(T0 + h)) - np.asarray(f(T0 - h))) / (2 * h)
    np.testing.assert_allclose(got, -np.linalg.solve(H, dR), rtol=1e-9)
    np.testing.assert_allclose(got, fd, atol=1e-7)  # O(h^2) + 1e-16 / h round-off


def test_unit_step_diverges_here():
    H, _, dR = exact()
    assert np.linalg.eigvalsh(H).max() > 2.0  # so step 1 makes |1 - H| > 1
    got = tangent("grad=phantom(k=30)")
    np.testing.assert_allclose(got, phantom_series(1.0, 30), rtol=1e-8)
    assert np.abs(got).max() > 1e6 * np.abs(np.linalg.solve(H, dR)).max()


@pytest.mark.parametrize("bad", ["step=0", "step=-1", "step=2e6"])
def test_a_bad_step_is_a_coded_error(bad):
    with pytest.raises(fpl.FplError) as info:
        fpl.compile(SRC.replace("GRAD", f"grad=phantom(k=5, {bad})"))
    assert info.value.code == "E0206" and "step" in info.value.render()
