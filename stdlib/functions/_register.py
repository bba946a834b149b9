"""The registration helpers shared by the function modules: ``fn`` is the registry's
decorator; ``unary`` and ``binary`` register a one-line elementwise implementation
with its docstring."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fpl.stdlib import rules
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import REGISTRY, Linearity, Rule

fn = REGISTRY.function


def real(x):
    """``x`` as a floating array: integer arguments of real functions (``Phi(2)``) are
    promoted first, as Stan does, where a JAX primitive would refuse them."""
    return jnp.asarray(x, dtype=jnp.result_type(float))


def promoting(impl: Callable[..., Any]) -> Callable[..., Any]:
    """``impl`` with every argument promoted to real first: the implementation of a
    function whose rule says its result is real (``floor(2)`` is ``2.0``, as Stan), so the
    value has the type the checker gave it."""

    @functools.wraps(impl)
    def call(*args):
        return impl(*(real(a) for a in args))

    return call


def unary(
    name: str,
    doc: str,
    rule: Rule = rules.elementwise_real,
    aliases: tuple[str, ...] = (),
    linearity: Linearity | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator registering a one-argument implementation as ``name`` with ``doc``."""

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        impl.__doc__ = doc
        if rule is rules.elementwise_real:
            impl = promoting(impl)
        return fn(name, rule=rule, args=1, aliases=aliases, linearity=linearity)(impl)

    return register


def binary(
    name: str,
    doc: str,
    impl: Callable[..., Any],
    rule: Rule = rules.elementwise_real,
    aliases: tuple[str, ...] = (),
    linearity: Linearity | None = None,
    spelling: str | None = None,
) -> None:
    """Register a two-argument implementation as ``name`` with ``doc`` (``spelling``: its
    infix operator, e.g. ``^`` for ``pow``)."""
    impl.__doc__ = doc
    if rule is rules.elementwise_real:
        impl = promoting(impl)
    fn(
        name,
        rule=rule,
        args=2,
        aliases=aliases,
        linearity=linearity,
        spelling=spelling,
        fixity="infix" if spelling else None,
    )(impl)
