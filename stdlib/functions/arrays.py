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


def _rows_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1, 2), "the argument")
    return Ty("int")


@fn("rows", rule=_rows_rule, args=1, category="array")
def rows(x):
    """Length of the first axis."""
    return jnp.shape(x)[0]


@fn("cols", rule=rules.int_scalar, args=1, category="array")
def cols(x):
    """Length of the second axis (1 for a vector)."""
    s = jnp.shape(x)
    return s[1] if len(s) > 1 else 1


def _stack_base(a: Ty, b: Ty) -> str:
    return "int" if a.base == b.base == "int" else "real"


def _dim_sum(a: Dim, b: Dim) -> Dim:
    """``a + b`` on sizes: a number when both are known, else the text of the sum (two
    symbolic sizes are compared by text, so ``K + J`` only equals itself)."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a is None or b is None:
        return None
    return f"{a} + {b}"


def _need_stackable(args: list[Arg]) -> None:
    for i, a in enumerate(args):
        if a.ty.rank > 2:
            raise RuleError(
                f"stacks scalars, vectors and matrices, not {a.ty}",
                arg=i,
                help="for arrays of higher rank, build them with `[...]` or `rep_array`",
            )


def _append_row_rule(args: list[Arg]) -> Ty:
    """Stan's ``append_row`` with FPL's one-dimensional vector:

    ======================  ===============  ====================================
    a                       b                result
    ======================  ===============  ====================================
    real or real[M]         real or real[N]  real[M + N] (a scalar counts as 1)
    real[R1, C]             real[R2, C]      real[R1 + R2, C]
    real[R, C]              real[C]          real[R + 1, C] (b is a row, as Stan's
                                             ``append_row(matrix, row_vector)``)
    real[C]                 real[R, C]       real[1 + R, C]
    ======================  ===============  ====================================
    """
    _need_stackable(args)
    a, b = args[0].ty, args[1].ty
    base = _stack_base(a, b)
    if a.rank <= 1 and b.rank <= 1:
        return Ty(base, (_dim_sum(a.shape[0] if a.rank else 1, b.shape[0] if b.rank else 1),))
    if a.rank == 0 or b.rank == 0:
        raise RuleError(
            f"cannot stack a scalar and a matrix ({a} and {b})",
            help="stack a row: `append_row(A, rep_vector(x, cols(A)))`",
        )
    cols = unify_dim(a.shape[-1], b.shape[-1], "the column counts")
    rows_a = a.shape[0] if a.rank == 2 else 1
    rows_b = b.shape[0] if b.rank == 2 else 1
    return Ty(base, (_dim_sum(rows_a, rows_b), cols))


@fn("append_row", rule=_append_row_rule, args=2, category="array", linearity="sum")
def append_row(a, b):
    """Stack vertically: scalars and vectors into a longer vector, rows (a vector is one
    row here) and matrices into a taller matrix."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim <= 1 and b.ndim <= 1:
        return jnp.concatenate([jnp.atleast_1d(a), jnp.atleast_1d(b)])
    return jnp.concatenate([jnp.atleast_2d(a), jnp.atleast_2d(b)], axis=0)


def _append_col_rule(args: list[Arg]) -> Ty:
    """Stan's ``append_col`` with FPL's one-dimensional vector, which is one column:

    ======================  ===============  ====================================
    a                       b                result
    ======================  ===============  ====================================
    real[R]                 real[R]          real[R, 2] (two columns)
    real[R, C1]             real[R, C2]      real[R, C1 + C2]
    real[R, C]              real[R]          real[R, C + 1]
    real[R]                 real[R, C]       real[R, 1 + C]
    real                    real[N]          real[1 + N] (Stan's ``append_col(real,
                                             row_vector)``: the only reading where a
                                             scalar fits)
    real[N]                 real             real[N + 1]
    ======================  ===============  ====================================
    """
    _need_stackable(args)
    a, b = args[0].ty, args[1].ty
    base = _stack_base(a, b)
    if a.rank == 0 or b.rank == 0:
        if a.rank == 2 or b.rank == 2:
            raise RuleError(
                f"cannot stack a scalar and a matrix ({a} and {b})",
                help="stack a column: `append_col(A, rep_vector(x, rows(A)))`",
            )
        return Ty(base, (_dim_sum(a.shape[0] if a.rank else 1, b.shape[0] if b.rank else 1),))
    rows = unify_dim(a.shape[0], b.shape[0], "the row counts")
    cols_a = a.shape[1] if a.rank == 2 else 1
    cols_b = b.shape[1] if b.rank == 2 else 1
    return Ty(base, (rows, _dim_sum(cols_a, cols_b)))


@fn("append_col", rule=_append_col_rule, args=2, category="array", linearity="sum")
def append_col(a, b):
    """Stack horizontally: vectors (each one column) and matrices side by side, so two
    vectors of length R give an R x 2 matrix; a scalar beside a vector extends it
    (Stan's append_col(real, row_vector))."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
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
    """m x n from m n elements (checked when all three are known numbers)."""
    shape = rules.sizes_shape(args, 1)
    count: Dim = 1
    for d in args[0].ty.shape:
        count = count * d if isinstance(d, int) and isinstance(count, int) else None
    m, n = shape
    if isinstance(count, int) and isinstance(m, int) and isinstance(n, int) and count != m * n:
        raise RuleError(f"to_matrix: {count} elements do not make a {m} x {n} matrix", kind="shape")
    return Ty(args[0].ty.base, shape)


@fn("to_matrix", rule=_to_matrix_rule, args=3, category="array", linearity="same")
def to_matrix(x, m, n):
    """Reshape to m x n, filling column-major as Stan does."""
    return jnp.reshape(jnp.ravel(x, order="F"), (m, n), order="F")


def _along_first_axis(args: list[Arg]) -> Ty:
    if args[0].ty.rank == 0:
        raise RuleError(f"the argument must be a vector or an array, not {args[0].ty}", arg=0)
    return args[0].ty


@fn("reverse", rule=_along_first_axis, args=1, category="array", linearity="same")
def reverse(x):
    """Reverse the first axis."""
    return jnp.flip(x, axis=0)


@fn("cumulative_sum", rule=_along_first_axis, args=1, category="array", linearity="same")
def cumulative_sum(x):
    """Running sums along the first axis."""
    return jnp.cumsum(x, axis=0)
