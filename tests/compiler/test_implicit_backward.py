"""Failed backward solves: where an implicit node's forward solve converged but the linear
solve of its gradient fails (∂R/∂z singular at the solution), the gradient is NaN (never
a silent zero) and the failure is reported to the host, counted per node like a failed
forward solve: by NUTS (``Fit.gradient_failures``, the summary) and by ``optimize``
(E0411 naming the node and step, or counted with ``on_failure="skip"``)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fpl
from fpl.compiler import reporting
from fpl.dsl.diagnostics import FplError
from fpl.runtime.optimize import load_result

# x^3 = c: Newton from 0 stops at once for c = 0 (residual exactly 0), where the Jacobian
# 3 x^2 is exactly 0; for c > 0 the root is c^(1/3) and dx/dc = 1 / (3 c^(2/3)).
CUBIC = """
param c: real
let x = root x: real of x * x * x - c init 0.0 with newton()
target += x
"""
# every z is a fixed point of f(z) = z: I - df/dz = 0 (an eigenvalue exactly 1)
UNIT = """
param c: real
let x = fix x: real = x + 0 * c with iterate()
target += x
"""
# f(x) = x + 1 has no fixed point (the forward solve fails) and I - df/dz = 0 as well
NO_FIXED_POINT = """
param c: real
let x = fix x: real = x + 1 + 0 * c with iterate(max_iter=5)
target += x
"""


@pytest.fixture
def hits():
    """Node ids of the failed backward solves reported while the test runs."""
    with reporting.collecting() as events:
        yield events.recent_backward  # appended to in place as failures arrive


def _grad_fns(src):
    model = fpl.compile(src)
    f = lambda c: model.log_density({"c": c})  # noqa: E731
    return model, f


@pytest.mark.parametrize("src", [CUBIC, UNIT], ids=["root-singular", "fix-unit-eigenvalue"])
def test_reverse_and_forward_mode_count_the_failure(src, hits):
    model, f = _grad_fns(src)
    assert float(jax.jit(f)(0.0)) == 0.0  # the forward solve converged: a finite density
    # the gradient is NaN, never a silent zero
    assert np.isnan(float(jax.jit(jax.grad(f))(0.0)))
    jax.effects_barrier()
    assert hits == [1]  # one transpose (adjoint) solve, of node #1
    assert np.isnan(float(jax.jit(jax.jacfwd(f))(0.0)))
    jax.effects_barrier()
    assert hits == [1, 1]  # one tangent solve


def test_healthy_node_counts_nothing_and_values_are_unchanged(hits):
    _, f = _grad_fns(CUBIC)
    rev, fwd, f = jax.jit(jax.grad(f)), jax.jit(jax.jacfwd(f)), jax.jit(f)
    for c in (1.0, 2.0, 0.3):
        want = 1 / (3 * c ** (2 / 3))  # dx/dc of x = c^(1/3)
        # rel 1e-7: the implicit gradient is exact at the computed x, which meets the
        # default tol 1e-8 on |x^3 - c|: x is within ~1e-8 / (3 x^2) of c^(1/3), and
        # 1 / (3 x^2) inherits twice that relative error
        assert float(rev(c)) == pytest.approx(want, rel=1e-7)
        assert float(fwd(c)) == pytest.approx(want, rel=1e-7)
        # central difference, h = 1e-5: truncation ~h^2 |x'''| ~ 1e-10, rounding ~1e-11
        fd = (float(f(c + 1e-5)) - float(f(c - 1e-5))) / 2e-5
        assert float(rev(c)) == pytest.approx(fd, rel=1e-7)
    jax.effects_barrier()
    assert hits == []


def test_vmap_and_jit_count_each_failed_element(hits):
    _, f = _grad_fns(CUBIC)
    g = np.asarray(jax.jit(jax.vmap(jax.grad(f)))(jnp.array([0.0, 1.0, 0.0, 8.0])))
    jax.effects_barrier()
    assert np.isnan(g[0]) and np.isnan(g[2])
    np.testing.assert_allclose(g[[1, 3]], [1 / 3, 1 / 12], rtol=1e-7)  # as above
    assert hits == [1, 1]  # the two failed elements, not the healthy ones
    jac = jax.jit(jax.vmap(jax.jacfwd(f)))(jnp.array([0.0, 1.0]))
    jax.effects_barrier()
    assert np.isnan(jac[0]) and jac[1] == pytest.approx(1 / 3, rel=1e-7)  # as above
    assert hits == [1, 1, 1]


def test_a_failed_forward_solve_is_not_also_a_backward_failure(hits):
    model, f = _grad_fns(NO_FIXED_POINT)
    assert float(f(0.0)) == -np.inf  # counted as a forward failure instead
    jax.grad(f)(0.0)
    jax.effects_barrier()
    assert hits == []


def test_events_record_per_chain_and_node():
    _, f = _grad_fns(CUBIC)
    with reporting.collecting() as events:
        events.chain = 1
        g = jax.jit(jax.grad(f))  # traced inside the scope: reports to `events`
        g(0.0)
        g(0.0)
        g(2.0)
        jax.effects_barrier()
    assert events.per_node(2, backward=True) == {1: [0, 2]}
    assert events.per_node(2) == {}  # no forward failure


def test_runs_never_share_counts():
    """Each run counts into its own events object, chosen when its code is traced: a
    second scope (another run, a notebook cell, a thread) sees none of the first's, and
    code traced outside any scope reports nowhere (no process-wide counter)."""
    _, f = _grad_fns(CUBIC)
    with reporting.collecting() as first:
        g1 = jax.jit(jax.grad(f))
        g1(0.0)
    with reporting.collecting() as second:
        g2 = jax.jit(jax.grad(lambda c: f(c) * 1.0))
        g2(0.0)
        g2(0.0)
    g1(0.0)  # compiled in the first scope: still reports to the first run
    jax.effects_barrier()
    assert first.per_node(1, backward=True) == {1: [2]}
    assert second.per_node(1, backward=True) == {1: [2]}
    assert reporting.current() is None
    plain = jax.jit(jax.grad(lambda c: f(c) + 0.0))
    assert np.isnan(float(plain(0.0)))  # the NaN gradient stays; nothing is counted
    jax.effects_barrier()
    assert first.per_node(1, backward=True) == {1: [2]}


# For a <= 0 the map is the identity (every x a fixed point: ∂R/∂z = 0); for a > 0 it is
# a contraction with the fixed point 2a.  Node #2 is healthy everywhere.
HALF = """
param a ~ normal(0, 1)
let x = fix x: real = a > 0 ? 0.5 * x + a : x + 0 * a init 1.0 with iterate(max_iter=100)
let y = root y: real of y + 0.1 * sin(y) - a
target += 0 * x + 0 * y
"""
LOC1, LOC2 = "fix#1 at <string>:3:9", "root#2 at <string>:4:9"


@pytest.mark.slow  # ~10 s: NUTS compiles and runs 2 x 200 iterations
def test_nuts_reports_gradient_failures_with_the_location():
    model = fpl.compile(HALF)
    fit = model.sample(chains=2, warmup=100, draws=100, seed=1, progress=False)
    assert fit.solver_failures == {LOC1: [0, 0], LOC2: [0, 0]}  # forward solves all fine
    assert set(fit.gradient_failures) == {LOC1, LOC2}
    assert fit.gradient_failures[LOC2] == [0, 0]
    # a standard normal prior: half of the space fails, and NUTS meets it in each chain
    assert all(n > 0 for n in fit.gradient_failures[LOC1])
    text = str(fit.summary())
    n = sum(fit.gradient_failures[LOC1])
    assert f"Implicit node {LOC1}: 0 non-converged solves" in text
    assert f"{n} failed gradient solves" in text
    assert fit.to_fitdata().attrs[f"gradient_failures {LOC1}"] == n


SLOPE = """
param a ~ normal(0, 1)
let x = fix x: real = a > 0 ? 0.5 * x + a : x + 0 * a init 1.0 with iterate(max_iter=100)
target += -x
"""


def _first_failing_step(a, lr):
    # plain gradient descent on the loss 0.5 a^2 + 2a (+ const) while a > 0
    step = 1
    while a > 0:
        a -= lr * (a + 2)
        step += 1
    return step


def test_optimize_names_the_node_and_step():
    model = fpl.compile(SLOPE)
    want = _first_failing_step(1.0, 0.3)
    assert want == 3  # a: 1 -> 0.1 -> -0.53, failing inside the first chunk (a re-run)
    with pytest.raises(FplError) as exc:
        model.optimize(
            optimizer=optax.sgd(0.3),
            steps=50,
            init={"a": 1.0},
            progress=False,
            on_failure="error",
        )
    d = exc.value.diagnostics[0]
    assert d.code == "E0411" and f"optimization step {want}" in d.message
    assert (d.span.line, d.span.col) == (3, 9)


def test_optimize_skip_mode_counts(tmp_path):
    model = fpl.compile(SLOPE)
    res = model.optimize(
        optimizer=optax.sgd(0.3), steps=50, init={"a": 1.0}, progress=False, on_failure="skip"
    )
    # from the first failing step on every step fails (a skipped step leaves a as it was)
    n = 50 - _first_failing_step(1.0, 0.3) + 1
    assert res.skipped == n and res.gradient_failures == {"fix#1 at <string>:3:9": n}
    assert f"{n} failed gradient solves" in res.message
    res.save(tmp_path / "r.json")
    assert load_result(tmp_path / "r.json").gradient_failures == res.gradient_failures
