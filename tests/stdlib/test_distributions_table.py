"""One table, one row per registry distribution: arguments in Stan's parametrisation,
values (Stan's outcomes: categorical outcomes are 1-based) and an independent
SciPy/NumPy log density.  Each row is checked for the log density, gradients in the
parameters against finite differences, and that draws lie in the declared support.
A test asserts every distribution has a row.

The ``_lpdf`` / ``_lcdf`` / ``_lccdf`` forms are checked through the language at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps
import scipy.stats as st

import fpl
from fpl.stdlib import rules
from fpl.stdlib.registry import Bound, registry

POS = np.array([0.4, 1.3, 2.7])
REALS = np.array([-1.3, 0.2, 2.4])
UNIT = np.array([0.15, 0.5, 0.8])
COUNTS = np.array([0, 2, 7])
SIGMA = np.array([[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 1.5]])
CHOL = np.linalg.cholesky(SIGMA)
MU3 = np.array([0.5, -0.2, 1.0])
XG = np.array([[0.5, -1.2], [1.3, 0.4], [-0.7, 0.9], [0.2, 0.1]])  # a design matrix, N=4, K=2
BG = np.array([0.8, -0.5])
Y3 = np.array([[0.1, 0.4, -0.3], [1.2, -1.0, 2.0]])  # two draws of a 3-vector


def _corr_cholesky(r12: float, r13: float, r23: float) -> np.ndarray:
    omega = np.array([[1, r12, r13], [r12, 1, r23], [r13, r23, 1.0]])
    return np.linalg.cholesky(omega)


L_A = _corr_cholesky(0.3, -0.2, 0.4)
L_B = _corr_cholesky(-0.5, 0.1, 0.25)
SPD_A = np.array([[1.5, 0.4, -0.2], [0.4, 0.9, 0.1], [-0.2, 0.1, 2.2]])
SPD_B = np.array([[0.7, -0.3, 0.2], [-0.3, 1.8, 0.5], [0.2, 0.5, 1.1]])


@dataclass(frozen=True)
class Row:
    """``name(*args)`` evaluated at ``value`` must equal ``ref(value, *args)``.
    ``grad``: the argument positions to check derivatives in."""

    name: str
    args: tuple[Any, ...]
    value: Any
    ref: Callable[..., Any]
    grad: tuple[int, ...] = ()
    rtol: float = 1e-8


def _ordered_logistic(y, eta, c):
    cum = np.concatenate([[1.0], sps.expit(eta - c), [0.0]])
    return np.log(cum[y - 1] - cum[y])


def _lkj_cholesky_unnormalised(L, eta):
    """Stan's LKJ Cholesky density: sum_{k=2}^K (K - k + 2 eta - 2) log L_kk."""
    k = L.shape[-1]
    i = np.arange(2, k + 1)
    return np.sum((k - i + 2 * eta - 2) * np.log(np.diagonal(L, axis1=-2, axis2=-1)[..., 1:]), -1)


def _inv_chi_square(y, nu):
    """2^(-nu/2) / Gamma(nu/2) y^(-nu/2 - 1) exp(-1 / (2 y)), written out."""
    return -nu / 2 * np.log(2) - sps.gammaln(nu / 2) - (nu / 2 + 1) * np.log(y) - 1 / (2 * y)


def _scaled_inv_chi_square(y, nu, s):
    """(nu/2)^(nu/2) / Gamma(nu/2) s^nu y^(-nu/2 - 1) exp(-nu s^2 / (2 y)), written out."""
    h = nu / 2
    return (
        h * np.log(h) - sps.gammaln(h) + nu * np.log(s) - (h + 1) * np.log(y) - nu * s * s / (2 * y)
    )


