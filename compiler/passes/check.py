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

from typing import assert_never

from fpl.compiler import ir
from fpl.compiler.passes import expressions
from fpl.compiler.passes.functions import CALL_DEPTH
from fpl.compiler.passes.scope import Scope, Symbol
from fpl.compiler.passes.statements import statement
from fpl.compiler.passes.types import static_dim
from fpl.dsl import ast
from fpl.dsl.diagnostics import error
from fpl.dsl.parser import MAX_DEPTH
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

    # ---- entry ----
    def program(self, prog: ast.Program, name: str) -> ir.Program:
        out: list[ir.Stmt] = []
        for stmt in prog.statements:
            out.extend(statement(self, stmt))
        return ir.Program(tuple(out), tuple(self.functions), name)

    def static(self, expr: ir.Expr | None) -> Dim:
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
        inner: set[str] = set()  # names bound by the functions called inside ``value``
        for node in ir.walk(value):
            if isinstance(node, ir.Lambda):
                inner.update(node.params)
                inner.update(name for name, _ in node.lets)
        for node in ir.walk(value):
            match node:
                case ir.Rng() | ir.Implicit() | ir.Attr():
                    return False
                case ir.Ref(kind="data"):
                    pass
                case ir.Ref(kind="arg" | "local") if node.name in inner:
                    pass
                case ir.Ref(kind="local"):
                    sym = self.scope.lookup(node.name)
                    if sym is None or not sym.data_only:
                        return False
                case ir.Ref():
                    return False
                case _:
                    pass
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
        # one frame per level besides the ``e_*`` method: see CHECK_DEPTH
        self.depth += 1
        self.peak = max(self.peak, self.depth)
        try:
            if self.depth > CHECK_DEPTH:
                raise error(
                    "E0107",
                    f"program nested more than {CHECK_DEPTH} levels deep, counting the bodies "
                    "of the functions it calls",
                    e.span,
                    help="split the expression or the chain of calls into several `let`s",
                )
            match e:
                case ast.Num():
                    return expressions.e_Num(self, e)
                case ast.Name():
                    return expressions.e_Name(self, e)
                case ast.Unary():
                    return expressions.e_Unary(self, e)
                case ast.Binary():
                    return expressions.e_Binary(self, e)
                case ast.Cond():
                    return expressions.e_Cond(self, e)
                case ast.Call():
                    return expressions.e_Call(self, e)
                case ast.Index():
                    return expressions.e_Index(self, e)
                case ast.Attr():
                    return expressions.e_Attr(self, e)
                case ast.ArrayLit():
                    return expressions.e_ArrayLit(self, e)
                case ast.Implicit():
                    return expressions.e_Implicit(self, e)
                case _:
                    assert_never(e)
        finally:
            self.depth -= 1


def check(
    prog: ast.Program, sizes: dict[str, int] | None = None, name: str = "model"
) -> ir.Program:
    """Resolve names and check types and shapes; ``sizes`` are the data integers."""
    from fpl.dsl.parser import collector_paused  # (long programs: see its docstring)

    with collector_paused():
        return Checker(registry(), sizes).program(prog, name)


__all__ = ["CALL_DEPTH", "CHECK_DEPTH", "Checker", "Scope", "Symbol", "check"]
