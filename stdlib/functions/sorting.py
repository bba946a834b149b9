"""Sorting, ranks and positions (1-based, as Stan)."""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import Ty


def _vector_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the argument")
    return args[0].ty


def _rank_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the first argument")
    rules.need_int_scalar(args, 1, "the position")
    return Ty("int")


@fn("sort_asc", rule=_vector_rule, args=1, category="array")
def sort_asc(x):
    """Sorted ascending."""
    return jnp.sort(x)


@fn("sort_desc", rule=_vector_rule, args=1, category="array")
def sort_desc(x):
    """Sorted descending."""
    return -jnp.sort(-x)


@fn("rank", rule=_rank_rule, args=2, category="array")
def rank(v, s):
    """The number of elements of v less than v[s]."""
    return jnp.sum(v < jnp.take(v, s - 1)).astype(int)


def _indices_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the argument")
    return Ty("int", args[0].ty.shape)


@fn("sort_indices_asc", rule=_indices_rule, args=1, category="array")
def sort_indices_asc(x):
    """The positions (1-based) that sort x ascending: x[sort_indices_asc(x)] is
    sort_asc(x); ties keep their order."""
    return jnp.argsort(x, stable=True) + 1


@fn("sort_indices_desc", rule=_indices_rule, args=1, category="array")
def sort_indices_desc(x):
    """The positions (1-based) that sort x descending; ties keep their order."""
    return jnp.argsort(-jnp.asarray(x), stable=True) + 1


def _position_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the argument")
    return Ty("int")


@fn("argmax", rule=_position_rule, args=1, category="array")
def argmax(x):
    """The position (1-based) of the largest element of x, the first if tied (FPL
    addition: Viterbi decoding)."""
    return jnp.argmax(x) + 1


@fn("argmin", rule=_position_rule, args=1, category="array")
def argmin(x):
    """The position (1-based) of the smallest element of x, the first if tied (FPL
    addition, beside argmax; `argmin z: ... of f(z)` is the implicit node)."""
    return jnp.argmin(x) + 1
