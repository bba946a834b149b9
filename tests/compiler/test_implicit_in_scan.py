"""Second derivatives through an implicit node inside ``fold``/``scan`` (``lax.scan``).

JAX's linearised scan re-traces its primal body to hoist loop-invariant residuals and,
there, inlines a ``custom_jvp`` whose inputs vary along the loop without its rule
(``fpl.compiler.implicit_derivatives.make_attach``); the Hessian of such a model was
wrong (not even symmetric) while its gradient was right.  Each model below has a
``root``/``fix``/``argmin`` in a loop body whose solution has a closed form, and the
same model written with the closed form is the independent route: values, gradients,
Hessians and Hessian-vector products agree to 1e-8 (the solves converge to ~1e-10 and
more, and the IFT derivative is exact at the solution), and the Hessian agrees with
central differences of the gradient (step 1e-5: truncation ~1e-10, rounding
~eps/h ~1e-11, times the entries' size ~1: 1e-6 leaves room for both).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import fpl

jax.config.update("jax_enable_x64", True)

HEAD = """
param a ~ normal(0, 1)
param b: real<lower=0> ~ normal(0, 1)
"""

#: (name, loop and target, the node of g's body, its closed form): z solves the node.
CASES = [
    (  # the reported model: an affine root (one direct solve) in fold
        "fold-root",
        "let y = fold(g, a, [1.0, 2.0])\ntarget += -0.5 * y^2",
        "(root z: real of z * (2 + b) - v init 0.0)",
        "(v / (2 + b))",
    ),
    (  # a nonlinear root (an iterative solver) in scan: exp(z) (2 + b) = exp(v)
        "scan-root",
        "let ys = scan(g, a, [1.0, 2.0, 0.5])\ntarget += -0.5 * sum(square(ys)) + ys[3]",
        "(root z: real of exp(z) * (2 + b) - exp(v) init 0.0)",
        "(v - log(2 + b))",
    ),
    (  # a contraction's fixed point in fold
        "fold-fix",
        "let y = fold(g, a, [1.0, 2.0])\ntarget += -0.5 * y^2 + sin(y)",
        "(fix z: real = 0.5 * z + 0.5 * v / (2 + b) init 0.0)",
        "(v / (2 + b))",
    ),
    (  # a minimiser in scan: (2 + b) z = v
        "scan-argmin",
        "let ys = scan(g, a, [1.0, 2.0])\ntarget += -0.5 * sum(square(ys))",
        "(argmin z: real of 0.5 * (2 + b) * z^2 - v * z)",
        "(v / (2 + b))",
    ),
]


def _model(loop: str, node: str):
    source = f"{HEAD}fn g(v, t) = {node} + a * v * t\n{loop}\n"
    return fpl.compile(source).bind({})


def _derivatives(cm, theta, v):
    lp, grad, hess = jax.jit(cm.log_density_hessian)(theta)
    _, hv = jax.jit(cm.log_density_hessian_vector_product)(theta, v)
    return float(lp), np.asarray(grad), np.asarray(hess), np.asarray(hv)


@pytest.mark.parametrize("name,loop,node,closed", CASES, ids=[c[0] for c in CASES])
def test_hessian_through_a_node_in_a_loop(name, loop, node, closed):
    implicit, reference = _model(loop, node), _model(loop, closed)
    theta = np.array([0.3, -0.4])
    v = np.array([0.7, -1.3])
    lp, grad, hess, hv = _derivatives(implicit, theta, v)
    lp_ref, grad_ref, hess_ref, hv_ref = _derivatives(reference, theta, v)
    assert lp == pytest.approx(lp_ref, rel=1e-8, abs=1e-8)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(hess, hess_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(hv, hv_ref, rtol=1e-8, atol=1e-8)
    assert np.abs(hess_ref - np.diag(np.diag(hess_ref))).max() > 1e-3  # a coupled case
    h = 1e-5
    gradient = jax.jit(jax.vmap(lambda t: implicit.log_density_gradient(t)[1]))
    steps = np.eye(theta.size)
    fd = (np.asarray(gradient(theta + h * steps)) - np.asarray(gradient(theta - h * steps))) / (
        2 * h
    )
    np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(hess, hess.T, atol=1e-10)


def test_a_function_called_before_the_loop_is_corrected_inside_it():
    """A user function's body is traced once per signature and shared between calls
    (compiler/lower_calls.py): one called at the top level first, then again inside
    fold's body, must be traced again there with the loop correction, not reuse the
    top-level trace (which has none, so the Hessian through the loop would be wrong)."""
    inv = "fn inv(v) = root z: real of z * (2 + b) - v init 0.0\n"
    closed = "fn inv(v) = v / (2 + b)\n"
    body = (
        "fn g(v, t) = inv(v) + a * v * t\n"
        "let first = inv(a)\n"  # the top-level call, traced first
        "let y = fold(g, a, [1.0, 2.0])\ntarget += -0.5 * y^2 + first\n"
    )
    implicit = fpl.compile(HEAD + inv + body).bind({})
    reference = fpl.compile(HEAD + closed + body).bind({})
    theta, v = np.array([0.3, -0.4]), np.array([0.7, -1.3])
    _, grad, hess, hv = _derivatives(implicit, theta, v)
    _, grad_ref, hess_ref, hv_ref = _derivatives(reference, theta, v)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(hess, hess_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(hv, hv_ref, rtol=1e-8, atol=1e-8)
