"""NUTS over an unconstrained potential, on NumPyro's functional HMC kernel.

Every chain runs the same jitted chunk of iterations (compiled once per process, then
reused by each chain and, with JAX's persistent cache, by later processes), driven by
the chunked loop of ``fpl.runtime.loop``: progress reports, checkpoints and Ctrl-C
between chunks, without host callbacks inside the compiled loop.
Data are passed as arguments of the compiled function, never baked in as constants.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fpl.runtime.loop import Progress, run_chunks
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

STAT_FIELDS = ("lp", "accept_stat", "step_size", "tree_depth", "n_leapfrog", "diverging", "energy")

# The stuck-chain guard.  Unconstrained params are O(1) (Stan-style inits are
# uniform(-2, 2) there; before the first mass-matrix window the metric is the identity,
# after it the step is in units of posterior standard deviations).  For a smooth density
# the leapfrog energy error at step eps is O((eps / scale)^2), so dual averaging only
# pushes eps below sqrt(float64 eps) ~ 1.5e-8 if the posterior scale is itself that small
# or if acceptance fails at every scale: a discontinuous or noisy density (an implicit
# node jumping between solutions).  Such a chain moves at most eps * 2^max_tree_depth ~
# 1e-5 per transition at full cost (max-depth trees: no U-turn at that scale) and
# cannot explore.  A smooth model whose step overshoots below the threshold early in
# warmup (a burst of rejections) recovers within ~10-40 transitions (the dual-averaging
# statistic decays like 1/t), hence the streak: only STUCK_STREAK consecutive warmup
# transitions below STUCK_STEP, each a max-depth or divergent tree, stop a chain.
STUCK_STEP = 1e-8
STUCK_STREAK = 50


class StuckChainError(Exception):
    """A chain stopped by the stuck-chain guard: its adapted step size collapsed below
    ``STUCK_STEP`` for ``STUCK_STREAK`` warmup transitions.  ``position`` is the
    unconstrained point it sits at; the caller turns this into a coded diagnostic."""

    def __init__(
        self,
        chain: int,
        iteration: int,
        step_size: float,
        lp: float,
        position: dict[str, np.ndarray],
    ):
        self.chain, self.iteration, self.step_size = chain, iteration, step_size
        self.lp, self.position = lp, position
        super().__init__(
            f"chain {chain + 1} stuck at iteration {iteration}: step size {step_size:.3g}"
        )


def _stuck_flags(step_size, depth, diverging, index, warmup: int, max_tree_depth: int):
    """Per transition: does it count towards the stuck streak (NumPy or JAX arrays)."""
    return (
        (index < warmup) & (step_size < STUCK_STEP) & ((depth >= max_tree_depth) | (diverging != 0))
    )


def _trailing_streak(stat_parts, warmup: int, max_tree_depth: int) -> int:
    """The streak at the end of the transitions so far (host side, from their stats), so
    a chunk, a resumed run included, continues the count where the last one ended."""
    if not stat_parts:
        return 0
    step = np.concatenate([s[2] for s in stat_parts])
    depth = np.concatenate([s[3] for s in stat_parts])
    div = np.concatenate([s[5] for s in stat_parts])
    flags = _stuck_flags(step, depth, div, np.arange(len(step)), warmup, max_tree_depth)
    misses = np.flatnonzero(~flags)
    return int(len(flags) - 1 - misses[-1]) if len(misses) else len(flags)


@dataclass
class ChainsResult:
    positions: dict[str, np.ndarray]  # (chains, draws, *unconstrained shape)
    stats: dict[str, np.ndarray]  # (chains, draws)
    warmup_divergences: np.ndarray  # (chains,)
    seconds: float
    solver_failures: dict[int, list[int]]  # implicit node id -> failed solves per chain
    gradient_failures: dict[int, list[int]]  # ... -> failed backward (gradient) solves


def run_nuts(
    potential_gen: Callable[[Any], Callable[[Any], Any]],
    args: Any,
    inits: list[dict[str, Any]],
    *,
    warmup: int,
    draws: int,
    key,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    progress: bool = True,
    chunk: int = 100,
    checkpoint=None,
    events,
) -> ChainsResult:
    """Run one NUTS chain per entry of ``inits`` (sequentially, one compilation).

    ``potential_gen(args)`` returns the potential (negative log density) of an
    unconstrained position dict; ``args`` (the data arrays) are traced arguments.

    ``checkpoint`` (a :class:`fpl.runtime.checkpoint.NutsCheckpoint`) saves the run
    between chunks — every ``checkpoint.every`` iterations of a chain, when a chain
    ends, and on Ctrl-C — and, when it holds a saved run, continues from it: the
    finished chains' draws, then the current chain's HMC state (position, step size
    and mass-matrix adaptation, RNG key) and draws so far.  Chunks keep the same
    boundaries, so a resumed run gives the draws of an uninterrupted one exactly.

    A chain whose warmup step size collapses (see ``STUCK_STEP``) stops at once: inside
    the compiled chunk its state is frozen from the transition completing the streak, so
    the chunk ends cheaply, and :class:`StuckChainError` is raised at the chunk boundary.

    ``events`` (a ``fpl.compiler.reporting.SolverEvents``) counts failed solves per
    chain; the caller runs this inside ``collecting(events)`` so that the potential,
    traced here, reports to it.
    """
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
    total = warmup + draws

    @jax.jit
    def start(init, key, args):
        return init_kernel(
            init,
            num_warmup=warmup,
            target_accept_prob=target_accept,
            max_tree_depth=max_tree_depth,
            rng_key=key,
            model_args=(args,),
        )

    def step_chunk(state, args, n, streak, offset):
        def body(carry, index):
            s, streak = carry
            stuck = streak >= STUCK_STREAK  # frozen: no more (costly) transitions
            s = jax.lax.cond(stuck, lambda s: s, lambda s: sample_kernel(s, model_args=(args,)), s)
            depth = jnp.ceil(jnp.log2(s.num_steps + 1.0)).astype(jnp.int32)
            stats = (
                -s.potential_energy,
                s.accept_prob,
                s.adapt_state.step_size,
                depth,
                s.num_steps,
                s.diverging,
                s.energy,
            )
            flag = _stuck_flags(stats[2], depth, s.diverging, index, warmup, max_tree_depth)
            streak = jnp.where(stuck, streak, jnp.where(flag, streak + 1, 0))
            return (s, streak), (s.z, stats)

        indices = offset + jnp.arange(n)
        (state, streak), out = jax.lax.scan(body, (state, streak), indices)
        return state, streak, out

    compiled = jax.jit(step_chunk, static_argnums=2)
    began = time.perf_counter()
    keys = jax.random.split(key, len(inits))
    done_chains = _Chains([], [], [])
    resumed = checkpoint.load() if checkpoint is not None else None
    if checkpoint is not None and checkpoint.every:
        chunk = min(chunk, checkpoint.every)
    if resumed is not None:
        done_chains = _Chains(resumed.pos, resumed.stats, resumed.warm_div)
        events.counts.update(resumed.failures)
    for c, init in enumerate(inits):
        if c < len(done_chains.pos):
            continue  # finished before the checkpoint
        events.chain = c
        bar = Progress(progress, total, f"chain {c + 1}/{len(inits)}")
        state = start(init, keys[c], args)
        run = _Chain(c, state, [], [], 0)
        if resumed is not None and resumed.chain == c and resumed.done:
            state = checkpoint.state_like(state, resumed)
            run = _Chain(c, state, [resumed.cur_pos], [resumed.cur_stats], resumed.done)
            bar.update(run.done)
        _run_chain(
            run,
            compiled,
            args,
            warmup,
            total,
            chunk,
            max_tree_depth,
            bar,
            checkpoint,
            events,
            done_chains,
        )
        pos = {k: np.concatenate([p[k] for p in run.pos_parts])[warmup:] for k in run.pos_parts[0]}
        stats_full = [
            np.concatenate([s[i] for s in run.stat_parts]) for i in range(len(STAT_FIELDS))
        ]
        done_chains.warm_div.append(int(np.sum(stats_full[5][:warmup])))
        done_chains.pos.append(pos)
        done_chains.stats.append([s[warmup:] for s in stats_full])
        if checkpoint is not None:  # a finished chain is kept at once
            checkpoint.save(c + 1, None, [], [], 0, *done_chains, dict(events.counts))
    jax.effects_barrier()  # every failure callback has been counted
    all_pos, all_stats, warm_div = done_chains
    positions = {k: np.stack([p[k] for p in all_pos]) for k in all_pos[0]} if all_pos else {}
    stats = {name: np.stack([s[i] for s in all_stats]) for i, name in enumerate(STAT_FIELDS)}
    return ChainsResult(
        positions,
        stats,
        np.asarray(warm_div),
        time.perf_counter() - began,
        events.per_node(len(inits)),
        events.per_node(len(inits), backward=True),
    )


class _Chains(NamedTuple):
    """The finished chains: draws by name, stats, warmup divergences."""

    pos: list[dict[str, np.ndarray]]
    stats: list[list[np.ndarray]]
    warm_div: list[int]


@dataclass
class _Chain:
    """The chain being run: its HMC state and the chunks of positions and stats so far
    (replaced, never mutated in place, as each chunk completes)."""

    chain: int
    state: Any
    pos_parts: list
    stat_parts: list
    done: int


def _run_chain(
    run: _Chain,
    compiled,
    args,
    warmup,
    total,
    chunk,
    max_tree_depth,
    bar,
    checkpoint,
    events,
    finished: _Chains,
) -> None:
    """Advance ``run`` to ``total`` iterations in chunks (see ``fpl.runtime.loop``)."""

    def advance(done: int, n: int) -> str:
        streak = _trailing_streak(run.stat_parts, warmup, max_tree_depth)
        new_state, streak, (z, stats) = compiled(
            run.state, args, n, jnp.int32(streak), jnp.int32(done)
        )
        if int(streak) >= STUCK_STREAK:
            s = new_state
            raise StuckChainError(
                run.chain,
                int(s.i),
                float(s.adapt_state.step_size),
                -float(s.potential_energy),
                {k: np.asarray(v) for k, v in s.z.items()},
            )
        z, stats = jax.device_get(z), jax.device_get(stats)
        run.state, run.pos_parts, run.stat_parts, run.done = (
            new_state,
            [*run.pos_parts, z],
            [*run.stat_parts, stats],
            done + n,
        )
        div = int(sum(np.sum(s[5]) for s in run.stat_parts))
        return f"divergences {div}" if div else ""

    def snapshot():
        return (run.chain, run.state, run.pos_parts, run.stat_parts, run.done, *finished)

    def save(done: int) -> None:
        checkpoint.save(*snapshot(), dict(events.counts))

    def interrupted(done: int) -> BaseException:
        return checkpoint.interrupted(snapshot(), dict(events.counts))

    run_chunks(
        advance,
        done=run.done,
        total=total,
        chunk=chunk,
        bar=bar,
        every=checkpoint.every if checkpoint is not None else None,
        save=save,
        interrupted=interrupted if checkpoint is not None else None,
    )
