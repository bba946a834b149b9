"""Draws into a fit: the per-draw pass (params, outs, gens, the pointwise
log-likelihood and each implicit node's results for every draw, in batches of
``GEN_BATCH``: one compiled program whose memory does not grow with the draws) and the
:class:`Fit` every method's draws become (``draws_fit``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fpl.compiler.compiled import CompiledModel
from fpl.runtime.failures import name_stats
from fpl.runtime.fit import Fit, split_data
from fpl.stdlib.lazy import LazyModule

# JAX loads when a method runs, not when the CLI lists its settings
jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

#: the prefix of a per-draw value that is a field's pointwise log-likelihood (no FPL name
#: holds a colon)
LOG_LIK = "log_lik:"

#: draws evaluated together by the per-draw pass (``lax.map`` in batches): its memory is
#: O(GEN_BATCH x the model's size), not O(draws x size)
GEN_BATCH = 64


def unflatten(cm: CompiledModel, flat: np.ndarray) -> dict[str, np.ndarray]:
    """Flat unconstrained draws (chains, draws, d) -> {param: (chains, draws, *shape)}."""
    lead = flat.shape[:2]
    return {
        p.name: flat[..., p.offset : p.offset + p.unc_size].reshape(*lead, *p.unc_shape)
        for p in cm.params
    }


def _observed(cm: CompiledModel) -> dict[str, np.ndarray]:
    return {**{k: np.asarray(v) for k, v in cm.static.items()}, **cm.data}


def draws_fit(cm: CompiledModel, values: dict[str, np.ndarray], **fields: Any) -> Fit:
    """The :class:`Fit` of per-draw ``values`` (from :func:`per_draw`): params and outs
    as the posterior, gens as generated quantities, the pointwise log-likelihood of the
    observed fields, the data as observed (fields observed by ``~``) and constant (the
    rest); ``fields`` are the rest (``sample_stats``, ``attrs``, ...).  Every method's
    draws become a fit here."""
    names = [*(p.name for p in cm.params), *cm.out_names]
    observed, constant = split_data(_observed(cm), {o.field for o in cm.observations})
    loglik = {k[len(LOG_LIK) :]: v for k, v in values.items() if k.startswith(LOG_LIK)}
    return Fit(
        model=cm.name,
        posterior={n: values[n] for n in names},
        generated={g: values[g] for g in cm.gen_names},
        observed=observed,
        constant_data=constant,
        **{"sample_stats": {}, "log_likelihood": loglik, **fields},
    )


def per_draw(
    cm: CompiledModel, args, positions: dict, key, unconstrained: bool, solver_stats: bool = False
):
    """Params, outs and gens for every (chain, draw), in batches of ``GEN_BATCH`` draws
    (one compiled program); from unconstrained draws also the pointwise log-likelihood of
    every observed data field (keys ``LOG_LIK + field``); with ``solver_stats`` returns
    ``(values, stats)`` with also each implicit node's residual, iterations, converged
    flag and reason at the draw (keys from ``fpl.runtime.failures.stat_name``)."""
    lead = next(iter(positions.values())).shape[:2]
    flat = {
        k: jnp.reshape(v, (v.shape[0] * v.shape[1], *v.shape[2:])) for k, v in positions.items()
    }
    n = lead[0] * lead[1]
    keys = jax.random.split(key, n)

    def each(flat, keys, a):
        def one(xs):
            out = cm.generate(
                xs[0], xs[1], constrained=not unconstrained, data=a, stats=solver_stats
            )
            if not unconstrained:  # predictions: new data need not hold the outcomes
                return out
            loglik = cm.pointwise_log_likelihood(xs[0], data=a)
            if solver_stats:
                return {**out[0], **{LOG_LIK + k: v for k, v in loglik.items()}}, out[1]
            return {**out, **{LOG_LIK + k: v for k, v in loglik.items()}}

        return _map_nonempty(one, (flat, keys), n)

    out = jax.jit(each)(flat, keys, args)
    if solver_stats:
        out, stats = out
        stats = name_stats(cm.nodes, stats)
        return _reshape(out, lead), _reshape(stats, lead)
    return _reshape(out, lead)


def _map_nonempty(one, xs, n: int):
    """``jax.lax.map(one, xs, batch_size=...)`` over ``n`` rows, with zero-size leaves (a
    ``real[0]`` param or gen: Stan's empty arrays) kept out of the batching, which cannot
    split them: they go in and come out as zeros of their shapes."""
    leaves, tree = jax.tree_util.tree_flatten(xs)
    empty = [leaf.size == 0 for leaf in leaves]
    kept = [leaf for leaf, e in zip(leaves, empty) if not e]

    def rebuild(row):
        it = iter(row)
        return jax.tree_util.tree_unflatten(
            tree,
            [
                jnp.zeros(leaf.shape[1:], leaf.dtype) if e else next(it)
                for leaf, e in zip(leaves, empty)
            ],
        )

    example = [jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype) for leaf in kept]
    out_shape = jax.eval_shape(lambda row: one(rebuild(row)), example)
    out_leaves, out_tree = jax.tree_util.tree_flatten(out_shape)
    out_empty = [leaf.size == 0 for leaf in out_leaves]

    def nonempty(row):
        values = jax.tree_util.tree_leaves(one(rebuild(row)))
        return [v for v, e in zip(values, out_empty) if not e]

    mapped = iter(
        jax.lax.map(nonempty, kept, batch_size=min(GEN_BATCH, n))
        if any(not e for e in out_empty)
        else []
    )
    return jax.tree_util.tree_unflatten(
        out_tree,
        [
            jnp.zeros((n, *leaf.shape), leaf.dtype) if e else next(mapped)
            for leaf, e in zip(out_leaves, out_empty)
        ],
    )


def _reshape(values: dict, lead) -> dict[str, np.ndarray]:
    return {k: np.asarray(v).reshape(*lead, *v.shape[1:]) for k, v in values.items()}


__all__ = ["GEN_BATCH", "LOG_LIK", "draws_fit", "per_draw", "unflatten"]
