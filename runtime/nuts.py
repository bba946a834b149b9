"""NUTS over an unconstrained potential, on NumPyro's functional HMC kernel.

Every chain runs the same jitted chunk of iterations (compiled once per process, then
reused by each chain and, with JAX's persistent cache, by later processes).  Chunks
give progress reports between them without host callbacks inside the compiled loop.
Data are passed as arguments of the compiled function, never baked in as constants.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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

    def __init__(self, chain: int, iteration: int, step_size: float, lp: float,
                 position: dict[str, np.ndarray]):  # fmt: skip
        self.chain, self.iteration, self.step_size = chain, iteration, step_size
        self.lp, self.position = lp, position
        super().__init__(f"chain {chain + 1} stuck at iteration {iteration}: step size "
                         f"{step_size:.3g}")  # fmt: skip


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


class Progress:
    """A one-line progress report on stderr (silent when disabled)."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled = enabled and total > 0
        self.total = total
        self.label = label
        self.done = 0
        self.start = time.perf_counter()

    def update(self, n: int, extra: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
            f" {rate:,.0f} it/s {extra}   "
        )
        sys.stderr.flush()
        if self.done >= self.total:
            sys.stderr.write("\n")


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
            stats = (-s.potential_energy, s.accept_prob, s.adapt_state.step_size, depth,
                     s.num_steps, s.diverging, s.energy)  # fmt: skip
            flag = _stuck_flags(stats[2], depth, s.diverging, index, warmup, max_tree_depth)
            streak = jnp.where(stuck, streak, jnp.where(flag, streak + 1, 0))
            return (s, streak), (s.z, stats)

        indices = offset + jnp.arange(n)
        (state, streak), out = jax.lax.scan(body, (state, streak), indices)
        return state, streak, out

    compiled = jax.jit(step_chunk, static_argnums=2)
    began = time.perf_counter()
    keys = jax.random.split(key, len(inits))
    all_pos: list[dict[str, np.ndarray]] = []
    all_stats: list[list[np.ndarray]] = []
    warm_div = []
    from fpl.runtime.failures import COUNTER

    COUNTER.counts.clear()
    resumed = checkpoint.load() if checkpoint is not None else None
    if checkpoint is not None and checkpoint.every:
        chunk = min(chunk, checkpoint.every)
    if resumed is not None:
        all_pos, all_stats, warm_div = resumed.pos, resumed.stats, resumed.warm_div
        COUNTER.counts.update(resumed.failures)
    for c, init in enumerate(inits):
        if c < len(all_pos):
            continue  # finished before the checkpoint
        COUNTER.chain = c
        bar = Progress(progress, total, f"chain {c + 1}/{len(inits)}")
        state = start(init, keys[c], args)
        pos_parts, stat_parts = [], []
        done = saved = 0
        if resumed is not None and resumed.chain == c and resumed.done:
            state = checkpoint.state_like(state, resumed)
            pos_parts, stat_parts, done = [resumed.cur_pos], [resumed.cur_stats], resumed.done
            saved = done
            bar.update(done)
        try:
            while done < total:
                n = min(chunk, total - done)
                streak = _trailing_streak(stat_parts, warmup, max_tree_depth)
                new_state, streak, (z, stats) = compiled(
                    state, args, n, jnp.int32(streak), jnp.int32(done)
                )
                if int(streak) >= STUCK_STREAK:
                    s = new_state
                    raise StuckChainError(c, int(s.i), float(s.adapt_state.step_size),
                                          -float(s.potential_energy),
                                          {k: np.asarray(v) for k, v in s.z.items()})  # fmt: skip
                z, stats = jax.device_get(z), jax.device_get(stats)
                state, pos_parts, stat_parts, done = (
                    new_state, [*pos_parts, z], [*stat_parts, stats], done + n,
                )  # fmt: skip
                div = int(sum(np.sum(s[5]) for s in stat_parts))
                bar.update(n, f"divergences {div}" if div else "")
                if checkpoint is not None and checkpoint.every and done - saved >= checkpoint.every:
                    checkpoint.save(c, state, pos_parts, stat_parts, done, all_pos, all_stats,
                                    warm_div, dict(COUNTER.counts))  # fmt: skip
                    saved = done
        except KeyboardInterrupt:
            if checkpoint is None:
                raise
            snapshot = (c, state, pos_parts, stat_parts, done, all_pos, all_stats, warm_div)
            raise checkpoint.interrupted(snapshot, dict(COUNTER.counts)) from None
        pos = {k: np.concatenate([p[k] for p in pos_parts])[warmup:] for k in pos_parts[0]}
        stats_full = [np.concatenate([s[i] for s in stat_parts]) for i in range(len(STAT_FIELDS))]
        warm_div.append(int(np.sum(stats_full[5][:warmup])))
        all_pos.append(pos)
        all_stats.append([s[warmup:] for s in stats_full])
        if checkpoint is not None:  # a finished chain is kept at once
            checkpoint.save(c + 1, None, [], [], 0, all_pos, all_stats, warm_div,
                            dict(COUNTER.counts))  # fmt: skip
    jax.effects_barrier()  # every failure callback has been counted
    positions = {k: np.stack([p[k] for p in all_pos]) for k in all_pos[0]} if all_pos else {}
    stats = {name: np.stack([s[i] for s in all_stats]) for i, name in enumerate(STAT_FIELDS)}
    return ChainsResult(
        positions,
        stats,
        np.asarray(warm_div),
        time.perf_counter() - began,
        COUNTER.per_node(len(inits)),
        COUNTER.per_node(len(inits), backward=True),
    )
