"""Many-chain sampling for accelerators: ChEES-HMC, every chain in one vectorised program.

NUTS builds a tree of data-dependent depth per transition, so chains batched with
``vmap`` wait for the deepest one at every doubling; on a GPU hundreds of chains are
better served by a sampler whose chains all take the same number of leapfrog steps.
ChEES-HMC (Hoffman, Radul & Sountsov 2021, "An adaptive MCMC scheme for setting
trajectory lengths in Hamiltonian Monte Carlo") is HMC with a *jittered* trajectory
length ``L·u`` (``u`` from a Halton sequence shared by all chains, so they step in
lockstep) whose length ``L`` is adapted during warmup by Adam ascending the ChEES
criterion — the change in the expected squared distance from the ensemble mean,

    ChEES = ¼ E[(‖x' − E x‖² − ‖x − E x‖²)²],

estimated *across the chains* at each warmup iteration (its gradient in ``L`` weights
each chain by its acceptance probability); the step size follows the acceptance rate
toward ``target_accept`` (0.651 by default: optimal for HMC, Beskos et al. 2013); a
diagonal metric is estimated from the pooled chains over the second half of warmup
(BlackJAX's ``mass_matrix_estimation="diagonal"``, engaged once it has enough draws,
with its slow-direction trajectory-length floor).  The algorithm and its adaptation are
BlackJAX's (``blackjax.chees_adaptation``, ``blackjax.dynamic_hmc``); this module runs
warmup and sampling as **one compiled program** over all chains (``jax.vmap`` inside a
``lax.scan``) and returns what :func:`fpl.runtime.nuts.run_nuts` returns, so the fit,
its summary (R-hat and ESS across all chains) and its files are NUTS's.

The estimates that need many chains (the criterion, the metric) are only as good as the
ensemble: 32 or more chains; 100s on an accelerator.  Per chain: a step size, the
number of leapfrog steps (``n_leapfrog``; ``tree_depth`` is 0, there is no tree), the
acceptance probability, divergences.  Not supported (coded errors in
:mod:`fpl.runtime.sampling`): checkpoints, ``shard_data``, a given ``metric``.  Solver
failures of implicit nodes are counted per chain, as NUTS counts them: BlackJAX maps the
density over the chains with an unnamed ``vmap``, and the density reads its chain's index
off that mapping (``fpl.compiler.reporting.batch_index``) for the failure reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.runtime.nuts import STAT_FIELDS, ChainsResult
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

#: ChEES's default target: the acceptance rate optimal for HMC (Beskos et al. 2013)
TARGET_ACCEPT = 0.651
#: Adam's learning rate for the trajectory length (the ChEES paper's)
LEARNING_RATE = 0.025
#: the first step size; the adaptation moves it within a few iterations
INITIAL_STEP_SIZE = 0.1
MIN_CHAINS = 2  # the criterion is a variance across chains


@dataclass(frozen=True)
class CheesRun:
    """The settings that decide the draws of a ChEES run."""

    warmup: int
    draws: int
    target_accept: float = TARGET_ACCEPT
    max_leapfrog_steps: int = 1000


def _stats(state, info, step_size):
    """The per-transition statistics, in :data:`fpl.runtime.nuts.STAT_FIELDS` order."""
    f = state.logdensity.dtype
    shape = state.logdensity.shape
    return (
        state.logdensity,
        jnp.asarray(info.acceptance_rate, f),
        jnp.broadcast_to(jnp.asarray(step_size, f), shape),
        jnp.zeros(shape, jnp.int32),  # no tree
        jnp.broadcast_to(jnp.asarray(info.num_integration_steps, jnp.int32), shape),
        jnp.asarray(info.is_divergent, bool),
        jnp.asarray(info.energy, f),
    )


def _program(log_density: Callable, run: CheesRun, chains: int):
    """``(inits, key, args) -> (positions, stats, warmup stats, step size, metric)``: warmup
    and sampling of all chains, one traced function."""
    import blackjax
    import optax

    per_chain = _per_chain(log_density)

    def program(inits, key, args):
        def density(x):
            return per_chain(x, args)

        warm_key, draw_key = jax.random.split(key)
        warmup = blackjax.chees_adaptation(
            density,
            chains,
            target_acceptance_rate=run.target_accept,
            max_leapfrog_steps=run.max_leapfrog_steps,
            mass_matrix_estimation="diagonal",
            adaptation_info_fn=lambda state, info, adapt: _stats(state, info, adapt.step_size),
        )
        (states, params), warm_stats = warmup.run(
            warm_key,
            inits,
            INITIAL_STEP_SIZE,
            optax.adam(LEARNING_RATE),
            max(run.warmup, 1),
            max_sampling_steps=run.draws,
        )
        kernel = blackjax.dynamic_hmc.build_kernel(
            next_random_arg_fn=params["next_random_arg_fn"],
            integration_steps_fn=params["integration_steps_fn"],
        )
        step_size, metric = params["step_size"], params["inverse_mass_matrix"]

        def transition(states, k):
            def one(k, state):
                return kernel(
                    k,
                    state,
                    density,
                    step_size,
                    metric,
                    integration_steps_params=params["integration_steps_params"],
                )

            states, info = jax.vmap(one)(jax.random.split(k, chains), states)
            return states, (states.position, _stats(states, info, step_size))

        _, (positions, stats) = jax.lax.scan(
            transition, states, jax.random.split(draw_key, run.draws)
        )
        # the info comes wrapped (a diagnostic attribute added): the stats are inside
        warm_stats = getattr(warm_stats, "_wrapped_info", warm_stats)
        return positions, stats, tuple(warm_stats), step_size, metric

    return jax.jit(program)


def _per_chain(log_density: Callable):
    """``log_density`` whose failure reports carry the chain's index: BlackJAX's ``vmap``
    over the chains batches the position, and ``fpl.compiler.reporting.batch_index``
    reads the index off it.  The gradient's (backward) solves are traced with the
    forward pass (``lax.custom_linear_solve`` traces its transpose when it is bound),
    inside the same scope, so they are counted per chain too (a test checks it)."""
    from fpl.compiler.reporting import batch_index, chain_index

    def density(x, args):
        with chain_index(batch_index(jnp.isnan(jnp.sum(x)))):
            return log_density(x, args)

    return density


def run_chees(
    log_density: Callable[[Any, Any], Any],
    args: Any,
    inits: np.ndarray,
    *,
    run: CheesRun,
    key,
    events,
    progress: bool = True,
) -> ChainsResult:
    """ChEES-HMC over all rows of ``inits`` (flat unconstrained points) at once.

    ``log_density(theta, args)`` is the model's log density (Jacobian included) with the
    data ``args`` traced; ``events`` counts failed solves (the caller runs this inside
    ``fpl.compiler.reporting.collecting(events)``).  With ``warmup = 0`` one adaptation
    iteration still runs (the step size and trajectory length need a start) and its
    statistics are dropped."""
    import sys

    chains = len(inits)
    if progress and jax.process_index() == 0:
        print(f"sampling {chains} chains (ChEES-HMC, one program)...", file=sys.stderr)
    began = time.perf_counter()
    program = _program(log_density, run, chains)
    positions, stats, warm, step_size, metric = program(jnp.asarray(inits), key, args)
    jax.effects_barrier()  # every failure callback has been counted
    # (steps, chains, ...) -> (chains, steps, ...)
    positions = np.swapaxes(np.asarray(positions), 0, 1)
    stats = {n: np.swapaxes(np.asarray(s), 0, 1) for n, s in zip(STAT_FIELDS, stats)}
    warm = {n: np.swapaxes(np.asarray(s), 0, 1)[:, : run.warmup] for n, s in zip(STAT_FIELDS, warm)}
    failures = events.per_node(chains)
    gradient_failures = events.per_node(chains, backward=True)
    return ChainsResult(
        positions,
        stats,
        warm,
        np.full(chains, float(step_size)),
        np.broadcast_to(np.asarray(metric), (chains, inits.shape[1])).copy(),
        time.perf_counter() - began,
        failures,
        gradient_failures,
    )


def check_settings(s) -> None:
    """What ChEES-HMC does not take, from ``sample``'s settings ``s`` (coded E0403): it
    adapts across chains, its own diagonal metric, in one program over all chains."""
    from fpl.dsl.diagnostics import error

    if s.chains < MIN_CHAINS:
        raise error(
            "E0403",
            f"`sampler='chees'` adapts across chains: it needs at least {MIN_CHAINS} "
            f"(got {s.chains}; use 32 or more)",
        )
    for name, given in (
        ("checkpoint", s.checkpoint is not None),
        ("shard_data", s.shard_data),
        ("metric", not isinstance(s.metric, str) or s.metric != "low_rank"),
    ):
        if given:
            raise error(
                "E0403",
                f"`sampler='chees'` does not take `{name}`",
                help="ChEES-HMC adapts its own diagonal metric in one program over all "
                "chains; use the default `sampler='nuts'` for this",
            )


def run_settings(cm, args, flat_inits, s, key, events) -> ChainsResult:
    """:func:`run_chees` for ``sample``'s compiled model ``cm`` and settings ``s``; a
    ``target_accept`` left at NUTS's default (0.8) means ChEES's own (0.651)."""
    target = TARGET_ACCEPT if s.target_accept == 0.8 else s.target_accept
    return run_chees(
        lambda theta, data: cm.log_density(theta, data=data),
        args,
        flat_inits,
        run=CheesRun(s.warmup, s.draws, target),
        key=key,
        events=events,
        progress=s.progress,
    )


__all__ = [
    "INITIAL_STEP_SIZE",
    "LEARNING_RATE",
    "TARGET_ACCEPT",
    "CheesRun",
    "check_settings",
    "run_chees",
    "run_settings",
]
