"""The structure of a bound program as the runtime sees it through ``CompiledModel``:
its params (where each sits in ``theta``), its implicit nodes, and one evaluation's
results."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fpl.compiler import ir
from fpl.compiler.analyses import bound_shape


@dataclass(frozen=True)
class ParamInfo:
    """One param: its constraint kind, constrained and unconstrained shapes, and where
    its unconstrained values sit in ``theta``."""

    name: str
    kind: str
    shape: tuple[int, ...]
    unc_shape: tuple[int, ...]
    offset: int
    span: Any = field(compare=False, repr=False)

    @property
    def unc_size(self) -> int:
        return math.prod(self.unc_shape)


@dataclass(frozen=True)
class NodeInfo:
    """An implicit node as the runtime reports it."""

    node_id: int
    kind: str  # fix | root | argmin | ode
    location: str  # file:line:col
    solver: str  # the solver that runs (``linear (direct)`` for affine bodies); an ODE's
    # the form its call names (``ode_bdf_tol``: fpl.stdlib.ode.FORMS)
    grad: str  # implicit | phantom | onestep | unrolled | lstsq
    span: Any = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.node_id} at {self.location}"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of the program: the log density, every named value, and per
    implicit node (by id) its solver results."""

    log_density: Any
    values: dict[str, Any]
    stats: dict[int, dict[str, Any]]
    failed: Any  # number of implicit nodes whose forward solve did not converge
    warm: dict[int, Any]  # warm-start state out (see ``evaluate(warm=)``)
    probes: dict[int, Any]  # what ``evaluate(probe=)`` returned per node


def param_infos(program: ir.Program) -> tuple[ParamInfo, ...]:
    """Each param's shapes and offset in ``theta`` (declaration order)."""
    from fpl.compiler.transforms import unconstrained_shape

    params, offset = [], 0
    for p in program.params:
        shape = bound_shape(p.ty)
        unc = unconstrained_shape(p.constraint.kind, shape)
        params.append(ParamInfo(p.name, p.constraint.kind, shape, unc, offset, p.span))
        offset += math.prod(unc)
    return tuple(params)


def node_infos(program: ir.Program) -> tuple[NodeInfo, ...]:
    from fpl.compiler.implicit import direct
    from fpl.stdlib.solvers import DEFAULT_SOLVER

    infos = []
    for n in program.implicit_nodes:
        solver = "linear (direct)" if direct(n) else (n.solver or DEFAULT_SOLVER[n.kind])
        infos.append(NodeInfo(n.node_id, n.kind, n.span.location, solver, n.grad, n.span))
    for o in program.ode_nodes:  # ODE solves fail, and are counted, like implicit nodes
        infos.append(NodeInfo(o.node_id, "ode", o.span.location, o.solver, "forward", o.span))
    return tuple(sorted(infos, key=lambda i: i.node_id))


__all__ = ["Evaluation", "NodeInfo", "ParamInfo", "node_infos", "param_infos"]
