"""Printing the IR (``fpl compile --emit ir``): one line per statement, types shown.

The print is lossless up to spans: every function instance the program uses (a
``Lambda``: a user function at argument types, or a built-in passed by name) is defined
once, callees first, by a ``fn`` line before the statements; a function with several
instances has them numbered (``f#1``, ``f#2``) and every use names its instance.
"""

from __future__ import annotations

from typing import assert_never

from fpl.compiler import ir
from fpl.stdlib.registry import registry
from fpl.stdlib.types import Ty

_IMPLICIT_FORM: dict[ir.ImplicitKind, str] = {"fix": "=", "root": "of", "argmin": "of"}


def _suffix(dist: ir.Dist, kind: ir.LogProbKind = "lpdf") -> str:
    """The function's suffix as Stan spells it: a discrete distribution's density is a
    mass function (``poisson_lpmf``); the cdf forms are the same for both."""
    entry = registry().distributions.get(dist.name)
    if kind == "lpdf" and entry is not None and entry.support.discrete:
        return "lpmf"
    return kind


class _Printer:
    """Expression printing; ``names`` gives each function instance its printed name."""

    def __init__(self, names: dict[int, str] | None = None):
        self.names = names or {}

    def fn_name(self, f: ir.Lambda) -> str:
        return self.names.get(id(f), f.name)

    def args(self, items: tuple[ir.Expr, ...]) -> str:
        return ", ".join(self.expr(a) for a in items)

    def expr(self, e: ir.Expr) -> str:
        match e:
            case ir.Const():
                return repr(e.value) if not isinstance(e.value, bool) else str(e.value).lower()
            case ir.Ref():
                return e.name
            case ir.Reject():
                message = '"' + e.message + '"'
                return f"reject({', '.join([message, *(self.expr(a) for a in e.args)])})"
            case ir.Op():
                # operators are spelled as their registry entry says (every operator is
                # printed parenthesised, so no precedence is needed)
                entry = registry().functions.get(e.name)
                fixity = entry.fixity if entry is not None else None
                spelling = entry.spelling if entry is not None else None
                match fixity:
                    case "infix":
                        left, right = self.expr(e.args[0]), self.expr(e.args[1])
                        return f"({left} {spelling} {right})"
                    case "prefix":
                        return f"{spelling}{self.expr(e.args[0])}"
                    case "postfix":
                        return f"{self.expr(e.args[0])}{spelling}"
                    case None:
                        return f"{e.name}({self.args(e.args)})"
                    case _:
                        assert_never(fixity)
            case ir.Cond():
                return f"({self.expr(e.test)} ? {self.expr(e.then)} : {self.expr(e.orelse)})"
            case ir.Index():
                return f"{self.expr(e.target)}[{', '.join(self.item(i) for i in e.items)}]"
            case ir.ArrayLit():
                return "[" + self.args(e.items) + "]"
            case ir.LogProb():
                name = f"{e.dist.name}_{_suffix(e.dist, e.kind)}"
                return f"{name}({self.expr(e.value)} | {self.args(e.dist.args)})"
            case ir.Rng():
                return f"{e.dist.name}_rng({self.args(e.dist.args)})"
            case ir.Apply():
                return f"{self.fn_value(e.fn)}({self.args(e.args)})"
            case ir.HigherOrder(kind="ode"):
                return f"{e.solver}#{e.node_id}({self.fn_name(e.fn)}, {self.args(e.args)})"
            case ir.HigherOrder():
                return f"{e.kind}({self.fn_name(e.fn)}, {self.args(e.args)})"
            case ir.Implicit():
                return self.implicit(e)
            case ir.Attr():
                return f"{self.expr(e.target)}.{e.name}"
            case _:
                assert_never(e)

    def item(self, it: ir.Expr | ir.Slice) -> str:
        if isinstance(it, ir.Slice):
            lo = self.expr(it.lo) if it.lo is not None else ""
            hi = self.expr(it.hi) if it.hi is not None else ""
            return f"{lo}:{hi}"
        return self.expr(it)

    def fn_value(self, f: ir.FnValue) -> str:
        match f:
            case ir.Lambda():
                return self.fn_name(f)
            case ir.Derivative():
                return f"{f.kind}({self.fn_name(f.fn)}, {f.argnum})"
            case _:
                assert_never(f)

    def implicit(self, e: ir.Implicit) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in e.solver_options)
        grad: str = e.grad
        if e.grad_options:
            grad += "(" + ", ".join(f"{k}={v}" for k, v in e.grad_options) + ")"
        init = f" init {self.expr(e.init)}" if e.init is not None else ""
        subject = [f"{self.expr(g)} == 0" for g in e.equalities]
        subject += [f"{self.expr(h)} >= 0" for h in e.inequalities]
        init = (f" subject to {', '.join(subject)}" if subject else "") + init
        return (
            f"{e.kind}#{e.node_id} {e.var}: {e.ty} {_IMPLICIT_FORM[e.kind]} {self.expr(e.body)}"
            f"{init} with {e.solver or 'default'}({opts}) grad={grad}{' warm' if e.warm else ''}"
        )

    def dist(self, d: ir.Dist) -> str:
        return f"{d.name}({self.args(d.args)})"

    def weight_init(self, init: ir.Dist | ir.Expr) -> str:
        return self.dist(init) if isinstance(init, ir.Dist) else self.expr(init)

    def constraint(self, c: ir.Constraint) -> str:
        """After the declared type: bounds as ``<lower=.., upper=..>``, a structured or
        well-posed kind as `` as kind`` (with its option where one was given:
        `` as contractive<bound=0.5>``, `` as monotone<margin=0.2>``)."""
        match c.kind:
            case "real":
                return ""
            case "lower" | "upper" | "interval":
                parts = []
                if c.lower is not None:
                    parts.append(f"lower={self.expr(c.lower)}")
                if c.upper is not None:
                    parts.append(f"upper={self.expr(c.upper)}")
                return "<" + ", ".join(parts) + ">"
            case "contractive" | "monotone":
                from fpl.compiler.transforms import WELL_POSED_OPTIONS

                option, side, _default = WELL_POSED_OPTIONS[c.kind]
                value = c.lower if side == "lower" else c.upper
                shown = f"<{option}={self.expr(value)}>" if value is not None else ""
                return f" as {c.kind}{shown}"
            case _:
                return f" as {c.kind}"

    def function(self, f: ir.Lambda) -> str:
        types = _param_types(f)
        params = ", ".join(f"{p}: {types[p]}" if p in types else p for p in f.params)
        head = f"  fn     {self.fn_name(f)}({params}): {f.ty}"
        lets = "".join(f"let {n}: {v.ty} = {self.expr(v)}; " for n, v in f.lets)
        return f"{head} = {lets}{self.expr(f.result)}"

    def statement(self, s: ir.Stmt) -> str:
        match s:
            case ir.DataDecl() | ir.ParamDecl():
                kw = "data" if isinstance(s, ir.DataDecl) else "param"
                return f"  {kw:6} {s.name}: {s.ty}{self.constraint(s.constraint)}"
            case ir.WeightDecl():
                constraint = self.constraint(s.constraint)
                return f"  weight {s.name}: {s.ty}{constraint} init {self.weight_init(s.init)}"
            case ir.Let():
                return f"  let    {s.name}: {s.value.ty} = {self.expr(s.value)}"
            case ir.Out():
                return f"  out    {s.name}: {s.value.ty} = {self.expr(s.value)}"
            case ir.Observe():
                return (
                    f"  target += sum({s.dist.name}_{_suffix(s.dist)}({self.expr(s.value)} | "
                    f"{self.args(s.dist.args)}))"
                )
            case ir.Factor():
                return f"  target += sum({self.expr(s.value)})"
            case ir.GenDraw():
                return f"  gen    {s.name}: {s.dist.ty} ~ {self.dist(s.dist)}"
            case ir.GenLet():
                return f"  gen    {s.name}: {s.value.ty} = {self.expr(s.value)}"
            case _:
                assert_never(s)


