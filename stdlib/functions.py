"""Built-in functions with Stan's names and meanings (plus NumPy-style constructors).

Each entry is the implementation (JAX) with its type rule.  Integer arguments named
in ``static=`` are sizes: they must be known before the model runs (data or literals).
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.lazy import jax, jnp, jsp_linalg, jsp_special
from fpl.stdlib.registry import REGISTRY, Arg
from fpl.stdlib.types import REAL, RuleError, Ty, broadcast, unify_dim

fn = REGISTRY.function

# ---- elementwise maths: name -> (implementation, doc) ----------------------------


def _unary(name: str, doc: str, rule=rules.elementwise_real, aliases=()):
    def register(impl):
        impl.__doc__ = doc
        return fn(name, rule=rule, args=1, aliases=aliases)(impl)

    return register


_unary("exp", "Exponential.")(lambda x: jnp.exp(x))
_unary("log", "Natural logarithm.")(lambda x: jnp.log(x))
_unary("log2", "Base-2 logarithm.")(lambda x: jnp.log2(x))
_unary("log10", "Base-10 logarithm.")(lambda x: jnp.log10(x))
_unary("exp2", "2 to the power x.")(lambda x: jnp.exp2(x))
_unary("log1p", "log(1 + x).")(lambda x: jnp.log1p(x))
_unary("expm1", "exp(x) - 1.")(lambda x: jnp.expm1(x))
_unary("log1m", "log(1 - x).")(lambda x: jnp.log1p(-x))
_unary("sqrt", "Square root.")(lambda x: jnp.sqrt(x))
_unary("cbrt", "Cube root.")(lambda x: jnp.cbrt(x))
_unary("square", "x squared.", rule=rules.elementwise_keep)(lambda x: jnp.square(x))
_unary("inv", "1 / x.")(lambda x: 1.0 / x)
_unary("inv_sqrt", "1 / sqrt(x).")(lambda x: jax.lax.rsqrt(jnp.asarray(x, float)))
_unary("inv_square", "1 / x^2.")(lambda x: 1.0 / jnp.square(x))
_unary("abs", "Absolute value.", rule=rules.elementwise_keep, aliases=("fabs",))(
    lambda x: jnp.abs(x)
)
_unary("sin", "Sine.")(lambda x: jnp.sin(x))
_unary("cos", "Cosine.")(lambda x: jnp.cos(x))
_unary("tan", "Tangent.")(lambda x: jnp.tan(x))
_unary("asin", "Arc sine.")(lambda x: jnp.arcsin(x))
_unary("acos", "Arc cosine.")(lambda x: jnp.arccos(x))
_unary("atan", "Arc tangent.")(lambda x: jnp.arctan(x))
_unary("sinh", "Hyperbolic sine.")(lambda x: jnp.sinh(x))
_unary("cosh", "Hyperbolic cosine.")(lambda x: jnp.cosh(x))
_unary("tanh", "Hyperbolic tangent.")(lambda x: jnp.tanh(x))
_unary("asinh", "Inverse hyperbolic sine.")(lambda x: jnp.arcsinh(x))
_unary("acosh", "Inverse hyperbolic cosine.")(lambda x: jnp.arccosh(x))
_unary("atanh", "Inverse hyperbolic tangent.")(lambda x: jnp.arctanh(x))
_unary("logit", "log(x / (1 - x)).")(lambda x: jsp_special.logit(x))
_unary("inv_logit", "1 / (1 + exp(-x)), the logistic sigmoid.")(lambda x: jax.nn.sigmoid(x))
_unary("log_inv_logit", "log(inv_logit(x)).")(lambda x: jax.nn.log_sigmoid(x))
_unary("log1m_inv_logit", "log(1 - inv_logit(x)).")(lambda x: jax.nn.log_sigmoid(-x))
_unary("log1p_exp", "log(1 + exp(x)), the softplus.")(lambda x: jnp.logaddexp(0.0, x))
_unary("log1m_exp", "log(1 - exp(x)) for x < 0.")(
    lambda x: jnp.where(x > -0.693147, jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))
)
_unary("lgamma", "log |Gamma(x)|.")(lambda x: jsp_special.gammaln(x))
_unary("tgamma", "Gamma(x).")(
    lambda x: jnp.exp(jsp_special.gammaln(x)) * jnp.sign(jsp_special.gamma(x))
)
_unary("digamma", "The digamma function.")(lambda x: jsp_special.digamma(x))
_unary("erf", "The error function.")(lambda x: jsp_special.erf(x))
_unary("erfc", "The complementary error function.")(lambda x: jsp_special.erfc(x))
_unary("Phi", "The standard normal CDF.")(lambda x: jsp_special.ndtr(x))
_unary("inv_Phi", "The standard normal quantile function.")(lambda x: jsp_special.ndtri(x))
_unary("Phi_approx", "Logistic approximation of Phi (Stan's).")(
    lambda x: jax.nn.sigmoid(0.07056 * x**3 + 1.5976 * x)
)
_unary("floor", "Round down (real result).")(lambda x: jnp.floor(x))
_unary("ceil", "Round up (real result).")(lambda x: jnp.ceil(x))
_unary("round", "Round to nearest (real result).")(lambda x: jnp.round(x))
_unary("trunc", "Round toward zero (real result).")(lambda x: jnp.trunc(x))
_unary("step", "1 if x >= 0 else 0 (Stan's step: step(0) = 1).")(
    lambda x: jnp.where(x < 0, 0.0, 1.0)
)
_unary("int_step", "1 if x > 0 else 0, integer.", rule=rules.elementwise_int)(
    lambda x: jnp.where(x > 0, 1, 0)
)
_unary("is_nan", "1 if x is NaN.", rule=rules.elementwise_int)(lambda x: jnp.isnan(x).astype(int))
_unary("is_inf", "1 if x is infinite.", rule=rules.elementwise_int)(
    lambda x: jnp.isinf(x).astype(int)
)


def _binary(name: str, doc: str, impl, rule=rules.elementwise_real, aliases=()):
    impl.__doc__ = doc
    fn(name, rule=rule, args=2, aliases=aliases)(impl)


_binary("pow", "x to the power y.", lambda x, y: jnp.power(jnp.asarray(x, float), y), aliases=())
_binary("fmin", "Elementwise minimum.", lambda x, y: jnp.minimum(x, y))
_binary("fmax", "Elementwise maximum.", lambda x, y: jnp.maximum(x, y))
_binary("fmod", "Floating remainder of x / y (sign of x).", lambda x, y: jnp.fmod(x, y))
_binary("fdim", "max(x - y, 0).", lambda x, y: jnp.maximum(x - y, 0.0))
_binary("hypot", "sqrt(x^2 + y^2).", lambda x, y: jnp.hypot(x, y))
_binary(
    "atan2",
    "Arc tangent of y / x with the quadrant (Stan's atan2(y, x)).",
    lambda y, x: jnp.arctan2(y, x),
)
_binary("lbeta", "log Beta(a, b).", lambda a, b: jsp_special.betaln(a, b))
_binary(
    "lchoose",
    "log of the binomial coefficient (n choose k).",
    lambda n, k: (
        jsp_special.gammaln(n + 1.0)
        - jsp_special.gammaln(k + 1.0)
        - jsp_special.gammaln(n - k + 1.0)
    ),
    aliases=("binomial_coefficient_log",),
)
_binary("log_diff_exp", "log(exp(a) - exp(b)).", lambda a, b: a + jnp.log(-jnp.expm1(b - a)))
_binary(
    "log_inv_logit_diff",
    "log(inv_logit(a) - inv_logit(b)).",
    lambda a, b: a - jnp.logaddexp(0.0, a) + jnp.log(-jnp.expm1(b - a)) - jnp.logaddexp(0.0, b),
)
_binary(
    "multiply_log",
    "a * log(b), 0 when both are 0.",
    lambda a, b: jsp_special.xlogy(a, b),
    aliases=("lmultiply",),
)
_binary(
    "binary_log_loss",
    "-log(p) if y == 1 else -log(1 - p).",
    lambda y, p: -jnp.where(y == 1, jnp.log(p), jnp.log1p(-p)),
)


# ---- reductions ---------------------------------------------------------------


def _reduction(name: str, doc: str, impl, rule=rules.reduce_real):
    impl.__doc__ = doc
    fn(name, rule=rule, args=(1, 1), category="reduction")(impl)


_reduction("sum", "Sum of all elements.", lambda x: jnp.sum(x), rules.reduce_keep)
_reduction("prod", "Product of all elements.", lambda x: jnp.prod(x), rules.reduce_keep)
_reduction("mean", "Mean of all elements.", lambda x: jnp.mean(x))
_reduction("variance", "Sample variance (divides by n - 1), as Stan.", lambda x: jnp.var(x, ddof=1))
_reduction(
    "sd", "Sample standard deviation (divides by n - 1), as Stan.", lambda x: jnp.std(x, ddof=1)
)
_reduction("norm1", "Sum of absolute values.", lambda x: jnp.sum(jnp.abs(x)))
_reduction("norm2", "Euclidean norm.", lambda x: jnp.sqrt(jnp.sum(jnp.square(x))))
_reduction("dot_self", "Sum of squares.", lambda x: jnp.sum(jnp.square(x)))


def _max_rule(args: list[Arg]) -> Ty:
    if len(args) == 2:
        return rules.elementwise_keep(args)
    return rules.reduce_keep(args)


@fn("max", rule=_max_rule, args=(1, 2), category="reduction")
def max_(x, y=None):
    """Largest element of x, or the elementwise larger of x and y."""
    return jnp.max(x) if y is None else jnp.maximum(x, y)


@fn("min", rule=_max_rule, args=(1, 2), category="reduction")
def min_(x, y=None):
    """Smallest element of x, or the elementwise smaller of x and y."""
    return jnp.min(x) if y is None else jnp.minimum(x, y)


def _lse_rule(args: list[Arg]) -> Ty:
    return rules.elementwise_real(args) if len(args) == 2 else REAL


@fn("log_sum_exp", rule=_lse_rule, args=(1, 2), category="reduction")
def log_sum_exp(x, y=None):
    """log(sum(exp(x))), or log(exp(x) + exp(y)) elementwise with two arguments."""
    return jax.nn.logsumexp(x) if y is None else jnp.logaddexp(x, y)


def _log_mix_rule(args: list[Arg]) -> Ty:
    if args[0].ty.rank == 0 and len(args) == 3:
        return Ty("real", broadcast(args[1].ty.shape, args[2].ty.shape))
    return REAL


@fn("log_mix", rule=_log_mix_rule, args=(2, 3), category="reduction")
def log_mix(theta, lp1, lp2=None):
    """log(theta * exp(lp1) + (1 - theta) * exp(lp2)); or with a simplex theta and a
    vector of log densities, log(sum(theta .* exp(lps)))."""
    if lp2 is not None:
        return jnp.logaddexp(jnp.log(theta) + lp1, jnp.log1p(-theta) + lp2)
    return jax.nn.logsumexp(jnp.log(theta) + lp1)


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


# ---- vectors and matrices -------------------------------------------------------


@fn("dot_product", rule=rules.dot, args=2, category="matrix")
def dot_product(a, b):
    """Sum of a .* b for two vectors."""
    return jnp.dot(a, b)


def _rows_dot_rule(args: list[Arg]) -> Ty:
    s = broadcast(args[0].ty.shape, args[1].ty.shape)
    return Ty("real", s[:1])


@fn("rows_dot_product", rule=_rows_dot_rule, args=2, category="matrix")
def rows_dot_product(a, b):
    """Dot product of each row of a with the same row of b."""
    return jnp.sum(a * b, axis=-1)


def _cols_dot_rule(args: list[Arg]) -> Ty:
    s = broadcast(args[0].ty.shape, args[1].ty.shape)
    return Ty("real", s[-1:])


@fn("columns_dot_product", rule=_cols_dot_rule, args=2, category="matrix")
def columns_dot_product(a, b):
    """Dot product of each column of a with the same column of b."""
    return jnp.sum(a * b, axis=0)


def _squared_distance_rule(args: list[Arg]) -> Ty:
    broadcast(args[0].ty.shape, args[1].ty.shape)
    return REAL


@fn("squared_distance", rule=_squared_distance_rule, args=2, category="matrix")
def squared_distance(a, b):
    """Squared Euclidean distance."""
    return jnp.sum(jnp.square(a - b))


@fn("distance", rule=_squared_distance_rule, args=2, category="matrix")
def distance(a, b):
    """Euclidean distance."""
    return jnp.sqrt(jnp.sum(jnp.square(a - b)))


def _quad_form_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    if args[1].ty.rank == 1:
        unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "quad_form")
        return REAL
    rules.need_rank(args, 1, (2,), "the second argument")
    return Ty("real", (args[1].ty.shape[1], args[1].ty.shape[1]))


@fn("quad_form", rule=_quad_form_rule, args=2, category="matrix")
def quad_form(A, B):
    """B' A B (a scalar when B is a vector)."""
    return B.T @ A @ B if B.ndim == 2 else B @ A @ B


