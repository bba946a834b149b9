"""AST -> IR: name resolution and type/shape checking in one walk, in source order.

Sizes are symbolic until data arrive; run again with ``sizes`` (the data integers)
and every size is a number, so shape errors the symbolic pass could not decide are
reported then, with the same locations.

The ``Checker`` holds the walk's state (the scopes, the user functions and their
instances, the nesting depth) and dispatches each expression; the rules live beside it
as functions of the checker, a module per concern: ``statements`` (statements and declarations),
``declared_types`` (written types and sizes), ``distributions``, ``expressions``
(everything but calls), ``calls``, ``higher_order`` and ``implicit_forms`` (calls;
map/scan/fold, ODEs and derivatives; fix/root/argmin), ``functions`` (user functions),
``scope`` (names).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fpl.compiler import ir
from fpl.compiler.passes import expressions
from fpl.compiler.passes.calls import check_call
from fpl.compiler.passes.functions import CALL_DEPTH
from fpl.compiler.passes.implicit_forms import check_implicit
from fpl.compiler.passes.scope import Scope, Symbol
from fpl.compiler.passes.statements import statement
from fpl.compiler.passes.types import static_dim
from fpl.dsl import ast
from fpl.dsl.diagnostics import InternalError, error
from fpl.dsl.parser import MAX_DEPTH, collector_paused
from fpl.stdlib.registry import Registry, registry
from fpl.stdlib.types import INT, Dim, Ty

#: The checker's nesting budget, in expression levels counted through the bodies of the
#: user functions called (each call counts ``CALL_DEPTH`` levels more, for the extra
#: frames of instantiating a function).  A program within the parser's ``MAX_DEPTH`` and
#: free of functions never reaches it; deeper chains of calls are E0107, not a Python
#: ``RecursionError``.  Every pass over the IR recurses at most this deep, at most about
#: two Python frames a level, so all stay well inside Python's default recursion limit.
CHECK_DEPTH = MAX_DEPTH


class Checker:
    def __init__(self, reg: Registry, sizes: dict[str, int] | None):
        self.reg = reg
        self.sizes = sizes
        self.scope = Scope()
        self.functions: dict[str, ast.FnDef] = {}
        self.instances: dict[tuple[str, tuple[Ty, ...], bool], ir.Lambda] = {}
        self.in_gen = False
        self.in_loss = False  # `_rng` draws are allowed in a `loss` (fresh per optimizer step)
        self.node_count = 0
        self.depth = 0  # expression nesting, through function bodies (CHECK_DEPTH)
        # the deepest nesting reached so far, and each function instance's own depth: a
        # call of an instance checked before counts its body's levels all the same
        self.peak = 0
        self.instance_depth: dict[tuple[str, tuple[Ty, ...], bool], int] = {}
        self.calling: list[str] = []  # the user functions being instantiated, outermost first
        # the result type of each built-in at argument types and static sizes (``op``)
        self.op_types: dict[tuple[str, tuple[Ty, ...], tuple[Dim, ...]], Ty] = {}
        # the draw type of each distribution at argument and value types (``dist_type``)
        self.dist_types: dict[tuple[str, tuple[Ty, ...], Ty | None], Ty] = {}

    # ---- entry ----
    def program(self, prog: ast.Program, name: str) -> ir.Program:
        out: list[ir.Stmt] = []
        for stmt in prog.statements:
            out.extend(statement(self, stmt))
        return ir.Program(tuple(out), tuple(self.functions), name)

    def static(self, expr: ir.Expr | None) -> Dim:
        # ``static_dim`` reads integer scalars only (`ty == INT`, without the call)
        if expr is None or expr.ty.base != "int" or expr.ty.shape != ():
            return None
        return static_dim(self.size_refs(expr), self.sizes)

    def size_refs(self, expr: ir.Expr | None) -> ir.Expr | None:
        """``expr`` with every integer `let` of data only read as a data size: static at
        bind time, where binding computes it (``fpl.compiler.binding``) and passes it in
        ``sizes`` like a data integer.  Only the forms ``static_dim`` reads are rebuilt."""
        match expr:
            case ir.Ref(kind="local") if expr.ty == INT:
                sym = self.scope.lookup(expr.name)
                if sym is not None and sym.data_only and sym.kind == "local":
                    return ir.Ref(expr.name, "data", INT, expr.span)
                return expr
            case ir.Op(name="neg" | "pos" | "add" | "sub" | "mul"):
                args = tuple(self.size_refs(a) for a in expr.args)
                return ir.Op(expr.name, args, expr.ty, expr.span)  # type: ignore[arg-type]
            case _:
                return expr

    def data_only(self, value: ir.Expr) -> bool:
        """Whether ``value`` reads only data, constants and data-only `let`s (no param,
        weight, draw or implicit node): a value fixed once the data are bound."""
        # one walk: the names bound by the functions called inside ``value`` (anywhere in
        # it), and the references that are fine only if they are such names
        inner: set[str] = set()
        maybe: list[ir.Ref] = []  # `arg` and `local` references, decided after the walk
        for node in ir.walk(value):
            match node:
                case ir.Lambda():
                    inner.update(node.params)
                    inner.update(name for name, _ in node.lets)
                case ir.Rng() | ir.Implicit() | ir.Attr():
                    return False
                case ir.Ref(kind="data"):
                    pass
                case ir.Ref(kind="arg" | "local"):
                    maybe.append(node)
                case ir.Ref():
                    return False
                case _:
                    pass
        for ref in maybe:
            if ref.name in inner:
                continue
            if ref.kind == "arg":
                return False
            sym = self.scope.lookup(ref.name)
            if sym is None or not sym.data_only:
                return False
        return True

    # ---- declarations ----
    def declare(self, name: str, sym: Symbol) -> None:
        prev = self.scope.lookup(name)
        if prev is not None or name in self.functions:
            span = prev.span if prev is not None else self.functions[name].span
            raise error(
                "E0105",
                f"`{name}` is declared twice",
                sym.span,
                label="second declaration",
                help=f"the first declaration is at {span.location}",
            )
        self.scope.names[name] = sym

    # ---- expressions ----
    def expr(self, e: ast.Expr) -> ir.Expr:
        # one frame per level besides the rule's: see CHECK_DEPTH
        depth = self.depth = self.depth + 1
        if depth > self.peak:
            self.peak = depth
        try:
            if depth > CHECK_DEPTH:
                raise error(
                    "E0107",
                    f"program nested more than {CHECK_DEPTH} levels deep, counting the bodies "
                    "of the functions it calls",
                    e.span,
                    help="split the expression or the chain of calls into several `let`s",
                )
            rule = EXPRESSION_RULES.get(type(e))
            if rule is None:
                raise InternalError(f"no checking rule for a {type(e).__name__} expression")
            return rule(self, e)
        finally:
            self.depth -= 1


#: Each expression's rule, by the class of its AST node (one dictionary look-up per
#: expression in ``Checker.expr``, where a chain of ``isinstance`` tests cost one test
#: per class before it); every class of ``ast.Expr`` has one (a test checks it).
EXPRESSION_RULES: dict[type, Callable[[Checker, Any], ir.Expr]] = {
    ast.Num: expressions.e_Num,
    ast.Name: expressions.e_Name,
    ast.Unary: expressions.e_Unary,
    ast.Binary: expressions.e_Binary,
    ast.Cond: expressions.e_Cond,
    ast.Call: check_call,
    ast.Index: expressions.e_Index,
    ast.Attr: expressions.e_Attr,
    ast.ArrayLit: expressions.e_ArrayLit,
    ast.Implicit: check_implicit,
}


def check(
    prog: ast.Program, sizes: dict[str, int] | None = None, name: str = "model"
) -> ir.Program:
    """Resolve names and check types and shapes; ``sizes`` are the data integers."""
    with collector_paused():
        return Checker(registry(), sizes).program(prog, name)


__all__ = [
    "CALL_DEPTH",
    "CHECK_DEPTH",
    "EXPRESSION_RULES",
    "Checker",
    "Scope",
    "Symbol",
    "check",
    "collector_paused",
]
