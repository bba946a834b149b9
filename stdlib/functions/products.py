"""Vector and matrix products: dot products, distances, quadratic forms, diagonal
scalings and cross products.
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn, promoting
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import REAL, Ty, broadcast, unify_dim


@fn("dot_product", rule=rules.dot, args=2, category="matrix", linearity="product")
def dot_product(a, b):
    """Sum of a .* b for two vectors."""
    return jnp.dot(a, b)


def _same_matrices(args: list[Arg], what: str) -> tuple:
    rules.need_rank(args, 0, (2,), "the first argument")
    rules.need_rank(args, 1, (2,), "the second argument")
    a, b = args[0].ty.shape, args[1].ty.shape
    return (unify_dim(a[0], b[0], f"{what}: rows"), unify_dim(a[1], b[1], f"{what}: columns"))


def _rows_dot_rule(args: list[Arg]) -> Ty:
    return Ty("real", _same_matrices(args, "rows_dot_product")[:1])


@fn("rows_dot_product", rule=_rows_dot_rule, args=2, category="matrix", linearity="product")
def rows_dot_product(a, b):
    """Dot product of each row of a with the same row of b."""
    return jnp.sum(a * b, axis=-1)


def _cols_dot_rule(args: list[Arg]) -> Ty:
    return Ty("real", _same_matrices(args, "columns_dot_product")[1:])


@fn("columns_dot_product", rule=_cols_dot_rule, args=2, category="matrix", linearity="product")
def columns_dot_product(a, b):
    """Dot product of each column of a with the same column of b."""
    return jnp.sum(a * b, axis=0)


def _rows_self_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    return Ty("real", args[0].ty.shape[:1])


def _cols_self_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    return Ty("real", args[0].ty.shape[1:])


@fn("rows_dot_self", rule=_rows_self_rule, args=1, category="matrix")
def rows_dot_self(A):
    """Sum of squares of each row."""
    return jnp.sum(jnp.square(A), axis=1)


@fn("columns_dot_self", rule=_cols_self_rule, args=1, category="matrix")
def columns_dot_self(A):
    """Sum of squares of each column."""
    return jnp.sum(jnp.square(A), axis=0)


def _squared_distance_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (0, 1), "the first argument")
    rules.need_rank(args, 1, (0, 1), "the second argument")
    broadcast(args[0].ty.shape, args[1].ty.shape)
    return REAL


@fn("squared_distance", rule=_squared_distance_rule, args=2, category="matrix")
@promoting
def squared_distance(a, b):
    """Squared Euclidean distance."""
    return jnp.sum(jnp.square(a - b))


@fn("distance", rule=_squared_distance_rule, args=2, category="matrix")
@promoting
def distance(a, b):
    """Euclidean distance."""
    return jnp.sqrt(jnp.sum(jnp.square(a - b)))


def _quad_form_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    if args[1].ty.rank == 1:
        unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "quad_form")
        return REAL
    rules.need_rank(args, 1, (2,), "the second argument")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "quad_form")
    return Ty("real", (args[1].ty.shape[1], args[1].ty.shape[1]))


@fn("quad_form", rule=_quad_form_rule, args=2, category="matrix", linearity="quad_form")
def quad_form(A, B):
    """B' A B (a scalar when B is a vector)."""
    return B.T @ A @ B if B.ndim == 2 else B @ A @ B


@fn("quad_form_sym", rule=_quad_form_rule, args=2, category="matrix")
def quad_form_sym(A, B):
    """B' A B for symmetric A; the matrix result is symmetrised exactly."""
    out = B.T @ A @ B if B.ndim == 2 else B @ A @ B
    return 0.5 * (out + out.T) if B.ndim == 2 else out


def _quad_form_diag_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    rules.need_rank(args, 1, (1,), "the second argument")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "quad_form_diag")
    return Ty("real", args[0].ty.shape)


@fn("quad_form_diag", rule=_quad_form_diag_rule, args=2, category="matrix")
def quad_form_diag(A, v):
    """diag(v) A diag(v)."""
    return v[:, None] * A * v[None, :]


def _trace_quad_form_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    rules.need_rank(args, 1, (2,), "the second argument")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "trace_quad_form")
    return REAL


@fn("trace_quad_form", rule=_trace_quad_form_rule, args=2, category="matrix")
def trace_quad_form(A, B):
    """trace(B' A B)."""
    return jnp.trace(B.T @ A @ B)


def _diag_pre_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the first argument")
    rules.need_rank(args, 1, (2,), "the second argument")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "diag_pre_multiply")
    return Ty("real", args[1].ty.shape)


@fn("diag_pre_multiply", rule=_diag_pre_rule, args=2, category="matrix", linearity="product")
def diag_pre_multiply(v, A):
    """diag(v) @ A."""
    return v[:, None] * A


def _diag_post_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    rules.need_rank(args, 1, (1,), "the second argument")
    unify_dim(args[0].ty.shape[1], args[1].ty.shape[0], "diag_post_multiply")
    return Ty("real", args[0].ty.shape)


@fn("diag_post_multiply", rule=_diag_post_rule, args=2, category="matrix", linearity="product")
def diag_post_multiply(A, v):
    """A @ diag(v)."""
    return A * v[None, :]


def _tcrossprod_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    n = args[0].ty.shape[0]
    return Ty("real", (n, n))


@fn("tcrossprod", rule=_tcrossprod_rule, args=1, category="matrix", linearity="double")
def tcrossprod(A):
    """A @ A'."""
    return A @ A.T


def _crossprod_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    n = args[0].ty.shape[1]
    return Ty("real", (n, n))


@fn("crossprod", rule=_crossprod_rule, args=1, category="matrix", linearity="double")
def crossprod(A):
    """A' @ A."""
    return A.T @ A


@fn("multiply_lower_tri_self_transpose", rule=rules.square_matrix, args=1, category="matrix")
def multiply_lower_tri_self_transpose(L):
    """tril(L) @ tril(L)'."""
    L = jnp.tril(L)
    return L @ L.T
