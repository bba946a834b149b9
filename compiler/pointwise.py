"""The pointwise log-likelihood: the log density term of every observed data value.

ArviZ's ``loo`` and ``waic`` need log p(y_i | θ) for each observation i.  NumPyro and
PyMC record it for their observed sites; FPL reads it off the ``~`` statements:

* a ``~`` whose left side is a data field, ``y ~ normal(mu, s)``, gives that field's
  entry: the statement's elementwise log density, with the field's shape;
* the left side may also be an index or slice of a data field (``y[2:T] ~ ...``,
  ``y[idx] ~ ...``, ``y[i][j] ~ ...``): its terms are added at the positions it observes
  (repeated indices add up), the positions never observed hold 0;
* a data-only ``let`` / ``out`` (``let log_y = log(y)``, computed once per bind by
  ``fpl.compiler.passes.hoist``) counts as data: its entry has its name and shape.  It
  is the density of the transformed values, without a Jacobian (as Stan's hand-written
  ``log_lik`` would be);
* several ``~`` statements on one field add into the same entry;
* for a multivariate distribution (event rank k) an entry has the field's shape without
  its last k dimensions: one term per event (a row of a ``multi_normal``).

Skipped (no entry, and their terms are not in the sum): ``~`` statements on other
expressions (``log(y) ~``, ``y' ~``, params: the priors), ``target +=`` and ``loss``
terms, a multivariate ``~`` whose event dimensions are not the field's last dimensions,
and a term whose log density has fewer elements than the values it observes (a joint
density of the whole left side cannot be split into terms).

Invariant (checked by ``tests/compiler/test_pointwise.py``): the sum of all entries is
the sum of the ``~`` terms they cover, so where every data ``~`` is covered it is the
log-likelihood part of ``log_density``.  Where the evaluation fails (a param outside its
support, an implicit solve that did not converge) every entry is -inf, as the log
density is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fpl.compiler import ir
from fpl.compiler.analyses import bound_shape

POSITIONS = "$positions"  # the flat positions of a field, indexed like the field


@dataclass(frozen=True)
class Observation:
    """A ``~`` statement on (part of) an observed field."""

    statement: int  # its index in ``program.statements``
    field: str
    field_shape: tuple[int, ...]  # the whole field's shape (event dimensions included)
    event_rank: int
    index: ir.Expr | None  # the left side with the field replaced by POSITIONS; None: whole

    @property
    def shape(self) -> tuple[int, ...]:
        """The entry's shape: the field's, without its event dimensions."""
        return self.field_shape[: len(self.field_shape) - self.event_rank]


def _rebase(e: ir.Expr) -> tuple[str, ir.Expr] | None:
    """(field, the index expression over POSITIONS) for ``y``, ``y[...]``, ``y[...][...]``."""
    if isinstance(e, ir.Ref):
        return e.name, ir.Ref(POSITIONS, "data", e.ty, e.span)
    if isinstance(e, ir.Index):
        inner = _rebase(e.target)
        if inner is not None:
            return inner[0], ir.Index(inner[1], e.items, e.ty, e.span)
    return None


def _base(e: ir.Expr) -> ir.Ref | None:
    while isinstance(e, ir.Index):
        e = e.target
    return e if isinstance(e, ir.Ref) else None


def observations(
    program: ir.Program, derived: Mapping[str, tuple[int, ...]], event_ranks: Mapping[str, int]
) -> tuple[Observation, ...]:
    """The ``~`` statements of a bound ``program`` that observe data fields or the
    data-only lets / outs in ``derived`` (name -> shape); ``event_ranks`` maps
    distribution names to the rank of one draw."""
    shapes: dict[str, tuple[int, ...]] = {d.name: bound_shape(d.ty) for d in program.data}
    shapes |= {name: tuple(shape) for name, shape in derived.items()}
    found = []
    for i, s in enumerate(program.statements):
        if not isinstance(s, ir.Observe):
            continue
        base = _base(s.value)
        if base is None or base.name not in shapes or base.kind not in ("data", "local", "out"):
            continue
        field, over_positions = _rebase(s.value) or (base.name, base)
        k = event_ranks.get(s.dist.name, 0)
        if len(shapes[field]) < k:
            continue
        index = None if isinstance(s.value, ir.Ref) else over_positions
        found.append(Observation(i, field, shapes[field], k, index))
    return tuple(found)


def _sum_to(terms, shape: tuple[int, ...]):
    """``terms`` (broadcast against the distribution's arguments) summed down to
    ``shape``: over leading axes it has beyond ``shape`` and over axes where ``shape``
    is 1; None where it has fewer elements than ``shape`` (a joint term)."""
    import jax.numpy as jnp

    terms = jnp.asarray(terms)
    extra = terms.ndim - len(shape)
    if extra < 0:
        return None
    terms = jnp.sum(terms, axis=tuple(range(extra))) if extra else terms
    ones = tuple(a for a, n in enumerate(shape) if n == 1 and terms.shape[a] != 1)
    terms = jnp.sum(terms, axis=ones, keepdims=True) if ones else terms
    return terms if terms.shape == shape else None


def pointwise(
    found: tuple[Observation, ...],
    env: Mapping[str, Any],
    terms: Mapping[int, Any],
    valid,
) -> dict[str, Any]:
    """The entries from one evaluation: ``env`` its values (data, lets ...), ``terms``
    its elementwise ``~`` terms by statement, ``valid`` whether it succeeded."""
    import jax.numpy as jnp

    from fpl.compiler.lower import Evaluator
    from fpl.stdlib.registry import registry

    dt = jnp.result_type(float)
    out: dict[str, Any] = {}
    for obs in found:
        k, full = obs.event_rank, obs.field_shape
        if obs.index is None:
            where, value_shape = None, full
        else:
            flat = jnp.arange(math.prod(full)).reshape(full)
            where = Evaluator(registry(), {**env, POSITIONS: flat}).expr(obs.index)
            value_shape = tuple(where.shape)
        if k and value_shape[len(value_shape) - k :] != full[len(full) - k :]:
            continue  # the events are not the field's trailing dimensions
        lp = _sum_to(terms[obs.statement], value_shape[: len(value_shape) - k])
        if lp is None:
            continue
        lp = jnp.asarray(lp, dt)
        if where is None:
            part = lp
        else:
            event = math.prod(full[len(full) - k :])
            rows = jnp.ravel(where[(...,) + (0,) * k] // event)
            size = math.prod(obs.shape)
            part = jnp.zeros(size, dt).at[rows].add(jnp.ravel(lp)).reshape(obs.shape)
        out[obs.field] = out[obs.field] + part if obs.field in out else part
    return {k: jnp.where(valid, v, -jnp.inf) for k, v in out.items()}


__all__ = ["Observation", "observations", "pointwise"]
