"""The FPL intermediate representation: names resolved, every expression typed.

The IR is a list of statements in source order over typed expression trees.  It
models only what JAX cannot see: random variables and their constraints, observed
data, implicit nodes, generated quantities, and source spans.  ``format_program``
prints it (``fpl compile --emit ir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fpl.dsl.spans import Span
from fpl.stdlib.types import Ty

# ---- expressions ----------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    value: float | int | bool
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Ref:
    """A reference to a declared name; ``kind`` is data, param, weight, local, out,
    gen, arg (function parameter) or unknown (an implicit node's unknown)."""

    name: str
    kind: str
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Op:
    """A registry function or operator applied to arguments."""

    name: str
    args: tuple[Expr, ...]
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Cond:
    test: Expr
    then: Expr
    orelse: Expr
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Slice:
    """1-based inclusive ``lo:hi``; absent ends mean the start/end of the axis."""

    lo: Expr | None
    hi: Expr | None


@dataclass(frozen=True)
class Index:
    target: Expr
    items: tuple[Expr | Slice, ...]
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ArrayLit:
    items: tuple[Expr, ...]
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Dist:
    """A distribution with its (Stan-parametrised) arguments; ``ty`` is one draw's type."""

    name: str
    args: tuple[Expr, ...]
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class LogProb:
    """``name_lpdf(value | args)`` and its cdf forms: elementwise over the batch."""

    kind: str  # "lpdf" | "lcdf" | "lccdf" | "cdf"
    dist: Dist
    value: Expr
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Rng:
    """``name_rng(args)``: a draw (only in generated quantities)."""

    dist: Dist
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Lambda:
    """A function instantiated at argument types: ``lets`` then ``result``."""

    name: str
    params: tuple[str, ...]
    lets: tuple[tuple[str, Expr], ...]
    result: Expr
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Derivative:
    """``grad(f)``, ``jacobian(f, k)``, ``hessian(f)``, ``jvp(f)``, ``vjp(f)`` as a function."""

    kind: str
    fn: Lambda
    argnum: int
    ty: Ty
    span: Span = field(compare=False)


FnValue = Lambda | Derivative


@dataclass(frozen=True)
class Apply:
    """A call of a function value (a user function or a derivative of one)."""

    fn: FnValue
    args: tuple[Expr, ...]
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class HigherOrder:
    """``map(f, xs...)``, ``scan(f, init, xs...)``, ``fold(f, init, xs...)``."""

    kind: str
    fn: Lambda
    args: tuple[Expr, ...]
    ty: Ty
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Implicit:
    """A fixed point, root or argmin in the unknown ``var`` (see compiler/implicit.py)."""

    kind: str  # fix | root | argmin
    var: str
    body: Expr
    init: Expr | None
    solver: str
    solver_options: tuple[tuple[str, float | int], ...]
    grad: str  # implicit | phantom | onestep | unrolled
    grad_options: tuple[tuple[str, float | int], ...]
    ty: Ty
    span: Span = field(compare=False)
    node_id: int = 0
    warm: bool = False  # `warm=true`: start from the node's previous solution (lower.run)


@dataclass(frozen=True)
class Attr:
    """``z.residual`` / ``z.iterations`` of a name bound to an implicit node."""

    target: Ref
    name: str
    ty: Ty
    span: Span = field(compare=False)


Expr = (
    Const
    | Ref
    | Op
    | Cond
    | Index
    | ArrayLit
    | LogProb
    | Rng
    | Apply
    | HigherOrder
    | Implicit
    | Attr
)

# ---- declarations and statements --------------------------------------------------


@dataclass(frozen=True)
class Constraint:
    """The constraint of a declaration: ``kind`` real, lower, upper, interval, or a
    structured kind (simplex, ordered, positive_ordered, cholesky_corr, corr_matrix,
    cov_matrix, cholesky_cov).  Bounds are expressions of data and earlier params."""

    kind: str = "real"
    lower: Expr | None = None
    upper: Expr | None = None


@dataclass(frozen=True)
class DataDecl:
    name: str
    ty: Ty
    constraint: Constraint
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ParamDecl:
    name: str
    ty: Ty
    constraint: Constraint
    span: Span = field(compare=False)


@dataclass(frozen=True)
class WeightDecl:
    name: str
    ty: Ty
    constraint: Constraint
    init: Dist | Expr
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
class Observe:
    """``value ~ dist``: adds sum(log p(value)) to the log density."""

    value: Expr
    dist: Dist
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Factor:
    """``target += value`` (``loss e`` is ``target += -e``): adds sum(value)."""

    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class GenDraw:
    name: str
    dist: Dist
    span: Span = field(compare=False)


@dataclass(frozen=True)
class GenLet:
    name: str
    value: Expr
    span: Span = field(compare=False)


Stmt = DataDecl | ParamDecl | WeightDecl | Let | Out | Observe | Factor | GenDraw | GenLet


@dataclass(frozen=True)
class Program:
    statements: tuple[Stmt, ...]
    functions: tuple[str, ...]  # user function names, for printing
    name: str = "model"

    def decls(self, cls) -> list:
        return [s for s in self.statements if isinstance(s, cls)]

    @property
    def data(self) -> list[DataDecl]:
        return self.decls(DataDecl)

    @property
    def params(self) -> list[ParamDecl]:
        return self.decls(ParamDecl)

    @property
    def weights(self) -> list[WeightDecl]:
        return self.decls(WeightDecl)

    @property
    def outs(self) -> list[Out]:
        return self.decls(Out)

    @property
    def gens(self) -> list[GenDraw | GenLet]:
        return [s for s in self.statements if isinstance(s, (GenDraw, GenLet))]

    @property
    def implicit_nodes(self) -> list[Implicit]:
        found: list[Implicit] = []
        for stmt in self.statements:
            for node in walk(stmt):
                if isinstance(node, Implicit):
                    found.append(node)
        return found


def children(node) -> list:
    """The direct sub-expressions of an IR node (for generic walks)."""
    out = []
    for name in getattr(node, "__dataclass_fields__", ()):
        if name in ("span", "ty"):
            continue
        value = getattr(node, name)
        if isinstance(value, tuple):
            for v in value:
                if isinstance(v, tuple):  # (name, expr) pairs
                    out.extend(x for x in v if hasattr(x, "__dataclass_fields__"))
                elif hasattr(v, "__dataclass_fields__"):
                    out.append(v)
        elif hasattr(value, "__dataclass_fields__") and not isinstance(value, Ty):
            out.append(value)
    return out


def walk(node):
    """Every IR node under ``node``, itself included (iterative, pre-order)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))
