"""NUTS over a compiled model's flat unconstrained log density, chains in parallel.

The transition is BlackJAX's multinomial NUTS kernel with Stan's additional U-turn
checks (:mod:`fpl.runtime.nuts_tree`); warmup adapts the step size and
the metric with :mod:`fpl.runtime.adaptation` (nutpie's Fisher-divergence low-rank
metric by default).  One chain's state is a :class:`ChainState`, and a chunk of one
chain's iterations (``lax.scan``) is one compiled program.

Chains in parallel: chain ``c`` lives on local device ``c mod D`` (:func:`chain_devices`;
on CPU the host's cores are made into devices before JAX starts, see
:mod:`fpl.runtime.devices`), and each chunk is dispatched to every chain's device at
once — JAX's dispatch is asynchronous, so the devices run their chains concurrently
and the host waits once per chunk.  Every chain runs **the same single-chain program**,
whatever the number of devices, so the same seed gives bit-identical draws on 1, 2 or
4 devices (tested).  A program over all chains split with ``shard_map`` would not: XLA
compiles a partitioned program differently from a one-device one (a division becomes a
reciprocal's product, a fused reduction changes order), the last bits of the metric's
factorisations move, and a chain's trajectory amplifies them.  ``shard_map`` is used
where sharding is the point: the data-parallel likelihood.

Between chunks (``fpl.runtime.loop``) the host updates the progress line, checkpoints
and turns Ctrl-C into a resumable interruption; chunks end on multiples of ``chunk``,
so a resumed run is bit-identical to an uninterrupted one.  Data are arguments of the
compiled programs, never baked-in constants.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fpl.compiler import reporting
from fpl.runtime import adaptation as adapt
from fpl.runtime.loop import Progress, run_chunks
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

STAT_FIELDS = ("lp", "accept_stat", "step_size", "tree_depth", "n_leapfrog", "diverging", "energy")

# The stuck-chain guard.  Unconstrained params are O(1) (Stan-style inits are
# uniform(-2, 2) there; the metric puts steps in units of posterior scale).  For a
# smooth density the leapfrog energy error at step eps is O((eps / scale)^2), so dual
# averaging only pushes eps below sqrt(float64 eps) ~ 1.5e-8 if the posterior scale is
# itself that small or if acceptance fails at every scale: a discontinuous or noisy
# density (an implicit node jumping between solutions).  Such a chain moves at most
# eps * 2^max_tree_depth ~ 1e-5 per transition at full cost and cannot explore.  A
# smooth model whose step overshoots below the threshold early in warmup (a burst of
# rejections) recovers within ~10-40 transitions (the dual-averaging statistic decays
# like 1/t), hence the streak: only STUCK_STREAK consecutive warmup transitions below
# STUCK_STEP, each a max-depth or divergent tree, stop a chain.
STUCK_STEP = 1e-8
STUCK_STREAK = 50


class StuckChainError(Exception):
    """A chain stopped by the stuck-chain guard: its adapted step size collapsed below
    ``STUCK_STEP`` for ``STUCK_STREAK`` warmup transitions.  ``position`` is the flat
    unconstrained point it sits at; the caller turns this into a coded diagnostic."""

    def __init__(self, chain: int, iteration: int, step_size: float, lp: float, position):
        self.chain, self.iteration, self.step_size = chain, iteration, step_size
        self.lp, self.position = lp, np.asarray(position)
        super().__init__(
            f"chain {chain + 1} stuck at iteration {iteration}: step size {step_size:.3g}"
        )


def stuck_flags(step_size, depth, diverging, index, warmup: int, max_tree_depth: int):
    """Per transition: does it count towards the stuck streak (NumPy or JAX arrays)."""
    return (
        (index < warmup) & (step_size < STUCK_STEP) & ((depth >= max_tree_depth) | (diverging != 0))
    )


class ChainState(NamedTuple):
    """One chain between transitions: BlackJAX's HMC state (flat position, log density,
    gradient), the adaptation, its RNG key, the stuck streak, the transitions made (a
    frozen chain stops counting) and its index (for per-chain solver-failure counts)."""

    hmc: Any
    adapt: adapt.AdaptState
    key: Any
    streak: Any
    iteration: Any
    chain: Any


@dataclass
class ChainsResult:
    positions: np.ndarray  # (chains, draws, d): the flat unconstrained draws
    stats: dict[str, np.ndarray]  # (chains, draws)
    warmup_stats: dict[str, np.ndarray]  # (chains, warmup)
    step_size: np.ndarray  # (chains,)
    metric: Any  # the adapted metric, leading chain axis (diag, dense or low-rank form)
    seconds: float
    solver_failures: dict[int, list[int]]  # implicit node id -> failed solves per chain
    gradient_failures: dict[int, list[int]]  # ... -> failed backward (gradient) solves


@dataclass(frozen=True)
class Run:
    """The settings that decide the draws of a sampling run."""

    warmup: int
    draws: int
    max_tree_depth: int
    adaptation: adapt.Adaptation


def run_nuts(
    log_density: Callable[[Any, Any], Any],
    args: Any,
    inits: np.ndarray,
    *,
    run: Run,
    key,
    progress: bool = True,
    chunk: int = 100,
    checkpoint=None,
    events,
    metric=None,
    step_size=None,
    shard_data: bool = False,
) -> ChainsResult:
    """Run one NUTS chain per row of ``inits`` (flat unconstrained points), in parallel
    over the local devices.

    ``log_density(theta, args)`` is the model's log density (Jacobian included) with the
    data ``args`` traced.  ``metric``/``step_size`` (leading chain axis) start the chains
    from a given adaptation (then warmup adapts only the step size, as
    ``run.adaptation.adapt_metric`` says).

    ``checkpoint`` (a :class:`fpl.runtime.checkpoint.NutsCheckpoint`) saves every chain
    every ``checkpoint.every`` iterations, at the end and on Ctrl-C, and resumes a saved
    run to the draws of an uninterrupted one.  A chain whose warmup step size collapses
    is frozen inside the compiled chunk and :class:`StuckChainError` is raised at the
    chunk's end.  ``events`` counts failed solves per chain: the caller runs this inside
    ``fpl.compiler.reporting.collecting(events)`` so that the traced density reports to
    it.

    ``shard_data`` splits the data's leading (observation) axis over all local devices
    instead of spreading the chains: each chain's program then runs on every device, XLA
    partitioning the likelihood (GSPMD) — for data too large for one device, or a
    likelihood that dominates the cost.  The result is the same computation (sums in
    another order: equal to rounding, tested).
    """
    n_chains = len(inits)
    total = run.warmup + run.draws
    mine = _own_chains(n_chains, checkpoint, shard_data)
    codes = adapt.schedule(run.warmup, run.adaptation)
    capacity = adapt.buffer_size(codes)
    start, step = _programs(log_density, run, codes, capacity)
    if shard_data:
        replicated, sharded_args = shard_observations(args)
        on = [replicated] * len(mine)
        data = {replicated: sharded_args}
    else:
        devices = chain_devices(len(mine))
        on = [devices[k % len(devices)] for k in range(len(mine))]
        data = {d: jax.device_put(args, d) for d in devices}
    if checkpoint is not None and checkpoint.every:
        chunk = min(chunk, checkpoint.every)
    # every chunk runs one program of `length` iterations, a shorter one (the run's last,
    # a resumed run's first) idling through the rest: one compile per run, not two
    length = min(chunk, total)
    keys = jax.random.split(key, n_chains)  # chain c's key whoever runs it
    start_args = [
        (
            jax.device_put(inits[c], on[k]),
            jax.device_put(keys[c], on[k]),
            jnp.int32(c),
            data[on[k]],
            _row(metric, c),
            None if step_size is None else step_size[c],
        )
        for k, c in enumerate(mine)
    ]
    _compile_everywhere(start, step, start_args, on, length)
    states = [start(*a) for a in start_args]
    pos_parts: list[np.ndarray] = []
    stat_parts: list[tuple] = []
    done = 0
    resumed = checkpoint.load() if checkpoint is not None else None
    if resumed is not None:
        saved = checkpoint.state_like(_stack(states), resumed)
        states = [jax.device_put(_row(saved, c), on[c]) for c in range(n_chains)]
        done = resumed.done
        if done:
            pos_parts, stat_parts = [resumed.positions], [tuple(resumed.stats)]
        events.counts.update(resumed.failures)
    began = time.perf_counter()
    shown = progress and jax.process_index() == 0
    bar = Progress(shown, total, f"sampling {n_chains} chain{'s' * (n_chains > 1)}")
    if done:
        bar.resume(done)  # restored, not run: no rate from these

    def advance(done: int, n: int) -> str:
        nonlocal states, pos_parts, stat_parts
        # dispatch every chain's chunk before waiting for any: the devices run in parallel
        end = jnp.int32(done + n)
        outs = [
            step(states[k], jnp.int32(done), end, data[on[k]], length) for k in range(len(mine))
        ]
        new = _stack([o[0] for o in outs])
        streak = np.asarray(new.streak)
        if (streak >= STUCK_STREAK).any():
            k = int(np.flatnonzero(streak >= STUCK_STREAK)[0])
            raise StuckChainError(
                mine[k],
                int(new.iteration[k]),
                float(new.adapt.step_size[k]),
                float(new.hmc.logdensity[k]),
                np.asarray(new.hmc.position[k]),
            )
        states = [o[0] for o in outs]
        pos_parts = [*pos_parts, np.stack([np.asarray(o[1][0])[:n] for o in outs])]
        stats = tuple(np.stack([np.asarray(o[1][1][i])[:n] for o in outs]) for i in range(7))
        stat_parts = [*stat_parts, stats]
        div = np.concatenate([s[5] for s in stat_parts], axis=1)
        warm, after = int(div[:, : run.warmup].sum()), int(div[:, run.warmup :].sum())
        return f"divergent: warmup {warm}, sampling {after}" if warm or after else ""

    def snapshot():
        return _stack(states), pos_parts, stat_parts

    def save(done: int) -> None:
        checkpoint.save(*snapshot(), done, dict(events.counts))

    def interrupted(done: int) -> BaseException:
        return checkpoint.interrupted(*snapshot(), done, dict(events.counts))

    run_chunks(
        advance,
        done=done,
        total=total,
        chunk=chunk,
        bar=bar,
        every=checkpoint.every if checkpoint is not None else None,
        save=save,
        interrupted=interrupted if checkpoint is not None else None,
    )
    final = _stack(states)
    if checkpoint is not None:
        checkpoint.save(final, pos_parts, stat_parts, total, dict(events.counts))
    jax.effects_barrier()  # every failure callback has been counted
    positions = np.concatenate(pos_parts, axis=1)
    stats = [np.concatenate([s[i] for s in stat_parts], axis=1) for i in range(len(STAT_FIELDS))]
    adapted = (final.adapt.step_size, final.adapt.metric)
    if jax.process_count() > 1:  # every process gets every chain, in chain order
        positions, stats, adapted = _gather((positions, stats, adapted))
        _gather_counts(events)
    return ChainsResult(
        positions[:, run.warmup :],
        {name: s[:, run.warmup :] for name, s in zip(STAT_FIELDS, stats)},
        {name: s[:, : run.warmup] for name, s in zip(STAT_FIELDS, stats)},
        np.asarray(adapted[0]),
        adapted[1],
        time.perf_counter() - began,
        events.per_node(n_chains),
        events.per_node(n_chains, backward=True),
    )


def _compile_everywhere(start, step, start_args, on, length: int) -> None:
    """Compile the run's programs for every device at once, in threads (XLA compiles
    without the GIL): a program runs on several devices, and JAX compiles it once per
    device — one after another at first call, so compile time would grow with the
    devices.  Compiled here, the calls below find them in JAX's cache."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    first = {}
    for k, where in enumerate(on):
        first.setdefault(where, k)
    if len(first) <= 1:
        return  # nothing to overlap
    state = jax.eval_shape(start, *start_args[0])
    offset = jnp.int32(0)

    def placed(tree, where):
        sharding = where if isinstance(where, jax.sharding.Sharding) else None
        sharding = sharding or jax.sharding.SingleDeviceSharding(where)
        return jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(
                x.shape, x.dtype, sharding=sharding, weak_type=x.weak_type
            ),
            tree,
        )

    x64 = bool(jax.config.jax_enable_x64)  # a thread-local setting: carried over

    def compile_for(item):
        where, k = item
        with jax.enable_x64(x64):
            start.lower(*start_args[k]).compile()
            step.lower(placed(state, where), offset, offset, start_args[k][3], length).compile()

    # each thread traces in a copy of this context: the run's solver-events scope
    # (``fpl.compiler.reporting``, a context variable) decides what the programs report
    contexts = [contextvars.copy_context() for _ in first]
    with ThreadPoolExecutor(max_workers=len(first)) as pool:
        done = [
            pool.submit(ctx.run, compile_for, item) for ctx, item in zip(contexts, first.items())
        ]
        for future in done:
            future.result()