ROWS: list[Row] = [
    Row("normal", (0.5, POS), REALS, lambda y, m, s: st.norm.logpdf(y, m, s), (0, 1)),
    Row("std_normal", (), REALS, lambda y: st.norm.logpdf(y)),
    Row("student_t", (3.5, 0.2, POS), REALS, lambda y, n, m, s: st.t.logpdf(y, n, m, s), (0, 1, 2)),
    Row("cauchy", (0.1, POS), REALS, lambda y, m, s: st.cauchy.logpdf(y, m, s), (0, 1)),
    Row("half_normal", (1.7,), POS, lambda y, s: st.halfnorm.logpdf(y, scale=s), (0,)),
    Row("half_cauchy", (1.7,), POS, lambda y, s: st.halfcauchy.logpdf(y, scale=s), (0,)),
    Row(
        "double_exponential", (0.3, 1.2), REALS, lambda y, m, s: st.laplace.logpdf(y, m, s), (0, 1)
    ),
    Row("logistic", (0.3, 1.2), REALS, lambda y, m, s: st.logistic.logpdf(y, m, s), (0, 1)),
    Row(
        "lognormal",
        (0.2, 0.8),
        POS,
        lambda y, m, s: st.lognorm.logpdf(y, s, scale=np.exp(m)),
        (0, 1),
    ),
    Row("exponential", (1.5,), POS, lambda y, b: st.expon.logpdf(y, scale=1 / b), (0,)),
    # Stan's gamma(alpha, beta): beta is a rate
    Row("gamma", (2.5, 1.5), POS, lambda y, a, b: st.gamma.logpdf(y, a, scale=1 / b), (0, 1)),
    # Stan's inv_gamma(alpha, beta): beta is a scale
    Row("inv_gamma", (2.5, 1.5), POS, lambda y, a, b: st.invgamma.logpdf(y, a, scale=b), (0, 1)),
    # Stan's weibull(alpha, sigma): alpha the shape, sigma the scale
    Row("weibull", (1.7, 2.2), POS, lambda y, a, s: st.weibull_min.logpdf(y, a, scale=s), (0, 1)),
    Row("beta", (2.5, 1.5), UNIT, lambda y, a, b: st.beta.logpdf(y, a, b), (0, 1)),
    Row("uniform", (-2.0, 3.0), REALS, lambda y, a, b: st.uniform.logpdf(y, a, b - a), (0, 1)),
    Row("bernoulli", (0.3,), np.array([0, 1, 1]), lambda y, p: st.bernoulli.logpmf(y, p), (0,)),
    Row(
        "bernoulli_logit",
        (0.7,),
        np.array([0, 1, 1]),
        lambda y, a: st.bernoulli.logpmf(y, sps.expit(a)),
        (0,),
    ),
    Row("binomial", (10, 0.3), COUNTS, lambda y, n, p: st.binom.logpmf(y, n, p), (1,)),
    Row(
        "binomial_logit",
        (10, -0.4),
        COUNTS,
        lambda y, n, a: st.binom.logpmf(y, n, sps.expit(a)),
        (1,),
    ),
    Row("poisson", (2.5,), COUNTS, lambda y, lam: st.poisson.logpmf(y, lam), (0,)),
    Row("poisson_log", (0.9,), COUNTS, lambda y, a: st.poisson.logpmf(y, np.exp(a)), (0,)),
    # Stan's neg_binomial_2(mu, phi): mean mu, variance mu + mu^2 / phi
    Row(
        "neg_binomial_2",
        (3.0, 1.7),
        COUNTS,
        lambda y, mu, phi: st.nbinom.logpmf(y, phi, phi / (mu + phi)),
        (0, 1),
        rtol=1e-6,
    ),  # NumPyro's GammaPoisson goes through jax's betaln: ~4e-7 relative
    Row(
        "neg_binomial_2_log",
        (1.1, 1.7),
        COUNTS,
        lambda y, eta, phi: st.nbinom.logpmf(y, phi, phi / (np.exp(eta) + phi)),
        (0, 1),
        rtol=1e-6,
    ),  # as neg_binomial_2
    Row(
        "categorical",
        (np.array([0.2, 0.5, 0.3]),),
        np.array([1, 3, 2]),
        lambda y, p: np.log(p[y - 1]),
    ),
    Row(
        "categorical_logit",
        (np.array([0.2, -1.0, 0.7]),),
        np.array([1, 3, 2]),
        lambda y, b: sps.log_softmax(b)[y - 1],
        (0,),
    ),
    Row(
        "ordered_logistic",
        (0.4, np.array([-1.0, 0.5, 2.0])),
        np.array([1, 2, 3, 4]),
        lambda y, eta, c: np.array([_ordered_logistic(k, eta, c) for k in y]),
        (0, 1),
    ),
    Row(
        "multi_normal",
        (MU3, SIGMA),
        Y3,
        lambda y, m, s: st.multivariate_normal.logpdf(y, m, s),
        (0,),
    ),
    Row(
        "multi_normal_cholesky",
        (MU3, CHOL),
        Y3,
        lambda y, m, L: st.multivariate_normal.logpdf(y, m, L @ L.T),
        (0,),
    ),
    Row(
        "multi_student_t",
        (4.5, MU3, SIGMA),
        Y3,
        lambda y, n, m, s: st.multivariate_t.logpdf(y, m, s, df=n),
        (0, 1),
    ),
    Row(
        "dirichlet",
        (np.array([1.5, 2.0, 0.7]),),
        np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]),
        lambda y, a: np.array([st.dirichlet.logpdf(v, a) for v in y]),
        (0,),
    ),
    # LKJ rows: the reference is unnormalised; test_distribution_log_density compares
    # differences between two points, and the K=2 tests below check normalisation.
    Row("lkj_corr_cholesky", (2.5,), np.stack([L_A, L_B]), _lkj_cholesky_unnormalised),
    Row(
        "lkj_corr",
        (2.5,),
        np.stack([L_A @ L_A.T, L_B @ L_B.T]),
        lambda y, eta: (eta - 1) * np.linalg.slogdet(y)[1],
    ),
    Row(
        "multi_normal_prec",
        (MU3, np.linalg.inv(SIGMA)),
        Y3,
        lambda y, m, p: st.multivariate_normal.logpdf(y, m, np.linalg.inv(p)),
        (0, 1),
    ),
    Row(
        "wishart",
        (4.5, SIGMA),
        np.stack([SPD_A, SPD_B]),
        lambda y, n, s: np.array([st.wishart.logpdf(v, n, s) for v in y]),
        (0, 1),
    ),
    Row(
        "inv_wishart",
        (4.5, SIGMA),
        np.stack([SPD_A, SPD_B]),
        lambda y, n, s: np.array([st.invwishart.logpdf(v, n, s) for v in y]),
        (0, 1),
    ),
    Row("chi_square", (3.5,), POS, lambda y, n: st.chi2.logpdf(y, n), (0,)),
    Row("inv_chi_square", (3.5,), POS, _inv_chi_square, (0,)),
    Row("scaled_inv_chi_square", (3.5, 0.8), POS, _scaled_inv_chi_square, (0, 1)),
    Row("rayleigh", (1.3,), POS, lambda y, s: st.rayleigh.logpdf(y, scale=s), (0,)),
    Row("frechet", (2.2, 1.4), POS, lambda y, a, s: st.invweibull.logpdf(y, a, scale=s), (0, 1)),
    Row("gumbel", (0.3, 1.2), REALS, lambda y, m, b: st.gumbel_r.logpdf(y, m, b), (0, 1)),
    Row("pareto", (0.3, 2.5), POS, lambda y, m, a: st.pareto.logpdf(y, a, scale=m), (0, 1)),
    Row("von_mises", (0.3, 2.0), REALS, lambda y, m, k: st.vonmises.logpdf(y, k, loc=m), (0, 1)),
    Row(
        "beta_binomial",
        (10, 2.5, 1.5),
        COUNTS,
        lambda y, n, a, b: st.betabinom.logpmf(y, n, a, b),
        (1, 2),
        rtol=1e-6,
    ),  # through jax's betaln, as neg_binomial_2: ~4e-7 relative
    # ---- the *_glm family (issue 13): the family at eta = alpha + x @ beta ----
    Row(
        "bernoulli_logit_glm",
        (XG, 0.3, BG),
        np.array([0, 1, 1, 0]),
        lambda y, x, a, b: st.bernoulli.logpmf(y, sps.expit(a + x @ b)),
        (0, 1, 2),
    ),
    Row(
        "poisson_log_glm",
        (XG, 0.3, BG),
        np.array([0, 2, 5, 1]),
        lambda y, x, a, b: st.poisson.logpmf(y, np.exp(a + x @ b)),
        (0, 1, 2),
    ),
    Row(
        "normal_id_glm",
        (XG, 0.3, BG, 1.4),
        np.array([0.2, -1.1, 2.3, 0.5]),
        lambda y, x, a, b, s: st.norm.logpdf(y, a + x @ b, s),
        (0, 1, 2, 3),
    ),
    Row(
        "neg_binomial_2_log_glm",
        (XG, 0.3, BG, 1.7),
        np.array([0, 2, 5, 1]),
        lambda y, x, a, b, phi: st.nbinom.logpmf(y, phi, phi / (np.exp(a + x @ b) + phi)),
        (0, 1, 2, 3),
        rtol=1e-6,
    ),  # as neg_binomial_2
    Row(
        "ordered_logistic_glm",
        (XG, BG, np.array([-1.0, 0.5, 2.0])),
        np.array([1, 2, 4, 3]),
        lambda y, x, b, c: np.array(
            [_ordered_logistic(k, eta, c) for k, eta in zip(y, x @ b, strict=True)]
        ),
        (0, 1, 2),
    ),
    Row(
        "categorical_logit_glm",
        (XG, np.array([0.1, -0.3, 0.4]), np.array([[0.5, -1.0, 0.2], [1.1, 0.3, -0.6]])),
        np.array([1, 3, 2, 3]),
        lambda y, x, a, b: sps.log_softmax(a + x @ b, axis=-1)[np.arange(len(y)), y - 1],
        (0, 1, 2),
    ),
]

