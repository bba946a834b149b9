"""The minimum-norm implicit gradient (``grad=lstsq``) on Sinkhorn's fixed point.

In the potentials' form, g = eps log b - eps log(K' (a / (K exp(g / eps)))) with
K = exp(-C / eps): every g + c is a fixed point too (a one-dimensional gauge), so
I - dT/dg is singular along the ones vector and the plain implicit gradient has no
unique answer. The transport cost sum(P .* C), P = diag(u) K diag(exp(g / eps)), is
gauge-invariant, so its derivative is well defined; ``grad=lstsq`` must give it, and it
is compared with the unrolled gradient of many Sinkhorn iterations (an independent
route, plain JAX) and with central finite differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl

RNG = np.random.default_rng(7)
N, M = 4, 5
A = RNG.uniform(0.5, 1.5, size=N)
A /= A.sum()
B = RNG.uniform(0.5, 1.5, size=M)
B /= B.sum()
C0 = RNG.uniform(size=(N, M))
D = RNG.uniform(size=(N, M))
EPS = 0.5
S = 0.3

SRC = """
data n: int
data m: int
data a: real[n]
data b: real[m]
data C0: real[n, m]
data D: real[n, m]
data eps: real
param s ~ normal(0, 1)
let C = C0 + s * D
let K = exp(-C / eps)
let g = fix g: real[m] = eps * log(b) - eps * log(K' @ (a ./ (K @ exp(g / eps)))) GRAD
let v = exp(g / eps)
let u = a ./ (K @ v)
out cost = dot_product(u, (K .* C) @ v)
"""
SOLVER = "with iterate(tol=1e-13, max_iter=5000)"
DATA = {"n": N, "m": M, "a": A, "b": B, "C0": C0, "D": D, "eps": EPS}


def unrolled_cost(s, steps=3000):
    """The same cost after ``steps`` plain Sinkhorn sweeps, differentiable by JAX."""
    C = C0 + s * D
    K = jnp.exp(-C / EPS)

    def sweep(_, g):
        return EPS * jnp.log(B) - EPS * jnp.log(K.T @ (A / (K @ jnp.exp(g / EPS))))

    g = jax.lax.fori_loop(0, steps, sweep, jnp.zeros(M))
    v = jnp.exp(g / EPS)
    u = A / (K @ v)
    return jnp.dot(u, (K * C) @ v)


def model_cost(grad):
    cm = fpl.compile(SRC.replace("GRAD", grad)).bind(DATA)
    return jax.jit(lambda s: cm.constrain(jnp.reshape(s, (1,)))["cost"])


def test_the_fixed_point_has_a_gauge():
    # I - dT/dg at the solution has a zero singular value along the ones vector
    with jax.enable_x64(True):
        C = C0 + S * D
        K = jnp.exp(-C / EPS)

        def T(g):
            return EPS * jnp.log(B) - EPS * jnp.log(K.T @ (A / (K @ jnp.exp(g / EPS))))

        g = jax.lax.fori_loop(0, 3000, lambda _, g: T(g), jnp.zeros(M))
        J = np.eye(M) - np.asarray(jax.jacfwd(T)(g))
    sv = np.linalg.svd(J, compute_uv=False)
    assert sv[-1] < 1e-12 * sv[0] and sv[-2] > 1e-3
    np.testing.assert_allclose(J @ np.ones(M), 0.0, atol=1e-12)


def test_lstsq_gives_the_gauge_invariant_gradient():
    with jax.enable_x64(True):
        lstsq = model_cost(SOLVER + " grad=lstsq")
        s = jnp.asarray(S)
        value = float(lstsq(s))
        gradient = float(jax.grad(lstsq)(s))
        reference_value = float(unrolled_cost(s))
        reference = float(jax.grad(unrolled_cost)(s))
        h = 1e-5
        fd = (float(lstsq(s + h)) - float(lstsq(s - h))) / (2 * h)
    # 3000 sweeps contract far below round-off (the rate is ~0.5 per sweep here)
    assert value == pytest.approx(reference_value, rel=1e-12)
    assert np.isfinite(gradient)
    # the implicit and the unrolled derivatives agree to the solve's 1e-13 tolerance
    # amplified by the conditioning of the gauge-free part (sigma_min ~ 1e-1): 1e-9
    assert gradient == pytest.approx(reference, rel=1e-9)
    # central differences: O(h^2) truncation and 1e-16 / h round-off
    assert gradient == pytest.approx(fd, rel=1e-7)


def test_the_potentials_tangent_is_the_minimum_norm_one():
    # the potentials themselves are gauge-dependent: their tangent is defined up to a
    # multiple of ones; lstsq's is the one orthogonal to ones, i.e. the unrolled
    # tangent (whose gauge the starting point fixes) projected off the ones vector. Reverse
    # mode of a gauge-dependent output has an inconsistent adjoint system: NaN, not an
    # arbitrary number.
    cm = fpl.compile(SRC.replace("GRAD", SOLVER + " grad=lstsq") + "out potential = g\n")
    cm = cm.bind(DATA)

    def unrolled_potential(s, steps=3000):
        K = jnp.exp(-(C0 + s * D) / EPS)

        def sweep(_, g):
            return EPS * jnp.log(B) - EPS * jnp.log(K.T @ (A / (K @ jnp.exp(g / EPS))))

        return jax.lax.fori_loop(0, steps, sweep, jnp.zeros(M))

    with jax.enable_x64(True):
        potential = jax.jit(lambda s: cm.constrain(jnp.reshape(s, (1,)))["potential"])
        s = jnp.asarray(S)
        tangent = np.asarray(jax.jvp(potential, (s,), (jnp.ones(()),))[1])
        reference = np.asarray(jax.jvp(unrolled_potential, (s,), (jnp.ones(()),))[1])
        adjoint = float(jax.grad(lambda s: potential(s)[0])(s))
    projected = reference - reference.mean()
    # the tangent's size is ~0.2; the solve's 1e-13 residual bounds its error: 1e-9
    np.testing.assert_allclose(tangent, projected, atol=1e-9)
    assert abs(tangent.sum()) < 1e-10
    assert np.isnan(adjoint)


@pytest.mark.parametrize("n", [8, 80])  # dense pseudo-inverse / matrix-free CG (n > 64)
def test_the_least_squares_solve_is_the_minimum_norm_one(n):
    from fpl.compiler.implicit_derivatives import least_squares_solve as _least_squares

    rng = np.random.default_rng(n)
    # rank n - 1: I - P with P a stochastic-like matrix fixing the ones vector
    Q = rng.uniform(size=(n, n))
    Q /= Q.sum(axis=1, keepdims=True)
    A = np.eye(n) - 0.5 * (Q + np.eye(n))  # A @ ones = 0; the other eigenvalues > 0
    rhs = A @ rng.normal(size=n)  # consistent
    inconsistent = rhs + 0.1 * np.ones(n)  # a component off the range (left null vector)
    with jax.enable_x64(True):
        x, ok = _least_squares(lambda v: jnp.asarray(A) @ v, jnp.asarray(rhs))
        _, bad = _least_squares(lambda v: jnp.asarray(A) @ v, jnp.asarray(inconsistent))
    # the pseudo-inverse solution; CG stops at relative residual 1e-10 (GMRES_TOL), and
    # A's nonzero singular values are >= ~1e-2 here: 1e-7 absolute
    np.testing.assert_allclose(np.asarray(x), np.linalg.pinv(A) @ rhs, atol=1e-7)
    assert bool(ok) and not bool(bad)
