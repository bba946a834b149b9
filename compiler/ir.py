"""The FPL intermediate representation: names resolved, every expression typed.

The IR is a list of statements in source order over typed expression trees.  It
models only what JAX cannot see: random variables and their constraints, observed
data, implicit nodes, generated quantities, and source spans.  ``format_program``
(compiler/printer.py) prints it losslessly (``fpl compile --emit ir``) and ``digest``
hashes its structure.

Every node kind is one frozen dataclass here; the ``kind`` fields are ``Literal`` types
(plain strings at run time, so printed IR and messages are unchanged), with the valid
values as tuples beside them (``IMPLICIT_KINDS`` ...).  Walkers over the IR are ``match``
statements over the node classes that end in ``typing.assert_never``, so a node kind a
walker forgets is a type error (checked by mypy in tests/test_typecheck.py).
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Literal, TypeVar, assert_never, get_args

from fpl.dsl import ast
from fpl.dsl.spans import Span
from fpl.stdlib.types import Ty

# ---- the kinds ----------------------------------------------------------------------

#: What a ``Ref`` names: a declaration's kind, ``arg`` (a function parameter) or
#: ``unknown`` (an implicit node's unknown).
RefKind = Literal["data", "param", "weight", "local", "out", "gen", "arg", "unknown"]
LogProbKind = Literal["lpdf", "lcdf", "lccdf", "cdf"]
DerivativeKind = Literal["grad", "jacobian", "hessian", "jvp", "vjp"]
HigherOrderKind = Literal["map", "scan", "fold", "ode"]
ImplicitKind = ast.ImplicitKind
#: How an implicit node is differentiated (LANGUAGE.md §4).
GradMode = Literal["implicit", "phantom", "onestep", "unrolled", "lstsq"]
AttrName = Literal["residual", "iterations"]
#: Bounds, or a structured kind (a transform in compiler/transforms.py).
BoundKind = Literal["real", "lower", "upper", "interval"]
StructuredKind = Literal[
    "simplex",
    "ordered",
    "positive_ordered",
    "cholesky_corr",
    "corr_matrix",
    "cov_matrix",
    "cholesky_cov",
]
#: Weight types whose fixed-point layers are well posed (compiler/transforms.py).
WellPosedKind = Literal["contractive", "monotone"]
ConstraintKind = BoundKind | StructuredKind | WellPosedKind

REF_KINDS: tuple[RefKind, ...] = get_args(RefKind)
LOG_PROB_KINDS: tuple[LogProbKind, ...] = get_args(LogProbKind)
DERIVATIVE_KINDS: tuple[DerivativeKind, ...] = get_args(DerivativeKind)
HIGHER_ORDER_KINDS: tuple[HigherOrderKind, ...] = get_args(HigherOrderKind)
IMPLICIT_KINDS: tuple[ImplicitKind, ...] = get_args(ImplicitKind)
GRAD_MODES: tuple[GradMode, ...] = get_args(GradMode)
ATTR_NAMES: tuple[AttrName, ...] = get_args(AttrName)
_K = TypeVar("_K", bound=str)
STRUCTURED_KINDS: tuple[StructuredKind, ...] = get_args(StructuredKind)
WELL_POSED_KINDS: tuple[WellPosedKind, ...] = get_args(WellPosedKind)
CONSTRAINT_KINDS: tuple[ConstraintKind, ...] = (
    *get_args(BoundKind),
    *STRUCTURED_KINDS,
    *WELL_POSED_KINDS,
)


def literal(value: object, options: tuple[_K, ...]) -> _K | None:
    """``value`` as one of the ``options`` of a kind (``literal(name, GRAD_MODES)``), or None."""
    for option in options:
        if value == option:
            return option
    return None


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
    kind: RefKind
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
class Reject(Op):
    """``reject("message", values...)``, Stan's: ``args`` are the values shown after the
    message.  Reached in data-only code it is a located error at bind time; reached
    where params are traced it makes the log density -inf (a rejected proposal).  An
    ``Op`` (named ``reject``) to every walker that does not look for it; its type is the
    other branch's where it stands in a conditional (``test ? reject(...) : x``)."""

    message: str = ""


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

    kind: LogProbKind
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

    kind: DerivativeKind
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
    """``map(f, xs...)``, ``scan(f, init, xs...)``, ``fold(f, init, xs...)``, and Stan's
    ODE solvers (kind ``ode``, see fpl/stdlib/ode.py): ``args`` are then ``y0, t0, ts,
    rel_tol, abs_tol, max_num_steps, args...`` whatever the form's order, ``solver`` the
    form the call names (``ode_rk45_tol``, ``integrate_ode_bdf``: its method is
    ``ode.FORMS[solver].method``) and ``node_id`` its number among the solver nodes."""

    kind: HigherOrderKind
    fn: Lambda
    args: tuple[Expr, ...]
    ty: Ty
    span: Span = field(compare=False)
    solver: str = ""
    node_id: int = 0


