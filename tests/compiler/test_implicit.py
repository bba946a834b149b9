"""Implicit nodes end to end: derivatives of every order and mode, vmap, nesting,
non-convergence, the backward modes, and the LANGUAGE.md §5 programs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler import ir
from fpl.compiler.implicit import free_names
from fpl.compiler.lower import from_constrained, run

RNG = np.random.default_rng(3)
N = 3
A = RNG.normal(size=(N, N))
A = 0.8 * A / np.linalg.norm(A, 2)
U = RNG.normal(size=N)
WT = RNG.normal(size=N)

CALIB = """
data n: int
data A: real[n, n]
data u: real[n]
data wt: real[n]
param a: real
param b: real
let x = fix x: real[n] = tanh(a * (A @ x) + b * u) OPTS
out res = x.residual
out its = x.iterations
target += sum(wt * x)
"""
DATA = {"n": N, "A": A, "u": U, "wt": WT}


def calib(opts=""):
    model = fpl.compile(CALIB.replace("OPTS", opts))
    return lambda a, b: model.log_density({"a": a, "b": b}, DATA)


def reference(a, b):
    x = np.zeros(N)
    for _ in range(400):  # contraction <= 0.8 a < 0.8: round-off after 400 steps
        x = np.tanh(a * (A @ x) + b * U)
    return WT @ x


def test_free_names_are_the_body_references():
    model = fpl.compile(CALIB.replace("OPTS", ""))
    (node,) = model.ir.implicit_nodes
    assert free_names(node) == {"a", "b", "A", "u"}


def test_value_gradient_and_hessian_against_finite_differences():
    f = jax.jit(calib())
    a, b = 0.7, 0.4
    # the solve stops at residual <= 1e-8 * max(1, |x|), so x is within ~1e-8 / (1 - rho)
    # of the fixed point; the log density's slope in x is |y - x| / 0.1^2 ~ 10-100 per
    # component (n of them): 1e-6 bounds the value's error
    assert float(f(a, b)) == pytest.approx(reference(a, b), abs=1e-6)
    # Central differences in float64 with h = 1e-4: truncation ~h^2 ~ 1e-8, round-off
    # ~1e-16 / h; the reference is exact to round-off, so rel 1e-6 is safe.
    h = 1e-4
    fd_a = (reference(a + h, b) - reference(a - h, b)) / (2 * h)
    fd_b = (reference(a, b + h) - reference(a, b - h)) / (2 * h)
    g = jax.grad(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(g, [fd_a, fd_b], rtol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(f, argnums=(0, 1))(a, b), g, rtol=1e-10)
    # Hessian (jacfwd of jacrev) against central differences of the reference's
    # second differences (h = 1e-3: error ~h^2 + 1e-16/h^2 ~ 1e-6, relative 1e-4).
    H = np.array(jax.hessian(f, argnums=(0, 1))(a, b))
    h = 1e-3
    faa = (reference(a + h, b) - 2 * reference(a, b) + reference(a - h, b)) / h**2
    fab = (
        reference(a + h, b + h)
        - reference(a + h, b - h)
        - reference(a - h, b + h)
        + reference(a - h, b - h)
    ) / (4 * h * h)
    np.testing.assert_allclose([H[0, 0], H[0, 1], H[1, 0]], [faa, fab, fab], rtol=1e-4)


def test_matches_unrolled_and_approximate_modes():
    a, b = 0.7, 0.4
    g = jax.grad(jax.jit(calib()), argnums=(0, 1))(a, b)
    # Differentiating through the iterations of a contraction: the loop derivative
    # converges to the implicit one geometrically, at the rate of the iterates, so
    # with the loop stopped at tol=1e-12 both agree to ~1e-11.
    unrolled = calib("with iterate(tol=1e-12, max_iter=300) grad=unrolled")
    np.testing.assert_allclose(jax.grad(jax.jit(unrolled), argnums=(0, 1))(a, b), g, rtol=1e-7)
    # phantom(k) is the Neumann series truncated at k terms: error ~ rho^k with rho the
    # spectral radius of df/dz (< 0.56 here), so k = 40 is exact to ~1e-10.
    phantom = calib("grad=phantom(k=40)")
    np.testing.assert_allclose(jax.grad(jax.jit(phantom), argnums=(0, 1))(a, b), g, rtol=1e-8)
    # onestep ignores df/dz: a different (approximate) gradient, but finite.
    one = jax.grad(jax.jit(calib("grad=onestep")), argnums=(0, 1))(a, b)
    assert np.all(np.isfinite(one)) and not np.allclose(one, g, rtol=1e-3)


def test_vmap_over_params():
    f = calib()
    a = jnp.array([0.2, 0.5, 0.7])
    b = jnp.array([0.4, -1.0, 2.0])
    values = jax.jit(jax.vmap(f))(a, b)
    np.testing.assert_allclose(values, [reference(*p) for p in zip(a, b)], atol=1e-8)
    grads = jax.jit(jax.vmap(jax.grad(f)))(a, b)
    h = 1e-4  # central differences of the reference (see above for the tolerance)
    fd = [(reference(x + h, y) - reference(x - h, y)) / (2 * h) for x, y in zip(a, b)]
    np.testing.assert_allclose(grads, fd, rtol=1e-6)


def test_stats_are_readable_in_the_language():
    model = fpl.compile(CALIB.replace("OPTS", "with iterate(tol=1e-10)"))
    out = model.constrain({"a": 0.7, "b": 0.4}, DATA)
    assert 0 < int(out["its"]) < 500
    assert 0 <= float(out["res"]) <= 1e-10


def test_non_convergence_gives_nan_and_unconverged_stats():
    model = fpl.compile(CALIB.replace("OPTS", "with iterate(max_iter=2)"))
    b = model.bind(DATA)
    res = run(b.program, {**b.static, **b.data}, from_constrained({"a": 0.7, "b": 0.4}))
    (stats,) = res.solver_stats.values()
    assert not bool(stats["converged"])
    assert int(stats["iterations"]) == 2
    assert float(res.target) == -np.inf  # the sampler rejects the point
    assert int(res.solver_failures) == 1
    assert np.all(np.isnan(res.env["x"]))


NESTED = """
data n: int
data A: real[n, n]
data wt: real[n]
param c: real
let z = fix z: real[n] = 0.5 * tanh(A @ z + (root s: real of s * s * s - c init 1.0))
target += sum(wt * z)
"""


def test_nested_nodes():
    model = fpl.compile(NESTED)
    data = {"n": N, "A": A, "wt": WT}

    def ref(c):
        s = np.cbrt(c)
        z = np.zeros(N)
        for _ in range(200):
            z = 0.5 * np.tanh(A @ z + s)
        return WT @ z

    f = jax.jit(lambda c: model.log_density({"c": c}, data))
    c = 2.0
    assert float(f(c)) == pytest.approx(ref(c), abs=1e-8)
    h = 1e-4
    fd = (ref(c + h) - ref(c - h)) / (2 * h)
    assert float(jax.grad(f)(c)) == pytest.approx(fd, rel=1e-6)
    b = model.bind(data)
    res = run(b.program, {**b.static, **b.data}, from_constrained({"c": c}))
    assert len(res.solver_stats) == 2
    assert all(bool(s["converged"]) for s in res.solver_stats.values())


def test_singular_tangent_is_nan_not_wrong():
    # F(z, c) = c (z - z) vanishes everywhere: every z is a root (the initial one is
    # returned, converged) but dF/dz = 0, so the IFT does not apply; the tangent solve
    # fails its residual check and the gradient is NaN rather than some number, in
    # reverse and forward mode.  (Newton is named: with no solver this affine body
    # would get the direct solve, which reports the singular system as a failed
    # forward solve; see test_implicit_affine.py.)
    model = fpl.compile(
        "param c: real\nlet z = root z: real of c * (z - z) with newton()\ntarget += z\n"
    )
    f = lambda c: model.log_density({"c": c})  # noqa: E731
    assert float(f(1.0)) == 0.0  # the forward solve itself converged (at init 0)
    assert np.isnan(float(jax.grad(f)(1.0)))
    assert np.isnan(float(jax.jacfwd(f)(1.0)))


def test_fix_with_unit_jacobian_has_nan_gradient():
    # f(z) = z + 0 * c: every z is a fixed point, I - df/dz = 0 is singular; the
    # backward solve fails its check and reports NaN, never a silent zero
    model = fpl.compile(
        "param c: real\nlet z = fix z: real = z + 0 * c with iterate()\ntarget += z\n"
    )
    assert np.isnan(float(jax.grad(lambda c: model.log_density({"c": c}))(1.0)))


def test_large_unknown_uses_matrix_free_solves():
    # n = 250 > DENSE_MAX: Newton's step and the tangent solve both go through GMRES.
    model = fpl.compile(
        "data n: int\n"
        "data wt: real[n]\n"
        "param c: real\n"
        "let z = root z: real[n] of z + 0.1 * sin(z) - c * wt\n"
        "target += sum(wt * z)\n"
    )
    wt = np.linspace(-1, 1, 250)
    data = {"n": 250, "wt": wt}
    f = jax.jit(lambda c: model.log_density({"c": c}, data))
    # dz_i/dc = wt_i / (1 + 0.1 cos z_i)
    b = model.bind(data)
    res = run(b.program, {**b.static, **b.data}, from_constrained({"c": 0.5}))
    z = np.asarray(res.env["z"])
    np.testing.assert_allclose(z + 0.1 * np.sin(z), 0.5 * wt, atol=1e-8)
    expected = np.sum(wt * wt / (1 + 0.1 * np.cos(z)))
    assert float(jax.grad(f)(0.5)) == pytest.approx(expected, rel=1e-7)


# ---- the LANGUAGE.md §5 programs --------------------------------------------------------


def weight_density(bound, weights):
    """The log density as a function of traced weights (Model.log_density converts
    given weights with np.asarray, so it cannot be differentiated in them)."""
    env = {**bound.static, **bound.data, **weights}
    return run(bound.program, env, from_constrained({})).target


def test_calibration_program():
    model = fpl.compile(
        """
