"""Operators are registry functions too; the checker maps ``a + b`` to ``add``."""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import REGISTRY, Arg
from fpl.stdlib.types import Ty, broadcast

fn = REGISTRY.function


@fn(
    "add",
    rule=rules.elementwise_keep,
    args=2,
    category="operator",
    linearity="sum",
    spelling="+",
    fixity="infix",
)
def add(a, b):
    """`a + b`, broadcasting."""
    return a + b


@fn(
    "sub",
    rule=rules.elementwise_keep,
    args=2,
    category="operator",
    linearity="sum",
    spelling="-",
    fixity="infix",
)
def sub(a, b):
    """`a - b`, broadcasting."""
    return a - b


@fn(
    "mul",
    rule=rules.elementwise_keep,
    args=2,
    category="operator",
    linearity="product",
    spelling="*",
    fixity="infix",
)
def mul(a, b):
    """`a * b` (and `a .* b`): elementwise, broadcasting; `@` is the matrix product."""
    return a * b


@fn(
    "div",
    rule=rules.elementwise_real,
    args=2,
    category="operator",
    linearity="quotient",
    spelling="/",
    fixity="infix",
)
def div(a, b):
    """`a / b`: true division, always real (unlike Stan's integer division)."""
    return jnp.true_divide(a, b)


@fn("mod", rule=rules.elementwise_keep, args=2, category="operator", spelling="%", fixity="infix")
def mod(a, b):
    """`a % b`: remainder with the sign of the divisor."""
    return jnp.mod(a, b)


@fn(
    "matmul",
    rule=rules.matmul,
    args=2,
    category="operator",
    linearity="product",
    spelling="@",
    fixity="infix",
)
def matmul(a, b):
    """`a @ b`: matrix product (NumPy semantics)."""
    return jnp.matmul(a, b)


@fn(
    "neg",
    rule=rules.elementwise_keep,
    args=1,
    category="operator",
    linearity="same",
    spelling="-",
    fixity="prefix",
)
def neg(a):
    """`-a`."""
    return -a


@fn(
    "pos",
    rule=rules.elementwise_keep,
    args=1,
    category="operator",
    linearity="same",
    spelling="+",
    fixity="prefix",
)
def pos(a):
    """`+a`."""
    return a


def _transpose_rule(args: list[Arg]) -> Ty:
    t = args[0].ty
    return (
        t.with_shape(t.shape[::-1])
        if t.rank <= 2
        else t.with_shape(t.shape[:-2] + t.shape[-2:][::-1])
    )


@fn(
    "transpose",
    rule=_transpose_rule,
    args=1,
    category="operator",
    linearity="same",
    spelling="'",
    fixity="postfix",
)
def transpose(a):
    """`a'`: transpose (the last two axes)."""
    a = jnp.asarray(a)
    return a if a.ndim < 2 else jnp.swapaxes(a, -1, -2)


def _compare_rule(args: list[Arg]) -> Ty:
    return Ty("bool", broadcast(args[0].ty.shape, args[1].ty.shape))


for _name, (_op, _spelling) in {
    "eq": ("equal", "=="),
    "ne": ("not_equal", "!="),
    "lt": ("less", "<"),
    "le": ("less_equal", "<="),
    "gt": ("greater", ">"),
    "ge": ("greater_equal", ">="),
    "and": ("logical_and", "&&"),
    "or": ("logical_or", "||"),
}.items():

    def _impl(a, b, _op=_op):
        return getattr(jnp, _op)(a, b)

    _impl.__doc__ = f"`{_name}` comparison/logic, elementwise ({_op})."
    fn(_name, rule=_compare_rule, args=2, category="operator", spelling=_spelling, fixity="infix")(
        _impl
    )


@fn("not", rule=rules.elementwise_bool, args=1, category="operator", spelling="!", fixity="prefix")
def not_(a):
    """`!a`, elementwise."""
    return jnp.logical_not(a)