@dataclass(frozen=True)
class Implicit:
    """A fixed point, root or argmin in the unknown ``var`` (see compiler/implicit.py)."""

    kind: ImplicitKind
    var: str
    body: Expr
    init: Expr | None
    solver: str
    solver_options: tuple[tuple[str, float | int], ...]
    grad: GradMode
    grad_options: tuple[tuple[str, float | int], ...]
    ty: Ty
    span: Span = field(compare=False)
    node_id: int = 0
    warm: bool = False  # `warm=true`: start from the node's previous solution (lower.run)
    # `argmin ... subject to`: g(var) == 0 for each equality and h(var) >= 0 for each
    # inequality (the checker writes `a == b` as a - b, `a >= b` as a - b, `a <= b` as b - a)
    equalities: tuple[Expr, ...] = ()
    inequalities: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Attr:
    """``z.residual`` / ``z.iterations`` of a name bound to an implicit node."""

    target: Ref
    name: AttrName
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

    kind: ConstraintKind = "real"
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


Node = Expr | Slice | Dist | Lambda | Derivative | Constraint | Stmt
_S = TypeVar("_S", bound=Stmt)


@dataclass(frozen=True)
class Program:
    statements: tuple[Stmt, ...]
    functions: tuple[str, ...]  # user function names, for printing
    name: str = "model"

    def decls(self, cls: type[_S]) -> list[_S]:
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
    def ode_nodes(self) -> list[HigherOrder]:
        """The ODE solves (``HigherOrder`` of kind ``ode``): solver nodes like the
        implicit ones (results, failures, -inf), each once."""
        found: dict[int, HigherOrder] = {}
        for stmt in self.statements:
            for node in walk(stmt):
                if isinstance(node, HigherOrder) and node.kind == "ode":
                    found.setdefault(node.node_id, node)
        return list(found.values())

    @property
    def implicit_nodes(self) -> list[Implicit]:
        found: list[Implicit] = []
        for stmt in self.statements:
            for node in walk(stmt):
                if isinstance(node, Implicit):
                    found.append(node)
        return found


# ---- walking ----------------------------------------------------------------------------


def _present(*nodes: Node | None) -> list[Node]:
    return [n for n in nodes if n is not None]


def children(node: Node) -> list[Node]:
    """The direct sub-nodes of an IR node, in field order (types and spans are not nodes)."""
    match node:
        case Const() | Ref():
            return []
        case Op(args=args) | ArrayLit(items=args):
            return [*args]
        case Cond():
            return [node.test, node.then, node.orelse]
        case Slice():
            return _present(node.lo, node.hi)
        case Index():
            return [node.target, *node.items]
        case Dist():
            return [*node.args]
        case LogProb():
            return [node.dist, node.value]
        case Rng():
            return [node.dist]
        case Lambda():
            return [*(value for _, value in node.lets), node.result]
        case Derivative():
            return [node.fn]
        case Apply():
            return [node.fn, *node.args]
        case HigherOrder():
            return [node.fn, *node.args]
        case Implicit():
            return _present(node.body, node.init, *node.equalities, *node.inequalities)
        case Attr():
            return [node.target]
        case Constraint():
            return _present(node.lower, node.upper)
        case DataDecl() | ParamDecl():
            return [node.constraint]
        case WeightDecl():
            return [node.constraint, node.init]
        case Let() | Out() | GenLet() | Factor():
            return [node.value]
        case Observe():
            return [node.value, node.dist]
        case GenDraw():
            return [node.dist]
        case _:
            assert_never(node)


