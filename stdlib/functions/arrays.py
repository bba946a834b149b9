"""Arrays: sizes, stacking, reshaping, reversal and running sums.

Stan's reshapes are column-major (``to_vector``, ``to_matrix``); ``flatten`` and
``to_array_1d`` are row-major.
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import Dim, RuleError, Ty, unify_dim


@fn("num_elements", rule=rules.int_scalar, args=1, category="array", aliases=("size",))
def num_elements(x):
    """Number of elements."""
    return jnp.size(x)


@fn("rows", rule=rules.int_scalar, args=1, category="array")
def rows(x):
    """Length of the first axis."""
    return jnp.shape(x)[0]


@fn("cols", rule=rules.int_scalar, args=1, category="array")
def cols(x):
    """Length of the second axis (1 for a vector)."""
    s = jnp.shape(x)
    return s[1] if len(s) > 1 else 1


def _append_row_rule(args: list[Arg]) -> Ty:
    a, b = args[0].ty, args[1].ty
    base = "int" if a.base == b.base == "int" else "real"
    if a.rank <= 1 and b.rank <= 1:
        n = (a.shape[0] if a.rank else 1, b.shape[0] if b.rank else 1)
        total: Dim = n[0] + n[1] if isinstance(n[0], int) and isinstance(n[1], int) else None
        if total is None and all(x is not None for x in n):
            total = f"{n[0]} + {n[1]}"
        return Ty(base, (total,))
    if a.rank == 2 and b.rank in (1, 2):
        cols_b = b.shape[-1]
        unify_dim(a.shape[1], cols_b, "append_row: column counts")
        rows_b = b.shape[0] if b.rank == 2 else 1
        total = (
            a.shape[0] + rows_b if isinstance(a.shape[0], int) and isinstance(rows_b, int) else None
        )
        return Ty(base, (total, a.shape[1]))
    raise RuleError(f"cannot stack {a} on {b}")


@fn("append_row", rule=_append_row_rule, args=2, category="array", linearity="sum")
def append_row(a, b):
    """Stack vertically: vectors/scalars into a longer vector, or rows under a matrix."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim <= 1 and b.ndim <= 1:
        return jnp.concatenate([jnp.atleast_1d(a), jnp.atleast_1d(b)])
    return jnp.concatenate([jnp.atleast_2d(a), jnp.atleast_2d(b)], axis=0)


def _append_col_rule(args: list[Arg]) -> Ty:
    a, b = args[0].ty, args[1].ty
    base = "int" if a.base == b.base == "int" else "real"
    if a.rank == 2 or b.rank == 2:
        rows_ = a.shape[0] if a.rank else b.shape[0]
        ca = a.shape[1] if a.rank == 2 else 1
        cb = b.shape[1] if b.rank == 2 else 1
        total = ca + cb if isinstance(ca, int) and isinstance(cb, int) else None
        return Ty(base, (rows_, total))
    return _append_row_rule(args)


@fn("append_col", rule=_append_col_rule, args=2, category="array", linearity="sum")
def append_col(a, b):
    """Stack horizontally: columns beside a matrix (a vector is one column)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim <= 1 and b.ndim <= 1:
        return jnp.concatenate([jnp.atleast_1d(a), jnp.atleast_1d(b)])
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    return jnp.concatenate([a, b], axis=1)


def _flat_rule(args: list[Arg]) -> Ty:
    t = args[0].ty
    n: int | None = 1
    for d in t.shape:
        n = n * d if isinstance(d, int) and isinstance(n, int) else None
    return Ty(t.base if t.base != "bool" else "int", (n,))


@fn(
    "to_vector",
    rule=_flat_rule,
    args=1,
    category="array",
    aliases=("to_row_vector",),
    linearity="same",
)
def to_vector(x):
    """All elements as a vector, in column-major order as Stan does."""
    x = jnp.asarray(x)
    return jnp.ravel(x, order="F") if x.ndim > 1 else jnp.atleast_1d(x)


@fn("flatten", rule=_flat_rule, args=1, category="array", linearity="same")
def flatten(x):
    """All elements as a vector, in row-major (NumPy) order."""
    return jnp.ravel(x)


@fn("to_array_1d", rule=_flat_rule, args=1, category="array")
def to_array_1d(x):
    """All elements as a one-dimensional array, in row-major order (Stan's order for
    arrays; use to_vector for a matrix's column-major order)."""
    return jnp.ravel(x)


def _to_matrix_rule(args: list[Arg]) -> Ty:
    return Ty(args[0].ty.base, rules.sizes_shape(args, 1))


@fn("to_matrix", rule=_to_matrix_rule, args=3, category="array", linearity="same")
def to_matrix(x, m, n):
    """Reshape to m x n, filling column-major as Stan does."""
    return jnp.reshape(jnp.ravel(x, order="F"), (m, n), order="F")


@fn("reverse", rule=rules.same_as_first, args=1, category="array", linearity="same")
def reverse(x):
    """Reverse the first axis."""
    return jnp.flip(x, axis=0)


@fn("cumulative_sum", rule=rules.same_as_first, args=1, category="array", linearity="same")
def cumulative_sum(x):
    """Running sums along the first axis."""
    return jnp.cumsum(x, axis=0)
