"""Printing the IR (``fpl compile --emit ir``): one line per statement, types shown."""

from __future__ import annotations

from fpl.compiler import ir

_INFIX = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "matmul": "@", "pow": "^",
    "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "and": "&&", "or": "||",
}  # fmt: skip
_PREFIX = {"neg": "-", "pos": "+", "not": "!"}


def expr_text(e) -> str:
    if isinstance(e, ir.Const):
        return repr(e.value) if not isinstance(e.value, bool) else str(e.value).lower()
    if isinstance(e, ir.Ref):
        return e.name
    if isinstance(e, ir.Op):
        if e.name in _INFIX:
            return f"({expr_text(e.args[0])} {_INFIX[e.name]} {expr_text(e.args[1])})"
        if e.name in _PREFIX:
            return f"{_PREFIX[e.name]}{expr_text(e.args[0])}"
        if e.name == "transpose":
            return f"{expr_text(e.args[0])}'"
        return f"{e.name}({', '.join(expr_text(a) for a in e.args)})"
    if isinstance(e, ir.Cond):
        return f"({expr_text(e.test)} ? {expr_text(e.then)} : {expr_text(e.orelse)})"
    if isinstance(e, ir.Index):
        items = []
        for it in e.items:
            if isinstance(it, ir.Slice):
                lo = expr_text(it.lo) if it.lo is not None else ""
                hi = expr_text(it.hi) if it.hi is not None else ""
                items.append(f"{lo}:{hi}")
            else:
                items.append(expr_text(it))
        return f"{expr_text(e.target)}[{', '.join(items)}]"
    if isinstance(e, ir.ArrayLit):
        return "[" + ", ".join(expr_text(i) for i in e.items) + "]"
    if isinstance(e, ir.Dist):
        return f"{e.name}({', '.join(expr_text(a) for a in e.args)})"
    if isinstance(e, ir.LogProb):
        args = ", ".join(expr_text(a) for a in e.dist.args)
        return f"{e.dist.name}_{e.kind}({expr_text(e.value)} | {args})"
    if isinstance(e, ir.Rng):
        return f"{e.dist.name}_rng({', '.join(expr_text(a) for a in e.dist.args)})"
    if isinstance(e, ir.Apply):
        return f"{fn_text(e.fn)}({', '.join(expr_text(a) for a in e.args)})"
    if isinstance(e, ir.HigherOrder):
        return f"{e.kind}({e.fn.name}, {', '.join(expr_text(a) for a in e.args)})"
    if isinstance(e, ir.Implicit):
        opts = ", ".join(f"{k}={v}" for k, v in e.solver_options)
        grad = e.grad + (
            "(" + ", ".join(f"{k}={v}" for k, v in e.grad_options) + ")" if e.grad_options else ""
        )
        form = {"fix": "=", "root": "of", "argmin": "of"}[e.kind]
        init = f" init {expr_text(e.init)}" if e.init is not None else ""
        return (
            f"{e.kind}#{e.node_id} {e.var}: {e.ty} {form} {expr_text(e.body)}{init}"
            f" with {e.solver or 'default'}({opts}) grad={grad}{' warm' if e.warm else ''}"
        )
    if isinstance(e, ir.Attr):
        return f"{expr_text(e.target)}.{e.name}"
    return f"<{type(e).__name__}>"


def fn_text(f) -> str:
    if isinstance(f, ir.Lambda):
        return f.name
    return f"{f.kind}({f.fn.name}, {f.argnum})"


def constraint_text(c: ir.Constraint) -> str:
    if c.kind == "real":
        return ""
    if c.kind in ("lower", "upper", "interval"):
        parts = []
        if c.lower is not None:
            parts.append(f"lower={expr_text(c.lower)}")
        if c.upper is not None:
            parts.append(f"upper={expr_text(c.upper)}")
        return "<" + ", ".join(parts) + ">"
    return f" as {c.kind}"


def format_program(p: ir.Program) -> str:
    lines = [f"program {p.name}"]
    for s in p.statements:
        if isinstance(s, (ir.DataDecl, ir.ParamDecl)):
            kw = "data" if isinstance(s, ir.DataDecl) else "param"
            lines.append(f"  {kw:6} {s.name}: {s.ty}{constraint_text(s.constraint)}")
        elif isinstance(s, ir.WeightDecl):
            lines.append(f"  weight {s.name}: {s.ty} init {expr_text(s.init)}")
        elif isinstance(s, ir.Let):
            lines.append(f"  let    {s.name}: {s.value.ty} = {expr_text(s.value)}")
        elif isinstance(s, ir.Out):
            lines.append(f"  out    {s.name}: {s.value.ty} = {expr_text(s.value)}")
        elif isinstance(s, ir.Observe):
            lines.append(
                f"  target += sum({s.dist.name}_lpdf({expr_text(s.value)} | "
                f"{', '.join(expr_text(a) for a in s.dist.args)}))"
            )
        elif isinstance(s, ir.Factor):
            lines.append(f"  target += sum({expr_text(s.value)})")
        elif isinstance(s, ir.GenDraw):
            lines.append(f"  gen    {s.name}: {s.dist.ty} ~ {expr_text(s.dist)}")
        elif isinstance(s, ir.GenLet):
            lines.append(f"  gen    {s.name}: {s.value.ty} = {expr_text(s.value)}")
    return "\n".join(lines) + "\n"