UNNORMALISED = {"lkj_corr_cholesky", "lkj_corr"}


def _build(row: Row, args=None, value=None):
    entry = registry().distributions[row.name]
    args = row.args if args is None else args
    args = [jnp.asarray(a) if isinstance(a, (float, np.ndarray)) else a for a in args]
    if entry.needs_event_shape:
        shape = np.shape(row.value if value is None else value)
        return entry, entry.build(*args, event_shape=shape[len(shape) - entry.event_rank :])
    return entry, entry.build(*args)


def _log_prob(row: Row, args=None):
    entry, d = _build(row, args)
    return d.log_prob(jnp.asarray(row.value) - entry.value_offset)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_log_prob_shape_rule_matches_the_implementation(row: Row):
    """The checker's type of ``d_lpdf(y | args...)`` (``rules.log_prob_shape``) is the
    shape the lowering computes, for the row's draws and for one draw against each
    argument batched in turn (``normal_lpdf(y[1] | mu, 1)`` with ``mu: real[K]`` is
    ``real[K]``, issue 13)."""
    entry = registry().distributions[row.name]
    draws = np.asarray(row.value)
    batch_ranks = [np.ndim(a) - r for a, r in zip(row.args, entry.arg_ranks)]
    cases = [(draws, tuple(row.args))]
    for i, a in enumerate(row.args):
        # a new leading axis of 2 on argument i, placed before every other argument's
        # batch axes so that the arguments still broadcast
        pad = (1,) * (max(batch_ranks) - batch_ranks[i])
        batched = np.stack([a, a]).reshape((2, *pad, *np.shape(a)))
        args = tuple(batched if k == i else b for k, b in enumerate(row.args))
        cases.append((draws[0], args))  # every row's value holds several draws
    for value, args in cases:
        want = rules.log_prob_shape(entry, value.shape, [np.shape(a) for a in args])
        _, d = _build(row, args, value)
        got = d.log_prob(jnp.asarray(value) - entry.value_offset).shape
        assert got == want, f"value {value.shape}, args {[np.shape(a) for a in args]}"


