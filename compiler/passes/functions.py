"""User functions: a ``fn`` instantiated at its argument types (checked once per types and
context, then reused), recursion refused, and its errors noted with the call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpl.compiler import ir
from fpl.compiler.passes.declared_types import type_expr
from fpl.compiler.passes.scope import Scope, Symbol
from fpl.dsl import ast
from fpl.dsl.diagnostics import FplError, error
from fpl.dsl.parser import MAX_DEPTH as CHECK_DEPTH  # the checker's budget (check.py)
from fpl.dsl.spans import Span
from fpl.stdlib.types import Ty, dims_equal

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker

#: The expression levels a call counts besides its own (``fpl.compiler.passes.check``'s
#: ``CHECK_DEPTH``), for the extra frames of instantiating a function.
CALL_DEPTH = 2


def instantiate(c: Checker, name: str, tys: list[Ty], span: Span) -> ir.Lambda:
    """The user function ``name`` checked at argument types ``tys`` (once per types and
    ``gen`` context); a recursive call is E0201."""
    fn = c.functions[name]
    if len(tys) != len(fn.params):
        raise error(
            "E0203",
            f"`{name}` takes {len(fn.params)} arguments, got {len(tys)}",
            span,
            help=f"`{name}` is defined at {fn.span.location}",
        )
    key = (name, tuple(tys), c.in_gen)
    if key in c.instances:
        # checked once, but lowered at every call: its levels count here too (a chain of
        # functions each checked at its definition would otherwise pass any depth)
        reached = c.depth + CALL_DEPTH + c.instance_depth[key]
        if reached > CHECK_DEPTH:
            raise error(
                "E0107",
                f"program nested more than {CHECK_DEPTH} levels deep, counting the bodies "
                "of the functions it calls",
                span,
                help="split the expression or the chain of calls into several `let`s",
            )
        c.peak = max(c.peak, reached)
        return c.instances[key]
    if name in c.calling:
        cycle = " -> ".join(f"`{n}`" for n in [*c.calling[c.calling.index(name) :], name])
        raise error(
            "E0201",
            f"`{name}` calls itself ({cycle}); functions cannot be recursive",
            span,
            help="write the recursion with `scan`/`fold`, or as a `fix` point",
        )
    c.calling.append(name)
    c.depth += CALL_DEPTH
    outer_peak, c.peak = c.peak, c.depth
    try:
        lam = _instantiate(c, fn, key, tys, span)
        c.instance_depth[key] = c.peak - c.depth
        return lam
    finally:
        c.peak = max(outer_peak, c.peak)
        c.depth -= CALL_DEPTH
        c.calling.pop()


def _instantiate(
    c: Checker, fn: ast.FnDef, key: tuple[str, tuple[Ty, ...], bool], tys: list[Ty], span: Span
) -> ir.Lambda:
    name = fn.name
    inner = Scope(parent=_global_scope(c))
    for p, ty in zip(fn.params, tys):
        if p.type is not None:
            want, _ = type_expr(c, p.type, allow_params=True)
            if want.rank != ty.rank or (want.base == "int" and ty.base != "int"):
                raise error(
                    "E0201", f"argument `{p.name}` of `{name}` must be {want}, not {ty}", span
                )
            for a, b in zip(want.shape, ty.shape):
                if dims_equal(a, b) is False:
                    raise error(
                        "E0202",
                        f"argument `{p.name}` of `{name}` must be {want}, not {ty}",
                        span,
                    )
        inner.names[p.name] = Symbol("arg", ty, p.span)
    saved = c.scope
    c.scope = inner
    try:
        lets = []
        for let in fn.body:
            value = c.expr(let.value)
            if let.name in inner.names:
                raise error("E0105", f"`{let.name}` is declared twice", let.span)
            inner.names[let.name] = Symbol(
                "local", value.ty, let.span, isinstance(value, ir.Implicit)
            )
            lets.append((let.name, value))
        result = c.expr(fn.result)
    except FplError as exc:
        if span.line and fn.span.line:
            note = error(
                "E0201",
                f"in a call of `{name}` with argument types ({', '.join(map(str, tys))})",
                span,
            ).diagnostics[0]
            raise FplError([*exc.diagnostics, note]) from None
        raise
    finally:
        c.scope = saved
    if fn.returns is not None:
        want, _ = type_expr(c, fn.returns, allow_params=True)
        if want.rank != result.ty.rank:
            raise error("E0201", f"`{name}` returns {result.ty}, declared {want}", fn.result.span)
    lam = ir.Lambda(name, tuple(p.name for p in fn.params), tuple(lets), result, result.ty, fn.span)
    c.instances[key] = lam
    return lam


def _global_scope(c: Checker) -> Scope:
    scope = c.scope
    while scope.parent is not None:
        scope = scope.parent
    return scope


__all__ = ["CALL_DEPTH", "instantiate"]
