"""Distributions with Stan's names, argument orders and meanings, as thin descriptors
over NumPyro's.  Each entry declares its support (which drives both the checker —
a param with this prior takes this support — and the unconstraining transform)."""

from __future__ import annotations

import math

from fpl.stdlib.lazy import dist, jnp, jsp_special
from fpl.stdlib.registry import REGISTRY, Bound, Support

d = REGISTRY.distribution

REAL = Support("real")
POSITIVE = Support("lower", lower=Bound(0.0))
UNIT = Support("interval", lower=Bound(0.0), upper=Bound(1.0))
NONNEG_INT = Support("int_lower", lower=Bound(0.0))
BINARY = Support("binary", lower=Bound(0.0), upper=Bound(1.0))


def _f(x):
    """Promote to a floating array (NumPyro wants real parameters)."""
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _batched_location(mu, matrix):
    """``mu`` broadcast over the batch of a (batch of) scale matrices: NumPyro's
    multivariate normal fails on a batch of matrices with one shared mean."""
    mu, matrix = _f(mu), _f(matrix)
    batch = jnp.broadcast_shapes(mu.shape[:-1], matrix.shape[:-2])
    return jnp.broadcast_to(mu, (*batch, mu.shape[-1])), matrix


def _with_cdf(d, cdf):
    """Give a NumPyro distribution that lacks one a CDF (``cdf(value)``, value in
    NumPyro's outcome space), so the ``_cdf``/``_lcdf``/``_lccdf`` forms work."""
    d.cdf = cdf
    return d


def _bernoulli_cdf(p):
    """P(Y <= y) of a Bernoulli(p): 0 below 0, 1 - p on [0, 1), 1 from 1 on."""
    return lambda y: jnp.where(y < 0, 0.0, jnp.where(y < 1, 1.0 - p, 1.0))


def _binomial_cdf(n, p):
    """P(Y <= k) of a Binomial(n, p) = I_{1-p}(n - k, k + 1) (regularised incomplete
    beta) for 0 <= k < n; 0 below 0 and 1 from n on."""

    def cdf(k):
        k = jnp.floor(k)
        inside = (k >= 0) & (k < n)
        kk = jnp.clip(k, 0, jnp.maximum(n - 1, 0))
        body = jsp_special.betainc(jnp.maximum(n - kk, 1.0), kk + 1.0, 1.0 - p)
        return jnp.where(inside, body, jnp.where(k < 0, 0.0, 1.0))

    return cdf


@d("normal", ("mu", "sigma"), REAL, cdf=True)
def normal(mu, sigma):
    """Normal with mean mu and standard deviation sigma."""
    return dist.Normal(_f(mu), _f(sigma))


@d("std_normal", (), REAL, cdf=True)
def std_normal():
    """The standard normal, normal(0, 1)."""
    return dist.Normal(0.0, 1.0)


@d("student_t", ("nu", "mu", "sigma"), REAL, cdf=True)
def student_t(nu, mu, sigma):
    """Student's t with nu degrees of freedom, location mu, scale sigma."""
    nu, mu, sigma = _f(nu), _f(mu), _f(sigma)
    return _with_cdf(dist.StudentT(nu, mu, sigma), _student_t_cdf(nu, mu, sigma))


def _student_t_cdf(nu, mu, sigma):
    """F(y) = I_x(nu/2, nu/2) with x = (t + sqrt(t^2 + nu)) / (2 sqrt(t^2 + nu)),
    t = (y - mu) / sigma: smooth through t = 0, where NumPyro's sign-based form has a
    NaN derivative."""

    def cdf(y):
        t = (y - mu) / sigma
        r = jnp.sqrt(t * t + nu)
        return jsp_special.betainc(nu / 2, nu / 2, (t + r) / (2 * r))

    return cdf


@d("cauchy", ("mu", "sigma"), REAL, cdf=True)
def cauchy(mu, sigma):
    """Cauchy with location mu and scale sigma."""
    return dist.Cauchy(_f(mu), _f(sigma))