def test_every_distribution_has_a_row():
    missing = sorted(set(registry().distributions) - {r.name for r in ROWS})
    assert not missing, f"registry distributions without a row in ROWS: {missing}"
    assert len({r.name for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_distribution_log_density(row: Row):
    got = np.asarray(jax.jit(lambda: _log_prob(row))())  # one compilation, not one per op
    want = np.asarray(row.ref(row.value, *row.args))
    if row.name in UNNORMALISED:
        got, want = got - got[0], want - want[0]
    assert got.shape == want.shape
    # float64 throughout: the two routes differ by rounding only (special functions
    # and Cholesky-based vs. direct linear algebra).
    np.testing.assert_allclose(got, want, rtol=row.rtol, atol=1e-10)


GRAD_ROWS = [r for r in ROWS if r.grad]


@pytest.mark.parametrize("row", GRAD_ROWS, ids=lambda r: r.name)
def test_distribution_gradient_in_parameters(row: Row):
    h = 1e-6
    args = [np.asarray(a, dtype=float) if k in row.grad else a for k, a in enumerate(row.args)]

    @jax.jit
    def both(values):
        def total(vals):
            merged = [vals[k] if k in vals else a for k, a in enumerate(args)]
            return jnp.sum(_log_prob(row, merged))

        grads = jax.grad(total)(values)
        fds = {}
        for k, x in values.items():
            steps = h * jnp.eye(x.size).reshape(x.size, *x.shape)

            def at(xk, k=k):
                return total({**values, k: xk})

            fds[k] = ((jax.vmap(at)(x + steps) - jax.vmap(at)(x - steps)) / (2 * h)).reshape(
                x.shape
            )
        return grads, fds

    grads, fds = both({k: jnp.asarray(args[k]) for k in row.grad})
    for k in row.grad:
        # Central differences, h = 1e-6, float64: truncation ~ h^2 and rounding
        # ~ 1e-16 * |log p| / h ~ 1e-9; 1e-5 is far below any real error.
        np.testing.assert_allclose(np.asarray(grads[k]), np.asarray(fds[k]), rtol=1e-5, atol=1e-5)


def _bound(b: Bound | None, args):
    if b is None:
        return None
    return b.value if b.arg is None else np.asarray(args[b.arg])


def _draws(row: Row) -> np.ndarray:
    """50 draws from the row's distribution in one jitted call per row.  Compiling all
    rows' samplers in one program is no cheaper than one program per row (measured
    2026-11-30 at XLA's optimisation level 0, tests/conftest.py: 24 s against 21 s in
    all; at level 2, load ~6: 200 s against 160 s), and per row the cost is spread over
    the tests, which xdist's workers share, instead of one 100 s fixture."""
    return np.asarray(jax.jit(lambda key: _build(row)[1].sample(key, (50,)))(jax.random.key(0)))


@pytest.mark.slow  # compiling the samplers (~20 s in all); the next test is the fast check
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_draws_lie_in_the_support(row: Row):
    entry = registry().distributions[row.name]
    x = _draws(row) + entry.value_offset
    sup = entry.support
    lo, hi = _bound(sup.lower, row.args), _bound(sup.upper, row.args)
    assert np.all(np.isfinite(x))
    if sup.discrete:
        assert np.all(x == np.round(x))
    if sup.kind in ("lower", "interval", "int_lower", "int_interval", "binary") and lo is not None:
        assert np.all(x >= lo)
    if sup.kind in ("upper", "interval", "int_interval", "binary") and hi is not None:
        assert np.all(x <= hi)
    if row.name in ("categorical", "categorical_logit", "ordered_logistic"):
        k = len(row.args[-1]) + (row.name == "ordered_logistic")
        assert x.min() >= 1 and x.max() <= k  # Stan's outcomes 1..K
    if sup.kind == "simplex":
        assert np.all(x >= 0)
        np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-12)
    if sup.kind == "cholesky_corr":
        np.testing.assert_allclose(np.triu(x, 1), 0.0)
        np.testing.assert_allclose(np.sum(x**2, -1), 1.0, atol=1e-12)
        assert np.all(np.diagonal(x, axis1=-2, axis2=-1) > 0)
    if sup.kind == "cov_matrix":
        np.testing.assert_allclose(x, np.swapaxes(x, -1, -2), atol=1e-12)
        assert np.all(np.linalg.eigvalsh(x) > 0)
    if sup.kind == "corr_matrix":
        np.testing.assert_allclose(x, np.swapaxes(x, -1, -2), atol=1e-12)
        np.testing.assert_allclose(np.diagonal(x, axis1=-2, axis2=-1), 1.0, atol=1e-12)
        assert np.all(np.linalg.eigvalsh(x) > 0)
    # a draw has the shape of one value of the row
    one = np.shape(row.value)[-entry.event_rank :] if entry.event_rank else ()
    assert x.shape[1 + x.ndim - 1 - len(one) :] == one


def _outside(row: Row, entry) -> np.ndarray | None:
    """A value just outside the registry's declared support, or None (the real line)."""
    sup = entry.support
    v = np.asarray(row.value, dtype=float)
    lo, hi = _bound(sup.lower, row.args), _bound(sup.upper, row.args)
    if sup.kind in ("simplex",):
        return v * 1.1
    if sup.kind in ("cholesky_corr", "corr_matrix"):
        return v * 1.1
    if sup.kind == "cov_matrix":
        return -v  # negative definite
    if sup.kind in ("lower", "int_lower") or (lo is not None and hi is None):
        return np.full(v.shape, float(lo) - 1)
    if hi is not None:
        return np.full(v.shape, float(np.max(hi)) + 1)
    return None


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_support_agrees_with_the_implementation(row: Row):
    """The registry's Support (which drives the checker and the unconstraining
    transform) and the NumPyro distribution's support agree: the row's values are in
    both, a value outside the declared support is outside NumPyro's too."""
    entry, d = _build(row)
    value = jnp.asarray(row.value) - entry.value_offset
    assert bool(jnp.all(d.support.check(value)))
    outside = _outside(row, entry)
    if outside is None:
        assert entry.support.kind == "real"
        return
    assert not bool(jnp.all(d.support.check(jnp.asarray(outside) - entry.value_offset)))


@pytest.mark.parametrize("name", ["lkj_corr_cholesky", "lkj_corr"])
def test_lkj_normalised_for_two_by_two(name):
    """For K = 2 the only free entry is r = L[1, 0] = Omega[1, 0] and the density must
    integrate to one over r in (-1, 1).  Gauss-Legendre with 80 nodes, all evaluated in
    one call; eta >= 1 keeps the integrand (1 - r^2)^(eta - 1) polynomial-smooth so the
    rule is exact to rounding (eta < 1 has integrable endpoint singularities that a
    fixed rule resolves poorly)."""
    r, w = np.polynomial.legendre.leggauss(80)
    L = np.zeros((len(r), 2, 2))
    L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = 1.0, r, np.sqrt(1 - r * r)
    value = L if name == "lkj_corr_cholesky" else L @ np.swapaxes(L, -1, -2)
    for eta in (1.0, 2.5, 4.0):
        d = registry().distributions[name].build(jnp.asarray(eta), event_shape=(2, 2))
        total = float(np.sum(w * np.exp(np.asarray(d.log_prob(jnp.asarray(value))))))
        assert total == pytest.approx(1.0, abs=1e-9), eta


# ---- the distribution-function forms through the language ----------------------------

FORMS = [
    ("normal_lpdf(y | mu, 2)", "real", 0.7, lambda y, mu: st.norm.logpdf(y, mu, 2)),
    ("normal_lcdf(y | mu, 2)", "real", 0.7, lambda y, mu: st.norm.logcdf(y, mu, 2)),
    ("normal_lccdf(y | mu, 2)", "real", 0.7, lambda y, mu: st.norm.logsf(y, mu, 2)),
    ("normal_cdf(y | mu, 2)", "real", 0.7, lambda y, mu: st.norm.cdf(y, mu, 2)),
    ("normal_lupdf(y | mu, 2)", "real", 0.7, lambda y, mu: st.norm.logpdf(y, mu, 2)),
    ("exponential_lccdf(y | exp(mu))", "real", 0.7, lambda y, mu: -np.exp(mu) * y),
    (
        "exponential_lcdf(y | exp(mu))",
        "real",
        0.7,
        lambda y, mu: np.log1p(-np.exp(-np.exp(mu) * y)),
    ),
    ("poisson_lpmf(k | exp(mu))", "int", 3, lambda k, mu: st.poisson.logpmf(k, np.exp(mu))),
    ("poisson_lcdf(k | exp(mu))", "int", 3, lambda k, mu: st.poisson.logcdf(k, np.exp(mu))),
    (
        "categorical_lpmf(k | softmax([mu, 0.0, 1.0]))",
        "int",
        3,
        lambda k, mu: sps.log_softmax([mu, 0.0, 1.0])[k - 1],
    ),
    (
        "categorical_logit_lpmf(k | [mu, 0.0, 1.0])",
        "int",
        1,
        lambda k, mu: sps.log_softmax([mu, 0.0, 1.0])[k - 1],
    ),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f[0].split("(")[0])
def test_distribution_function_forms(form):
    call, base, y, ref = form
    var = "y" if base == "real" else "k"
    model = fpl.compile(f"data {var}: {base}\nparam mu: real\ntarget += {call}")
    got = model.log_density({"mu": 0.3}, {var: y})
    np.testing.assert_allclose(float(got), ref(y, 0.3), rtol=1e-9)


def test_lpdf_is_elementwise_and_target_sums():
    src = "data N: int\ndata y: real[N]\nparam mu: real\n"
    src += "out lp = normal_lpdf(y | mu, 1)\ntarget += lp"
    model = fpl.compile(src)
    y = np.array([0.1, -0.4, 1.3])
    got = model.log_density({"mu": 0.2}, {"y": y})
    np.testing.assert_allclose(float(got), st.norm.logpdf(y, 0.2, 1).sum(), rtol=1e-12)
    from fpl.compiler import compile_ir

    lp = next(o for o in compile_ir(src).outs if o.name == "lp")
    assert str(lp.value.ty) == "real[N]"


# ---- cumulative distribution functions (the `_cdf`, `_lcdf`, `_lccdf` forms) ----------

# name -> (SciPy CDF of (value, *row args), argument positions to check derivatives in).
# Derivatives in a shape argument are left out where JAX's regularised incomplete beta
# has none (student_t's nu, beta's alpha and beta, binomial's N).
CDFS: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "normal": (lambda y, m, s: st.norm.cdf(y, m, s), (0, 1)),
    "std_normal": (lambda y: st.norm.cdf(y), ()),
    "student_t": (lambda y, n, m, s: st.t.cdf(y, n, m, s), (1, 2)),
    "cauchy": (lambda y, m, s: st.cauchy.cdf(y, m, s), (0, 1)),
    "half_normal": (lambda y, s: st.halfnorm.cdf(y, scale=s), (0,)),
    "half_cauchy": (lambda y, s: st.halfcauchy.cdf(y, scale=s), (0,)),
    "double_exponential": (lambda y, m, s: st.laplace.cdf(y, m, s), (0, 1)),
    "logistic": (lambda y, m, s: st.logistic.cdf(y, m, s), (0, 1)),
    "lognormal": (lambda y, m, s: st.lognorm.cdf(y, s, scale=np.exp(m)), (0, 1)),
    "exponential": (lambda y, b: st.expon.cdf(y, scale=1 / b), (0,)),
    "gamma": (lambda y, a, b: st.gamma.cdf(y, a, scale=1 / b), (0, 1)),
    "inv_gamma": (lambda y, a, b: st.invgamma.cdf(y, a, scale=b), (0, 1)),
    "weibull": (lambda y, a, s: st.weibull_min.cdf(y, a, scale=s), (0, 1)),
    "beta": (lambda y, a, b: st.beta.cdf(y, a, b), ()),
    "uniform": (lambda y, a, b: st.uniform.cdf(y, a, b - a), (0, 1)),
    "bernoulli": (lambda y, p: st.bernoulli.cdf(y, p), (0,)),
    "bernoulli_logit": (lambda y, a: st.bernoulli.cdf(y, sps.expit(a)), (0,)),
    "binomial": (lambda y, n, p: st.binom.cdf(y, n, p), (1,)),
    "binomial_logit": (lambda y, n, a: st.binom.cdf(y, n, sps.expit(a)), (1,)),
    "poisson": (lambda y, lam: st.poisson.cdf(y, lam), (0,)),
    "poisson_log": (lambda y, a: st.poisson.cdf(y, np.exp(a)), (0,)),
    "neg_binomial_2": (lambda y, mu, phi: st.nbinom.cdf(y, phi, phi / (mu + phi)), (0,)),
    "neg_binomial_2_log": (
        lambda y, eta, phi: st.nbinom.cdf(y, phi, phi / (np.exp(eta) + phi)),
        (0,),
    ),
    "chi_square": (lambda y, n: st.chi2.cdf(y, n), (0,)),
    "inv_chi_square": (lambda y, n: st.invgamma.cdf(y, n / 2, scale=0.5), (0,)),
    "scaled_inv_chi_square": (
        lambda y, n, s: st.invgamma.cdf(y, n / 2, scale=n * s * s / 2),
        (0, 1),
    ),
    "rayleigh": (lambda y, s: st.rayleigh.cdf(y, scale=s), (0,)),
    "frechet": (lambda y, a, s: st.invweibull.cdf(y, a, scale=s), (0, 1)),
    "gumbel": (lambda y, m, b: st.gumbel_r.cdf(y, m, b), (0, 1)),
    "pareto": (lambda y, m, a: st.pareto.cdf(y, a, scale=m), (0, 1)),
}
ROW_BY_NAME = {r.name: r for r in ROWS}


