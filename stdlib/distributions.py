"""Distributions with Stan's names, argument orders and meanings, as thin descriptors
over NumPyro's.  Each entry declares its support (which drives both the checker —
a param with this prior takes this support — and the unconstraining transform)."""

from __future__ import annotations

from fpl.stdlib.lazy import dist, jnp
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


@d("normal", ("mu", "sigma"), REAL)
def normal(mu, sigma):
    """Normal with mean mu and standard deviation sigma."""
    return dist.Normal(_f(mu), _f(sigma))


@d("std_normal", (), REAL)
def std_normal():
    """The standard normal, normal(0, 1)."""
    return dist.Normal(0.0, 1.0)


@d("student_t", ("nu", "mu", "sigma"), REAL)
def student_t(nu, mu, sigma):
    """Student's t with nu degrees of freedom, location mu, scale sigma."""
    return dist.StudentT(_f(nu), _f(mu), _f(sigma))


@d("cauchy", ("mu", "sigma"), REAL)
def cauchy(mu, sigma):
    """Cauchy with location mu and scale sigma."""
    return dist.Cauchy(_f(mu), _f(sigma))


@d("half_normal", ("sigma",), POSITIVE)
def half_normal(sigma):
    """The normal(0, sigma) folded onto the positive reals (FPL addition)."""
    return dist.HalfNormal(_f(sigma))


@d("half_cauchy", ("sigma",), POSITIVE)
def half_cauchy(sigma):
    """The cauchy(0, sigma) folded onto the positive reals (FPL addition)."""
    return dist.HalfCauchy(_f(sigma))


@d("double_exponential", ("mu", "sigma"), REAL)
def double_exponential(mu, sigma):
    """Laplace with location mu and scale sigma."""
    return dist.Laplace(_f(mu), _f(sigma))


@d("logistic", ("mu", "sigma"), REAL)
def logistic(mu, sigma):
    """Logistic with location mu and scale sigma."""
    return dist.Logistic(_f(mu), _f(sigma))


@d("lognormal", ("mu", "sigma"), POSITIVE)
def lognormal(mu, sigma):
    """log(y) ~ normal(mu, sigma)."""
    return dist.LogNormal(_f(mu), _f(sigma))


@d("exponential", ("beta",), POSITIVE)
def exponential(beta):
    """Exponential with rate beta."""
    return dist.Exponential(_f(beta))


@d("gamma", ("alpha", "beta"), POSITIVE)
def gamma(alpha, beta):
    """Gamma with shape alpha and rate beta."""
    return dist.Gamma(_f(alpha), _f(beta))


@d("inv_gamma", ("alpha", "beta"), POSITIVE)
def inv_gamma(alpha, beta):
    """Inverse gamma with shape alpha and scale beta."""
    return dist.InverseGamma(_f(alpha), _f(beta))


@d("weibull", ("alpha", "sigma"), POSITIVE)
def weibull(alpha, sigma):
    """Weibull with shape alpha and scale sigma."""
    return dist.Weibull(_f(sigma), _f(alpha))


@d("beta", ("alpha", "beta"), UNIT)
def beta(alpha, beta_):
    """Beta with prior counts alpha and beta."""
    return dist.Beta(_f(alpha), _f(beta_))


@d("uniform", ("alpha", "beta"), Support("interval", lower=Bound(arg=0), upper=Bound(arg=1)))
def uniform(alpha, beta_):
    """Uniform on (alpha, beta)."""
    return dist.Uniform(_f(alpha), _f(beta_))


@d("bernoulli", ("theta",), BINARY)
def bernoulli(theta):
    """Bernoulli with success probability theta."""
    return dist.BernoulliProbs(_f(theta))


@d("bernoulli_logit", ("alpha",), BINARY)
def bernoulli_logit(alpha):
    """Bernoulli with success probability inv_logit(alpha)."""
    return dist.BernoulliLogits(_f(alpha))


@d("binomial", ("N", "theta"), Support("int_interval", lower=Bound(0.0), upper=Bound(arg=0)))
def binomial(n, theta):
    """Binomial: successes in N trials of probability theta."""
    return dist.BinomialProbs(_f(theta), total_count=n)


@d(
    "binomial_logit",
    ("N", "alpha"),
    Support("int_interval", lower=Bound(0.0), upper=Bound(arg=0)),
)
def binomial_logit(n, alpha):
    """Binomial with success probability inv_logit(alpha)."""
    return dist.BinomialLogits(_f(alpha), total_count=n)


@d("poisson", ("lambda",), NONNEG_INT)
def poisson(lam):
    """Poisson with rate lambda."""
    return dist.Poisson(_f(lam))


@d("poisson_log", ("alpha",), NONNEG_INT)
def poisson_log(alpha):
    """Poisson with rate exp(alpha)."""
    return dist.Poisson(jnp.exp(_f(alpha)))


@d("neg_binomial_2", ("mu", "phi"), NONNEG_INT)
def neg_binomial_2(mu, phi):
    """Negative binomial with mean mu and overdispersion phi (variance mu + mu^2/phi)."""
    return dist.NegativeBinomial2(_f(mu), _f(phi))


@d("neg_binomial_2_log", ("eta", "phi"), NONNEG_INT)
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
    return dist.MultivariateNormal(_f(mu), covariance_matrix=_f(sigma))


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
    return dist.MultivariateNormal(_f(mu), scale_tril=_f(chol))


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
    return dist.MultivariateStudentT(_f(nu), _f(mu), jnp.linalg.cholesky(_f(sigma)))


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
