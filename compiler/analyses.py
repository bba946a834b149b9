"""Analyses of a bound program that the runtime needs through ``CompiledModel``: the
likelihood terms minibatching scales, solver result codes, and Stan's component names
and column-major order of flat values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fpl.compiler import ir
from fpl.dsl.diagnostics import error


def component_names(name: str, shape: tuple[int, ...]) -> list[str]:
    """Stan's (BridgeStan's) names of an array's components, column-major: ``a.1.1``,
    ``a.2.1``, ..."""
    if not shape:
        return [name]
    idx = np.indices(shape).reshape(len(shape), -1).T  # row-major enumeration
    order = np.lexsort(idx.T)  # the last index is the primary key: column-major
    return [name + "".join(f".{int(i) + 1}" for i in idx[k]) for k in order]


def bound_shape(ty) -> tuple[int, ...]:
    """A type's shape once sizes are bound (every dimension a number by then)."""
    dims = []
    for d in ty.shape:
        if isinstance(d, str) or d is None:
            raise AssertionError(f"size {d!r} unresolved in a bound program")
        dims.append(int(d))
    return tuple(dims)


def column_major(x, shape: tuple[int, ...]):
    import jax.numpy as jnp

    x = jnp.reshape(x, shape)
    return jnp.ravel(jnp.transpose(x)) if len(shape) > 1 else jnp.ravel(x)


def result_code(stats: Mapping[str, Any]):
    """A node's solver result code (``fpl.stdlib.solvers.Result``; 0: converged); where a
    solve converged but the node failed (an inner node did), 7 (``nested_failed``)."""
    import jax.numpy as jnp

    from fpl.stdlib.solvers import Result

    code = jnp.asarray(stats.get("reason", Result.MAX_ITER_REACHED), jnp.int32)
    failed = jnp.logical_not(stats["converged"])
    nested = jnp.int32(Result.NESTED_FAILED)
    return jnp.where(failed, jnp.where(code == 0, nested, code), jnp.int32(Result.CONVERGED))


def _is_average(s) -> bool:
    """A ``loss mean(...)`` / ``target += mean(...)`` term: a batch mean is already an
    unbiased estimate of the full mean, so it is not scaled by N / B."""
    if not isinstance(s, ir.Factor):
        return False
    e = s.value
    while isinstance(e, ir.Op) and e.name == "neg":
        e = e.args[0]
    return isinstance(e, ir.Op) and e.name == "mean"


def likelihood_terms(program: ir.Program, fields: list[str]) -> list[int]:
    """Statement indices of the ``~`` / ``target +=`` terms that read one of the data
    ``fields`` (directly or through ``let`` / ``out`` values) and are not averages at
    their top; E0403 where a param's bounds read them (they cannot be minibatched)."""
    tainted = set(fields)

    def reads(node) -> bool:
        for x in ir.walk(node):
            if isinstance(x, ir.Ref) and x.name in tainted:
                return True
            if isinstance(x, ir.Attr) and x.target.name in tainted:
                return True
        return False

    out = []
    for i, s in enumerate(program.statements):
        if isinstance(s, (ir.Let, ir.Out)) and reads(s.value):
            tainted.add(s.name)
        elif isinstance(s, (ir.Observe, ir.Factor)) and reads(s) and not _is_average(s):
            out.append(i)
        elif isinstance(s, ir.ParamDecl) and reads(s.constraint):
            raise error(
                "E0403", f"cannot minibatch: the bounds of `{s.name}` read batched data", s.span
            )
    return out


def outcome_fields(program: ir.Program) -> list[str]:
    """The data fields that only ``~`` statements and ``target +=`` terms read: the
    outcomes, which outs, gens, ``let`` values they feed, bounds and sizes never read
    (directly or through ``let`` values).  ``predict`` may leave them out of new data:
    they change the log density, never the predictions."""

    def names(node) -> set[str]:
        out = set()
        for x in ir.walk(node):
            if isinstance(x, ir.Ref):
                out.add(x.name)
            elif isinstance(x, ir.Attr):
                out.add(x.target.name)
        return out

    lets = {s.name: names(s.value) for s in program.statements if isinstance(s, ir.Let)}
    needed: set[str] = set()
    for s in program.statements:
        if isinstance(s, (ir.Observe, ir.Factor)):
            continue
        if isinstance(s, ir.Let):
            continue  # a let is needed only where something needed reads it
        needed |= names(s)
        if isinstance(s, ir.DataDecl):
            needed.discard(s.name)
    frontier = list(needed)
    while frontier:  # let values read by what is needed are needed too
        name = frontier.pop()
        for read in lets.get(name, ()):
            if read not in needed:
                needed.add(read)
                frontier.append(read)
    observed = set().union(*(names(s) for s in program.statements if isinstance(s, ir.Observe)))
    for name, reads in lets.items():  # `let z = (y - m) / s; z ~ ...` observes y
        if name in observed:
            observed |= reads
    return [d.name for d in program.data if d.name in observed and d.name not in needed]


__all__ = [
    "bound_shape",
    "column_major",
    "component_names",
    "likelihood_terms",
    "outcome_fields",
    "result_code",
]