@fn("quad_form_diag", rule=rules.same_as_first, args=2, category="matrix")
def quad_form_diag(A, v):
    """diag(v) A diag(v)."""
    return v[:, None] * A * v[None, :]


@fn("cumulative_sum", rule=rules.same_as_first, args=1, category="array")
def cumulative_sum(x):
    """Running sums along the first axis."""
    return jnp.cumsum(x, axis=0)


@fn("softmax", rule=rules.vector_of_first, args=1, category="matrix")
def softmax(x):
    """exp(x) / sum(exp(x))."""
    return jax.nn.softmax(x)


@fn("log_softmax", rule=rules.vector_of_first, args=1, category="matrix")
def log_softmax(x):
    """x - log_sum_exp(x)."""
    return jax.nn.log_softmax(x)


@fn("cholesky_decompose", rule=rules.square_matrix, args=1, category="matrix")
def cholesky_decompose(A):
    """Lower-triangular L with L L' = A."""
    return jnp.linalg.cholesky(A)


@fn("inverse", rule=rules.square_matrix, args=1, category="matrix")
def inverse(A):
    """Matrix inverse."""
    return jnp.linalg.inv(A)


@fn("determinant", rule=rules.square_matrix_scalar, args=1, category="matrix")
def determinant(A):
    """Determinant."""
    return jnp.linalg.det(A)


