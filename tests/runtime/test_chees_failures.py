"""ChEES counts implicit-node failures per chain, as NUTS does (issue 13/12).

BlackJAX maps the density over the chains with an unnamed ``vmap``; the density reads
its chain's index off that mapping (``fpl.compiler.reporting.batch_index``) and the
failure reports carry it.  Checked on the mechanism alone (a vmapped report lands on the
rows that failed) and on a model whose fixed point fails on part of the space: the
failures spread over the chains, and a chain with failures has divergent transitions
(a failed solve makes the log density -inf, so the trajectory through it diverges)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler import reporting
from fpl.runtime.chees import _per_chain


def test_a_vmapped_report_lands_on_its_rows():
    events = reporting.SolverEvents()
    values = jnp.array([-1.0, 2.0, -3.0, 4.0, 5.0])

    def evaluate(x):
        with reporting.chain_index(reporting.batch_index(jnp.isnan(x))):
            # an inner map of the model's own does not change the chain
            inner = jax.vmap(lambda y: y * x)(jnp.ones(3))
            reporting.report_forward((7,), jnp.stack([jnp.any(inner > 0)]))
            return inner

    with reporting.collecting(events):
        jax.block_until_ready(jax.jit(jax.vmap(evaluate))(values))
    jax.effects_barrier()
    assert events.per_node(5) == {7: [0, 1, 0, 1, 1]}
    assert int(reporting.batch_index(jnp.asarray(True))) == -1  # nothing maps it


# x^3 = c by Newton from 0: converged at once for c = 0, where the Jacobian 3 x^2 is 0, so
# the gradient's (backward) solve fails there and only there
CUBIC = """param c: real
let x = root x: real of x * x * x - c init 0.0 with newton()
target += x
"""


def test_chees_density_reports_gradient_failures_per_chain():
    cm = fpl.compile(CUBIC).bind({})
    density = _per_chain(lambda theta, data: cm.log_density(theta, data=data))
    points = jnp.array([[1.0], [0.0], [8.0], [0.0]])  # chains 2 and 4 at c = 0
    events = reporting.SolverEvents()
    with jax.enable_x64(True), reporting.collecting(events):
        grads = jax.jit(jax.vmap(jax.grad(lambda x: density(x, {}))))(points)
        jax.block_until_ready(grads)
    jax.effects_barrier()
    assert events.per_node(4, backward=True) == {1: [0, 1, 0, 1]}
    # the gradient is right where the solve succeeds: d(c^(1/3))/dc = 1 / (3 c^(2/3))
    np.testing.assert_allclose(np.asarray(grads)[[0, 2], 0], [1 / 3, 1 / 12], rtol=1e-10)
    assert np.isnan(np.asarray(grads)[[1, 3], 0]).all()


# z = x z + 1 by Picard iteration converges (to 1 / (1 - x)) within 50 iterations only
# where |x| < ~0.69 (|x|^50 < 1e-8): beyond it the solve fails and the density is -inf
MODEL = """param x ~ normal(0, 1)
let z = fix z: real = x * z + 1 with iterate(max_iter=50)
target += -0.5 * square(z)
"""
CHAINS = 4


@pytest.mark.slow  # ChEES compiles its warmup and sampling program: ~10 s on 2 cores
def test_chees_counts_failures_per_chain():
    fit = fpl.compile(MODEL, "fails.fpl").sample(
        {}, sampler="chees", chains=CHAINS, warmup=30, draws=10, seed=3, progress=False
    )
    ((label, per_chain),) = fit.solver_failures.items()
    assert label.startswith("fix#1 at fails.fpl:2:9") and len(per_chain) == CHAINS
    # trajectories leave the region where the solve converges in every chain
    assert sum(n > 0 for n in per_chain) >= CHAINS // 2, per_chain
    divergent = fit.sample_stats["diverging"].sum(axis=1) + np.asarray(fit.warmup_divergences)
    for failures, divergences in zip(per_chain, divergent, strict=True):
        assert failures == 0 or divergences > 0, (per_chain, divergent)
