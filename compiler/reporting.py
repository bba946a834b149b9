"""Solver-failure events from compiled code, scoped to one run (no global state).

A compiled log density cannot return the failures met *inside* a sampler's trajectory
(NumPyro's NUTS calls it many times per transition and keeps only the last value), so
failed solves are also sent to the host with ``jax.debug.callback``.  Where they go is
decided **at trace time** by the :class:`SolverEvents` of the innermost
:func:`collecting` scope (a ``contextvars`` variable, so threads and notebook cells
never share one): the callback closes over that run's object.  Code traced outside any
scope compiles no callback at all, so a plain ``jax.jit(model.log_density)`` carries no
host effects.

Forward failures (a solve that did not converge; the log density is then -inf) and
backward failures (the linear solve of an implicit gradient; the gradient is then NaN)
are counted per chain and node: a sampler tracing one chain's transition inside
:func:`chain_index` (its chain number, a traced value) has each report carry that
number, so chains running in parallel are told apart; elsewhere ``SolverEvents.chain``
(set by the host) is used.

A ``reject`` reached where params are traced makes the log density -inf (Stan's rejected
proposal).  Which one was reached is reported the same way, but only to a run that asks
(``SolverEvents(rejects=True)``): the error paths of the runtime (no valid initial point,
an optimization ending on a rejected point) re-evaluate the points at fault in such a
scope (:func:`rejections`) to name the ``reject`` and its message (E0402, E0413); NUTS,
whose trajectories meet rejected points as a matter of course, compiles no callback
for them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import FplError, error
from fpl.dsl.spans import Span

#: the code of a ``reject`` reached: at bind time in data-only code, and where a run ends
#: on a rejected point (an optimization, a given initial point)
REJECT_CODE = "E0413"


@dataclass(frozen=True)
class Rejection:
    """One ``reject("message", values...)`` of the program: where it stands, its message;
    ``divisor``: an integer ``%`` or ``/`` by zero (``Evaluator.integer_divisor``), which
    rejects the point as a ``reject`` at the divisor does."""

    span: Span
    message: str
    divisor: bool = False

    def error(self, detail: str, code: str = REJECT_CODE, help: str | None = None) -> FplError:
        """The located error: ``detail`` says where the run met it."""
        return error(
            code,
            f"rejected: {self.message.rstrip()} ({detail})" if code == REJECT_CODE else detail,
            self.span,
            label="this divisor is zero here" if self.divisor else "`reject` reached here",
            help=help,
        )


class SolverEvents:
    """Failure counts of one run: ``(chain, node id) -> n`` (backward as ``~node``); with
    ``rejects``, also the ``reject``s reached: ``(chain, Rejection) -> n``."""

    def __init__(self, rejects: bool = False) -> None:
        self._lock = threading.Lock()
        self.track_rejects = rejects
        self.rejections: dict[tuple[int, Rejection], int] = defaultdict(int)
        self.chain = 0
        self.counts: dict[tuple[int, int], int] = defaultdict(int)
        #: (chain, node id, result code) -> forward failures for that reason
        self.reasons: dict[tuple[int, int, int], int] = defaultdict(int)
        #: node ids of backward failures since the last :meth:`drain_backward`
        self.recent_backward: list[int] = []

    def forward(self, node_ids: tuple[int, ...], codes, chain=None) -> None:
        """Host side: ``codes[i]`` is node ``node_ids[i]``'s solver result code (0:
        converged; ``fpl.stdlib.solvers.Result``), or a bool: failed."""
        codes = np.asarray(codes).astype(np.int64).reshape(-1, len(node_ids))
        c = self._chain(chain)
        with self._lock:
            for node, code in zip(node_ids, codes[-1]):
                if code:
                    self.counts[(c, node)] += 1
                    self.reasons[(c, node, int(code))] += 1

    def backward(self, node_id: int, bad=True, chain=None) -> None:
        """Host side: one backward (gradient) solve of ``node_id`` failed (if ``bad``:
        under ``vmap`` the callback also runs for healthy elements)."""
        if not bool(np.any(np.asarray(bad))):
            return
        c = self._chain(chain)
        with self._lock:
            self.counts[(c, ~node_id)] += 1
            self.recent_backward.append(node_id)

    def rejected(self, sites: tuple[Rejection, ...], flags, chain=None) -> None:
        """Host side: ``flags[i]``: whether ``sites[i]`` was reached in one evaluation."""
        c = self._chain(chain)
        with self._lock:
            for site, flag in zip(sites, np.asarray(flags).reshape(-1)):
                if flag:
                    self.rejections[(c, site)] += 1

    def _chain(self, chain) -> int:
        return self.chain if chain is None else int(np.asarray(chain).reshape(-1)[-1])

    def reasons_per_node(self) -> dict[int, dict[int, int]]:
        """node id -> {result code: forward failures for that reason} (all chains)."""
        out: dict[int, dict[int, int]] = {}
        for (_chain, node, code), n in self.reasons.items():
            out.setdefault(node, {}).setdefault(code, 0)
            out[node][code] += n
        return out

    def drain_backward(self) -> list[int]:
        with self._lock:
            out, self.recent_backward = self.recent_backward, []
        return out

    def per_node(self, chains: int, backward: bool = False) -> dict[int, list[int]]:
        """node id -> failed forward (or, with ``backward``, gradient) solves per chain."""
        out: dict[int, list[int]] = {}
        for (chain, node), n in self.counts.items():
            if (node < 0) == backward and chain < chains:
                out.setdefault(~node if backward else node, [0] * chains)[chain] += n
        return out


_CURRENT: contextvars.ContextVar[SolverEvents | None] = contextvars.ContextVar(
    "fpl_solver_events", default=None
)


_CHAIN: contextvars.ContextVar = contextvars.ContextVar("fpl_chain_index", default=None)


@contextlib.contextmanager
def chain_index(index) -> Iterator[None]:
    """While tracing one chain's transition: reports carry ``index`` (traced)."""
    token = _CHAIN.set(index)
    try:
        yield
    finally:
        _CHAIN.reset(token)