@fn("log_determinant", rule=rules.square_matrix_scalar, args=1, category="matrix")
def log_determinant(A):
    """log |det A|."""
    return jnp.linalg.slogdet(A)[1]


def _mdivide_left_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "mdivide_left")
    return Ty("real", args[1].ty.shape)


@fn("mdivide_left", rule=_mdivide_left_rule, args=2, category="matrix")
def mdivide_left(A, b):
    """A \\ b: the solution x of A x = b."""
    return jnp.linalg.solve(A, b)


@fn("mdivide_left_tri_low", rule=_mdivide_left_rule, args=2, category="matrix")
def mdivide_left_tri_low(L, b):
    """L \\ b for lower-triangular L."""
    return jsp_linalg.solve_triangular(L, b, lower=True)


def _diag_matrix_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the argument")
    n = args[0].ty.shape[0]
    return Ty("real", (n, n))


@fn("diag_matrix", rule=_diag_matrix_rule, args=1, category="matrix")
def diag_matrix(v):
    """The square matrix with v on its diagonal."""
    return jnp.diag(v)


def _diagonal_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    return Ty(args[0].ty.base, args[0].ty.shape[:1])


@fn("diagonal", rule=_diagonal_rule, args=1, category="matrix")
def diagonal(A):
    """The diagonal of a matrix."""
    return jnp.diagonal(A)


