"""Constructors: arrays, vectors and matrices made from sizes (``zeros``, ``rep_*``,
``linspaced_*``, ``one_hot_*``, ...).

The type rules read the size arguments' values (when known) as the result's shape.
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import RuleError, Ty


def _sized(base: str, first: int = 0):
    def rule(args: list[Arg]) -> Ty:
        return Ty(base, rules.sizes_shape(args, first))

    return rule


def _sized_like_value(first: int):
    def rule(args: list[Arg]) -> Ty:
        return Ty(args[0].ty.base, (*rules.sizes_shape(args, first), *args[0].ty.shape))

    return rule


@fn(
    "zeros",
    rule=_sized("real"),
    args=(0, None),
    category="constructor",
    aliases=("zeros_vector", "zeros_row_vector", "zeros_array"),
)
def zeros(*shape):
    """A real array of zeros of the given sizes: zeros(N), zeros(N, K)."""
    return jnp.zeros(shape)


@fn(
    "ones",
    rule=_sized("real"),
    args=(0, None),
    category="constructor",
    aliases=("ones_vector", "ones_row_vector", "ones_array"),
)
def ones(*shape):
    """A real array of ones of the given sizes."""
    return jnp.ones(shape)


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


@fn(
    "rep_vector",
    rule=_rep_rule,
    args=2,
    category="constructor",
    aliases=("rep_row_vector",),
    linearity="same",
)
def rep_vector(x, n):
    """A vector of n copies of x."""
    return jnp.full((n,), x, dtype=jnp.result_type(float))


@fn("rep_matrix", rule=_rep_rule, args=3, category="constructor", linearity="same")
def rep_matrix(x, m, n):
    """An m x n matrix filled with x."""
    return jnp.full((m, n), x, dtype=jnp.result_type(float))


@fn(
    "rep_array", rule=_sized_like_value(1), args=(2, None), category="constructor", linearity="same"
)
def rep_array(x, *shape):
    """An array of the given sizes whose every element is x (x may be an array)."""
    x = jnp.asarray(x)
    return jnp.broadcast_to(x, (*shape, *x.shape))


def _linspaced_rule(args: list[Arg]) -> Ty:
    rules.need_real_scalar(args, 1, "the first value")
    rules.need_real_scalar(args, 2, "the last value")
    return Ty("real", rules.sizes_shape(args[:1]))


@fn(
    "linspaced_vector",
    rule=_linspaced_rule,
    args=3,
    category="constructor",
    aliases=("linspaced_row_vector",),
)
def linspaced_vector(n, lo, hi):
    """n evenly spaced values from lo to hi inclusive."""
    return jnp.linspace(lo, hi, n)


@fn("linspaced_array", rule=_linspaced_rule, args=3, category="constructor")
def linspaced_array(n, lo, hi):
    """n evenly spaced reals from lo to hi inclusive (as linspaced_vector)."""
    return jnp.linspace(lo, hi, n)


def _linspaced_int_rule(args: list[Arg]) -> Ty:
    return Ty("int", rules.sizes_shape(args[:1]))


@fn(
    "linspaced_int_array",
    rule=_linspaced_int_rule,
    args=3,
    static=(0, 1, 2),
    category="constructor",
)
def linspaced_int_array(n, lo, hi):
    """n integers from lo spaced by (hi - lo) // (n - 1) (Stan's rounding down)."""
    by = (hi - lo) // (n - 1) if n > 1 else 0
    return lo + by * jnp.arange(n)


def _one_hot_rule(base: str):
    def rule(args: list[Arg]) -> Ty:
        rules.need_int_scalar(args, 1, "the position of the one")
        return Ty(base, rules.sizes_shape(args[:1]))

    return rule


@fn(
    "one_hot_vector",
    rule=_one_hot_rule("real"),
    args=2,
    static=(0,),
    category="constructor",
    aliases=("one_hot_row_vector", "one_hot_array"),
)
def one_hot_vector(n, k):
    """A real vector of n zeros with a 1 at position k."""
    return (jnp.arange(1, n + 1) == k).astype(jnp.result_type(float))


@fn("one_hot_int_array", rule=_one_hot_rule("int"), args=2, static=(0,), category="constructor")
def one_hot_int_array(n, k):
    """An integer array of n zeros with a 1 at position k."""
    return (jnp.arange(1, n + 1) == k).astype(int)