def test_cdf_flag_matches_the_table():
    """An entry's ``cdf`` flag (which the docs and `fpl list` show as the `_cdf` forms)
    is set exactly for the distributions whose CDF is checked here."""
    flagged = {n for n, e in registry().distributions.items() if e.cdf}
    assert flagged == set(CDFS), (sorted(flagged - set(CDFS)), sorted(set(CDFS) - flagged))


def _cdf(row: Row, args=None):
    entry, d = _build(row, args)
    return d.cdf(jnp.asarray(row.value) - entry.value_offset)


@pytest.mark.parametrize("name", sorted(CDFS))
def test_cdf_matches_scipy(name):
    row = ROW_BY_NAME[name]
    ref, _ = CDFS[name]
    got = np.asarray(jax.jit(lambda: _cdf(row))())
    # float64 on both sides; incomplete gamma/beta series agree to ~1e-12 relative,
    # the negative binomial goes through jax's betainc (~1e-9).
    np.testing.assert_allclose(got, ref(row.value, *row.args), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", sorted(n for n, (_, g) in CDFS.items() if g))
def test_log_cdf_gradient_in_parameters(name):
    """d/dθ of sum(log cdf) + sum(log1p(-cdf)) — what `_lcdf` and `_lccdf` compute —
    against central finite differences."""
    row = ROW_BY_NAME[name]
    positions = CDFS[name][1]
    h = 1e-6
    args = [np.asarray(a, dtype=float) if k in positions else a for k, a in enumerate(row.args)]

    @jax.jit
    def both(values):
        def total(vals):
            merged = [vals[k] if k in vals else a for k, a in enumerate(args)]
            c = _cdf(row, merged)
            # the ccdf is 0 at the top of a bounded support (bernoulli's 1): leave those out
            below_top = c < 1
            safe = jnp.where(below_top, c, 0.5)
            return jnp.sum(jnp.log(c)) + jnp.sum(jnp.where(below_top, jnp.log1p(-safe), 0.0))

        grads = jax.grad(total)(values)
        fds = {}
        for k, x in values.items():
            steps = h * jnp.eye(x.size).reshape(x.size, *x.shape)
            up = jax.vmap(lambda xk, k=k: total({**values, k: xk}))(x + steps)
            down = jax.vmap(lambda xk, k=k: total({**values, k: xk}))(x - steps)
            fds[k] = ((up - down) / (2 * h)).reshape(x.shape)
        return grads, fds

    grads, fds = both({k: jnp.asarray(args[k]) for k in positions})
    for k in positions:
        # as the log density gradients: h = 1e-6 central differences in float64
        np.testing.assert_allclose(np.asarray(grads[k]), np.asarray(fds[k]), rtol=1e-5, atol=1e-5)


def test_log_density_of_an_integer_passed_through_map():
    """``Model.log_density`` runs the model eagerly, where ``map`` hands its function
    traced integers; NumPyro's eager validation (NumPy on a tracer, issue 13) must not
    run there.  The value is SciPy's, and equal to the jitted route samplers take."""
    model = fpl.compile(
        "data N: int\ndata n: int[N]\ndata k: int[N]\n"
        "param p: real<lower=0, upper=1>\n"
        "fn term(ni: int, ki: int) = binomial_lpmf(ki | ni, p)\n"
        "fn logit_term(ni: int, ki: int) = binomial_logit_lpmf(ki | ni, 0.2)\n"
        "target += sum(map(term, n, k)) + sum(map(logit_term, n, k))\n"
    )
    data = {"N": 3, "n": [5, 6, 7], "k": [1, 2, 3]}
    n, k = np.array(data["n"]), np.array(data["k"])
    want = st.binom.logpmf(k, n, 0.3).sum() + st.binom.logpmf(k, n, sps.expit(0.2)).sum()
    eager = float(model.log_density({"p": 0.3}, data))
    cm = model.bind(data)
    jitted = float(
        jax.jit(lambda theta: cm.log_density(theta, jacobian=False))(cm.unconstrain({"p": 0.3}))
    )
    # float32 evaluation of a sum of six log-probabilities of size ~1
    np.testing.assert_allclose([eager, jitted], [want, want], rtol=1e-5)