def _diag_pre_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (1,), "the first argument")
    rules.need_rank(args, 1, (2,), "the second argument")
    return Ty("real", args[1].ty.shape)


@fn("diag_pre_multiply", rule=_diag_pre_rule, args=2, category="matrix")
def diag_pre_multiply(v, A):
    """diag(v) @ A."""
    return v[:, None] * A


def _diag_post_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    rules.need_rank(args, 1, (1,), "the second argument")
    return Ty("real", args[0].ty.shape)


@fn("diag_post_multiply", rule=_diag_post_rule, args=2, category="matrix")
def diag_post_multiply(A, v):
    """A @ diag(v)."""
    return A * v[None, :]


@fn("add_diag", rule=rules.same_as_first, args=2, category="matrix")
def add_diag(A, d):
    """A with d added to its diagonal."""
    return A + jnp.diag(jnp.broadcast_to(d, A.shape[:1]))


@fn("multiply_lower_tri_self_transpose", rule=rules.square_matrix, args=1, category="matrix")
def multiply_lower_tri_self_transpose(L):
    """tril(L) @ tril(L)'."""
    L = jnp.tril(L)
    return L @ L.T


def _tcrossprod_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    n = args[0].ty.shape[0]
    return Ty("real", (n, n))


@fn("tcrossprod", rule=_tcrossprod_rule, args=1, category="matrix")
def tcrossprod(A):
    """A @ A'."""
    return A @ A.T