def _own_chains(n_chains: int, checkpoint, shard_data: bool) -> list[int]:
    """The chains this process runs: all of them, or, in a multi-process run
    (``jax.distributed.initialize`` called before sampling), chain c on process
    c mod P — the same per-chain program and key as anywhere, so the draws equal a
    one-process run's."""
    from fpl.dsl.diagnostics import error

    procs, me = jax.process_count(), jax.process_index()
    if procs == 1:
        return list(range(n_chains))
    if n_chains % procs:
        raise error("E0403", f"{n_chains} chains cannot be shared by {procs} processes evenly")
    if checkpoint is not None or shard_data:
        raise error(
            "E0403", "a multi-process run takes neither `checkpoint` nor `shard_data` (yet)"
        )
    return list(range(me, n_chains, procs))


def _gather(tree):
    """Each process's chains (leading axis) -> all chains in chain order (chain c is
    process c mod P's (c // P)-th)."""
    from jax.experimental import multihost_utils

    def interleave(x):
        g = np.asarray(multihost_utils.process_allgather(np.asarray(x)))  # (P, J, ...)
        return np.swapaxes(g, 0, 1).reshape(-1, *g.shape[2:])

    return jax.tree_util.tree_map(interleave, tree)


def _gather_counts(events) -> None:
    """Every process's solver-failure counts into every process's ``events``."""
    import json

    from jax.experimental import multihost_utils

    mine = json.dumps(
        [[list(k), v] for k, v in events.counts.items()]
        + [[["reason", *k], v] for k, v in events.reasons.items()]
    ).encode()
    length = np.asarray(multihost_utils.process_allgather(np.asarray([len(mine)])))
    padded = np.zeros(int(length.max()), np.uint8)
    padded[: len(mine)] = np.frombuffer(mine, np.uint8)
    every = np.asarray(multihost_utils.process_allgather(padded))
    events.counts.clear()
    events.reasons.clear()
    for row, n in zip(every, length.reshape(-1)):
        for key, value in json.loads(bytes(row[: int(n)]).decode()):
            if key[0] == "reason":
                events.reasons[tuple(key[1:])] += value
            else:
                events.counts[tuple(key)] += value