@d("half_normal", ("sigma",), POSITIVE, cdf=True)
def half_normal(sigma):
    """The normal(0, sigma) folded onto the positive reals (FPL addition)."""
    return dist.HalfNormal(_f(sigma))


@d("half_cauchy", ("sigma",), POSITIVE, cdf=True)
def half_cauchy(sigma):
    """The cauchy(0, sigma) folded onto the positive reals (FPL addition)."""
    return dist.HalfCauchy(_f(sigma))


@d("double_exponential", ("mu", "sigma"), REAL, cdf=True)
def double_exponential(mu, sigma):
    """Laplace with location mu and scale sigma."""
    return dist.Laplace(_f(mu), _f(sigma))


@d("logistic", ("mu", "sigma"), REAL, cdf=True)
def logistic(mu, sigma):
    """Logistic with location mu and scale sigma."""
    return dist.Logistic(_f(mu), _f(sigma))


@d("lognormal", ("mu", "sigma"), POSITIVE, cdf=True)
def lognormal(mu, sigma):
    """log(y) ~ normal(mu, sigma)."""
    return dist.LogNormal(_f(mu), _f(sigma))


@d("exponential", ("beta",), POSITIVE, cdf=True)
def exponential(beta):
    """Exponential with rate beta."""
    return dist.Exponential(_f(beta))


@d("gamma", ("alpha", "beta"), POSITIVE, cdf=True)
def gamma(alpha, beta):
    """Gamma with shape alpha and rate beta."""
    return dist.Gamma(_f(alpha), _f(beta))


@d("inv_gamma", ("alpha", "beta"), POSITIVE, cdf=True)
def inv_gamma(alpha, beta):
    """Inverse gamma with shape alpha and scale beta."""
    return dist.InverseGamma(_f(alpha), _f(beta))


@d("weibull", ("alpha", "sigma"), POSITIVE, cdf=True)
def weibull(alpha, sigma):
    """Weibull with shape alpha and scale sigma."""
    return dist.Weibull(_f(sigma), _f(alpha))


@d("beta", ("alpha", "beta"), UNIT, cdf=True)
def beta(alpha, beta_):
    """Beta with prior counts alpha and beta."""
    return dist.Beta(_f(alpha), _f(beta_))


@d(
    "uniform",
    ("alpha", "beta"),
    Support("interval", lower=Bound(arg=0), upper=Bound(arg=1)),
    cdf=True,
)
def uniform(alpha, beta_):
    """Uniform on (alpha, beta)."""
    return dist.Uniform(_f(alpha), _f(beta_))


@d("bernoulli", ("theta",), BINARY, cdf=True)
def bernoulli(theta):
    """Bernoulli with success probability theta."""
    theta = _f(theta)
    return _with_cdf(dist.BernoulliProbs(theta), _bernoulli_cdf(theta))


@d("bernoulli_logit", ("alpha",), BINARY, cdf=True)
def bernoulli_logit(alpha):
    """Bernoulli with success probability inv_logit(alpha)."""
    d = dist.BernoulliLogits(_f(alpha))
    return _with_cdf(d, _bernoulli_cdf(d.probs))


@d(
    "binomial",
    ("N", "theta"),
    Support("int_interval", lower=Bound(0.0), upper=Bound(arg=0)),
    cdf=True,
)
def binomial(n, theta):
    """Binomial: successes in N trials of probability theta."""
    theta = _f(theta)
    return _with_cdf(dist.BinomialProbs(theta, total_count=n), _binomial_cdf(_f(n), theta))


@d(
    "binomial_logit",
    ("N", "alpha"),
    Support("int_interval", lower=Bound(0.0), upper=Bound(arg=0)),
    cdf=True,
)
def binomial_logit(n, alpha):
    """Binomial with success probability inv_logit(alpha)."""
    d = dist.BinomialLogits(_f(alpha), total_count=n)
    return _with_cdf(d, _binomial_cdf(_f(n), d.probs))


@d("poisson", ("lambda",), NONNEG_INT, cdf=True)
def poisson(lam):
    """Poisson with rate lambda."""
    return dist.Poisson(_f(lam))


