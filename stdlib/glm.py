"""Stan's generalised linear model distributions (``*_glm``): a likelihood of ``y``
given a design matrix ``x``, an intercept ``alpha`` and coefficients ``beta``, in one
call, with Stan's names and argument orders.

Each is its family at the linear predictor

    eta[n] = alpha + sum_k x[n, k] beta[k]        (x: real[N, K], beta: real[K])

so ``y ~ poisson_log_glm(x, alpha, beta)`` is ``y ~ poisson_log(alpha + x @ beta)``.
One row of ``x`` (``real[K]``) gives one outcome; ``alpha`` may be one intercept or
one per row.  ``x``'s last axis belongs to one outcome (``arg_ranks`` 1), so its rows
are the batch: the log density of ``y: real[N]`` is ``real[N]``, as every distribution
function in FPL is elementwise.  The predictor is ``sum(x * beta, -1)`` rather than
``x @ beta`` so that batches of ``beta`` broadcast like any other argument.
"""

from __future__ import annotations

from fpl.stdlib.distributions import BINARY, NONNEG_INT, REAL, _f
from fpl.stdlib.lazy import dist, jnp
from fpl.stdlib.registry import REGISTRY, Bound, Support

d = REGISTRY.distribution


def _predictor(x, alpha, beta):
    """alpha + x . beta, broadcast over the rows of x (and any batch of beta)."""
    return _f(alpha) + jnp.sum(_f(x) * _f(beta), axis=-1)


@d("bernoulli_logit_glm", ("x", "alpha", "beta"), BINARY, arg_ranks=(1, 0, 1))
def bernoulli_logit_glm(x, alpha, beta):
    """bernoulli_logit(alpha + x * beta): logistic regression of y in {0, 1} on the rows
    of x."""
    return dist.BernoulliLogits(_predictor(x, alpha, beta))


@d("poisson_log_glm", ("x", "alpha", "beta"), NONNEG_INT, arg_ranks=(1, 0, 1))
def poisson_log_glm(x, alpha, beta):
    """poisson_log(alpha + x * beta): Poisson regression with a log link."""
    return dist.Poisson(jnp.exp(_predictor(x, alpha, beta)))


@d("normal_id_glm", ("x", "alpha", "beta", "sigma"), REAL, arg_ranks=(1, 0, 1, 0))
def normal_id_glm(x, alpha, beta, sigma):
    """normal(alpha + x * beta, sigma): linear regression (identity link)."""
    return dist.Normal(_predictor(x, alpha, beta), _f(sigma))


@d(
    "neg_binomial_2_log_glm",
    ("x", "alpha", "beta", "phi"),
    NONNEG_INT,
    arg_ranks=(1, 0, 1, 0),
)
def neg_binomial_2_log_glm(x, alpha, beta, phi):
    """neg_binomial_2_log(alpha + x * beta, phi): overdispersed count regression."""
    return dist.NegativeBinomial2(jnp.exp(_predictor(x, alpha, beta)), _f(phi))


@d(
    "ordered_logistic_glm",
    ("x", "beta", "c"),
    Support("int_interval", lower=Bound(1.0)),
    arg_ranks=(1, 1, 1),
    value_offset=1,
)
def ordered_logistic_glm(x, beta, c):
    """ordered_logistic(x * beta, c): ordinal regression over 1..K with K-1 ordered
    cutpoints c (no intercept: the cutpoints carry it)."""
    return dist.OrderedLogistic(jnp.sum(_f(x) * _f(beta), axis=-1), _f(c))


@d(
    "categorical_logit_glm",
    ("x", "alpha", "beta"),
    Support("int_interval", lower=Bound(1.0)),
    arg_ranks=(1, 1, 2),
    value_offset=1,
)
def categorical_logit_glm(x, alpha, beta):
    """categorical_logit(alpha + x * beta) over 1..C: multinomial logistic regression,
    alpha: real[C] and beta: real[K, C]."""
    eta = _f(alpha) + jnp.matmul(_f(x)[..., None, :], _f(beta))[..., 0, :]
    return dist.CategoricalLogits(eta)
