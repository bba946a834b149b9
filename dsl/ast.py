"""The FPL abstract syntax tree: frozen dataclasses, each with its source span.

The tree is what the parser saw, nothing resolved: names are strings, types are
the written type expressions.  The compiler turns it into the IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fpl.dsl.spans import Span

ImplicitKind = Literal["fix", "root", "argmin"]

# ---- expressions ------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: float | int
    is_int: bool
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Name:
    id: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Unary:
    op: str  # "neg" | "pos" | "not" | "transpose"
    operand: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Binary:
    op: str  # add sub mul div mod matmul pow eq ne lt le gt ge and or
    left: Expr
    right: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Cond:
    test: Expr
    then: Expr
    orelse: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Call:
    """``func(args...)``; ``conditional`` marks Stan's ``f(y | theta...)`` form."""

    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    conditional: bool
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Slice:
    """``lo:hi`` inside an index, 1-based and inclusive; either end may be absent."""

    lo: Expr | None
    hi: Expr | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Index:
    target: Expr
    items: tuple[Expr | Slice, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Attr:
    target: Expr
    name: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ArrayLit:
    items: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Implicit:
    """``fix``/``root``/``argmin`` with the unknown ``var`` bound in ``body``."""

    kind: ImplicitKind
    var: str
    type: TypeExpr
    body: Expr
    init: Expr | None
    solver: Call | None
    options: tuple[Keyword, ...]  # e.g. grad=phantom(k=3)
    span: Span = field(compare=False)
    # `argmin ... subject to a == b, c >= d`: comparisons (Binary eq / ge / le)
    constraints: tuple[Expr, ...] = ()


Expr = Num | Name | Unary | Binary | Cond | Call | Index | Attr | ArrayLit | Implicit

# ---- types ------------------------------------------------------------------


@dataclass(frozen=True)
class TypeExpr:
    """A written type: ``real<lower=0>[N, K]`` or ``simplex[K]``."""

    base: str  # int | real | simplex | ordered | ... (structured)
    bounds: tuple[Keyword, ...]  # lower=, upper=, offset=, multiplier=
    shape: tuple[Expr, ...]
    span: Span = field(compare=False)


# ---- statements -------------------------------------------------------------


@dataclass(frozen=True)
class DataDecl:
    name: str
    type: TypeExpr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ParamDecl:
    name: str
    type: TypeExpr | None
    prior: Call | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class WeightDecl:
    name: str
    type: TypeExpr
    init: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Out:
    name: str
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Tilde:
    lhs: Expr
    dist: Call
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Target:
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Loss:
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class GenTilde:
    name: str
    dist: Call
    span: Span = field(compare=False)


@dataclass(frozen=True)
class GenLet:
    name: str
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class FnParam:
    name: str
    type: TypeExpr | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class FnDef:
    name: str
    params: tuple[FnParam, ...]
    returns: TypeExpr | None
    body: tuple[Let, ...]
    result: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Import:
    path: str
    span: Span = field(compare=False)


Stmt = (
    DataDecl
    | ParamDecl
    | WeightDecl
    | Let
    | Out
    | Tilde
    | Target
    | Loss
    | GenTilde
    | GenLet
    | FnDef
    | Import
)


@dataclass(frozen=True)
class Program:
    statements: tuple[Stmt, ...]
    span: Span = field(compare=False)


def dump(node: object, indent: int = 0) -> str:
    """An indented, span-free rendering of an AST (``fpl compile --emit ast``).

    Iterative (an explicit stack of pending items), so a tree of any depth prints."""
    lines: list[str] = []
    stack: list[tuple[object, int] | str] = [(node, indent)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):  # a ``.field:`` heading, already rendered
            lines.append(item)
            continue
        value, depth = item
        pad = "  " * depth
        if isinstance(value, tuple):
            if not value:
                lines.append(pad + "()")
            stack.extend((v, depth) for v in reversed(value))
            continue
        if not hasattr(value, "__dataclass_fields__"):
            lines.append(pad + repr(value))
            continue
        simple = []
        nested = []
        for name in value.__dataclass_fields__:
            if name == "span":
                continue
            field_value = getattr(value, name)
            if hasattr(field_value, "__dataclass_fields__") or (
                isinstance(field_value, tuple) and field_value
            ):
                nested.append((name, field_value))
            else:
                simple.append(f"{name}={field_value!r}")
        span = getattr(value, "span", None)
        where = f"  @{span.line}:{span.col}" if span is not None else ""
        lines.append(f"{pad}{type(value).__name__}({', '.join(simple)}){where}")
        for name, field_value in reversed(nested):
            stack.append((field_value, depth + 2))
            stack.append(f"{pad}  .{name}:")
    return "\n".join(lines)
