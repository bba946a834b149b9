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
    """An indented, span-free rendering of an AST (``fpl compile --emit ast``)."""
    pad = "  " * indent
    if isinstance(node, tuple):
        if not node:
            return pad + "()"
        return "\n".join(dump(item, indent) for item in node)
    if not hasattr(node, "__dataclass_fields__"):
        return pad + repr(node)
    fields = [f for f in node.__dataclass_fields__ if f != "span"]
    simple = []
    nested = []
    for name in fields:
        value = getattr(node, name)
        if hasattr(value, "__dataclass_fields__") or (isinstance(value, tuple) and value):
            nested.append((name, value))
        else:
            simple.append(f"{name}={value!r}")
    span = getattr(node, "span", None)
    where = f"  @{span.line}:{span.col}" if span is not None else ""
    lines = [f"{pad}{type(node).__name__}({', '.join(simple)}){where}"]
    for name, value in nested:
        lines.append(f"{pad}  .{name}:")
        lines.append(dump(value, indent + 2))
    return "\n".join(lines)
