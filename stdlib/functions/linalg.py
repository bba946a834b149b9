"""Linear algebra: diagonals, decompositions, determinants, functions of a matrix, and
solves (Stan's ``mdivide_*``: ``A \\ b`` on the left, ``B / A`` on the right).
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp, jsp_linalg
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import Ty, unify_dim

# ---- diagonals and triangles ----------------------------------------------------------


def _diag_matrix_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the argument")
    n = args[0].ty.shape[0]
    return Ty("real", (n, n))


@fn("diag_matrix", rule=_diag_matrix_rule, args=1, category="matrix", linearity="same")
def diag_matrix(v):
    """The square matrix with v on its diagonal."""
    return jnp.diag(v)


def _diagonal_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    return Ty(args[0].ty.base, args[0].ty.shape[:1])


@fn("diagonal", rule=_diagonal_rule, args=1, category="matrix", linearity="same")
def diagonal(A):
    """The diagonal of a matrix."""
    return jnp.diagonal(A)


def _add_diag_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    rules.need_rank(args, 1, (0, 1), "the diagonal")
    if args[1].ty.rank == 1:
        unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "add_diag")
    return Ty("real", args[0].ty.shape)


@fn("add_diag", rule=_add_diag_rule, args=2, category="matrix", linearity="sum")
def add_diag(A, d):
    """A with d added to its diagonal."""
    return A + jnp.diag(jnp.broadcast_to(d, A.shape[:1]))


@fn("trace", rule=rules.square_matrix_scalar, args=1, category="matrix")
def trace(A):
    """Sum of the diagonal."""
    return jnp.trace(A)


@fn("symmetrize_from_lower_tri", rule=rules.square_matrix, args=1, category="matrix")
def symmetrize_from_lower_tri(A):
    """The symmetric matrix whose lower triangle is that of A."""
    low = jnp.tril(A)
    return low + jnp.tril(A, -1).T


# ---- decompositions and determinants --------------------------------------------------


@fn("cholesky_decompose", rule=rules.square_matrix, args=1, category="matrix")
def cholesky_decompose(A):
    """Lower-triangular L with L L' = A."""
    return jnp.linalg.cholesky(A)


def _eigenvalues_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args)
    return Ty("real", args[0].ty.shape[:1])


@fn("eigenvalues_sym", rule=_eigenvalues_rule, args=1, category="matrix")
def eigenvalues_sym(A):
    """Eigenvalues of a symmetric matrix, ascending."""
    return jnp.linalg.eigvalsh(A)


@fn("eigenvectors_sym", rule=rules.square_matrix, args=1, category="matrix")
def eigenvectors_sym(A):
    """Eigenvectors of a symmetric matrix, as columns, in the order of eigenvalues_sym
    (ascending); each has unit length (its sign is the solver's)."""
    return jnp.linalg.eigh(A)[1]


def _singular_values_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    n, m = args[0].ty.shape
    k = min(n, m) if isinstance(n, int) and isinstance(m, int) else None
    return Ty("real", (k,))


@fn("singular_values", rule=_singular_values_rule, args=1, category="matrix")
def singular_values(A):
    """Singular values, descending."""
    return jnp.linalg.svd(A, compute_uv=False)


@fn("determinant", rule=rules.square_matrix_scalar, args=1, category="matrix")
def determinant(A):
    """Determinant."""
    return jnp.linalg.det(A)


@fn("log_determinant", rule=rules.square_matrix_scalar, args=1, category="matrix")
def log_determinant(A):
    """log |det A|."""
    return jnp.linalg.slogdet(A)[1]


@fn("log_determinant_spd", rule=rules.square_matrix_scalar, args=1, category="matrix")
def log_determinant_spd(A):
    """log det A of a symmetric positive-definite A, by its Cholesky factor."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(A))))


# ---- functions of a matrix ------------------------------------------------------------


@fn("inverse", rule=rules.square_matrix, args=1, category="matrix")
def inverse(A):
    """Matrix inverse."""
    return jnp.linalg.inv(A)


@fn("matrix_exp", rule=rules.square_matrix, args=1, category="matrix")
def matrix_exp(A):
    """The matrix exponential."""
    return jsp_linalg.expm(A)


def _matrix_power_rule(args: list[Arg]) -> Ty:
    return rules.square_matrix(args[:1])


@fn("matrix_power", rule=_matrix_power_rule, args=2, static=(1,), category="matrix")
def matrix_power(A, n):
    """A multiplied by itself n times (n >= 0)."""
    return jnp.linalg.matrix_power(A, n)


# ---- solves ---------------------------------------------------------------------------


def _mdivide_left_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    rules.need_rank(args, 1, (1, 2), "the right-hand side")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "mdivide_left")
    return Ty("real", args[1].ty.shape)


@fn("mdivide_left", rule=_mdivide_left_rule, args=2, category="matrix", linearity="solve")
def mdivide_left(A, b):
    """A \\ b: the solution x of A x = b."""
    return jnp.linalg.solve(A, b)


@fn("mdivide_left_tri_low", rule=_mdivide_left_rule, args=2, category="matrix")
def mdivide_left_tri_low(L, b):
    """L \\ b for lower-triangular L."""
    return jsp_linalg.solve_triangular(L, b, lower=True)


@fn("mdivide_left_spd", rule=_mdivide_left_rule, args=2, category="matrix")
def mdivide_left_spd(A, b):
    """A \\ b for symmetric positive-definite A, by its Cholesky factor."""
    return jsp_linalg.cho_solve((jnp.linalg.cholesky(A), True), b)


def _mdivide_right_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[1:])
    rules.need_rank(args, 0, (1, 2), "the left-hand side")
    unify_dim(args[0].ty.shape[-1], args[1].ty.shape[0], "mdivide_right")
    return Ty("real", args[0].ty.shape)


@fn("mdivide_right", rule=_mdivide_right_rule, args=2, category="matrix")
def mdivide_right(B, A):
    """B / A: the solution x of x A = B."""
    return jnp.linalg.solve(A.T, B.T).T


@fn("mdivide_right_tri_low", rule=_mdivide_right_rule, args=2, category="matrix")
def mdivide_right_tri_low(B, L):
    """B / L for lower-triangular L."""
    return jsp_linalg.solve_triangular(L.T, B.T, lower=False).T


@fn("mdivide_right_spd", rule=_mdivide_right_rule, args=2, category="matrix")
def mdivide_right_spd(B, A):
    """B / A for symmetric positive-definite A, by its Cholesky factor."""
    return jsp_linalg.cho_solve((jnp.linalg.cholesky(A), True), B.T).T
