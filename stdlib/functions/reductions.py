"""Reductions: functions of a whole array to a scalar (sum, mean, norms, log_sum_exp,
...), and the normalisations softmax and log_softmax built on log_sum_exp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn, promoting
from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import Arg, Linearity, Rule
from fpl.stdlib.types import REAL, Ty, broadcast, unify_dim


def _reduction(
    name: str,
    doc: str,
    impl: Callable[..., Any],
    rule: Rule = rules.reduce_real,
    linearity: Linearity | None = None,
) -> None:
    impl.__doc__ = doc
    if rule is rules.reduce_real:
        impl = promoting(impl)
    fn(name, rule=rule, args=(1, 1), category="reduction", linearity=linearity)(impl)


_reduction("sum", "Sum of all elements.", lambda x: jnp.sum(x), rules.reduce_keep, "same")
_reduction("prod", "Product of all elements.", lambda x: jnp.prod(x), rules.reduce_keep)
_reduction("mean", "Mean of all elements.", lambda x: jnp.mean(x), linearity="same")
_reduction("variance", "Sample variance (divides by n - 1), as Stan.", lambda x: jnp.var(x, ddof=1))
_reduction(
    "sd", "Sample standard deviation (divides by n - 1), as Stan.", lambda x: jnp.std(x, ddof=1)
)
_reduction("norm1", "Sum of absolute values.", lambda x: jnp.sum(jnp.abs(x)))
_reduction("norm2", "Euclidean norm.", lambda x: jnp.sqrt(jnp.sum(jnp.square(x))))
_reduction("dot_self", "Sum of squares.", lambda x: jnp.sum(jnp.square(x)), linearity="double")


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
    """Three arguments: elementwise over the broadcast of all three (theta included).
    Two: a simplex theta and one log density per component, both vectors of K."""
    if len(args) == 3:
        return Ty("real", broadcast(*(a.ty.shape for a in args)))
    rules.need_rank(args, 0, (1,), "the mixing proportions")
    rules.need_rank(args, 1, (1,), "the log densities")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "log_mix: components")
    return REAL


@fn("log_mix", rule=_log_mix_rule, args=(2, 3), category="reduction")
def log_mix(theta, lp1, lp2=None):
    """log(theta * exp(lp1) + (1 - theta) * exp(lp2)); or with a simplex theta and a
    vector of log densities, log(sum(theta .* exp(lps)))."""
    if lp2 is not None:
        return jnp.logaddexp(jnp.log(theta) + lp1, jnp.log1p(-theta) + lp2)
    return jax.nn.logsumexp(jnp.log(theta) + lp1)


@fn("softmax", rule=rules.vector_of_first, args=1, category="matrix")
def softmax(x):
    """exp(x) / sum(exp(x))."""
    return jax.nn.softmax(x)


@fn("log_softmax", rule=rules.vector_of_first, args=1, category="matrix")
def log_softmax(x):
    """x - log_sum_exp(x)."""
    return jax.nn.log_softmax(x)