@d("poisson_log", ("alpha",), NONNEG_INT, cdf=True)
def poisson_log(alpha):
    """Poisson with rate exp(alpha)."""
    return dist.Poisson(jnp.exp(_f(alpha)))


@d("neg_binomial_2", ("mu", "phi"), NONNEG_INT, cdf=True)
def neg_binomial_2(mu, phi):
    """Negative binomial with mean mu and overdispersion phi (variance mu + mu^2/phi)."""
    return dist.NegativeBinomial2(_f(mu), _f(phi))


@d("neg_binomial_2_log", ("eta", "phi"), NONNEG_INT, cdf=True)
def neg_binomial_2_log(eta, phi):
    """neg_binomial_2 with mean exp(eta)."""
    return dist.NegativeBinomial2(jnp.exp(_f(eta)), _f(phi))


@d(
    "categorical",
    ("theta",),
    Support("int_interval", lower=Bound(1.0)),
    arg_ranks=(1,),
    value_offset=1,
)
def categorical(theta):
    """Categorical over 1..K with probabilities theta (a simplex)."""
    return dist.CategoricalProbs(_f(theta))


@d(
    "categorical_logit",
    ("beta",),
    Support("int_interval", lower=Bound(1.0)),
    arg_ranks=(1,),
    value_offset=1,
)
def categorical_logit(beta_):
    """Categorical over 1..K with probabilities softmax(beta)."""
    return dist.CategoricalLogits(_f(beta_))


@d(
    "ordered_logistic",
    ("eta", "c"),
    Support("int_interval", lower=Bound(1.0)),
    arg_ranks=(0, 1),
    value_offset=1,
)
def ordered_logistic(eta, c):
    """Ordered logistic over 1..K with predictor eta and K-1 ordered cutpoints c."""
    return dist.OrderedLogistic(_f(eta), _f(c))


@d(
    "multi_normal",
    ("mu", "Sigma"),
    REAL,
    event_rank=1,
    arg_ranks=(1, 2),
    event_arg=0,
)
def multi_normal(mu, sigma):
    """Multivariate normal with mean mu and covariance Sigma."""
    mu, sigma = _batched_location(mu, sigma)
    return dist.MultivariateNormal(mu, covariance_matrix=sigma)


@d(
    "multi_normal_cholesky",
    ("mu", "L"),
    REAL,
    event_rank=1,
    arg_ranks=(1, 2),
    event_arg=0,
)
def multi_normal_cholesky(mu, chol):
    """Multivariate normal with mean mu and covariance L L'."""
    mu, chol = _batched_location(mu, chol)
    return dist.MultivariateNormal(mu, scale_tril=chol)


@d(
    "multi_student_t",
    ("nu", "mu", "Sigma"),
    REAL,
    event_rank=1,
    arg_ranks=(0, 1, 2),
    event_arg=1,
)
def multi_student_t(nu, mu, sigma):
    """Multivariate Student's t with nu degrees of freedom, location mu, scale Sigma."""
    mu, sigma = _batched_location(mu, sigma)
    return dist.MultivariateStudentT(_f(nu), mu, jnp.linalg.cholesky(sigma))


@d("dirichlet", ("alpha",), Support("simplex"), event_rank=1, arg_ranks=(1,), event_arg=0)
def dirichlet(alpha):
    """Dirichlet with concentrations alpha."""
    return dist.Dirichlet(_f(alpha))


@d(
    "lkj_corr_cholesky",
    ("eta",),
    Support("cholesky_corr"),
    event_rank=2,
    needs_event_shape=True,
)
def lkj_corr_cholesky(eta, event_shape):
    """LKJ prior on the Cholesky factor of a correlation matrix, shape eta."""
    return dist.LKJCholesky(event_shape[-1], _f(eta))


@d("lkj_corr", ("eta",), Support("corr_matrix"), event_rank=2, needs_event_shape=True)
def lkj_corr(eta, event_shape):
    """LKJ prior on a correlation matrix, shape eta."""
    return dist.LKJ(event_shape[-1], _f(eta))


