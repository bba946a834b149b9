"""Data-only computations hoisted out of the log density: evaluated once per bind.

A value that depends only on data (and constants) is the same at every evaluation of the
log density, so there is no reason to recompute it at every gradient of a sampler.
``hoist(program, arrays)`` splits a bound program into

* ``derivations``: ``(name, expression)`` pairs, in program order, each expression
  reading only data fields, constants and earlier derivations;
* ``constants``: the ``let``s of sizes and constants only that derivations may read;
* ``program``: the same statements (the same indices: ``term_scale`` and
  ``likelihood_terms`` keep their meaning) where those expressions are replaced by a
  ``Ref(name, "data")`` to their value.

Which expressions are hoisted:

* a whole ``let`` / ``out`` whose value is data-only; its derivation keeps the
  statement's name and the statement becomes ``let name = name`` (so later statements
  see a data-only value by that name, and ``fpl.compiler.pointwise`` can name it);
* every other *maximal* data-only subexpression of a statement that is not a constant
  or a plain name, under a name that no program can spell (``$1``, ``$2``, ...).

An expression is *data-only* when it reads no param, weight, gen or implicit unknown, no
``let`` / ``out`` that is not itself data-only, contains no ``_rng`` draw, no implicit
node and no ``.residual`` / ``.iterations``, and reads at least one data *array*:
expressions of integer scalar data (sizes) and constants only are trace-time constants
already, and must stay Python numbers (slice bounds, shapes).  Function bodies and
implicit bodies are not entered (their data-only parts depend on the call's arguments or
the solver's unknown); a call whose arguments are all data-only is hoisted whole.

Invariant (checked by ``tests/compiler/test_data_lets.py``): evaluating ``program`` in
an environment extended by ``fpl.compiler.lower.derive(derivations, env)`` gives the
same log density, values and derivatives as evaluating the original program in ``env``.
This pass imports no JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import assert_never

from fpl.compiler import ir


@dataclass(frozen=True)
class Hoisted:
    """A program with its data-only computations split off (see the module docstring)."""

    program: ir.Program
    derivations: tuple[tuple[str, ir.Expr], ...]
    #: lets / outs of sizes and constants only, which derivations may read: evaluated
    #: before them (they stay in ``program`` too, as Python numbers)
    constants: tuple[tuple[str, ir.Expr], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.derivations)


class _Scope:
    """What the data-only test needs to know about the names of the program."""

    def __init__(self, program: ir.Program, arrays: Collection[str]):
        self.arrays = set(arrays)  # data fields passed as arrays (not sizes)
        self.derived: set[str] = set()  # lets / outs found data-only so far
        self.constant: set[str] = set()  # lets / outs of sizes and constants only
        self.globals = {s.name for s in program.statements if isinstance(s, (ir.Let, ir.Out))}

    def pure(self, e: ir.Expr) -> bool | None:
        """None where ``e`` may change between evaluations; else whether it reads a
        data array (True: data-only; False: sizes and constants only)."""
        inner: set[str] = set()  # names bound by functions inside ``e``
        for node in ir.walk(e):
            if isinstance(node, ir.Lambda):
                inner.update(node.params)
                inner.update(name for name, _ in node.lets)
        reads_array = False
        for node in ir.walk(e):
            match node:
                case ir.Rng() | ir.Implicit() | ir.Attr():
                    return None
                case ir.Ref(kind="data"):
                    reads_array = reads_array or node.name in self.arrays
                case ir.Ref(kind="local" | "out"):
                    if node.name in self.derived:
                        reads_array = True
                    elif node.name in self.constant:
                        pass
                    elif node.name in self.globals or node.name not in inner:
                        return None
                case ir.Ref(kind="arg"):
                    if node.name not in inner:
                        return None
                case ir.Ref():  # param, weight, gen, unknown
                    return None
                case _:
                    pass
        return reads_array

    def data_only(self, e: ir.Expr) -> bool:
        return self.pure(e) is True


def hoist(program: ir.Program, arrays: Collection[str]) -> Hoisted:
    """Split off the data-only computations of a bound ``program``; ``arrays`` are the
    names of the data fields that are arrays (every data field but the integer scalars)."""
    scope = _Scope(program, arrays)
    derivations: list[tuple[str, ir.Expr]] = []
    constants: list[tuple[str, ir.Expr]] = []

    def lift(e: ir.Expr) -> ir.Expr:
        if isinstance(e, (ir.Const, ir.Ref)):
            return e
        # a part holding a `reject` stays: lifted, it would be evaluated at bind time
        # whether or not the statement's conditionals reach it (a whole let may go)
        if scope.data_only(e) and not any(isinstance(n, ir.Reject) for n in ir.walk(e)):
            name = f"${len(derivations) + 1}"
            derivations.append((name, e))
            return ir.Ref(name, "data", e.ty, e.span)
        return _map_children(e, lift)

    statements: list[ir.Stmt] = []
    for s in program.statements:
        if isinstance(s, (ir.Let, ir.Out)) and scope.pure(s.value) is False:
            scope.constant.add(s.name)  # sizes: stays a Python number, read by others
            constants.append((s.name, s.value))
        match s:
            case ir.Let() | ir.Out() if scope.data_only(s.value):
                derivations.append((s.name, s.value))
                scope.derived.add(s.name)
                statements.append(replace(s, value=ir.Ref(s.name, "data", s.value.ty, s.span)))
            case ir.Let() | ir.Out() | ir.GenLet() | ir.Factor():
                statements.append(replace(s, value=lift(s.value)))
            case ir.Observe():
                statements.append(replace(s, value=lift(s.value), dist=_map_dist(s.dist, lift)))
            case ir.GenDraw():
                statements.append(replace(s, dist=_map_dist(s.dist, lift)))
            case ir.ParamDecl():
                c = s.constraint
                lower = lift(c.lower) if c.lower is not None else None
                upper = lift(c.upper) if c.upper is not None else None
                statements.append(replace(s, constraint=replace(c, lower=lower, upper=upper)))
            case ir.DataDecl() | ir.WeightDecl():
                statements.append(s)
            case _:
                assert_never(s)
    program = replace(program, statements=tuple(statements))
    return Hoisted(program, tuple(derivations), tuple(constants))


def _map_dist(d: ir.Dist, f: Callable[[ir.Expr], ir.Expr]) -> ir.Dist:
    return replace(d, args=tuple(f(a) for a in d.args))


def _map_children(e: ir.Expr, f: Callable[[ir.Expr], ir.Expr]) -> ir.Expr:
    """``e`` with ``f`` applied to its direct subexpressions; function bodies, implicit
    nodes and slice bounds are left as they are."""
    match e:
        case ir.Const() | ir.Ref() | ir.Implicit() | ir.Attr():
            return e
        case ir.Op():
            return replace(e, args=tuple(f(a) for a in e.args))
        case ir.Cond():
            return replace(e, test=f(e.test), then=f(e.then), orelse=f(e.orelse))
        case ir.Index():
            items = tuple(i if isinstance(i, ir.Slice) else f(i) for i in e.items)
            return replace(e, target=f(e.target), items=items)
        case ir.ArrayLit():
            return replace(e, items=tuple(f(i) for i in e.items))
        case ir.LogProb():
            return replace(e, dist=_map_dist(e.dist, f), value=f(e.value))
        case ir.Rng():
            return replace(e, dist=_map_dist(e.dist, f))
        case ir.Apply() | ir.HigherOrder():
            return replace(e, args=tuple(f(a) for a in e.args))
        case _:
            assert_never(e)


__all__ = ["Hoisted", "hoist"]
