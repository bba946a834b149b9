"""Expressions other than calls: literals, names, operators (typed and shaped by their
registry rules), conditionals, array literals, indexing and slicing, and the attributes of
implicit nodes.  Calls are ``calls``'s, the implicit forms ``implicit_forms``'s."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from fpl.compiler import ir
from fpl.compiler.passes.literals import check_division, check_size
from fpl.dsl import ast
from fpl.dsl.diagnostics import did_you_mean, error
from fpl.dsl.spans import Span
from fpl.stdlib.registry import Arg, registry
from fpl.stdlib.types import INT, REAL, Dim, RuleError, Ty, broadcast

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker


def e_Num(c: Checker, e: ast.Num) -> ir.Expr:
    return ir.Const(e.value, INT if e.is_int else REAL, e.span)


def e_Name(c: Checker, e: ast.Name) -> ir.Expr:
    if e.id.startswith('"'):  # the grammar reads a string as a name in quotes
        raise error(
            "E0201",
            "a string is only the message of `reject`",
            e.span,
            help='write `reject("message", values...)`; FPL has no string values',
        )
    sym = c.scope.names.get(e.id) or c.scope.lookup(e.id)  # (the innermost scope first)
    if sym is None:
        if e.id in c.functions or e.id in c.reg.functions:
            raise error(
                "E0201",
                f"`{e.id}` is a function; call it, or pass it to map/scan/fold/grad",
                e.span,
            )
        hint = did_you_mean(e.id, c.scope.all_names())
        raise error(
            "E0102",
            f"unknown name `{e.id}`",
            e.span,
            label="not declared before here",
            help=hint,
        )
    if sym.kind == "gen" and not c.in_gen:
        raise error(
            "E0207",
            f"`{e.id}` is a generated quantity and can only be used in `gen` statements",
            e.span,
        )
    return ir.Ref(e.id, sym.kind, sym.ty, e.span)


def op(c: Checker, name: str, args: list[ir.Expr], span: Span, arg_spans=None) -> ir.Op:
    """The built-in function or operator ``name`` at checked ``args``, typed and shaped
    by its registry rule (its argument count, static arguments and sizes checked).

    The result type is a function of the name, the argument types and their static
    sizes alone (every check before the rule and the rule itself read nothing else; only
    the integer division by a literal zero reads values), so it is computed once per
    such key and remembered in ``c.op_types``: a long program repeats the same few
    signatures.  A key is remembered only when its checks passed, so errors are found
    and located exactly as without the table."""
    tys = tuple([a.ty for a in args])
    dims = tuple([c.static(a) if a.ty.base == "int" else None for a in args])
    key = (name, tys, dims)
    ty = c.op_types.get(key)
    if ty is None:
        ty = _op_type(c, name, args, tys, dims, span)
        c.op_types[key] = ty
    else:
        check_division(name, args, span)
    return ir.Op(name, tuple(args), ty, span)


def _op_type(
    c: Checker, name: str, args: list[ir.Expr], tys: tuple[Ty, ...], dims: tuple[Dim, ...], span
) -> Ty:
    """``op``'s checks and its rule: the type of ``name`` at ``args`` (of types ``tys``
    and static sizes ``dims``)."""
    entry = c.reg.functions[name]
    if not entry.min_args <= len(args) <= (entry.max_args if entry.max_args is not None else 10**9):
        hi = "any number of" if entry.max_args is None else str(entry.max_args)
        want = (
            str(entry.min_args) if entry.min_args == entry.max_args else f"{entry.min_args} to {hi}"
        )
        plural = "" if want == "1" else "s"
        raise error("E0203", f"`{name}` takes {want} argument{plural}, got {len(args)}", span)
    for a in args:
        if a.ty.base not in ("int", "real", "bool"):
            raise error("E0201", f"`{name}` needs numbers", a.span)
    check_division(name, args, span)
    infos = [Arg(ty, dim) for ty, dim in zip(tys, dims)]
    for i in entry.static_args:
        if i < len(infos) and infos[i].dim is None:
            raise error(
                "E0201",
                f"argument {i + 1} of `{name}` must be a size known before the model runs",
                args[i].span,
            )
        dim = infos[i].dim if i < len(infos) else None
        if isinstance(dim, int):
            if dim < 0:
                raise error("E0202", f"negative size {dim}", args[i].span)
            check_size((dim,), args[i].span)
    try:
        ty = entry.rule(infos)
    except RuleError as exc:
        where = args[exc.arg].span if exc.arg is not None and exc.arg < len(args) else span
        code = "E0202" if exc.kind == "shape" else "E0201"
        raise error(code, f"`{_op_text(name)}`: {exc.message}", where, help=exc.help) from None
    negative = [d for d in ty.shape if isinstance(d, int) and d < 0]
    if negative:  # a constructor given a negative size: `ones(-1)`
        raise error("E0202", f"`{_op_text(name)}`: negative size {negative[0]}", span)
    check_size(ty.shape, span)
    return ty


def e_Unary(c: Checker, e: ast.Unary) -> ir.Expr:
    return op(c, e.op, [c.expr(e.operand)], e.span)


def e_Binary(c: Checker, e: ast.Binary) -> ir.Expr:
    return op(c, e.op, [c.expr(e.left), c.expr(e.right)], e.span)


def e_Cond(c: Checker, e: ast.Cond) -> ir.Expr:
    test, a, b = c.expr(e.test), c.expr(e.then), c.expr(e.orelse)
    try:
        shape = broadcast(test.ty.shape, a.ty.shape, b.ty.shape)
    except RuleError as exc:
        raise error("E0202", f"`? :` {exc.message}", e.span) from None
    # a `reject(...)` branch takes the other's type: it never gives a value
    if isinstance(a, ir.Reject) and not isinstance(b, ir.Reject):
        a = replace(a, ty=Ty(b.ty.base))
    if isinstance(b, ir.Reject) and not isinstance(a, ir.Reject):
        b = replace(b, ty=Ty(a.ty.base))
    base = "int" if a.ty.base == b.ty.base == "int" else "real"
    return ir.Cond(test, a, b, Ty(base, shape), e.span)


def e_ArrayLit(c: Checker, e: ast.ArrayLit) -> ir.Expr:
    items = []
    for item in e.items:  # a loop, not a comprehension: one frame less per level
        items.append(c.expr(item))
    if not items:
        return ir.ArrayLit((), Ty("real", (0,)), e.span)
    first = items[0].ty
    for it in items[1:]:
        if it.ty.rank != first.rank:
            raise error("E0202", f"array elements differ in rank: {first} and {it.ty}", it.span)
        for a, b in zip(first.shape, it.ty.shape, strict=True):
            if isinstance(a, int) and isinstance(b, int) and a != b:  # ragged: not broadcast
                raise error(
                    "E0202",
                    f"array elements differ in shape: {first} and {it.ty}",
                    it.span,
                    help="every row of an array literal has the same length",
                )
    try:
        inner = broadcast(*(i.ty.shape for i in items))
    except RuleError as exc:
        raise error("E0202", f"array elements: {exc.message}", e.span) from None
    base = "int" if all(i.ty.base == "int" for i in items) else "real"
    return ir.ArrayLit(tuple(items), Ty(base, (len(items), *inner)), e.span)


def e_Index(c: Checker, e: ast.Index) -> ir.Expr:
    target = c.expr(e.target)
    if len(e.items) > target.ty.rank:
        raise error(
            "E0202",
            f"too many indices: {len(e.items)} for a value of type {target.ty}",
            e.span,
        )
    items: list = []
    shape: list[Dim] = []
    # index arrays pick elements pairwise (as NumPy): together they give one block of
    # their common shape, where the first of them stands (`A[i, j]`: the A[i[n], j[n]])
    pairs: list[ir.Expr] = []
    pairs_at = 0
    for k, item in enumerate(e.items):
        dim = target.ty.shape[k]
        if isinstance(item, ast.Slice):
            lo = c.expr(item.lo) if item.lo is not None else None
            hi = c.expr(item.hi) if item.hi is not None else None
            for b in (lo, hi):
                if b is not None and b.ty != INT:
                    raise error("E0201", "slice bounds must be integers", b.span)
            lo_d = c.static(lo) if lo is not None else 1
            hi_d = c.static(hi) if hi is not None else dim
            if isinstance(lo_d, int) and isinstance(hi_d, int):
                count = hi_d - lo_d + 1
                size: Dim = count
                if count < 0 or lo_d < 1 or (isinstance(dim, int) and hi_d > dim):
                    raise error("E0202", f"slice {lo_d}:{hi_d} is out of range 1:{dim}", item.span)
            elif lo_d == 1 and hi_d is not None:
                size = hi_d
            elif lo_d is not None and hi_d is not None:
                size = f"{hi_d} - {lo_d} + 1"
            else:
                size = None
            shape.append(size)
            items.append(ir.Slice(lo, hi))
        else:
            idx = c.expr(item)
            if idx.ty.base != "int":
                raise error("E0201", f"an index must be an integer, not {idx.ty}", idx.span)
            d = c.static(idx)
            if isinstance(d, int) and isinstance(dim, int) and not 1 <= d <= dim:
                raise error("E0202", f"index {d} is out of range 1:{dim}", idx.span)
            if idx.ty.shape:
                if not pairs:
                    pairs_at = len(shape)
                pairs.append(idx)
            items.append(idx)
    if pairs:
        try:
            common = broadcast(*(p.ty.shape for p in pairs))
        except RuleError:
            texts = " and ".join(str(p.ty) for p in pairs)
            raise error(
                "E0202",
                f"index arrays of types {texts} do not pair up",
                pairs[-1].span,
                help="index arrays pick elements pairwise (`A[i, j]` is A[i[n], j[n]] for "
                "each n) and must have the same length; a submatrix is `A[i, :][:, j]`",
            ) from None
        shape[pairs_at:pairs_at] = common
    shape.extend(target.ty.shape[len(e.items) :])
    return ir.Index(target, tuple(items), Ty(target.ty.base, tuple(shape)), e.span)


def e_Attr(c: Checker, e: ast.Attr) -> ir.Expr:
    target = c.expr(e.target)
    sym = c.scope.lookup(target.name) if isinstance(target, ir.Ref) else None
    if sym is None or not sym.implicit:
        raise error(
            "E0201",
            f"`.{e.name}` is only defined on names bound to fix/root/argmin",
            e.span,
        )
    if e.name not in ("residual", "iterations"):
        raise error(
            "E0102",
            f"unknown attribute `.{e.name}`",
            e.span,
            help="implicit nodes have `.residual` and `.iterations`",
        )
    assert isinstance(target, ir.Ref)  # checked with `sym` above
    if e.name == "residual":
        return ir.Attr(target, "residual", REAL, e.span)
    return ir.Attr(target, "iterations", INT, e.span)


def _op_text(name: str) -> str:
    """How the user wrote ``name``: an operator's spelling (from its registry entry)."""
    entry = registry().functions.get(name)
    return entry.spelling if entry is not None and entry.spelling else name


__all__ = ["op"]
