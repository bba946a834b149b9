"""Sorting and ranks."""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp


@fn("sort_asc", rule=rules.same_as_first, args=1, category="array")
def sort_asc(x):
    """Sorted ascending."""
    return jnp.sort(x)


@fn("sort_desc", rule=rules.same_as_first, args=1, category="array")
def sort_desc(x):
    """Sorted descending."""
    return -jnp.sort(-x)


@fn("rank", rule=rules.int_scalar, args=2, category="array")
def rank(v, s):
    """The number of elements of v less than v[s]."""
    return jnp.sum(v < jnp.take(v, s - 1)).astype(int)