def _param_types(f: ir.Lambda) -> dict[str, Ty]:
    """The types of ``f``'s parameters, read off their uses in its body (an unused
    parameter has none to show); nested function bodies are not searched."""
    types: dict[str, Ty] = {}
    stack: list[ir.Node] = [*(value for _, value in f.lets), f.result]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Ref) and node.kind == "arg" and node.name in f.params:
            types.setdefault(node.name, node.ty)
        elif not isinstance(node, ir.Lambda):
            stack.extend(ir.children(node))
    return types


def expr_text(e: ir.Expr) -> str:
    """One expression, functions named by their source names."""
    return _Printer().expr(e)


def fn_text(f: ir.FnValue) -> str:
    return _Printer().fn_value(f)


def constraint_text(c: ir.Constraint) -> str:
    return _Printer().constraint(c)


def _instance_names(lambdas: list[ir.Lambda]) -> dict[int, str]:
    count: dict[str, int] = {}
    for f in lambdas:
        count[f.name] = count.get(f.name, 0) + 1
    seen: dict[str, int] = {}
    names = {}
    for f in lambdas:
        if count[f.name] == 1:
            names[id(f)] = f.name
        else:
            seen[f.name] = seen.get(f.name, 0) + 1
            names[id(f)] = f"{f.name}#{seen[f.name]}"
    return names


def format_program(p: ir.Program) -> str:
    lambdas = ir.functions(p)
    printer = _Printer(_instance_names(lambdas))
    lines = [f"program {p.name}"]
    lines.extend(printer.function(f) for f in lambdas)
    lines.extend(printer.statement(s) for s in p.statements)
    return "\n".join(lines) + "\n"