def _crossprod_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    n = args[0].ty.shape[1]
    return Ty("real", (n, n))


@fn("crossprod", rule=_crossprod_rule, args=1, category="matrix")
def crossprod(A):
    """A' @ A."""
    return A.T @ A


# ---- constructors -----------------------------------------------------------------


def _sized(base: str, first: int = 0):
    def rule(args: list[Arg]) -> Ty:
        return Ty(base, rules.sizes_shape(args, first))

    return rule


def _sized_like_value(first: int):
    def rule(args: list[Arg]) -> Ty:
        return Ty(args[0].ty.base, (*rules.sizes_shape(args, first), *args[0].ty.shape))

    return rule


@fn("zeros", rule=_sized("real"), args=(0, None), category="constructor",
    aliases=("zeros_vector", "zeros_row_vector", "zeros_array"))  # fmt: skip
def zeros(*shape):
    """A real array of zeros of the given sizes: zeros(N), zeros(N, K)."""
    return jnp.zeros(shape)


@fn("ones", rule=_sized("real"), args=(0, None), category="constructor",
    aliases=("ones_vector", "ones_row_vector", "ones_array"))  # fmt: skip
def ones(*shape):
    """A real array of ones of the given sizes."""
    return jnp.ones(shape)


def _eye_rule(args: list[Arg]) -> Ty:
    n = rules.sizes_shape(args)[0]
    return Ty("real", (n, n))


@fn("eye", rule=_eye_rule, args=1, category="constructor", aliases=("identity_matrix",))
def eye(n):
    """The n x n identity matrix."""
    return jnp.eye(n)


def _rep_rule(args: list[Arg]) -> Ty:
    if args[0].ty.rank != 0:
        raise RuleError("the value to repeat must be a scalar here", arg=0)
    return Ty("real", rules.sizes_shape(args, 1))  # Stan's vectors and matrices are real


@fn("rep_vector", rule=_rep_rule, args=2, category="constructor", aliases=("rep_row_vector",))
def rep_vector(x, n):
    """A vector of n copies of x."""
    return jnp.full((n,), x, dtype=jnp.result_type(float))


@fn("rep_matrix", rule=_rep_rule, args=3, category="constructor")
def rep_matrix(x, m, n):
    """An m x n matrix filled with x."""
    return jnp.full((m, n), x, dtype=jnp.result_type(float))


@fn("rep_array", rule=_sized_like_value(1), args=(2, None), category="constructor")
def rep_array(x, *shape):
    """An array of the given sizes whose every element is x (x may be an array)."""
    x = jnp.asarray(x)
    return jnp.broadcast_to(x, (*shape, *x.shape))


def _linspaced_rule(args: list[Arg]) -> Ty:
    return Ty("real", rules.sizes_shape(args[:1]))


@fn("linspaced_vector", rule=_linspaced_rule, args=3, category="constructor",
    aliases=("linspaced_row_vector",))  # fmt: skip
def linspaced_vector(n, lo, hi):
    """n evenly spaced values from lo to hi inclusive."""
    return jnp.linspace(lo, hi, n)


def _append_row_rule(args: list[Arg]) -> Ty:
    a, b = args[0].ty, args[1].ty
    base = "int" if a.base == b.base == "int" else "real"
    if a.rank <= 1 and b.rank <= 1:
        n = (a.shape[0] if a.rank else 1, b.shape[0] if b.rank else 1)
        total = n[0] + n[1] if all(isinstance(x, int) for x in n) else None
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


@fn("append_row", rule=_append_row_rule, args=2, category="array")
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


@fn("append_col", rule=_append_col_rule, args=2, category="array")
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
    n = 1
    for d in t.shape:
        n = n * d if isinstance(d, int) and isinstance(n, int) else None
    return Ty(t.base if t.base != "bool" else "int", (n,))


@fn("to_vector", rule=_flat_rule, args=1, category="array", aliases=("to_row_vector",))
def to_vector(x):
    """All elements as a vector, in column-major order as Stan does."""
    x = jnp.asarray(x)
    return jnp.ravel(x, order="F") if x.ndim > 1 else jnp.atleast_1d(x)


@fn("flatten", rule=_flat_rule, args=1, category="array")
def flatten(x):
    """All elements as a vector, in row-major (NumPy) order."""
    return jnp.ravel(x)


