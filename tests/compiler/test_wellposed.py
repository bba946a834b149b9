"""Well-posed weight types: ``contractive<bound=c>[H, H]`` and ``monotone<margin=m>[H]``
(compiler/transforms.py) — the constraint holds for every raw value, the maps round-trip
on the set, their derivatives match finite differences and the closed forms, and the
checker refuses them where they make no sense."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler import transforms
from fpl.dsl.diagnostics import FplError


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _random(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


# ---- contractive ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 32, 256])
@pytest.mark.parametrize("bound", [0.5, 0.9])
def test_contractive_is_within_its_bound_and_round_trips(size, bound):
    v = jnp.asarray(_random((size, size), size) * 3.0)  # far outside the set
    w, log_jac = transforms.constrain("contractive", v, upper=bound)
    sigma = np.linalg.norm(np.asarray(w), 2)  # NumPy's SVD: an independent route
    # on the boundary, up to the SVD's rounding (a few ulps of sigma ~ 1)
    assert sigma == pytest.approx(bound, rel=1e-12)
    assert float(log_jac) == 0.0
    # radial: the same direction as v
    np.testing.assert_allclose(np.asarray(w), np.asarray(v) * bound / np.linalg.norm(v, 2))
    assert bool(transforms.in_support("contractive", w, upper=bound))
    # inside the set the map is the identity, so unconstrain/constrain round-trip
    inside = w * 0.7
    raw = transforms.unconstrain("contractive", inside, upper=bound)
    back, _ = transforms.constrain("contractive", raw, upper=bound)
    np.testing.assert_allclose(np.asarray(back), np.asarray(inside), rtol=1e-14)
    assert not bool(transforms.in_support("contractive", v, upper=bound))


def test_contractive_default_bound_and_zero():
    v = jnp.asarray(_random((4, 4), 0) * 5)
    w, _ = transforms.constrain("contractive", v)
    assert np.linalg.norm(np.asarray(w), 2) == pytest.approx(0.9, rel=1e-12)
    zero, _ = transforms.constrain("contractive", jnp.zeros((3, 3)))
    assert np.all(np.asarray(zero) == 0.0)  # no 0 * inf


def _contractive_jvp_closed_form(v, dv, bound):
    """d(V c/σ) = c/σ dV − c V (u₁ᵀ dV v₁)/σ² outside the set (NumPy's SVD)."""
    u, s, vt = np.linalg.svd(v)
    sigma = s[0]
    if sigma <= bound:
        return dv
    dsigma = u[:, 0] @ dv @ vt[0]
    return bound / sigma * dv - bound * v * dsigma / sigma**2


@pytest.mark.parametrize("scale", [0.1, 3.0])  # inside and outside the set
def test_contractive_derivative_matches_finite_differences_and_closed_form(scale):
    bound = 0.8
    v = _random((5, 5), 1) * scale
    dv = _random((5, 5), 2)
    f = lambda x: transforms.constrain("contractive", x, upper=bound)[0]  # noqa: E731
    _, tangent = jax.jvp(f, (jnp.asarray(v),), (jnp.asarray(dv),))
    h = 1e-6
    fd = (np.asarray(f(jnp.asarray(v + h * dv))) - np.asarray(f(jnp.asarray(v - h * dv)))) / (2 * h)
    # central differences: error O(h²)·|f'''| ~ 1e-12 plus rounding 1e-16/h ~ 1e-10
    np.testing.assert_allclose(np.asarray(tangent), fd, atol=1e-8)
    np.testing.assert_allclose(
        np.asarray(tangent), _contractive_jvp_closed_form(v, dv, bound), atol=1e-12
    )


# ---- monotone -------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "margin"), [(1, 0.5), (4, 0.05), (32, 0.5)])
def test_monotone_is_strongly_monotone_and_round_trips(size, margin):
    raw = jnp.asarray(_random((2, size, size), size))
    w, log_jac = transforms.constrain("monotone", raw, lower=margin)
    assert float(log_jac) == 0.0
    w = np.asarray(w)
    sym = np.eye(size) - (w + w.T) / 2
    # λ_min(sym(I − W)) = m + λ_min(AᵀA) >= m, up to rounding of |AᵀA| ~ size
    assert np.linalg.eigvalsh(sym).min() >= margin - 1e-12 * size
    assert bool(transforms.in_support("monotone", jnp.asarray(w), lower=margin))
    back_raw = transforms.unconstrain("monotone", jnp.asarray(w), lower=margin)
    assert back_raw.shape == (2, size, size)
    back, _ = transforms.constrain("monotone", back_raw, lower=margin)
    # eigh-based square root: relative error ~ 1e-13 of the matrix's scale (~ size)
    np.testing.assert_allclose(np.asarray(back), w, atol=1e-12 * size * np.abs(w).max())
    # I itself is not monotone with a margin (sym(I − I) = 0)
    assert not bool(transforms.in_support("monotone", jnp.eye(size), lower=margin))


def test_monotone_derivative_matches_finite_differences_and_closed_form():
    margin = 0.2
    raw = _random((2, 4, 4), 3)
    draw = _random((2, 4, 4), 4)
    f = lambda x: transforms.constrain("monotone", x, lower=margin)[0]  # noqa: E731
    _, tangent = jax.jvp(f, (jnp.asarray(raw),), (jnp.asarray(draw),))
    h = 1e-6
    fd = (np.asarray(f(jnp.asarray(raw + h * draw))) - np.asarray(f(raw - h * draw))) / (2 * h)
    np.testing.assert_allclose(np.asarray(tangent), fd, atol=1e-8)  # as above
    a, b = raw
    da, db = draw
    closed = -(da.T @ a + a.T @ da) + db - db.T  # dW of (1 − m)I − AᵀA + B − Bᵀ
    np.testing.assert_allclose(np.asarray(tangent), closed, atol=1e-13)


def test_shapes_of_the_raw_values():
    assert transforms.unconstrained_shape("contractive", (5, 5)) == (5, 5)
    assert transforms.unconstrained_shape("monotone", (5, 5)) == (2, 5, 5)


# ---- the language ----------------------------------------------------------------------

MODEL = """
data H: int
data x: real[H]
weight W: contractive<bound=0.5>[H, H] init normal(0, 1)
weight M: monotone<margin=0.3>[H] init normal(0, 0.1)
let z = fix z: real[H] = tanh(W @ z + x)
loss sum(square(z - 1)) + sum(square(M))
"""


@pytest.mark.slow
def test_optimize_keeps_the_weights_in_their_sets():
    """Adam at a large rate pulls W towards making z = 1 (impossible with ‖W‖ < 1 and
    |tanh| < 1): W ends on the boundary σ = 0.5, M stays monotone."""
    import optax

    model = fpl.compile(MODEL)
    data = {"H": 3, "x": [0.1, -0.2, 0.3]}
    res = model.optimize(data, optimizer=optax.adam(0.5), steps=60, seed=2, progress=False)
    assert np.linalg.norm(res.weights["W"], 2) <= 0.5 * (1 + 1e-12)
    assert np.linalg.norm(res.weights["W"], 2) == pytest.approx(0.5, rel=1e-6)
    m = res.weights["M"]
    assert np.linalg.eigvalsh(np.eye(3) - (m + m.T) / 2).min() >= 0.3 - 1e-12
    assert np.isfinite(res.loss)


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("param W: contractive[3, 3]", "E0204", "is a weight type"),
        ("data W: monotone[3]", "E0204", "is a weight type"),
        ("weight W: contractive[3, 4] init zeros(3, 4)", "E0202", "square"),
        ("weight W: contractive[3] init zeros(3, 3)", "E0202", "square"),
        ("weight W: monotone[3, 3] init zeros(3, 3)", "E0202", "square"),
        ("weight W: contractive<margin=0.5>[3, 3] init zeros(3, 3)", "E0204", "`bound`"),
        ("weight W: contractive<bound=1.5>[3, 3] init zeros(3, 3)", "E0204", "0 < bound < 1"),
        ("weight W: monotone<margin=0>[3] init zeros(3, 3)", "E0204", "0 < margin <= 1"),
        ("weight W: simplex<lower=0>[3] init zeros(3)", "E0204", "takes no options"),
    ],
)
def test_the_checker_refuses_misuse(text, code, fragment):
    with pytest.raises(FplError) as info:
        fpl.compile(text + "\n")
    assert info.value.code == code
    assert fragment in str(info.value)


@pytest.mark.slow
def test_a_resumed_run_with_a_monotone_weight_is_the_uninterrupted_run(tmp_path):
    """The raw value of `monotone[H]` is (2, H, H), not the weight's shape: the
    checkpoint's optimizer state and raw weights have that shape and resume exactly."""
    import optax

    model = fpl.compile(MODEL)
    data = {"H": 3, "x": [0.1, -0.2, 0.3]}
    kw = dict(optimizer=optax.adam(0.1), seed=4, tol=0, progress=False)
    whole = model.optimize(data, steps=6, **kw)
    ckpt = tmp_path / "run.ckpt"
    model.optimize(data, steps=3, checkpoint=ckpt, **kw)
    resumed = model.optimize(data, steps=6, checkpoint=ckpt, resume=True, **kw)
    for name in ("W", "M"):
        np.testing.assert_array_equal(resumed.weights[name], whole.weights[name])
