"""Solver results as data: one implicit node's results in an evaluation (``node_stats``),
per-element results of a node inside map/scan/fold reduced to one (``reduce_stats``),
and two results or probes of one node merged (``merge_stats``, ``merge_probes``)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

# ---- solver results as data ------------------------------------------------------------
#
# A node's results in one evaluation: ``residual`` (float), ``iterations`` (int32),
# ``converged`` (bool), ``reason`` (int32 Result code), ``solves`` (int32: how many solves
# they summarise) and ``failures`` (int32: how many of those did not converge).  A node
# inside `map`, `scan` or `fold` is solved once per element or step: the per-element
# results leave the inner trace as data (an auxiliary output) and are reduced here to
# the same fields: the worst residual, the most iterations, converged only if every
# solve did, the reason of the first failure, and the counts summed.  A node met twice
# (a function called at two places) merges the same way.  Invariant: ``converged`` is
# ``failures == 0`` and ``reason`` is 0 exactly when ``converged``.


def node_stats(residual, iterations, converged, reason) -> dict[str, Any]:
    """One solve's results (see above)."""
    converged = jnp.asarray(converged, bool)
    return {
        "residual": residual,
        "iterations": jnp.asarray(iterations, jnp.int32),
        "converged": converged,
        "reason": jnp.asarray(reason, jnp.int32),
        "solves": jnp.int32(1),
        "failures": jnp.logical_not(converged).astype(jnp.int32),
    }


def reduce_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Per-element results (any leading axes) reduced to one node's results."""
    scalar = {key: jnp.ravel(v) for key, v in stats.items()}
    codes = scalar["reason"]
    first = jnp.argmax(codes != 0) if codes.size else 0
    empty = codes.size == 0
    return {
        "residual": jnp.max(scalar["residual"], initial=0.0),
        "iterations": jnp.max(scalar["iterations"], initial=0).astype(jnp.int32),
        "converged": jnp.all(scalar["converged"]),
        "reason": jnp.int32(0) if empty else codes[first].astype(jnp.int32),
        "solves": jnp.sum(scalar["solves"]).astype(jnp.int32),
        "failures": jnp.sum(scalar["failures"]).astype(jnp.int32),
    }


def merge_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two results of one node (reduced) as one."""
    both = {key: jnp.stack([jnp.asarray(a[key]), jnp.asarray(b[key])]) for key in a}
    return reduce_stats(both)


def merge_probes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two probes of one node: each field's values side by side (raveled)."""
    return {key: jnp.concatenate([jnp.ravel(a[key]), jnp.ravel(b[key])]) for key in a}


__all__ = ["merge_probes", "merge_stats", "node_stats", "reduce_stats"]
