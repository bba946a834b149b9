"""Elementwise maths on reals: powers and logarithms, trigonometry, the logit
family and log-space arithmetic, rounding and tests.

Every function here broadcasts its arguments (Stan's vectorised signatures).
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import binary, fn, promoting, unary
from fpl.stdlib.lazy import jax, jnp, jsp_special

# ---- powers, logarithms, roots --------------------------------------------------------

unary("exp", "Exponential.")(lambda x: jnp.exp(x))
unary("log", "Natural logarithm.")(lambda x: jnp.log(x))
unary("log2", "Base-2 logarithm.")(lambda x: jnp.log2(x))
unary("log10", "Base-10 logarithm.")(lambda x: jnp.log10(x))
unary("exp2", "2 to the power x.")(lambda x: jnp.exp2(x))
unary("log1p", "log(1 + x).")(lambda x: jnp.log1p(x))
unary("expm1", "exp(x) - 1.")(lambda x: jnp.expm1(x))
unary("log1m", "log(1 - x).")(lambda x: jnp.log1p(-x))
unary("sqrt", "Square root.")(lambda x: jnp.sqrt(x))
unary("cbrt", "Cube root.")(lambda x: jnp.cbrt(x))
unary("square", "x squared.", rule=rules.elementwise_keep, linearity="double")(
    lambda x: jnp.square(x)
)
unary("inv", "1 / x.")(lambda x: 1.0 / x)
unary("inv_sqrt", "1 / sqrt(x).")(lambda x: jax.lax.rsqrt(jnp.asarray(x, float)))
unary("inv_square", "1 / x^2.")(lambda x: 1.0 / jnp.square(x))
unary("abs", "Absolute value.", rule=rules.elementwise_keep, aliases=("fabs",))(
    lambda x: jnp.abs(x)
)
binary(
    "pow",
    "x to the power y.",
    lambda x, y: jnp.power(jnp.asarray(x, float), y),
    linearity="power",
    spelling="^",
)
binary("hypot", "sqrt(x^2 + y^2).", lambda x, y: jnp.hypot(x, y))


# ---- trigonometry ---------------------------------------------------------------------

unary("sin", "Sine.")(lambda x: jnp.sin(x))
unary("cos", "Cosine.")(lambda x: jnp.cos(x))
unary("tan", "Tangent.")(lambda x: jnp.tan(x))
unary("asin", "Arc sine.")(lambda x: jnp.arcsin(x))
unary("acos", "Arc cosine.")(lambda x: jnp.arccos(x))
unary("atan", "Arc tangent.")(lambda x: jnp.arctan(x))
binary(
    "atan2",
    "Arc tangent of y / x with the quadrant (Stan's atan2(y, x)).",
    lambda y, x: jnp.arctan2(y, x),
)
unary("sinh", "Hyperbolic sine.")(lambda x: jnp.sinh(x))
unary("cosh", "Hyperbolic cosine.")(lambda x: jnp.cosh(x))
unary("tanh", "Hyperbolic tangent.")(lambda x: jnp.tanh(x))
unary("asinh", "Inverse hyperbolic sine.")(lambda x: jnp.arcsinh(x))
unary("acosh", "Inverse hyperbolic cosine.")(lambda x: jnp.arccosh(x))
unary("atanh", "Inverse hyperbolic tangent.")(lambda x: jnp.arctanh(x))


# ---- links and log-space arithmetic ---------------------------------------------------

unary("logit", "log(x / (1 - x)).")(lambda x: jsp_special.logit(x))
unary("inv_logit", "1 / (1 + exp(-x)), the logistic sigmoid.")(lambda x: jax.nn.sigmoid(x))
unary("log_inv_logit", "log(inv_logit(x)).")(lambda x: jax.nn.log_sigmoid(x))
unary("log1m_inv_logit", "log(1 - inv_logit(x)).")(lambda x: jax.nn.log_sigmoid(-x))
unary("log1p_exp", "log(1 + exp(x)), the softplus.")(lambda x: jnp.logaddexp(0.0, x))
unary("log1m_exp", "log(1 - exp(x)) for x < 0.")(
    lambda x: jnp.where(x > -0.693147, jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))
)
unary("inv_cloglog", "1 - exp(-exp(x)), the inverse of the complementary log-log link.")(
    lambda x: -jnp.expm1(-jnp.exp(x))
)
binary("log_diff_exp", "log(exp(a) - exp(b)).", lambda a, b: a + jnp.log(-jnp.expm1(b - a)))
binary(
    "log_inv_logit_diff",
    "log(inv_logit(a) - inv_logit(b)).",
    lambda a, b: a - jnp.logaddexp(0.0, a) + jnp.log(-jnp.expm1(b - a)) - jnp.logaddexp(0.0, b),
)
binary(
    "multiply_log",
    "a * log(b), 0 when both are 0.",
    lambda a, b: jsp_special.xlogy(a, b),
    aliases=("lmultiply",),
)
binary(
    "binary_log_loss",
    "-log(p) if y == 1 else -log(1 - p).",
    lambda y, p: -jnp.where(y == 1, jnp.log(p), jnp.log1p(-p)),
)


@fn("fma", rule=rules.elementwise_real, args=3)
@promoting
def fma(x, y, z):
    """x * y + z."""
    return x * y + z


# ---- comparisons, rounding and tests --------------------------------------------------

binary("fmin", "Elementwise minimum.", lambda x, y: jnp.minimum(x, y))
binary("fmax", "Elementwise maximum.", lambda x, y: jnp.maximum(x, y))
binary("fmod", "Floating remainder of x / y (sign of x).", lambda x, y: jnp.fmod(x, y))
binary("fdim", "max(x - y, 0).", lambda x, y: jnp.maximum(x - y, 0.0))
unary("floor", "Round down (real result).")(lambda x: jnp.floor(x))
unary("ceil", "Round up (real result).")(lambda x: jnp.ceil(x))
unary("round", "Round to nearest (real result).")(lambda x: jnp.round(x))
unary("trunc", "Round toward zero (real result).")(lambda x: jnp.trunc(x))
unary("step", "1 if x >= 0 else 0 (Stan's step: step(0) = 1).")(
    lambda x: jnp.where(x < 0, 0.0, 1.0)
)
unary("int_step", "1 if x > 0 else 0, integer.", rule=rules.elementwise_int)(
    lambda x: jnp.where(x > 0, 1, 0)
)
unary("is_nan", "1 if x is NaN.", rule=rules.elementwise_int)(lambda x: jnp.isnan(x).astype(int))
unary("is_inf", "1 if x is infinite.", rule=rules.elementwise_int)(
    lambda x: jnp.isinf(x).astype(int)
)


@fn("to_int", rule=rules.elementwise_int, args=1, category="math")
def to_int(x):
    """x truncated toward zero, as an integer (Stan's to_int; elementwise)."""
    return jnp.trunc(x).astype(int)