def batch_index(marker):
    """Inside a function ``jax.vmap`` maps over one axis (ChEES's chains, which BlackJAX
    maps over with no axis name): the index along that axis, as a traced int32; -1 where
    nothing maps ``marker``.  ``marker`` is any value batched along the axis (a bool of
    the position: it carries no derivative).  Pass it to :func:`chain_index` so that the
    failures met there are counted per element of the axis.  (A ``custom_vmap`` function
    whose batching rule returns ``arange(axis_size)``; a ``vmap`` inside, a model's
    ``map``, does not batch ``marker`` and sees the index as it is: a test checks it.)"""
    import jax
    import jax.numpy as jnp

    @jax.custom_batching.custom_vmap
    def index(marker):
        return jnp.int32(-1)

    @index.def_vmap
    def _rule(axis_size, in_batched, marker):
        return jnp.arange(axis_size, dtype=jnp.int32), True

    return index(marker)


def current() -> SolverEvents | None:
    """The events object code traced now reports to (None: report nothing)."""
    return _CURRENT.get()


@contextlib.contextmanager
def collecting(events: SolverEvents | None = None) -> Iterator[SolverEvents]:
    """Within this block, traced code reports solver failures to ``events``."""
    events = SolverEvents() if events is None else events
    token = _CURRENT.set(events)
    try:
        yield events
    finally:
        _CURRENT.reset(token)


_KEEP_UNCONVERGED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fpl_keep_unconverged", default=False
)


@contextlib.contextmanager
def keeping_unconverged() -> Iterator[None]:
    """Within this block, traced code keeps a non-converged solve's best iterate as the
    node's value (with its implicit gradient there) instead of NaN, and the log density
    finite: ``optimize(on_failure="best")``.  The node's stats still say it failed, so
    it is counted; NUTS never traces in this scope (its rule stays -inf).  Iterative
    solvers then return their lowest-residual iterate, not their last
    (``fpl.stdlib.solvers.KEEP_BEST``)."""
    from fpl.stdlib.solvers import KEEP_BEST

    token = _KEEP_UNCONVERGED.set(True)
    best = KEEP_BEST.set(True)
    try:
        yield
    finally:
        KEEP_BEST.reset(best)
        _KEEP_UNCONVERGED.reset(token)


def keep_unconverged() -> bool:
    """Whether code traced now keeps non-converged iterates (:func:`keeping_unconverged`)."""
    return _KEEP_UNCONVERGED.get()


def report_forward(node_ids: tuple[int, ...], codes) -> None:
    """Inside traced code: send the nodes' result codes (0: converged) to the current
    run, if any (only when one failed, under ``lax.cond``)."""
    events = current()
    if events is None or not node_ids:
        return
    _send(functools.partial(_forward, events, tuple(node_ids)), codes)


def report_backward(node_id: int, bad) -> None:
    """Inside traced code: report a failed backward solve of ``node_id`` (if ``bad``)."""
    events = current()
    if events is None:
        return
    _send(functools.partial(_backward, events, node_id), bad)