def _to_matrix_rule(args: list[Arg]) -> Ty:
    return Ty(args[0].ty.base, rules.sizes_shape(args, 1))


@fn("to_matrix", rule=_to_matrix_rule, args=3, category="array")
def to_matrix(x, m, n):
    """Reshape to m x n, filling column-major as Stan does."""
    return jnp.reshape(jnp.ravel(x, order="F"), (m, n), order="F")


@fn("reverse", rule=rules.same_as_first, args=1, category="array")
def reverse(x):
    """Reverse the first axis."""
    return jnp.flip(x, axis=0)


@fn("sort_asc", rule=rules.same_as_first, args=1, category="array")
def sort_asc(x):
    """Sorted ascending."""
    return jnp.sort(x)


@fn("sort_desc", rule=rules.same_as_first, args=1, category="array")
def sort_desc(x):
    """Sorted descending."""
    return -jnp.sort(-x)


def _head_rule(args: list[Arg]) -> Ty:
    t = args[0].ty
    return t.with_shape((args[1].dim, *t.shape[1:]))


@fn("head", rule=_head_rule, args=2, static=(1,), category="array")
def head(x, n):
    """The first n elements."""
    return x[:n]


@fn("tail", rule=_head_rule, args=2, static=(1,), category="array")
def tail(x, n):
    """The last n elements."""
    return x[x.shape[0] - n :]


def _segment_rule(args: list[Arg]) -> Ty:
    t = args[0].ty
    return t.with_shape((args[2].dim, *t.shape[1:]))


@fn("segment", rule=_segment_rule, args=3, static=(1, 2), category="array")
def segment(x, i, n):
    """n elements starting at position i (1-based)."""
    return x[i - 1 : i - 1 + n]


def _gp_rule(args: list[Arg]) -> Ty:
    x = args[0].ty
    n = x.shape[0] if x.rank else None
    if len(args) == 4:
        m = args[1].ty.shape[0] if args[1].ty.rank else None
        return Ty("real", (n, m))
    return Ty("real", (n, n))


@fn("gp_exp_quad_cov", rule=_gp_rule, args=(3, 4), category="matrix", aliases=("cov_exp_quad",))
def gp_exp_quad_cov(x, *rest):
    """alpha^2 exp(-|x_i - x_j|^2 / (2 rho^2)); gp_exp_quad_cov(x, alpha, rho) or
    gp_exp_quad_cov(x1, x2, alpha, rho).  Points are scalars or rows."""
    if len(rest) == 3:
        x2, alpha, rho = rest
    else:
        x2, (alpha, rho) = x, rest
    a = x if x.ndim > 1 else x[:, None]
    b = x2 if x2.ndim > 1 else x2[:, None]
    d2 = jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)
    return jnp.square(alpha) * jnp.exp(-0.5 * d2 / jnp.square(rho))


# ---- further Stan functions -----------------------------------------------------------

_unary("trigamma", "The trigamma function, the derivative of digamma.")(
    lambda x: jsp_special.polygamma(1, x)
)
_unary("inv_cloglog", "1 - exp(-exp(x)), the inverse of the complementary log-log link.")(
    lambda x: -jnp.expm1(-jnp.exp(x))
)
_binary("beta", "The beta function Gamma(a) Gamma(b) / Gamma(a + b).", lambda a, b: jnp.exp(
    jsp_special.betaln(a, b)
))  # fmt: skip
_binary(
    "choose",
    "The binomial coefficient (n choose k) of integers, 0 when k > n.",
    lambda n, k: jnp.where(
        (k < 0) | (k > n),
        0,
        jnp.round(
            jnp.exp(
                jsp_special.gammaln(n + 1.0)
                - jsp_special.gammaln(k + 1.0)
                - jsp_special.gammaln(jnp.maximum(n - k, 0) + 1.0)
            )
        ),
    ).astype(int),
    rule=rules.elementwise_int,
)
_binary(
    "log_falling_factorial",
    "log of the falling factorial x (x - 1) ... (x - n + 1) = lgamma(x + 1) - lgamma(x - n + 1).",
    lambda x, n: jsp_special.gammaln(x + 1.0) - jsp_special.gammaln(x - n + 1.0),
)
_binary(
    "log_rising_factorial",
    "log of the rising factorial x (x + 1) ... (x + n - 1) = lgamma(x + n) - lgamma(x).",
    lambda x, n: jsp_special.gammaln(x + n) - jsp_special.gammaln(x),
)
_binary(
    "gamma_p",
    "The regularised lower incomplete gamma function P(a, z).",
    lambda a, z: jsp_special.gammainc(a, z),
)
_binary(
    "gamma_q",
    "The regularised upper incomplete gamma function Q(a, z) = 1 - P(a, z).",
    lambda a, z: jsp_special.gammaincc(a, z),
)


