"""Special functions: gamma and beta families, the error function and the normal CDF,
incomplete gamma and beta, binomial coefficients.
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import binary, fn, unary
from fpl.stdlib.lazy import jax, jnp, jsp_special
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import Ty

# ---- gamma family ---------------------------------------------------------------------

unary("lgamma", "log |Gamma(x)|.")(lambda x: jsp_special.gammaln(x))
unary("tgamma", "Gamma(x).")(
    lambda x: jnp.exp(jsp_special.gammaln(x)) * jnp.sign(jsp_special.gamma(x))
)
unary("digamma", "The digamma function.")(lambda x: jsp_special.digamma(x))
unary("trigamma", "The trigamma function, the derivative of digamma.")(
    lambda x: jsp_special.polygamma(1, x)
)


def _lmgamma_rule(args: list[Arg]) -> Ty:
    return Ty("real", args[1].ty.shape)


@fn("lmgamma", rule=_lmgamma_rule, args=2, static=(0,))
def lmgamma(k, x):
    """log of the multivariate gamma function of dimension k:
    k (k - 1) / 4 log(pi) + sum_{j=1}^k lgamma(x + (1 - j) / 2)."""
    return jsp_special.multigammaln(x, k)


binary(
    "gamma_p",
    "The regularised lower incomplete gamma function P(a, z).",
    lambda a, z: jsp_special.gammainc(a, z),
)
binary(
    "gamma_q",
    "The regularised upper incomplete gamma function Q(a, z) = 1 - P(a, z).",
    lambda a, z: jsp_special.gammaincc(a, z),
)
binary(
    "log_falling_factorial",
    "log of the falling factorial x (x - 1) ... (x - n + 1) = lgamma(x + 1) - lgamma(x - n + 1).",
    lambda x, n: jsp_special.gammaln(x + 1.0) - jsp_special.gammaln(x - n + 1.0),
)
binary(
    "log_rising_factorial",
    "log of the rising factorial x (x + 1) ... (x + n - 1) = lgamma(x + n) - lgamma(x).",
    lambda x, n: jsp_special.gammaln(x + n) - jsp_special.gammaln(x),
)


# ---- beta family and binomial coefficients --------------------------------------------

binary("lbeta", "log Beta(a, b).", lambda a, b: jsp_special.betaln(a, b))
binary(
    "beta",
    "The beta function Gamma(a) Gamma(b) / Gamma(a + b).",
    lambda a, b: jnp.exp(jsp_special.betaln(a, b)),
)


@fn("inc_beta", rule=rules.elementwise_real, args=3)
def inc_beta(a, b, x):
    """The regularised incomplete beta function I_x(a, b)."""
    return jsp_special.betainc(jnp.asarray(a, float), jnp.asarray(b, float), x)


binary(
    "lchoose",
    "log of the binomial coefficient (n choose k).",
    lambda n, k: (
        jsp_special.gammaln(n + 1.0)
        - jsp_special.gammaln(k + 1.0)
        - jsp_special.gammaln(n - k + 1.0)
    ),
    aliases=("binomial_coefficient_log",),
)
binary(
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


# ---- error function and the normal CDF ------------------------------------------------

unary("erf", "The error function.")(lambda x: jsp_special.erf(x))
unary("erfc", "The complementary error function.")(lambda x: jsp_special.erfc(x))
unary("Phi", "The standard normal CDF.")(lambda x: jsp_special.ndtr(x))
unary("inv_Phi", "The standard normal quantile function.")(lambda x: jsp_special.ndtri(x))
unary("Phi_approx", "Logistic approximation of Phi (Stan's).")(
    lambda x: jax.nn.sigmoid(0.07056 * x**3 + 1.5976 * x)
)
