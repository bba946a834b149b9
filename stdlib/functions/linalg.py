"""Linear algebra: diagonals, decompositions, determinants, functions of a matrix, and
solves (Stan's ``mdivide_*``: ``A \\ b`` on the left, ``B / A`` on the right).
"""

from __future__ import annotations

import functools

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
    (ascending); each has unit length (its sign is the solver's).  Where eigenvalues
    cluster (gaps below sqrt(eps) of the largest), the derivative holds the cluster's
    basis fixed where eigh's rule (and Stan's) divides rounding by the gaps."""
    return _eigh()(A)[1]


@functools.cache
def _eigh():
    """``A -> (w, V)``, ``jnp.linalg.eigh`` with a perturbation rule that treats nearly
    equal eigenvalues as equal.

    eigh's rule (Stan's, JAX's): with ``w`` ascending and ``V' dA V = D``,
    ``dw = diag(D)`` and ``dV = V (F o D)``, ``F[i, j] = 1 / (w[j] - w[i])`` off the
    diagonal.  Within a cluster of eigenvalues a gap ``delta`` apart, the eigenvectors are
    determined by ``A`` only to ``eps |A| / delta``, and ``D[i, j]``'s rounding
    (``eps |dA|``) divided by ``delta`` is no derivative at all: a 30 x 30 RBF kernel with
    a 1e-5 jitter has eigenvalues ~1e-9 apart, and a Kronecker GP's log density through
    ``eigenvectors_sym`` then had a gradient 3 % off its finite differences.  The rule
    here sets ``F[i, j] = 0`` where ``|w[j] - w[i]| <= sqrt(eps) max |w|`` (the gap below
    which half the digits of the eigenvectors are rounding): the derivative that keeps
    the cluster's basis as the solver chose it.

    What it gives: above the threshold, eigh's rule exactly.  For a spectral function
    ``G = V g(W) V'`` (what a covariance's inverse, log-determinant or square root built
    from the decomposition is), the exact derivative is Daleckii-Krein's
    ``V (g[1] o D) V'`` with ``g[1][i, j] = (g(w[i]) - g(w[j])) / (w[i] - w[j])``
    (``g'(w[i])`` where equal); this rule drops its terms ``g'(w_c) D[i, j]`` for ``i != j``
    inside a cluster, which vanish where ``dA`` acts on the cluster's eigenspace as a
    multiple of the identity (a scale or a shift of ``A``, e.g. a kernel's variance) and
    are bounded by ``|g'(w_c)| |P dA P|`` (``P`` the cluster's projector) otherwise; the
    eigenvalues' rule is unchanged.  Checked against finite differences and the
    Daleckii-Krein form on separated and clustered spectra (``tests/stdlib/test_eigh.py``)
    and by the Kronecker GP (``tests/posteriordb/test_unreferenced.py``).  Exactly equal
    eigenvalues (an identity) get a finite derivative, where eigh's rule gives NaN."""
    import jax

    @jax.custom_jvp
    def eigh(A):
        w, V = jnp.linalg.eigh(A)
        return w, V

    @eigh.defjvp
    def _perturbation(primals, tangents):
        (A,), (dA,) = primals, tangents
        w, V = eigh(A)
        D = V.T @ ((dA + dA.T) / 2) @ V  # eigh reads A's lower triangle as symmetric
        gaps = w[None, :] - w[:, None]  # w[j] - w[i]
        apart = jnp.abs(gaps) > jnp.sqrt(jnp.finfo(w.dtype).eps) * jnp.max(jnp.abs(w))
        F = jnp.where(apart, 1.0 / jnp.where(apart, gaps, 1.0), 0.0)
        return (w, V), (jnp.diagonal(D), V @ (F * D))

    return eigh


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