@fn("inc_beta", rule=rules.elementwise_real, args=3)
def inc_beta(a, b, x):
    """The regularised incomplete beta function I_x(a, b)."""
    return jsp_special.betainc(jnp.asarray(a, float), jnp.asarray(b, float), x)


@fn("fma", rule=rules.elementwise_real, args=3)
def fma(x, y, z):
    """x * y + z."""
    return x * y + z


def _lmgamma_rule(args: list[Arg]) -> Ty:
    return Ty("real", args[1].ty.shape)


@fn("lmgamma", rule=_lmgamma_rule, args=2, static=(0,))
def lmgamma(k, x):
    """log of the multivariate gamma function of dimension k:
    k (k - 1) / 4 log(pi) + sum_{j=1}^k lgamma(x + (1 - j) / 2)."""
    return jsp_special.multigammaln(x, k)


@fn("trace", rule=rules.square_matrix_scalar, args=1, category="matrix")
def trace(A):
    """Sum of the diagonal."""
    return jnp.trace(A)


@fn("log_determinant_spd", rule=rules.square_matrix_scalar, args=1, category="matrix")
def log_determinant_spd(A):
    """log det A of a symmetric positive-definite A, by its Cholesky factor."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(A))))


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


def _eigenvalues_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args)
    return Ty("real", args[0].ty.shape[:1])


@fn("eigenvalues_sym", rule=_eigenvalues_rule, args=1, category="matrix")
def eigenvalues_sym(A):
    """Eigenvalues of a symmetric matrix, ascending."""
    return jnp.linalg.eigvalsh(A)


def _singular_values_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the argument")
    n, m = args[0].ty.shape
    k = min(n, m) if isinstance(n, int) and isinstance(m, int) else None
    return Ty("real", (k,))


@fn("singular_values", rule=_singular_values_rule, args=1, category="matrix")
def singular_values(A):
    """Singular values, descending."""
    return jnp.linalg.svd(A, compute_uv=False)


def _mdivide_right_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[1:])
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


@fn("mdivide_left_spd", rule=_mdivide_left_rule, args=2, category="matrix")
def mdivide_left_spd(A, b):
    """A \\ b for symmetric positive-definite A, by its Cholesky factor."""
    return jsp_linalg.cho_solve((jnp.linalg.cholesky(A), True), b)


@fn("mdivide_right_spd", rule=_mdivide_right_rule, args=2, category="matrix")
def mdivide_right_spd(B, A):
    """B / A for symmetric positive-definite A, by its Cholesky factor."""
    return jsp_linalg.cho_solve((jnp.linalg.cholesky(A), True), B.T).T


def _trace_quad_form_rule(args: list[Arg]) -> Ty:
    rules.square_matrix(args[:1])
    rules.need_rank(args, 1, (2,), "the second argument")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "trace_quad_form")
    return REAL


@fn("trace_quad_form", rule=_trace_quad_form_rule, args=2, category="matrix")
def trace_quad_form(A, B):
    """trace(B' A B)."""
    return jnp.trace(B.T @ A @ B)


@fn("quad_form_sym", rule=_quad_form_rule, args=2, category="matrix")
def quad_form_sym(A, B):
    """B' A B for symmetric A; the matrix result is symmetrised exactly."""
    out = B.T @ A @ B if B.ndim == 2 else B @ A @ B
    return 0.5 * (out + out.T) if B.ndim == 2 else out


@fn("symmetrize_from_lower_tri", rule=rules.square_matrix, args=1, category="matrix")
def symmetrize_from_lower_tri(A):
    """The symmetric matrix whose lower triangle is that of A."""
    low = jnp.tril(A)
    return low + jnp.tril(A, -1).T


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


# ---- slicing (1-based positions, as Stan) ------------------------------------------------


def _row_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    return Ty(args[0].ty.base, args[0].ty.shape[1:])


def _col_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    return Ty(args[0].ty.base, args[0].ty.shape[:1])


@fn("row", rule=_row_rule, args=2, category="array")
def row(A, i):
    """Row i of a matrix."""
    return jnp.take(A, i - 1, axis=0)


@fn("col", rule=_col_rule, args=2, category="array")
def col(A, j):
    """Column j of a matrix."""
    return jnp.take(A, j - 1, axis=1)


def _block_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    return Ty(args[0].ty.base, (args[3].dim, args[4].dim))


@fn("block", rule=_block_rule, args=5, static=(3, 4), category="array")
def block(A, i, j, n_rows, n_cols):
    """The n_rows x n_cols block of A whose top-left element is A[i, j]."""
    return jax.lax.dynamic_slice(A, (i - 1, j - 1), (n_rows, n_cols))


def _sub_rule(args: list[Arg]) -> Ty:
    rules.need_rank(args, 0, (2,), "the first argument")
    return Ty(args[0].ty.base, (args[3].dim,))


@fn("sub_col", rule=_sub_rule, args=4, static=(3,), category="array")
def sub_col(A, i, j, n_rows):
    """n_rows elements of column j of A, starting at row i."""
    return jax.lax.dynamic_slice(A, (i - 1, j - 1), (n_rows, 1))[:, 0]


@fn("sub_row", rule=_sub_rule, args=4, static=(3,), category="array")
def sub_row(A, i, j, n_cols):
    """n_cols elements of row i of A, starting at column j."""
    return jax.lax.dynamic_slice(A, (i - 1, j - 1), (1, n_cols))[0]


@fn("rank", rule=rules.int_scalar, args=2, category="array")
def rank(v, s):
    """The number of elements of v less than v[s]."""
    return jnp.sum(v < jnp.take(v, s - 1)).astype(int)


@fn("to_array_1d", rule=_flat_rule, args=1, category="array")
def to_array_1d(x):
    """All elements as a one-dimensional array, in row-major order (Stan's order for
    arrays; use to_vector for a matrix's column-major order)."""
    return jnp.ravel(x)


# ---- more constructors ----------------------------------------------------------------


@fn("linspaced_array", rule=_linspaced_rule, args=3, category="constructor")
def linspaced_array(n, lo, hi):
    """n evenly spaced reals from lo to hi inclusive (as linspaced_vector)."""
    return jnp.linspace(lo, hi, n)


def _linspaced_int_rule(args: list[Arg]) -> Ty:
    return Ty("int", rules.sizes_shape(args[:1]))


@fn("linspaced_int_array", rule=_linspaced_int_rule, args=3, static=(0, 1, 2),
    category="constructor")  # fmt: skip
def linspaced_int_array(n, lo, hi):
    """n integers from lo spaced by (hi - lo) // (n - 1) (Stan's rounding down)."""
    by = (hi - lo) // (n - 1) if n > 1 else 0
    return lo + by * jnp.arange(n)


def _one_hot_rule(base: str):
    def rule(args: list[Arg]) -> Ty:
        return Ty(base, rules.sizes_shape(args[:1]))

    return rule


@fn("one_hot_vector", rule=_one_hot_rule("real"), args=2, static=(0,), category="constructor",
    aliases=("one_hot_row_vector", "one_hot_array"))  # fmt: skip
def one_hot_vector(n, k):
    """A real vector of n zeros with a 1 at position k."""
    return (jnp.arange(1, n + 1) == k).astype(jnp.result_type(float))


@fn("one_hot_int_array", rule=_one_hot_rule("int"), args=2, static=(0,),
    category="constructor")  # fmt: skip
def one_hot_int_array(n, k):
    """An integer array of n zeros with a 1 at position k."""
    return (jnp.arange(1, n + 1) == k).astype(int)


@fn("zeros_int_array", rule=_sized("int"), args=1, category="constructor")
def zeros_int_array(n):
    """An integer array of n zeros."""
    return jnp.zeros((n,), dtype=int)


@fn("ones_int_array", rule=_sized("int"), args=1, category="constructor")
def ones_int_array(n):
    """An integer array of n ones."""
    return jnp.ones((n,), dtype=int)


@fn("uniform_simplex", rule=_sized("real"), args=1, category="constructor")
def uniform_simplex(n):
    """The simplex of n equal entries 1/n."""
    return jnp.full((n,), 1.0 / n)