data n: int
data A: real[n, n]            # spectral norm < 1
data u: real[n]
data y: real[n]
param a: real<lower=0> ~ lognormal(0, 0.5)
param b ~ normal(0, 1)
let x = fix x: real[n] = tanh(a * (A @ x) + b * u)
y ~ normal(x, 0.1)
"""
    )
    data = {"n": N, "A": A, "u": U, "y": 0.3 * WT}
    f = jax.jit(lambda p: model.log_density(p, data))
    p = {"a": jnp.array(0.8), "b": jnp.array(0.3)}
    assert np.isfinite(float(f(p)))
    g = jax.grad(f)(p)
    assert all(np.isfinite(float(v)) for v in g.values())


def test_deq_program():
    model = fpl.compile(
        """
data N: int
data D: int
data K: int
data X: real[N, D]
data label: int<lower=1, upper=K>[N]
weight U: real[D, 32] init normal(0, 0.1)
weight W: real[32, 32] init normal(0, 0.05)
weight V: real[32, K] init normal(0, 0.1)
let Z = fix Z: real[N, 32] = tanh(Z @ W + X @ U) with anderson(memory=5)
label ~ categorical_logit(Z @ V)
"""
    )
    data = {"N": 6, "D": 2, "K": 3, "X": RNG.normal(size=(6, 2)), "label": [1, 2, 3, 1, 2, 3]}
    b = model.bind(data)
    weights = b.weights
    f = jax.jit(lambda w: weight_density(b, w))
    assert np.isfinite(float(f(weights)))
    g = jax.grad(f)(weights)
    assert all(np.all(np.isfinite(v)) for v in g.values())


def test_bilevel_program():
    model = fpl.compile(
        """
