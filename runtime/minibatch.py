"""Minibatching for ``optimize``: which data fields are batched, the batch program and
the scaling of likelihood terms (see ``fpl.runtime.optimize`` for the maths).

The objective is the negative log density of the step's program, each likelihood term
(a ``~`` or ``target +=`` statement that reads a batched field) multiplied by N / B.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.compiler import ir
from fpl.dsl.diagnostics import error


@dataclass
class Batching:
    fields: list[str]  # data arrays sliced along their leading axis
    n: int  # rows in the full data
    size: int  # rows per batch
    sizes: list[str]  # size names bound to the batch length


def _leading_name(decl: ir.DataDecl):
    return decl.ty.shape[0] if decl.ty.rank else None


def plan_batches(model, raw: Mapping[str, Any], full, batch_size: int, batch_fields) -> Batching:
    decls = {d.name: d for d in model.ir.data}
    if batch_fields is None:
        counts: dict[str, int] = {}
        for d in model.ir.data:
            dim = _leading_name(d)
            if isinstance(dim, str) and dim.isidentifier():
                counts[dim] = counts.get(dim, 0) + 1
        if not counts:
            raise error(
                "E0403",
                "no data array to minibatch (none has a size name as its leading size)",
                help="name them with `batch_fields`",
            )
        best = max(counts.values())
        leaders = [k for k, c in counts.items() if c == best]
        if len(leaders) > 1:
            raise error(
                "E0403",
                f"cannot tell which size to minibatch over "
                f"({', '.join(leaders)} lead as many data arrays)",
                help="name the batched data fields with `batch_fields`",
            )
        fields = [d.name for d in model.ir.data if _leading_name(d) == leaders[0]]
    else:
        fields = [batch_fields] if isinstance(batch_fields, str) else list(batch_fields)
        if not fields:
            raise error("E0403", "`batch_fields` is empty")
    for f in fields:
        if f not in decls:
            raise error(
                "E0403",
                f"`batch_fields` names `{f}`, which is not a data field of the model",
                help="data fields: " + ", ".join(decls),
            )
        if decls[f].ty.rank == 0:
            raise error("E0403", f"cannot minibatch the scalar data field `{f}`")
    lengths = {f: int(np.shape(full.data[f])[0]) for f in fields}
    n = lengths[fields[0]]
    if any(v != n for v in lengths.values()):
        shown = ", ".join(f"`{k}` {v}" for k, v in lengths.items())
        raise error("E0403", f"batched fields have different leading lengths: {shown}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= n:
        raise error("E0403", f"`batch_size` must be an integer in 1..{n}, got {batch_size!r}")
    sizes = []
    for f in fields:
        dim = _leading_name(decls[f])
        if not (isinstance(dim, str) and dim.isidentifier()):
            raise error(
                "E0403",
                f"cannot minibatch `{f}`: its leading size `{dim}` is not a size name",
                decls[f].span,
            )
        if dim not in sizes:
            sizes.append(dim)
    for d in model.ir.data:  # an unbatched array sized by a batched size would not fit
        if d.name not in fields and any(dim in sizes for dim in d.ty.shape):
            raise error(
                "E0403",
                f"data field `{d.name}` is sized by "
                f"`{next(x for x in d.ty.shape if x in sizes)}` but is not batched",
                d.span,
                help="add it to `batch_fields`",
            )
    return Batching(fields, n, batch_size, sizes)


def likelihood_terms(cm, fields: list[str]) -> list[int]:
    """Indices of the ``~`` / ``target +=`` statements that read a batched field,
    directly or through ``let`` / ``out`` values (averages excluded): see
    ``CompiledModel.likelihood_terms``."""
    return cm.likelihood_terms(list(fields))


@dataclass
class Problem:
    """What one optimization runs: the model with all the data, the one a step runs
    (bound at the batch size when minibatching) and the likelihood terms' scale."""

    full: Any  # the CompiledModel of all the data
    batching: Batching | None
    step_model: Any  # the CompiledModel one step runs (bound at the batch size)
    term_scale: dict[int, float]  # likelihood statements -> N / batch size
    to_raw: Any
    from_raw: Any


def problem(model, raw, init_weights, batch_size, batch_fields, seed: int = 0) -> Problem:
    """The :class:`Problem` of ``raw`` data; E0403 where the data cannot be minibatched
    (a param's shape depending on the batched size included)."""
    full = model.bind(raw, init_weights, weight_seed=seed)
    to_raw, from_raw = full.weight_transforms()
    if batch_size is None:  # (settings check that `batch_fields` come with a `batch_size`)
        return Problem(full, None, full, {}, to_raw, from_raw)
    batching = plan_batches(model, raw, full, batch_size, batch_fields)
    small = {**raw, **{f: np.asarray(full.data[f])[:batch_size] for f in batching.fields}}
    small.update({s: batch_size for s in batching.sizes if s in raw})
    bb = model.bind(small, full.weights)
    for p_full, p_b in zip(full.params, bb.params):
        if p_full.shape != p_b.shape:
            raise error(
                "E0403",
                f"cannot minibatch: the shape of param `{p_full.name}` depends on the batched size",
                p_full.span,
            )
    scale = batching.n / batching.size
    term_scale = {i: scale for i in bb.likelihood_terms(batching.fields)}
    return Problem(full, batching, bb, term_scale, to_raw, from_raw)


def minibatch_objective(
    model, data, rows, params, *, batch_fields=None, weights=None, jacobian: bool = False
) -> float:
    """The objective ``optimize`` minimises on the minibatch of data rows ``rows`` (0-based
    indices into the batched fields), at constrained ``params``: the negative log
    density with the likelihood terms scaled by N / len(rows)."""
    import jax.numpy as jnp

    from fpl.runtime.sampling import _float64

    with _float64():
        rows = np.asarray(rows, int)
        prob = problem(model, dict(data), weights, len(rows), batch_fields)
        full = prob.full
        fields = prob.batching.fields
        args = {k: jnp.asarray(v[rows] if k in fields else v) for k, v in full.data.items()}
        u = model.unconstrain(params, data, weights=full.weights)
        theta = {
            "params": {k: jnp.asarray(v) for k, v in u.items()},
            "weights": prob.to_raw({k: jnp.asarray(v) for k, v in full.weights.items()}),
        }
        from fpl.runtime.optimize_steps import objective  # it imports this module

        f = objective(prob.step_model, prob.from_raw, jacobian, prob.term_scale)
        return float(f(theta, args)[0])


def batch_sampler(batching: Batching | None, key):
    """``(args, t) -> the data of step t``: every ``N // B`` steps (an epoch) a random
    permutation of the N rows (from ``key`` and the epoch), cut into batches of B rows."""
    import jax
    import jax.numpy as jnp

    def batch_of(args, t):
        if batching is None:
            return args
        nb = batching.n // batching.size
        perm = jax.random.permutation(jax.random.fold_in(key, t // nb), batching.n)
        idx = jax.lax.dynamic_slice_in_dim(perm, (t % nb) * batching.size, batching.size)
        return {
            k: (jnp.take(v, idx, axis=0) if k in batching.fields else v) for k, v in args.items()
        }

    return batch_of


__all__ = [
    "Batching",
    "Problem",
    "batch_sampler",
    "likelihood_terms",
    "minibatch_objective",
    "plan_batches",
    "problem",
]
