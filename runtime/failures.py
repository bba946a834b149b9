"""Counting non-converged implicit solves inside compiled sampling loops.

A failed solve makes the log density -inf at that point (NUTS rejects it); the
potential also reports it to the host through ``jax.debug.callback`` — only when a
solve failed, under ``lax.cond`` — so every gradient evaluation that met a failure is
counted, per chain and per node, and shown with the node's source location.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np


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

    def per_node(self, chains: int) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for (chain, node), n in self.counts.items():
            out.setdefault(node, [0] * chains)[chain] += n
        return out


COUNTER = FailureCounter()


def report(solver_stats: dict[int, dict]) -> None:
    """Inside a traced potential: send the failed-node flags to the host, if any."""
    if not solver_stats:
        return
    ids = tuple(solver_stats)
    flags = jnp.stack([jnp.logical_not(solver_stats[i]["converged"]) for i in ids])

    def send(f):
        jax.debug.callback(lambda x: COUNTER.record(ids, x), f)

    jax.lax.cond(jnp.any(flags), send, lambda f: None, flags)
