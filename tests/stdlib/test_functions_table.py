"""One table, one row per built-in function of the registry: sample inputs and an
independent NumPy/SciPy reference.  Each row is checked for

* value agreement with the reference (float64),
* gradient agreement with central finite differences (differentiable rows),
* its type rule: the shape and base the rule predicts for the sample arguments are
  those the implementation returns.

A test asserts every registry function has a row, so a new entry without one fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import scipy.special as sps
import scipy.stats

from fpl.stdlib.registry import Arg, registry
from fpl.stdlib.types import Ty

# ---- sample inputs ------------------------------------------------------------------

V = np.array([0.3, -1.2, 0.7, 2.1])
W = np.array([-0.4, 0.9, 1.6, -0.2])
POS = np.array([0.3, 1.2, 0.7, 2.1])
UNIT = np.array([0.1, 0.35, 0.6, 0.85])
NEG = np.array([-0.1, -0.5, -1.5, -3.0])  # includes both branches of log1m_exp
GAMMA_X = np.array([0.5, 1.7, 4.2, -0.5, -1.5])  # negative non-integers: tgamma's sign
M23 = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])
M33 = np.array([[1.2, -0.3, 0.5], [0.4, 0.9, -1.1], [-0.6, 0.2, 1.7]])
B32 = np.array([[0.2, 1.0], [-0.5, 0.4], [1.3, -0.8]])
SPD = M33 @ M33.T + 3 * np.eye(3)
L = np.linalg.cholesky(SPD)
V3 = np.array([0.4, -1.1, 0.8])
SIMPLEX = np.array([0.2, 0.5, 0.3])
IV = np.array([3, -2, 7, 0])
IW = np.array([2, 3, -4, 5])


@dataclass(frozen=True)
class Row:
    """``name(*args)`` must equal ``ref(*args)``.  Python ints are integer arguments
    (sizes, where the entry wants static ones); integer NumPy arrays are int arrays.
    ``grad``: check derivatives of every float argument against finite differences."""

    name: str
    args: tuple[Any, ...]
    ref: Callable[..., Any]
    grad: bool = True
    variant: str = ""

    @property
    def id(self) -> str:
        return self.name + (f"[{self.variant}]" if self.variant else "")


def _corr(x, w, mode):
    return scipy.signal.correlate(x, w, mode)


def _lse2(a, b):
    return np.logaddexp(a, b)


def _gp(x1, x2, alpha, rho):
    a = x1.reshape(len(x1), -1)
    b = x2.reshape(len(x2), -1)
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return alpha**2 * np.exp(-d2 / (2 * rho**2))


def _simplex(x):
    """Projection onto the simplex by bisection on tau (sum(max(x - tau, 0)) = 1): a
    different route from the sorting formula of the implementation."""
    lo, hi = x.min() - 1.0, x.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.maximum(x - mid, 0).sum() > 1 else (lo, mid)
    return np.maximum(x - 0.5 * (lo + hi), 0)


X2D = np.array([[0.0, 1.0], [0.5, -0.3], [1.2, 0.4]])

ROWS: list[Row] = [
    # ---- elementwise unary ----
    Row("exp", (V,), np.exp),
    Row("log", (POS,), np.log),
    Row("log2", (POS,), np.log2),
    Row("log10", (POS,), np.log10),
    Row("exp2", (V,), np.exp2),
    Row("log1p", (POS,), np.log1p),
    Row("expm1", (V,), np.expm1),
    Row("log1m", (UNIT,), lambda x: np.log(1 - x)),
    Row("sqrt", (POS,), np.sqrt),
    Row("cbrt", (V,), np.cbrt, grad=False),  # cbrt'(x) fine, but JAX's at x<0: see below
    Row("square", (V,), np.square),
    Row("square", (IV,), np.square, variant="int"),
    Row("inv", (V,), lambda x: 1 / x),
    Row("inv_sqrt", (POS,), lambda x: 1 / np.sqrt(x)),
    Row("inv_square", (V,), lambda x: 1 / x**2),
    Row("abs", (V,), np.abs),
    Row("abs", (IV,), np.abs, variant="int"),
    Row("fabs", (V,), np.abs),
    Row("sin", (V,), np.sin),
    Row("cos", (V,), np.cos),
    Row("tan", (V,), np.tan),
    Row("asin", (UNIT - 0.5,), np.arcsin),
    Row("acos", (UNIT - 0.5,), np.arccos),
    Row("atan", (V,), np.arctan),
    Row("sinh", (V,), np.sinh),
    Row("cosh", (V,), np.cosh),
    Row("tanh", (V,), np.tanh),
    Row("asinh", (V,), np.arcsinh),
    Row("acosh", (POS + 1,), np.arccosh),
    Row("atanh", (UNIT - 0.5,), np.arctanh),
    Row("logit", (UNIT,), sps.logit),
    Row("inv_logit", (V,), sps.expit),
    Row("log_inv_logit", (V,), lambda x: np.log(sps.expit(x))),
    Row("log1m_inv_logit", (V,), lambda x: np.log(1 - sps.expit(x))),
    Row("log1p_exp", (V,), lambda x: np.log1p(np.exp(x))),
    Row("log1m_exp", (NEG,), lambda x: np.log(1 - np.exp(x))),
    Row("lgamma", (GAMMA_X,), sps.gammaln),
    Row("tgamma", (GAMMA_X,), sps.gamma),
    Row("digamma", (GAMMA_X,), sps.digamma),
    Row("erf", (V,), sps.erf),
    Row("erfc", (V,), sps.erfc),
    Row("Phi", (V,), scipy.stats.norm.cdf),
    Row("inv_Phi", (UNIT,), scipy.stats.norm.ppf),
    Row("Phi_approx", (V,), lambda x: sps.expit(0.07056 * x**3 + 1.5976 * x)),
    Row("floor", (V,), np.floor, grad=False),
    Row("ceil", (V,), np.ceil, grad=False),
    Row("round", (np.array([0.4, -1.6, 2.2, 3.7]),), np.round, grad=False),
    Row("trunc", (V,), np.trunc, grad=False),
    Row("step", (np.array([-1.0, 0.0, 2.0]),), lambda x: (x >= 0).astype(float), grad=False),
    Row("int_step", (np.array([-1.0, 0.0, 2.0]),), lambda x: (x > 0).astype(int), grad=False),
    Row(
        "is_nan", (np.array([np.nan, 1.0, np.inf]),), lambda x: np.isnan(x).astype(int), grad=False
    ),
    Row(
        "is_inf", (np.array([np.nan, 1.0, -np.inf]),), lambda x: np.isinf(x).astype(int), grad=False
    ),
    # ---- elementwise binary ----
    Row("pow", (POS, V), np.power),
    Row("fmin", (V, W), np.fmin),
    Row("fmax", (V, W), np.fmax),
    Row("fmod", (np.array([5.3, -5.3, 2.5, 7.1]), np.array([2.0, 2.0, -1.5, 3.0])), np.fmod),
    Row("fdim", (V, W), lambda x, y: np.maximum(x - y, 0)),
    Row("hypot", (V, W), np.hypot),
    Row("atan2", (V, W), np.arctan2),
    Row("lbeta", (POS, POS[::-1]), sps.betaln),
    Row(
        "lchoose",
        (np.array([5, 7, 10]), np.array([2, 3, 10])),
        lambda n, k: np.log(sps.comb(n, k)),
        grad=False,
    ),
    Row(
        "binomial_coefficient_log",
        (np.array([5.5, 7.0]), np.array([2.5, 3.0])),
        lambda n, k: sps.gammaln(n + 1) - sps.gammaln(k + 1) - sps.gammaln(n - k + 1),
    ),
    Row("log_diff_exp", (POS + 1, V), lambda a, b: np.log(np.exp(a) - np.exp(b))),
    Row("log_inv_logit_diff", (POS + 1, V), lambda a, b: np.log(sps.expit(a) - sps.expit(b))),
    Row(
        "multiply_log",
        (np.array([0.0, 1.5, 2.0]), np.array([0.0, 0.5, 3.0])),
        sps.xlogy,
        grad=False,
    ),
    Row("multiply_log", (POS, UNIT), sps.xlogy, variant="positive"),
    Row("lmultiply", (POS, UNIT), sps.xlogy),
    Row(
        "binary_log_loss",
        (np.array([1, 0, 1]), np.array([0.2, 0.3, 0.9])),
        lambda y, p: -np.where(y == 1, np.log(p), np.log(1 - p)),
    ),
    # ---- reductions ----
    Row("sum", (M23,), np.sum),
    Row("sum", (IV,), np.sum, variant="int"),
    Row("prod", (V,), np.prod),
    Row("mean", (M23,), np.mean),
    Row("variance", (V,), lambda x: np.var(x, ddof=1)),
    Row("sd", (V,), lambda x: np.std(x, ddof=1)),
    Row("norm1", (V,), lambda x: np.abs(x).sum()),
    Row("norm2", (V,), np.linalg.norm),
    Row("dot_self", (V,), lambda x: x @ x),
    Row("max", (V,), np.max),
    Row("max", (V, W), np.maximum, variant="2"),
    Row("max", (IV,), np.max, variant="int"),
    Row("min", (V,), np.min),
    Row("min", (V, W), np.minimum, variant="2"),
    Row("log_sum_exp", (V,), sps.logsumexp),
    Row("log_sum_exp", (V, W), _lse2, variant="2"),
    Row(
        "log_mix",
        (np.array(0.3), V, W),
        lambda t, a, b: np.log(t * np.exp(a) + (1 - t) * np.exp(b)),
    ),
    Row("log_mix", (SIMPLEX, V3), lambda t, lp: sps.logsumexp(np.log(t) + lp), variant="simplex"),
    Row("num_elements", (M23,), np.size, grad=False),
    Row("size", (V,), np.size, grad=False),
    Row("rows", (M23,), lambda x: x.shape[0], grad=False),
    Row("cols", (M23,), lambda x: x.shape[1], grad=False),
    Row("cols", (V,), lambda x: 1, grad=False, variant="vector"),
    # ---- vectors and matrices ----
    Row("dot_product", (V, W), np.dot),
    Row("rows_dot_product", (M23, M23[::-1]), lambda a, b: (a * b).sum(1)),
    Row("columns_dot_product", (M23, M23[::-1]), lambda a, b: (a * b).sum(0)),
    Row("squared_distance", (V, W), lambda a, b: ((a - b) ** 2).sum()),
    Row("distance", (V, W), lambda a, b: np.sqrt(((a - b) ** 2).sum())),
    Row("quad_form", (SPD, V3), lambda A, b: b @ A @ b),
    Row("quad_form", (SPD, B32), lambda A, B: B.T @ A @ B, variant="matrix"),
    Row("quad_form_diag", (SPD, V3), lambda A, v: np.diag(v) @ A @ np.diag(v)),
    Row("cumulative_sum", (V,), np.cumsum),
    Row("cumulative_sum", (M23,), lambda x: np.cumsum(x, axis=0), variant="matrix"),
    Row("softmax", (V,), sps.softmax),
    Row("log_softmax", (V,), sps.log_softmax),
    Row("cholesky_decompose", (SPD,), np.linalg.cholesky),
    Row("inverse", (M33,), np.linalg.inv),
    Row("determinant", (M33,), np.linalg.det),
    Row("log_determinant", (M33,), lambda A: np.linalg.slogdet(A)[1]),
    Row("mdivide_left", (M33, V3), np.linalg.solve),
    Row(
        "mdivide_left_tri_low",
        (L, V3),
        lambda A, b: scipy.linalg.solve_triangular(A, b, lower=True),
    ),
    Row("diag_matrix", (V3,), np.diag),
    Row("diagonal", (M33,), np.diag),
    Row("diag_pre_multiply", (V3, M33), lambda v, A: np.diag(v) @ A),
    Row("diag_post_multiply", (M33, V3), lambda A, v: A @ np.diag(v)),
    Row("add_diag", (M33, V3), lambda A, d: A + np.diag(d)),
    Row("add_diag", (M33, np.array(0.7)), lambda A, d: A + d * np.eye(3), variant="scalar"),
    Row("multiply_lower_tri_self_transpose", (M33,), lambda A: np.tril(A) @ np.tril(A).T),
    Row("tcrossprod", (M23,), lambda A: A @ A.T),
    Row("crossprod", (M23,), lambda A: A.T @ A),
    # ---- constructors ----
    Row("zeros", (2, 3), lambda m, n: np.zeros((m, n)), grad=False),
    Row("ones", (3,), lambda n: np.ones(n), grad=False),
    Row("eye", (3,), np.eye, grad=False),
    Row("identity_matrix", (2,), np.eye, grad=False),
    Row("rep_vector", (np.array(1.5), 3), lambda x, n: np.full(n, x)),
    Row(
        "rep_vector", (np.array(2), 3), lambda x, n: np.full(n, 2.0), variant="int"
    ),  # Stan: a vector is real
    Row("rep_row_vector", (np.array(1.5), 2), lambda x, n: np.full(n, x)),
    Row("rep_matrix", (np.array(1.5), 2, 3), lambda x, m, n: np.full((m, n), x)),
    Row("rep_array", (V3, 2), lambda x, n: np.stack([x] * n)),
    Row("rep_array", (np.array(2), 3), lambda x, n: np.full(n, 2), variant="int"),
    Row(
        "linspaced_vector", (5, np.array(0.0), np.array(2.0)), lambda n, a, b: np.linspace(a, b, n)
    ),
    Row("append_row", (V3, V), lambda a, b: np.concatenate([a, b])),
    Row("append_row", (M23, V3), lambda a, b: np.vstack([a, b]), variant="matrix"),
    Row("append_row", (np.array(0.5), V3), lambda a, b: np.concatenate([[a], b]), variant="scalar"),
    Row("append_col", (M23, np.array([1.0, 2.0])), lambda a, b: np.column_stack([a, b])),
    # Stan: append_col(vector, vector) is a matrix of two columns
    Row("append_col", (V3, V3[::-1]), lambda a, b: np.column_stack([a, b]), variant="vectors"),
    Row(
        "append_col",
        (np.array(0.5), V3),
        lambda a, b: np.concatenate([[a], b]),
        variant="scalar",
    ),
    Row("append_row", (V3, M23), lambda a, b: np.vstack([a, b]), variant="row-matrix"),
    Row("to_vector", (M23,), lambda x: x.ravel(order="F")),
    Row("flatten", (M23,), lambda x: x.ravel()),
    Row("to_matrix", (np.arange(6.0), 2, 3), lambda x, m, n: x.reshape((m, n), order="F")),
    Row("reverse", (V,), lambda x: x[::-1]),
    Row("sort_asc", (V,), np.sort),
    Row("sort_desc", (V,), lambda x: np.sort(x)[::-1]),
    Row("head", (V, 2), lambda x, n: x[:n]),
    Row("tail", (V, 2), lambda x, n: x[-n:]),
    Row("segment", (V, 2, 2), lambda x, i, n: x[i - 1 : i - 1 + n]),
    Row("gp_exp_quad_cov", (V3, np.array(1.3), np.array(0.7)), lambda x, a, r: _gp(x, x, a, r)),
    Row("gp_exp_quad_cov", (V3, V, np.array(1.3), np.array(0.7)), _gp, variant="cross"),
    Row(
        "gp_exp_quad_cov",
        (X2D, np.array(1.3), np.array(0.7)),
        lambda x, a, r: _gp(x, x, a, r),
        variant="rows",
    ),
    Row("cov_exp_quad", (V3, np.array(0.8), np.array(1.1)), lambda x, a, r: _gp(x, x, a, r)),
    # ---- further Stan functions ----
    Row("trigamma", (GAMMA_X,), lambda x: sps.polygamma(1, x)),
    Row("inv_cloglog", (V,), lambda x: 1 - np.exp(-np.exp(x))),
    Row("beta", (POS, POS[::-1]), sps.beta),
    Row(
        "choose",
        (np.array([5, 7, 10, 3]), np.array([2, 3, 10, 4])),
        lambda n, k: sps.comb(n, k, exact=False).round().astype(int),
        grad=False,
    ),
    Row("log_falling_factorial", (POS + 3, POS), lambda x, n: np.log(sps.poch(x - n + 1, n))),
    Row("log_rising_factorial", (POS + 1, POS), lambda x, n: np.log(sps.poch(x, n))),
    Row("gamma_p", (POS + 0.5, UNIT * 3), sps.gammainc),
    Row("gamma_q", (POS + 0.5, UNIT * 3), sps.gammaincc),
    # the shape arguments are integers: JAX's incomplete beta has no derivative in them
    Row("inc_beta", (np.array([2, 3, 1, 5]), np.array([3, 1, 4, 2]), UNIT), sps.betainc),
    Row("fma", (V, W, POS), lambda x, y, z: x * y + z),
    Row("lmgamma", (3, POS + 2), lambda k, x: np.array([sps.multigammaln(v, k) for v in x])),
    Row("trace", (M33,), np.trace),
    Row("log_determinant_spd", (SPD,), lambda A: np.linalg.slogdet(A)[1]),
    Row("matrix_exp", (M33 / 2,), scipy.linalg.expm),
    Row("matrix_power", (M33, 3), np.linalg.matrix_power),
    Row("eigenvalues_sym", (SPD,), np.linalg.eigvalsh),
    Row("singular_values", (M23,), lambda A: np.linalg.svd(A, compute_uv=False)),
    Row("mdivide_right", (M23, M33), lambda B, A: B @ np.linalg.inv(A)),
    Row("mdivide_right_tri_low", (M23, L), lambda B, A: B @ np.linalg.inv(A)),
    Row("mdivide_left_spd", (SPD, V3), np.linalg.solve),
    Row("mdivide_right_spd", (M23, SPD), lambda B, A: B @ np.linalg.inv(A)),
    Row("trace_quad_form", (SPD, B32), lambda A, B: np.trace(B.T @ A @ B)),
    Row("quad_form_sym", (SPD, V3), lambda A, b: b @ A @ b),
    Row("quad_form_sym", (SPD, B32), lambda A, B: B.T @ A @ B, variant="matrix"),
    Row("symmetrize_from_lower_tri", (M33,), lambda A: np.tril(A) + np.tril(A, -1).T),
    Row("rows_dot_self", (M23,), lambda A: (A * A).sum(1)),
    Row("columns_dot_self", (M23,), lambda A: (A * A).sum(0)),
    Row("row", (M23, np.array(2)), lambda A, i: A[i - 1]),
    Row("col", (M23, np.array(3)), lambda A, j: A[:, j - 1]),
    Row("block", (M33, np.array(2), np.array(1), 2, 2), lambda A, i, j, m, n: A[1:3, 0:2]),
    Row("sub_col", (M33, np.array(2), np.array(3), 2), lambda A, i, j, n: A[1:3, 2]),
    Row("sub_row", (M33, np.array(1), np.array(2), 2), lambda A, i, j, n: A[0, 1:3]),
    Row("rank", (V, np.array(3)), lambda v, s: int(np.sum(v < v[s - 1])), grad=False),
    Row("rank", (IV, np.array(1)), lambda v, s: int(np.sum(v < v[s - 1])), variant="int"),
    Row("to_array_1d", (M23,), np.ravel),
    Row("to_row_vector", (M23,), lambda x: x.ravel(order="F")),
    Row(
        "linspaced_array", (4, np.array(-1.0), np.array(2.0)), lambda n, a, b: np.linspace(a, b, n)
    ),
    Row(
        "linspaced_row_vector",
        (3, np.array(0.0), np.array(1.0)),
        lambda n, a, b: np.linspace(a, b, n),
    ),
    Row("linspaced_int_array", (5, 1, 10), lambda n, a, b: np.array([1, 3, 5, 7, 9])),
    Row("linspaced_int_array", (5, 1, 5), lambda n, a, b: np.arange(1, 6), variant="unit"),
    Row("one_hot_vector", (4, np.array(2)), lambda n, k: np.eye(n)[k - 1], grad=False),
    Row("one_hot_row_vector", (3, np.array(3)), lambda n, k: np.eye(n)[k - 1], grad=False),
    Row("one_hot_array", (3, np.array(1)), lambda n, k: np.eye(n)[k - 1], grad=False),
    Row("one_hot_int_array", (4, np.array(4)), lambda n, k: np.eye(n, dtype=int)[k - 1]),
    Row("zeros_int_array", (3,), lambda n: np.zeros(n, int)),
    Row("ones_int_array", (3,), lambda n: np.ones(n, int)),
    Row("zeros_vector", (3,), np.zeros),
    Row("zeros_row_vector", (2,), np.zeros),
    Row("zeros_array", (2,), np.zeros),
    Row("ones_vector", (3,), np.ones),
    Row("ones_row_vector", (2,), np.ones),
    Row("ones_array", (2,), np.ones),
    Row("uniform_simplex", (4,), lambda n: np.full(n, 1 / n)),
    # ---- constants (issue 13) ----
    Row("pi", (), lambda: np.pi),
    Row("e", (), lambda: np.e),
    Row("sqrt2", (), lambda: np.sqrt(2.0)),
    Row("negative_infinity", (), lambda: -np.inf),
    Row("positive_infinity", (), lambda: np.inf),
    Row("not_a_number", (), lambda: np.nan),
    Row("machine_precision", (), lambda: np.finfo(np.float64).eps),  # inference is float64
    # ---- positions, conversions, eigenvectors (issue 13) ----
    Row("argmax", (V,), lambda x: np.argmax(x) + 1, grad=False),
    Row("argmax", (IV,), lambda x: np.argmax(x) + 1, variant="int"),
    Row("argmin", (V,), lambda x: np.argmin(x) + 1, grad=False),
    Row("sort_indices_asc", (V,), lambda x: np.argsort(x, kind="stable") + 1, grad=False),
    Row("sort_indices_desc", (V,), lambda x: np.argsort(-x, kind="stable") + 1, grad=False),
    Row(
        "sort_indices_asc",
        (np.array([2, 1, 2, 1]),),
        lambda x: np.array([2, 4, 1, 3]),  # ties keep their order, as Stan
        variant="ties",
    ),
    Row(
        "to_int",
        (np.array([-1.7, -0.2, 0.0, 2.5, 3.99]),),
        lambda x: np.trunc(x).astype(int),
        grad=False,
    ),
    Row("to_int", (IV,), lambda x: x, variant="int"),
    # eigenvectors of a matrix with distinct eigenvalues, each with the sign NumPy's
    # LAPACK gives (the same routine as JAX's on CPU); the sign-free check is below
    Row("eigenvectors_sym", (SPD,), lambda A: np.linalg.eigh(A)[1]),
    # ---- proximal maps and gradient control (issue 12); inputs away from the kinks ----
    # (|x| = t, the box faces, ties at the simplex threshold), where FD is exact
    Row("stop_gradient", (V,), lambda x: x, grad=False),  # derivative 0: test_prox.py
    Row("sign", (V,), np.sign),
    Row("sign", (IV,), np.sign, variant="int"),
    Row("prox_l1", (V, np.array(0.5)), lambda x, t: np.sign(x) * np.maximum(np.abs(x) - t, 0)),
    Row("soft_threshold", (V, W / 4 + 0.5), lambda x, t: np.sign(x) * np.maximum(np.abs(x) - t, 0)),
    Row("prox_nonneg", (V,), lambda x: np.maximum(x, 0)),
    Row("project_box", (V, np.array(-1.0), W + 1.0), lambda x, a, b: np.clip(x, a, b)),
    Row("project_simplex", (V,), lambda x: _simplex(x)),
    Row("project_simplex", (SIMPLEX / 4,), lambda x: _simplex(x), variant="interior"),
    # ---- convolutions (cross-correlations, as scipy.signal.correlate) ----
    Row("conv1d", (GAMMA_X, V3), lambda x, w: scipy.signal.correlate(x, w, "valid")),
    Row("conv1d", (GAMMA_X, W[:2], 2), lambda x, w, s: _corr(x, w, "valid")[::s], variant="s2"),
    Row("conv1d_same", (V, V3), lambda x, w: scipy.signal.correlate(x, w, "same")),
    Row("conv1d_same", (GAMMA_X, W, 2), lambda x, w, s: _corr(x, w, "same")[::s], variant="s2"),
    Row("conv2d", (M33, B32.T), lambda x, w: scipy.signal.correlate(x, w, "valid")),
    Row(
        "conv2d", (SPD, L[:2, :2], 2), lambda x, w, s: _corr(x, w, "valid")[::s, ::s], variant="s2"
    ),
    Row("conv2d_same", (M33, B32), lambda x, w: scipy.signal.correlate(x, w, "same")),
    Row("conv2d_same", (M33, B32, 2), lambda x, w, s: _corr(x, w, "same")[::s, ::s], variant="s2"),
    # ---- operators ----
    Row("add", (M23, V3), np.add),
    Row("add", (IV, IW), np.add, variant="int"),
    Row("sub", (M23, V3), np.subtract),
    Row("mul", (V, W), np.multiply),
    Row("div", (V, W), np.divide),
    Row("div", (IV, IW), np.divide, variant="int"),  # true division, as documented
    Row("mod", (IV, IW), np.mod),
    Row("matmul", (M23, V3), np.matmul),
    Row("matmul", (M23, B32), np.matmul, variant="matrix"),
    Row("matmul", (np.array([1.0, -2.0]), M23), np.matmul, variant="vector-matrix"),
    Row("neg", (V,), np.negative),
    Row("pos", (V,), lambda x: x),
    Row("transpose", (M23,), np.transpose),
    Row("eq", (IV, IW), np.equal, grad=False),
    Row("ne", (IV, IW), np.not_equal, grad=False),
    Row("lt", (V, W), np.less, grad=False),
    Row("le", (V, V), np.less_equal, grad=False),
    Row("gt", (V, W), np.greater, grad=False),
    Row("ge", (V, W), np.greater_equal, grad=False),
    Row(
        "and",
        (np.array([True, True, False]), np.array([True, False, False])),
        np.logical_and,
        grad=False,
    ),
    Row(
        "or",
        (np.array([True, True, False]), np.array([True, False, False])),
        np.logical_or,
        grad=False,
    ),
    Row("not", (np.array([True, False]),), np.logical_not, grad=False),
]

ROWS_BY_ID = {r.id: r for r in ROWS}
assert len(ROWS_BY_ID) == len(ROWS), "duplicate row ids"


def _is_float(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _jax_args(args):
    return [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]


_RESULTS: dict[str, np.ndarray] = {}


def _call(row: Row) -> np.ndarray:
    """The implementation's value at the row's inputs (computed once per row)."""
    if row.id not in _RESULTS:
        entry = registry().functions[row.name]
        _RESULTS[row.id] = np.asarray(entry.impl(*_jax_args(row.args)))
    return _RESULTS[row.id]


# ---- completeness -------------------------------------------------------------------


def test_every_registry_function_has_a_row():
    missing = sorted(set(registry().functions) - {r.name for r in ROWS})
    assert not missing, f"registry functions without a row in ROWS: {missing}"


def test_no_row_for_an_unknown_function():
    unknown = sorted({r.name for r in ROWS} - set(registry().functions))
    assert not unknown, f"rows naming no registry function: {unknown}"


# ---- values ---------------------------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_value_matches_reference(row: Row):
    got = np.asarray(_call(row))
    want = np.asarray(row.ref(*row.args))
    assert got.shape == want.shape
    # float64 on both sides: the implementations and references differ only by
    # rounding in different (equally stable) algorithms.
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


# ---- gradients ------------------------------------------------------------------------

GRAD_ROWS = [r for r in ROWS if r.grad and any(_is_float(a) for a in r.args)]


def _gradient_and_finite_differences(f, args, positions, h=1e-6):
    """``jax.grad`` of the scalar ``f`` in each float argument ``positions`` and central
    differences in every element of those arguments, in one jitted call (one
    compilation per row keeps the table fast)."""
    fixed = {k: a for k, a in enumerate(args) if k not in positions}

    def call(values):
        merged = {**fixed, **values}
        return f(*[merged[k] for k in range(len(args))])

    @jax.jit
    def both(values):
        grads = jax.grad(call)(values)
        fds = {}
        for k, x in values.items():
            steps = h * jnp.eye(x.size).reshape(x.size, *x.shape)

            def at(xk, k=k):
                return call({**values, k: xk})

            up, down = jax.vmap(at)(x + steps), jax.vmap(at)(x - steps)
            fds[k] = ((up - down) / (2 * h)).reshape(x.shape)
        return grads, fds

    return both({k: jnp.asarray(args[k]) for k in positions})


@pytest.mark.parametrize("row", GRAD_ROWS, ids=lambda r: r.id)
def test_gradient_matches_finite_differences(row: Row):
    entry = registry().functions[row.name]
    positions = [k for k, a in enumerate(row.args) if _is_float(a)]

    def total(*args):
        return jnp.sum(entry.impl(*args))

    args = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in row.args]
    grads, fds = _gradient_and_finite_differences(total, args, positions)
    for k in positions:
        # Central differences with h = 1e-6 in float64: truncation error ~ h^2 |f'''|
        # ~ 1e-12 and rounding error ~ eps |f| / h ~ 1e-10 for the O(1..10) values of
        # these inputs; 1e-6 relative/absolute leaves a wide margin yet catches any
        # wrong derivative rule (those are off by O(1)).
        np.testing.assert_allclose(
            np.asarray(grads[k]), np.asarray(fds[k]), rtol=1e-6, atol=1e-6, err_msg=f"argument {k}"
        )


def test_cbrt_gradient_positive_inputs():
    """cbrt is differentiable away from 0 (its row checks values on both signs)."""
    f = registry().functions["cbrt"].impl
    x = jnp.asarray(POS)
    g = jax.grad(lambda v: jnp.sum(f(v)))(x)
    np.testing.assert_allclose(g, POS ** (-2 / 3) / 3, rtol=1e-10)


# ---- type rules --------------------------------------------------------------------------


def _arg_info(a) -> Arg:
    if isinstance(a, bool):
        return Arg(Ty("bool"))
    if isinstance(a, int):
        return Arg(Ty("int"), a)
    kind = a.dtype.kind
    base = {"f": "real", "i": "int", "b": "bool"}[kind]
    dim = int(a) if kind == "i" and a.ndim == 0 else None
    return Arg(Ty(base, tuple(a.shape)), dim)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_type_rule_matches_implementation(row: Row):
    entry = registry().functions[row.name]
    assert entry.min_args <= len(row.args) <= (entry.max_args or 99)
    ty = entry.rule([_arg_info(a) for a in row.args])
    got = np.asarray(_call(row))
    assert tuple(ty.shape) == got.shape, f"rule says {ty}, implementation gives shape {got.shape}"
    base = {"f": "real", "i": "int", "b": "bool"}[got.dtype.kind]
    assert ty.base == base, f"rule says {ty}, implementation gives {got.dtype}"


def test_type_rule_keeps_symbolic_sizes():
    """Rules work on symbolic sizes, not only numbers."""
    fns = registry().functions
    n_k = Arg(Ty("real", ("N", "K")))
    k = Arg(Ty("real", ("K",)))
    assert fns["matmul"].rule([n_k, k]) == Ty("real", ("N",))
    assert fns["add"].rule([n_k, k]) == Ty("real", ("N", "K"))
    assert fns["to_vector"].rule([n_k]) == Ty("real", (None,))
    assert fns["diag_matrix"].rule([k]) == Ty("real", ("K", "K"))
    assert fns["zeros"].rule([Arg(Ty("int"), "N"), Arg(Ty("int"), 3)]) == Ty("real", ("N", 3))
    assert fns["append_row"].rule([k, Arg(Ty("real", ("J",)))]) == Ty("real", ("K + J",))


def test_eigenvectors_sym_diagonalise():
    """Sign-free: V' A V is diag(eigenvalues_sym(A)) and V is orthonormal."""
    fns = registry().functions
    A = jnp.asarray(SPD)
    V, lam = fns["eigenvectors_sym"].impl(A), fns["eigenvalues_sym"].impl(A)
    np.testing.assert_allclose(V.T @ A @ V, np.diag(lam), atol=1e-12)  # float64 rounding
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-12)
