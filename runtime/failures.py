"""Counting non-converged implicit solves inside compiled sampling loops.

A failed solve makes the log density -inf at that point (NUTS rejects it); the
potential also reports it to the host through ``jax.debug.callback`` — only when a
solve failed, under ``lax.cond`` — so every gradient evaluation that met a failure is
counted, per chain and per node, and shown with the node's source location.

A failed *backward* solve (the linear solve of an implicit node's gradient, where the
forward solve converged) makes the gradient NaN; the lowering reports it to the host
(``fpl.compiler.implicit.BACKWARD_LISTENERS``) and it is counted here too, per chain
and node, apart from the forward failures (as ``~node``, a negative id, in the same
table, so that checkpoints keep both).

Per draw, ``sample_stats`` also holds each node's ``residual``, ``iterations`` and
``converged`` at the draw (the program re-run at the draws, vectorised), named
``"<field>:<kind>#<id>@<file>:<line>:<col>"`` (e.g. ``residual:fix#1@model.fpl:7:9``).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fpl.compiler.implicit import BACKWARD_LISTENERS


class FailureCounter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chain = 0
        self.counts: dict[tuple[int, int], int] = defaultdict(int)  # (chain, node) -> n

    def record(self, node_ids: tuple[int, ...], flags) -> None:
        flags = np.asarray(flags)
        with self.lock:
            for node, bad in zip(node_ids, flags.reshape(-1, len(node_ids))[-1]):
                if bad:
                    self.counts[(self.chain, node)] += 1

    def record_backward(self, node: int) -> None:
        """One failed backward (gradient) solve of ``node`` in the current chain."""
        with self.lock:
            self.counts[(self.chain, ~node)] += 1

    def per_node(self, chains: int, backward: bool = False) -> dict[int, list[int]]:
        """node id -> failed forward (or, with ``backward``, gradient) solves per chain."""
        out: dict[int, list[int]] = {}
        for (chain, node), n in self.counts.items():
            if (node < 0) == backward:
                out.setdefault(~node if backward else node, [0] * chains)[chain] += n
        return out


COUNTER = FailureCounter()
BACKWARD_LISTENERS.append(COUNTER.record_backward)


def report(solver_stats: dict[int, dict]) -> None:
    """Inside a traced potential: send the failed-node flags to the host, if any."""
    if not solver_stats:
        return
    ids = tuple(solver_stats)
    flags = jnp.stack([jnp.logical_not(solver_stats[i]["converged"]) for i in ids])

    def send(f):
        jax.debug.callback(lambda x: COUNTER.record(ids, x), f)

    jax.lax.cond(jnp.any(flags), send, lambda f: None, flags)


NODE_STATS = ("residual", "iterations", "converged")


def stat_name(node, field: str) -> str:
    """The ``sample_stats`` name of one node's per-draw ``field`` (no ``/``: netCDF-safe)."""
    sp = node.span
    return f"{field}:{node.kind}#{node.node_id}@{Path(sp.source.name).name}:{sp.line}:{sp.col}"


def is_stat_name(key: str) -> bool:
    return key.split(":", 1)[0] in NODE_STATS and "#" in key


def node_stats_at(program, solver_stats: dict[int, dict]) -> dict:
    """Per-node stats of one evaluation, by :func:`stat_name` (traced values)."""
    out = {}
    for node in program.implicit_nodes:
        st = solver_stats.get(node.node_id)
        if st is None:  # a node inside a function body: not evaluated at top level
            continue
        out[stat_name(node, "residual")] = jnp.asarray(st["residual"], float)
        out[stat_name(node, "iterations")] = jnp.asarray(st["iterations"], jnp.int32)
        out[stat_name(node, "converged")] = jnp.asarray(st["converged"], bool)
    return out