@d(
    "multi_normal_prec",
    ("mu", "Omega"),
    REAL,
    event_rank=1,
    arg_ranks=(1, 2),
    event_arg=0,
)
def multi_normal_prec(mu, omega):
    """Multivariate normal with mean mu and precision (inverse covariance) Omega."""
    mu, omega = _batched_location(mu, omega)
    return dist.MultivariateNormal(mu, precision_matrix=omega)


@d("wishart", ("nu", "Sigma"), Support("cov_matrix"), event_rank=2, arg_ranks=(0, 2), event_arg=1)
def wishart(nu, sigma):
    """Wishart over covariance matrices with nu degrees of freedom and scale Sigma
    (mean nu Sigma)."""
    return dist.Wishart(_f(nu), scale_matrix=_f(sigma))


@d(
    "inv_wishart",
    ("nu", "Sigma"),
    Support("cov_matrix"),
    event_rank=2,
    arg_ranks=(0, 2),
    event_arg=1,
)
def inv_wishart(nu, sigma):
    """Inverse Wishart over covariance matrices with nu degrees of freedom and scale
    Sigma (mean Sigma / (nu - K - 1))."""
    return dist.InverseWishart(_f(nu), scale_matrix=_f(sigma))


# ---- further univariate distributions (Stan's names and parametrisations) -----------


@d("chi_square", ("nu",), POSITIVE, cdf=True)
def chi_square(nu):
    """Chi-square with nu degrees of freedom."""
    return dist.Chi2(_f(nu))


@d("inv_chi_square", ("nu",), POSITIVE, cdf=True)
def inv_chi_square(nu):
    """Inverse chi-square with nu degrees of freedom: 1/y ~ chi_square(nu)."""
    return dist.InverseGamma(_f(nu) / 2, 0.5)


@d("scaled_inv_chi_square", ("nu", "s"), POSITIVE, cdf=True)
def scaled_inv_chi_square(nu, s):
    """Scaled inverse chi-square with nu degrees of freedom and scale s:
    inv_gamma(nu / 2, nu s^2 / 2)."""
    nu, s = _f(nu), _f(s)
    return dist.InverseGamma(nu / 2, nu * s * s / 2)


@d("rayleigh", ("sigma",), POSITIVE, cdf=True)
def rayleigh(sigma):
    """Rayleigh with scale sigma: y exp(-y^2 / (2 sigma^2)) / sigma^2."""
    return dist.Weibull(_f(sigma) * math.sqrt(2.0), 2.0)


@d("frechet", ("alpha", "sigma"), POSITIVE, cdf=True)
def frechet(alpha, sigma):
    """Frechet (inverse Weibull) with shape alpha and scale sigma: 1/y ~ weibull(alpha,
    1/sigma)."""
    from numpyro.distributions.transforms import PowerTransform

    return dist.TransformedDistribution(
        dist.Weibull(1.0 / _f(sigma), _f(alpha)), PowerTransform(-1.0)
    )


@d("gumbel", ("mu", "beta"), REAL, cdf=True)
def gumbel(mu, beta_):
    """Gumbel (type I extreme value) with location mu and scale beta."""
    return dist.Gumbel(_f(mu), _f(beta_))


@d("pareto", ("y_min", "alpha"), Support("lower", lower=Bound(arg=0)), cdf=True)
def pareto(y_min, alpha):
    """Pareto with minimum y_min and shape alpha."""
    return dist.Pareto(_f(y_min), _f(alpha))


@d(
    "von_mises",
    ("mu", "kappa"),
    Support("interval", lower=Bound(-math.pi), upper=Bound(math.pi)),
)
def von_mises(mu, kappa):
    """Von Mises on the circle (-pi, pi) with location mu and concentration kappa."""
    return dist.VonMises(_f(mu), _f(kappa))


@d(
    "beta_binomial",
    ("N", "alpha", "beta"),
    Support("int_interval", lower=Bound(0.0), upper=Bound(arg=0)),
)
def beta_binomial(n, alpha, beta_):
    """Beta-binomial: successes in N trials whose probability is beta(alpha, beta)."""
    return dist.BetaBinomial(_f(alpha), _f(beta_), total_count=n)