data n: int
data d: int
data Xtr: real[n, d]
data ytr: real[n]
data Xval: real[n, d]
data yval: real[n]
weight log_lam: real init 0.0
let w = argmin w: real[d] of sum(square(Xtr @ w - ytr)) + exp(log_lam) * dot_self(w)
loss mean(square(Xval @ w - yval))
"""
    )
    Xtr, Xval = RNG.normal(size=(10, 3)), RNG.normal(size=(10, 3))
    ytr, yval = RNG.normal(size=10), RNG.normal(size=10)
    data = {"n": 10, "d": 3, "Xtr": Xtr, "ytr": ytr, "Xval": Xval, "yval": yval}

    def closed(log_lam):
        lam = jnp.exp(log_lam)
        w = jnp.linalg.solve(Xtr.T @ Xtr + lam * jnp.eye(3), Xtr.T @ ytr)
        return -jnp.mean(jnp.square(Xval @ w - yval))

    b = model.bind(data)
    f = jax.jit(lambda ll: weight_density(b, {"log_lam": ll}))
    assert float(f(0.3)) == pytest.approx(float(closed(0.3)), abs=1e-9)
    assert float(jax.grad(f)(0.3)) == pytest.approx(float(jax.grad(closed)(0.3)), rel=1e-6)


def test_ir_node_is_implicit():
    model = fpl.compile(CALIB.replace("OPTS", ""))
    assert isinstance(model.ir.implicit_nodes[0], ir.Implicit)
