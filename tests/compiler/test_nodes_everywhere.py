"""Implicit nodes are first-class wherever they appear (issue 12, item 1).

One failing node (Newton on x² = c from 1 has no real root for c < 0) is placed in each
position a program can hold it: at top level, in a function (line and block form, with
``x.residual``/``x.iterations`` read in the block), in a ``map``, ``scan`` and ``fold``
(only one element/step fails), under ``grad``/``jacobian``, and nested in another node.
For each: the log density is -inf where it fails and finite where it does not, the
node's results say it failed (with the count of failed solves), the failure is reported
once to the collecting run, and the derivative of the value is NaN, never a silent 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler import reporting

ROOT = "root x: real of x * x - c init 1.0 with newton(max_iter=30)"
HEAD = f"""
data v: real[3]
param a ~ normal(0, 1)
fn s(c) = {ROOT}
"""

# name -> (program lines after HEAD, failed solves at a = -0.5)
# a + v = (-0.5, 0.5, 1.5): one element of a map/scan/fold fails
CASES = {
    "top": ("let c = a\nlet y = " + ROOT, 1),
    "fn": ("let y = s(a)", 1),
    "fn block": (
        "fn b(c) {\n  let x = " + ROOT + "\n  return x + 0 * x.residual + 0 * x.iterations\n}\n"
        "let y = b(a)",
        1,
    ),
    "map": ("let y = map(s, a + v)", 1),
    "scan": ("fn st(acc, e) = acc + s(e)\nlet y = scan(st, 0.0, a + v)", 1),
    "fold": ("fn st(acc, e) = acc + s(e)\nlet y = fold(st, 0.0, a + v)", 1),
    "grad": ("let y = grad(s)(a)", 1),
    "jacobian in map": ("fn j(c) = jacobian(s)(c)\nlet y = map(j, a + v)", 1),
    "nested": (
        "let y = fix z: real = 0.5 * z + s(a) * 0 + 0.1 with iterate(max_iter=50)",
        1,
    ),
    "map of map": ("fn m(c) = map(s, c + 2 * v)\nlet y = map(m, a + v)", 1),
}

DATA = {"v": np.array([0.0, 1.0, 2.0])}


def model(body: str):
    return fpl.compile(HEAD + body + "\ntarget += 0 * sum(y)\n")


@pytest.mark.parametrize("case", list(CASES))
def test_failing_node_is_reported_in_every_position(case):
    body, expected_failures = CASES[case]
    cm = model(body).bind(DATA)
    (node,) = [n for n in cm.nodes if n.kind == "root"]

    def value(a):
        ev = cm.evaluate({"a": a}, constrained=True, jacobian=False, report=False)
        return jnp.sum(ev.values["y"]), ev.stats

    with jax.enable_x64(True):
        # the log density: -inf where the solve fails, finite where it converges
        lp = jax.jit(lambda a: cm.evaluate({"a": a}, constrained=True).log_density)
        assert float(lp(-0.5)) == -np.inf
        assert np.isfinite(float(lp(0.5)))
        # the node's results, reduced over elements/steps, say it failed and how often
        _, stats = jax.jit(value)(-0.5)
        st = stats[node.node_id]
        assert not bool(st["converged"]) and int(st["reason"]) != 0
        assert int(st["failures"]) == expected_failures
        _, ok = jax.jit(value)(0.5)
        assert bool(ok[node.node_id]["converged"])
        assert int(ok[node.node_id]["failures"]) == 0
        # reported to the run collecting at trace time: one evaluation, one count
        with reporting.collecting() as events:
            lp_run = jax.jit(lambda a: cm.evaluate({"a": a}, constrained=True).log_density)
            jax.block_until_ready(lp_run(-0.5))
            jax.effects_barrier()
        counts = events.per_node(1)
        assert counts[node.node_id] == [1]
        assert set(counts) <= {n.node_id for n in cm.nodes}  # and an outer node it fails
        # no silent zero: the derivative through the failed node is NaN
        g = jax.grad(lambda a: value(a)[0])(-0.5)
        assert np.isnan(float(g))
        assert np.isfinite(float(jax.grad(lambda a: value(a)[0])(0.5)))


def test_sample_stats_fields_for_a_node_in_a_map():
    cm = model(CASES["map"][0]).bind(DATA)
    with jax.enable_x64(True):
        _, stats = cm.generate(
            {"a": jnp.asarray(-0.5)}, jax.random.PRNGKey(0), constrained=True, stats=True
        )
    ((node_id, st),) = stats.items()
    assert not bool(st["converged"]) and int(st["failures"]) == 1
    assert int(st["solves"]) == 3


def test_residual_in_a_block_fn_is_per_call():
    # x.residual / x.iterations inside a block fn read that call's solve (per element in
    # a map): Newton from 1 on x² = c converges in more steps the farther c is from 1
    src = (
        HEAD + "fn b(c) {\n  let x = " + ROOT + "\n  return x.iterations\n}\n"
        "out its = map(b, a + v)\nout direct = b(a + 2.0)\n"
    )
    cm = fpl.compile(src).bind(DATA)
    with jax.enable_x64(True):
        out = cm.constrain(cm.unconstrain({"a": jnp.asarray(0.0)}))
    its = np.asarray(out["its"])
    assert its.shape == (3,) and its[1] == 0  # c = 1: x = 1 is already the root
    assert its[2] == int(out["direct"])  # the same solve, in a map or called directly
    # c = 0 (a double root: Newton converges only linearly) takes more steps than c = 2
    assert its[0] > its[2]
