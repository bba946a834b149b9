"""How implicit-node solver failures reach the user.

A failed solve makes the log density -inf at that point (NUTS rejects it); inside a
run, the compiled potential also reports it to the run's own
``fpl.compiler.reporting.SolverEvents`` (chosen when the code is traced, so two runs in
one process never share counts) — only when a solve failed, under ``lax.cond`` — so
every gradient evaluation that met a failure is counted, per chain and per node, and
shown with the node's source location.  A failed *backward* solve (the linear solve of
an implicit node's gradient, where the forward solve converged) makes the gradient NaN
and is counted too, apart from the forward failures.

Per draw, ``sample_stats`` also holds each node's ``residual``, ``iterations``,
``converged``, failure ``reason``, ``solves`` and ``failures`` at the draw (a node inside
``map``/``scan``/``fold`` or a function called twice is solved more than once per
evaluation: the worst residual, the most iterations, the first failure's reason, and
how many solves there were and how many failed) (the program re-run at the draws,
vectorised), named ``"<field>:<kind>#<id>@<file>:<line>:<col>"`` (e.g.
``residual:fix#1@model.fpl:7:9``).
"""

from __future__ import annotations

from pathlib import Path

from fpl.compiler.compiled import NodeInfo
from fpl.compiler.reporting import SolverEvents, collecting

NODE_STATS = ("residual", "iterations", "converged", "reason", "solves", "failures")


def stat_name(node: NodeInfo, field: str) -> str:
    """The ``sample_stats`` name of one node's per-draw ``field`` (no ``/``: netCDF-safe)."""
    sp = node.span
    return f"{field}:{node.kind}#{node.node_id}@{Path(sp.source.name).name}:{sp.line}:{sp.col}"


def is_stat_name(key: str) -> bool:
    return key.split(":", 1)[0] in NODE_STATS and "#" in key


def name_stats(nodes, node_stats: dict[int, dict]) -> dict:
    """The per-node stats of ``CompiledModel.generate(stats=True)`` as ``sample_stats``
    entries named by :func:`stat_name`."""
    by_id = {n.node_id: n for n in nodes}
    return {
        stat_name(by_id[node_id], field): value
        for node_id, fields in node_stats.items()
        for field, value in fields.items()
    }


def by_label(nodes, counts: dict[int, list[int]], chains: int) -> dict[str, list[int]]:
    """Failure counts keyed by the node's label (``fix#1 at model.fpl:7:9``)."""
    return {n.label: counts.get(n.node_id, [0] * chains) for n in nodes}


def reasons_by_label(nodes, reasons: dict[int, dict[int, int]]) -> dict[str, dict[str, int]]:
    """Forward failures by node label and reason name (``max_iter_reached``, ...)."""
    from fpl.stdlib.solvers import reason_name

    return {
        n.label: {reason_name(code): k for code, k in sorted(reasons[n.node_id].items())}
        for n in nodes
        if n.node_id in reasons
    }


__all__ = [
    "NODE_STATS",
    "SolverEvents",
    "by_label",
    "collecting",
    "is_stat_name",
    "name_stats",
    "reasons_by_label",
    "stat_name",
]