def integer_division(node: Node) -> bool:
    """Whether ``node`` is an integer ``%`` or ``/`` (``a % b``, ``a / b`` of two ints):
    a zero divisor is Stan's domain error (E0208 where data or literals decide it, a
    rejected point where params do)."""
    return (
        isinstance(node, Op)
        and node.name in ("mod", "div")
        and len(node.args) == 2
        and all(a.ty.base == "int" for a in node.args)
    )


def walk(node: Node) -> Iterator[Node]:
    """Every IR node under ``node``, itself included (iterative, pre-order).  A function
    instance (one ``Lambda`` object, shared by all its calls at the same argument types)
    and its body are visited once per walk, at its first use: a walk is linear in the
    size of the distinct code, not in the number of call paths (``f2(x) = f1(f1(x))``
    ... ``f30`` would otherwise visit 2^29 bodies).  Every walker asks set-like
    questions (which names, which nodes, any of a kind), which a second visit of the
    same instance could not change."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Lambda):
            if id(n) in seen:
                continue
            seen.add(id(n))
        yield n
        stack.extend(reversed(children(n)))


def functions(program: Program) -> list[Lambda]:
    """The distinct function instances (``Lambda`` objects) the program uses, each once,
    callees before their callers (the order the printer defines them in)."""
    seen: set[int] = set()
    order: list[Lambda] = []
    # (node, expanded): a Lambda is appended after its body's functions
    stack: list[tuple[Node, bool]] = [(s, False) for s in reversed(program.statements)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, Lambda):
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
        stack.extend((c, False) for c in reversed(children(node)))
    return order


# ---- digest -----------------------------------------------------------------------------


def digest(program: Program) -> str:
    """A SHA-256 (hex) of the program's structure: every node's class and fields, values
    included, recursively; spans are left out (they do not change meaning), and so are
    the program's name and the list of function names (a function's body is hashed where
    it is used).  Equal programs (``==``) have equal digests; any change of a constant,
    a distribution, a solver option, a type or a function body changes it.

    The encoding is a stream of tagged, length-prefixed tokens (so no two structures
    share one), built iteratively; a function instance used more than once is encoded
    at its first use and referred to by its number afterwards.
    """
    h = hashlib.sha256()

    def put(tag: str, text: str = "") -> None:
        data = text.encode()
        h.update(f"{tag}{len(data)}:".encode())
        h.update(data)

    numbered: dict[int, int] = {}
    stack: list[object] = list(reversed(program.statements))
    put("program", str(len(program.statements)))
    while stack:
        value = stack.pop()
        if isinstance(value, Lambda):
            if id(value) in numbered:
                put("lambda-ref", str(numbered[id(value)]))
                continue
            numbered[id(value)] = len(numbered)
        if is_dataclass(value) and not isinstance(value, type):
            names = [f.name for f in fields(value) if f.name != "span"]
            put("node", type(value).__name__ + "(" + ",".join(names) + ")")
            stack.extend(reversed([getattr(value, n) for n in names]))
        elif isinstance(value, tuple):
            put("tuple", str(len(value)))
            stack.extend(reversed(value))
        elif value is None:
            put("none")
        elif isinstance(value, bool):
            put("bool", str(value))
        elif isinstance(value, numbers.Integral):
            put("int", str(int(value)))
        elif isinstance(value, numbers.Real):
            put("float", float(value).hex())
        elif isinstance(value, str):
            put("str", value)
        else:
            raise TypeError(f"digest: unexpected {type(value).__name__} in the IR")
    return h.hexdigest()
