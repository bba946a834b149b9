"""The registration helpers shared by the function modules: ``fn`` is the registry's
decorator; ``unary`` and ``binary`` register a one-line elementwise implementation
with its docstring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fpl.stdlib import rules
from fpl.stdlib.registry import REGISTRY, Linearity, Rule

fn = REGISTRY.function


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
    fn(
        name,
        rule=rule,
        args=2,
        aliases=aliases,
        linearity=linearity,
        spelling=spelling,
        fixity="infix" if spelling else None,
    )(impl)
