"""Slicing with 1-based positions, as Stan.

Lengths are sizes (``static=``): they fix the result's shape, so they must be known
before the model runs; so is ``segment``'s start, while the other positions may be
computed.
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import Ty


def _head_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1, 2), "the first argument")
    t = args[0].ty
    rules.fits_length(t.shape[0], 1, args[1].dim, "the elements taken")
    return t.with_shape((args[1].dim, *t.shape[1:]))


@fn("head", rule=_head_rule, args=2, static=(1,), category="array", linearity="same")
def head(x, n):
    """The first n elements."""
    return x[:n]


@fn("tail", rule=_head_rule, args=2, static=(1,), category="array", linearity="same")
def tail(x, n):
    """The last n elements."""
    return x[x.shape[0] - n :]


def _segment_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1, 2), "the first argument")
    t = args[0].ty
    rules.fits_length(t.shape[0], args[1].dim, args[2].dim, "segment")
    return t.with_shape((args[2].dim, *t.shape[1:]))


@fn("segment", rule=_segment_rule, args=3, static=(1, 2), category="array", linearity="same")
def segment(x, i, n):
    """n elements starting at position i (1-based)."""
    return x[i - 1 : i - 1 + n]


def _row_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    rules.need_int_scalar(args, 1, "the row")
    return Ty(args[0].ty.base, args[0].ty.shape[1:])


def _col_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    rules.need_int_scalar(args, 1, "the column")
    return Ty(args[0].ty.base, args[0].ty.shape[:1])


@fn("row", rule=_row_rule, args=2, category="array")
def row(A, i):
    """Row i of a matrix."""
    return jnp.take(A, i - 1, axis=0)


@fn("col", rule=_col_rule, args=2, category="array")
def col(A, j):
    """Column j of a matrix."""
    return jnp.take(A, j - 1, axis=1)


def _positions(args: list[Arg]) -> None:
    rules.need_rank(args, 0, (2,), "the first argument")
    rules.need_int_scalar(args, 1, "the first row")
    rules.need_int_scalar(args, 2, "the first column")


def _block_rule(args: list[Arg]) -> Ty:
    _positions(args)
    return Ty(args[0].ty.base, (args[3].dim, args[4].dim))


@fn("block", rule=_block_rule, args=5, static=(3, 4), category="array")
def block(A, i, j, n_rows, n_cols):
    """The n_rows x n_cols block of A whose top-left element is A[i, j]."""
    return jax.lax.dynamic_slice(A, (i - 1, j - 1), (n_rows, n_cols))


def _sub_rule(args: list[Arg]) -> Ty:
    _positions(args)
    return Ty(args[0].ty.base, (args[3].dim,))


@fn("sub_col", rule=_sub_rule, args=4, static=(3,), category="array")
def sub_col(A, i, j, n_rows):
    """n_rows elements of column j of A, starting at row i."""
    return jax.lax.dynamic_slice(A, (i - 1, j - 1), (n_rows, 1))[:, 0]


@fn("sub_row", rule=_sub_rule, args=4, static=(3,), category="array")
def sub_row(A, i, j, n_cols):
    """n_cols elements of row i of A, starting at column j."""
    return jax.lax.dynamic_slice(A, (i - 1, j - 1), (1, n_cols))[0]