def shard_observations(args):
    """``(replicated, args)``: a sharding that replicates over all local devices, and the
    data with every array whose leading axis the devices divide split along it (the
    others replicated)."""
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    devices = jax.local_devices()
    mesh = Mesh(np.asarray(devices), ("data",))
    replicated = NamedSharding(mesh, P())
    split = NamedSharding(mesh, P("data"))

    def place(x):
        x = jnp.asarray(x)
        divisible = x.ndim >= 1 and x.shape[0] >= len(devices) and x.shape[0] % len(devices) == 0
        return jax.device_put(x, split if divisible else replicated)

    return replicated, jax.tree_util.tree_map(place, args)


def _stack(states):
    """Per-chain pytrees (on their devices) -> one host pytree with a chain axis."""
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *states)


def _row(tree, c: int):
    """Chain ``c``'s slice of a pytree with a chain axis (None stays None)."""
    if tree is None:
        return None
    return jax.tree_util.tree_map(lambda x: x[c], tree)


def _programs(log_density, run: Run, codes: np.ndarray, capacity: int):
    """The two compiled single-chain programs of a run: ``start`` (a chain's first state)
    and ``step`` (a chunk of ``n`` iterations of a chain, those from ``limit`` on idle:
    the state passes through unchanged, its key included, so a chunk of ``m < n``
    iterations run by the ``n``-iteration program equals an ``m``-iteration one)."""
    from blackjax.mcmc import nuts as blackjax_nuts

    from fpl.runtime.nuts_tree import build_kernel

    kernel = build_kernel()  # BlackJAX's NUTS with Stan's additional U-turn checks
    a, warmup, depth = run.adaptation, run.warmup, run.max_tree_depth
    schedule = jnp.asarray(codes if warmup else np.zeros(1, np.int32))

    def start(x, key, chain, args, metric, step_size):
        hmc = blackjax_nuts.init(x, lambda x: log_density(x, args))
        state = adapt.init(a, hmc.logdensity_grad, capacity, metric, step_size)
        zero = jnp.zeros((), jnp.int32)
        return ChainState(hmc, state, key, zero, zero, chain)

    def transition(cs: ChainState, index, limit, args):
        key, sub = jax.random.split(cs.key)

        def move(cs):
            hmc, info = kernel(
                sub,
                cs.hmc,
                lambda x: log_density(x, args),
                cs.adapt.step_size,
                cs.adapt.metric,
                max_num_doublings=depth,
            )
            code = schedule[jnp.clip(index, 0, schedule.shape[0] - 1)]
            state = jax.lax.cond(
                index < warmup,
                lambda s: adapt.update(
                    a,
                    s,
                    code,
                    index == warmup - 1,
                    hmc.position,
                    hmc.logdensity_grad,
                    info.acceptance_rate,
                ),
                lambda s: s,
                cs.adapt,
            )
            stats = (
                hmc.logdensity,
                info.acceptance_rate,
                cs.adapt.step_size,
                info.num_trajectory_expansions,
                info.num_integration_steps,
                info.is_divergent,
                info.energy,
            )
            return hmc, state, _typed(stats)

        def stay(cs):  # a frozen (stuck) chain: no more costly transitions
            nan = jnp.full((), jnp.nan, cs.hmc.logdensity.dtype)
            stats = (cs.hmc.logdensity, nan, cs.adapt.step_size, 0, 0, False, nan)
            return cs.hmc, cs.adapt, _typed(stats)

        frozen = cs.streak >= STUCK_STREAK
        idle = index >= limit  # past this chunk's end
        kept = frozen | idle
        hmc, state, stats = jax.lax.cond(kept, stay, move, cs)
        flag = stuck_flags(stats[2], stats[3], stats[5], index, warmup, depth)
        streak = jnp.where(kept, cs.streak, jnp.where(flag, cs.streak + 1, 0)).astype(jnp.int32)
        iteration = jnp.where(kept, cs.iteration, index + 1).astype(jnp.int32)
        key = jnp.where(idle, cs.key, key)
        new = ChainState(hmc, state, key, streak, iteration, cs.chain)
        return new, (hmc.position, stats)

    def chunk(cs, offset, limit, args, n):
        with reporting.chain_index(cs.chain):  # failures counted per chain
            return jax.lax.scan(
                lambda c, i: transition(c, offset + i, limit, args), cs, jnp.arange(n)
            )

    return jax.jit(start), jax.jit(chunk, static_argnums=4)


def _typed(stats):
    """Sampler statistics with one dtype each, whichever branch made them."""
    lp, accept, step, depth, n_leapfrog, diverging, energy = stats
    f = jnp.result_type(float)
    return (
        jnp.asarray(lp, f),
        jnp.asarray(accept, f),
        jnp.asarray(step, f),
        jnp.asarray(depth, jnp.int32),
        jnp.asarray(n_leapfrog, jnp.int32),
        jnp.asarray(diverging, bool),
        jnp.asarray(energy, f),
    )


def chain_devices(n_chains: int) -> list:
    """The local devices the chains are spread over: the most that divide the chains
    evenly (4 chains on 3 devices use 2)."""
    devices = jax.local_devices()
    count = max(k for k in range(1, min(len(devices), n_chains) + 1) if n_chains % k == 0)
    return devices[:count]


__all__ = [
    "STAT_FIELDS",
    "STUCK_STEP",
    "STUCK_STREAK",
    "ChainState",
    "ChainsResult",
    "Run",
    "StuckChainError",
    "chain_devices",
    "run_nuts",
    "shard_observations",
    "stuck_flags",
]