def report_rejects(flags: Mapping[int, Any], nodes: Mapping[int, Any]) -> None:
    """Inside traced code: send which ``reject``s were reached (``flags``: by node key,
    ``nodes``: the ``ir.Reject`` of each key) to the current run, if it asks for them."""
    events = current()
    if events is None or not events.track_rejects or not flags:
        return
    import jax.numpy as jnp

    keys = tuple(flags)
    sites = tuple(
        Rejection(nodes[k].span, nodes[k].message, nodes[k].name != "reject") for k in keys
    )
    _send(functools.partial(_rejected, events, sites), jnp.stack([flags[k] for k in keys]))


def has_rejects(program) -> bool:
    """Whether the ``ir.Program`` has a ``reject`` left to reach, or an integer ``%`` or
    ``/`` whose divisor may be zero (it is worth asking :func:`rejections`)."""
    from fpl.compiler import ir

    return any(
        isinstance(n, ir.Reject) or ir.integer_division(n)
        for s in program.statements
        for n in ir.walk(s)
    )


def rejections(density: Callable, points) -> list[tuple[Rejection, int]]:
    """The ``reject``s reached when ``density`` (a function of one point, evaluating the
    model: ``cm.log_density`` or ``cm.evaluate``) runs at each of ``points`` (a pytree of
    arrays with a leading axis of points), each with how many points reached it, the most
    often reached first.  One compiled, vectorised evaluation, traced afresh in its own
    scope: a diagnosis for the error paths, never called in a run's loop."""
    import jax

    events = SolverEvents(rejects=True)
    with collecting(events):  # (a new function: traced here, with the callback)
        jax.block_until_ready(jax.jit(jax.vmap(lambda point: density(point)))(points))
    jax.effects_barrier()
    counts: dict[Rejection, int] = defaultdict(int)
    for (_chain, site), n in events.rejections.items():
        counts[site] += n
    return sorted(counts.items(), key=lambda item: -item[1])


def _send(host, flags) -> None:
    """One host callback, under ``lax.cond`` (only when a flag is set), carrying the
    flags and the traced chain index.

    Under ``vmap`` JAX's own batching rule of a callback unrolls it into one callback
    per element (compile time linear in the batch size); here the call is a
    ``custom_vmap`` function whose rule sends the whole batch in *one* callback
    (flags with leading batch axes, the chain index broadcast beside them), and the
    host side counts row by row.  Nested ``vmap``s apply the rule at each level."""
    import jax
    import jax.numpy as jnp

    chain = _CHAIN.get()
    chain = jnp.int32(-1) if chain is None else chain

    @jax.custom_batching.custom_vmap
    def send(flags, chain):
        def call(f, c):
            jax.debug.callback(host, f, c)

        jax.lax.cond(jnp.any(flags != 0), call, lambda f, c: None, flags, chain)
        return flags

    @send.def_vmap
    def _rule(axis_size, in_batched, flags, chain):
        flags_b, chain_b = in_batched
        if not flags_b:
            flags = jnp.broadcast_to(flags, (axis_size, *jnp.shape(flags)))
        if not chain_b:
            chain = jnp.broadcast_to(chain, (axis_size, *jnp.shape(chain)))
        return send(flags, chain), True

    send(jnp.asarray(flags), jnp.asarray(chain, jnp.int32))


def _rows(values, chain, width: int):
    """Host side: ``(chain, row)`` per evaluation in a batch (flags of ``width`` each;
    a chain index per row, or one for all)."""
    values = np.asarray(values).astype(np.int64).reshape(-1, width)
    chains = np.asarray(chain).astype(np.int64).reshape(-1)
    if chains.size != len(values):
        chains = np.full(len(values), chains[-1])
    return zip(chains.tolist(), values)


def _forward(events: SolverEvents, node_ids, codes, chain) -> None:
    for c, row in _rows(codes, chain, len(node_ids)):
        events.forward(node_ids, row, None if c < 0 else c)


def _backward(events: SolverEvents, node_id: int, bad, chain) -> None:
    for c, row in _rows(bad, chain, 1):
        events.backward(node_id, row[0], None if c < 0 else c)


def _rejected(events: SolverEvents, sites, flags, chain) -> None:
    for c, row in _rows(flags, chain, len(sites)):
        events.rejected(sites, row, None if c < 0 else c)


__all__ = [
    "REJECT_CODE",
    "Rejection",
    "SolverEvents",
    "batch_index",
    "chain_index",
    "collecting",
    "current",
    "has_rejects",
    "rejections",
    "report_backward",
    "report_forward",
    "report_rejects",
]
