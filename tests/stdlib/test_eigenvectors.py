"""eigenvectors_sym's derivative (issue 13): eigh's perturbation rule where eigenvalues
are apart, and the cluster's basis held fixed where they are nearer than sqrt(eps) of the
largest (``fpl.stdlib.functions.linalg._eigh``).

The functions users build from a symmetric decomposition are mostly spectral,
``G = V g(W) V'`` (an inverse, a log-determinant, a square root of a covariance), whose
derivative is Daleckii-Krein's ``dG = Q (g[1] o Q' dA Q) Q'`` with the divided differences
``g[1][i, j] = (g(w_i) - g(w_j)) / (w_i - w_j)`` (``g'(w_i)`` where equal): a closed form
that needs no eigenvector derivative, so an independent route.  Finite differences of a
spectral function are well-conditioned however the eigenvalues cluster."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fpl.stdlib.registry import registry


def _eigen(A):
    functions = registry().functions
    return functions["eigenvalues_sym"].impl(A), functions["eigenvectors_sym"].impl(A)


def _spectral(A, B):
    """tr(B log(A)) through eigenvalues_sym and eigenvectors_sym."""
    w, V = _eigen(A)
    return jnp.sum(B * (V @ jnp.diag(jnp.log(w)) @ V.T))


def _daleckii_krein(Q, w, B, dA):
    """d tr(B log(A)) in the direction dA, from A = Q diag(w) Q' (exact eigenpairs)."""
    gaps = w[:, None] - w[None, :]
    same = np.abs(gaps) < 1e-300
    logs = np.log(w)[:, None] - np.log(w)[None, :]
    divided = np.where(same, 1 / w[:, None], logs / np.where(same, 1.0, gaps))
    return float(np.sum((Q.T @ B @ Q) * divided * (Q.T @ dA @ Q)))


def _problem(w, seed):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(len(w), len(w))))
    B = rng.normal(size=(len(w), len(w)))
    dA = rng.normal(size=(len(w), len(w)))
    return Q, Q @ np.diag(w) @ Q.T, B + B.T, dA + dA.T


def _derivatives(A, B, dA, h):
    """(reverse, forward, central differences) of tr(B log(A)) in the direction dA."""
    f = jax.jit(_spectral)
    reverse = float(jnp.sum(jax.grad(f)(A, B) * dA))
    forward = float(jax.jvp(lambda a: f(a, B), (A,), (dA,))[1])
    central = (float(f(A + h * dA, B)) - float(f(A - h * dA, B))) / (2 * h)
    return reverse, forward, central


def test_apart_it_is_eighs_rule():
    w = np.array([0.5, 1.0, 2.0, 3.5, 5.0])
    Q, A, B, dA = _problem(w, 0)
    with jax.enable_x64(True):
        reverse, forward, central = _derivatives(A, B, dA, 1e-6)
        exact = _daleckii_krein(Q, w, B, dA)
        # float64, eigenvalues >= 0.5 apart: rounding ~1e-14; central differences with
        # h = 1e-6 err by ~h^2 f''' + eps / h ~ 1e-10
        assert reverse == pytest.approx(exact, rel=1e-10)
        assert forward == pytest.approx(exact, rel=1e-10)
        assert central == pytest.approx(exact, rel=1e-7)
        # an eigenvector itself (sign-free: its outer product), against JAX's own rule
        mine = jax.jit(jax.jacfwd(lambda a: jnp.outer(*[_eigen(a)[1][:, 1]] * 2)))(A)
        theirs = jax.jit(jax.jacfwd(lambda a: jnp.outer(*[jnp.linalg.eigh(a)[1][:, 1]] * 2)))(A)
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_clustered_it_is_the_derivative_of_spectral_functions():
    # two eigenvalues 3e-12 apart (eigenvectors fixed by A to ~eps |A| / gap ~ 1e-3),
    # and a direction that moves the cluster as a whole (its block in the eigenbasis a
    # multiple of the identity) and couples it to the rest: the case of a kernel's
    # variance or jitter; the rule is then exact (the module's docstring)
    w = np.array([0.5, 1.0, 3.0, 3.0 + 3e-12, 5.0])
    Q, A, B, dA = _problem(w, 1)
    block = Q.T @ dA @ Q
    block[2:4, 2:4] = 0.7 * np.eye(2)
    dA = Q @ block @ Q.T
    with jax.enable_x64(True):
        reverse, forward, central = _derivatives(A, B, dA, 1e-5)
        exact = _daleckii_krein(Q, w, B, dA)
        # the computed eigenvectors carry ~1e-4 of rounding inside the cluster, but a
        # spectral function does not see the cluster's rotation: rounding ~1e-13;
        # central differences of a smooth function, h = 1e-5: ~1e-9 relative
        assert reverse == pytest.approx(exact, rel=1e-9)
        assert forward == pytest.approx(exact, rel=1e-9)
        assert central == pytest.approx(exact, rel=1e-7)


def test_equal_eigenvalues_have_a_finite_derivative():
    # A = 2 I: eigh's rule divides by zero gaps (NaN).  Held fixed, the basis gives the
    # exact derivative in a shift dA = c I: tr(B log(A)) moves by c tr(B) / 2 (g'(2) = 1/2)
    B = np.random.default_rng(2).normal(size=(4, 4))
    B = B + B.T
    with jax.enable_x64(True):
        grad = jax.jit(jax.grad(_spectral))(2.0 * np.eye(4), B)
        assert np.all(np.isfinite(grad))
        assert float(jnp.sum(grad * 0.3 * np.eye(4))) == pytest.approx(
            0.3 * np.trace(B) / 2, rel=1e-12
        )
        jax_rule = jax.jit(jax.grad(lambda a: jnp.linalg.eigh(a)[1][0, 0]))(2.0 * np.eye(4))
        assert not np.all(np.isfinite(jax_rule))  # what the rule replaces
