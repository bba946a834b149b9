"""Affine bodies: detected on the IR and lowered to one direct linear solve."""

import jax
import numpy as np
import pytest

import fpl
from fpl.compiler.implicit import direct, is_affine
from fpl.compiler.lower import from_constrained, run

RNG = np.random.default_rng(11)
N = 3
A = RNG.normal(size=(N, N))
A = 0.6 * A / np.linalg.norm(A, 2)
U = RNG.normal(size=N)
DATA = {"n": N, "A": A, "u": U}
HEAD = "data n: int\ndata A: real[n, n]\ndata u: real[n]\nparam c: real\n"

AFFINE = [
    "fix z: real[n] = 0.5 * (A @ z) + c * u",
    "fix z: real[n] = A @ z / 2 - sum(z) * u / 4 + c * u",
    "fix z: real[n] = c > 0 ? A @ z + u : -(A @ z)",
    "root z: real[n] of transpose(A) @ z + 2 * z - c * u",
    "root z: real[n] of append_row(z[1:2] * 3, z[3] - c) - u",
    "argmin z: real[n] of dot_self(A @ z - u) + c * c * dot_self(z) + sum(z)",
    "argmin z: real[n] of sum(square(z - u)) + pow(z[1], 2)",
]
NOT_AFFINE = [
    "fix z: real[n] = tanh(A @ z) + c * u",
    "fix z: real[n] = 0.5 * z * z + c * u",  # a product of two factors with z
    "fix z: real[n] = z / (1 + c * c) + u / sum(z)",  # z in a denominator
    "fix z: real[n] = sum(z) > 0 ? 0.5 * z : u",  # the branch depends on z
    "root z: real[n] of z ^ 3 - c * u",
    "root z: real[n] of pow(z, c) - u",  # a non-constant exponent
    "argmin z: real[n] of dot_self(z) * dot_self(z) + c * sum(z)",  # quartic
    "argmin z: real[n] of sum(exp(z)) - c * sum(z)",
]


def node_of(body):
    return fpl.compile(HEAD + f"let z = {body}\ntarget += sum(z)\n").ir.implicit_nodes[0]


@pytest.mark.parametrize("body", AFFINE)
def test_affine_bodies_are_detected(body):
    node = node_of(body)
    assert is_affine(node) and direct(node)


@pytest.mark.parametrize("body", NOT_AFFINE)
def test_nonaffine_bodies_are_not(body):
    assert not is_affine(node_of(body))


def test_named_solver_or_unrolled_keeps_the_iteration():
    assert not direct(node_of(AFFINE[0] + " with iterate()"))
    assert not direct(node_of(AFFINE[0] + " grad=unrolled"))


def test_user_function_is_analysed_through():
    src = HEAD + "fn lin(v, s) = 0.5 * (A @ v) + s * u\nfn sq(v) = v * v\n"
    affine = fpl.compile(src + "let z = fix z: real[n] = lin(z, c)\ntarget += sum(z)\n")
    assert is_affine(affine.ir.implicit_nodes[0])
    nonlin = fpl.compile(src + "let z = fix z: real[n] = lin(sq(z), c)\ntarget += sum(z)\n")
    assert not is_affine(nonlin.ir.implicit_nodes[0])


def stats_and_value(body, c):
    model = fpl.compile(HEAD + f"let z = {body}\ntarget += sum(u * z)\n")
    b = model.bind(DATA)
    res = run(b.program, {**b.static, **b.data}, from_constrained({"c": c}))
    (stats,) = res.solver_stats.values()
    return model, res, stats


def test_affine_fix_gives_the_closed_form_in_one_step():
    model, res, stats = stats_and_value(AFFINE[0], 0.7)
    z = np.linalg.solve(np.eye(N) - 0.5 * A, 0.7 * U)
    # one LU solve plus a refinement step: exact to round-off (cond(I - A/2) < 2)
    np.testing.assert_allclose(res.env["z"], z, rtol=1e-13, atol=1e-14)
    assert int(stats["iterations"]) == 1 and bool(stats["converged"])
    assert float(stats["residual"]) < 1e-14  # measured, not assumed
    # dz/dc = (I - A/2)^{-1} u by the implicit route, forward and reverse
    f = lambda c: model.log_density({"c": c}, DATA)  # noqa: E731
    expected = U @ np.linalg.solve(np.eye(N) - 0.5 * A, U)
    assert float(jax.grad(f)(0.7)) == pytest.approx(expected, rel=1e-12)
    assert float(jax.jacfwd(f)(0.7)) == pytest.approx(expected, rel=1e-12)


def test_affine_argmin_and_root_closed_forms():
    _, res, stats = stats_and_value(AFFINE[5], 0.5)
    H = A.T @ A + 0.25 * np.eye(N)  # gradient 2 A'(A z - u) + 2 c^2 z + 1 = 0
    np.testing.assert_allclose(res.env["z"], np.linalg.solve(H, A.T @ U - 0.5), rtol=1e-11)
    assert int(stats["iterations"]) == 1
    _, res, _ = stats_and_value(AFFINE[3], 0.5)
    np.testing.assert_allclose(
        res.env["z"], np.linalg.solve(A.T + 2 * np.eye(N), 0.5 * U), rtol=1e-12
    )


def test_singular_affine_root_and_concave_argmin_are_failed_solves():
    # F(z) = c (z - z): the matrix is zero, no unique root -> reported as not converged
    _, res, stats = stats_and_value("root z: real[n] of c * (z - z) + u", 1.0)
    assert not bool(stats["converged"]) and float(res.target) == -np.inf
    # a concave quadratic has no minimum: the Hessian is not positive definite
    _, res, stats = stats_and_value("argmin z: real[n] of -dot_self(z) + c * sum(z)", 1.0)
    assert not bool(stats["converged"]) and float(res.target) == -np.inf


def test_large_affine_unknown_goes_through_krylov():
    model = fpl.compile(
        "data n: int\ndata wt: real[n]\nparam c: real\n"
        "let z = root z: real[n] of 3 * z + cumulative_sum(z) / n - c * wt\n"
        "target += sum(wt * z)\n"
    )
    n = 250  # > DENSE_MAX
    wt = np.linspace(-1, 1, n)
    M = 3 * np.eye(n) + np.tril(np.ones((n, n))) / n
    b = model.bind({"n": n, "wt": wt})
    res = run(b.program, {**b.static, **b.data}, from_constrained({"c": 0.5}))
    # GMRES to 1e-12 relative on a well-conditioned (cond ~ 1.3) system
    np.testing.assert_allclose(res.env["z"], np.linalg.solve(M, 0.5 * wt), atol=1e-10)
    assert int(res.solver_stats[1]["iterations"]) == 1
