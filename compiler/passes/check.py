"""AST -> IR: name resolution and type/shape checking in one walk, in source order.

Sizes are symbolic until data arrive; run again with ``sizes`` (the data integers)
and every size is a number, so shape errors the symbolic pass could not decide are
reported then, with the same locations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import assert_never

from fpl.compiler import ir
from fpl.compiler.passes.literals import check_division, check_literal_bounds, check_size
from fpl.compiler.passes.types import STRUCTURED, static_dim
from fpl.dsl import ast
from fpl.dsl.diagnostics import FplError, InternalError, did_you_mean, error
from fpl.dsl.parser import MAX_DEPTH
from fpl.dsl.spans import Span
from fpl.stdlib.registry import Arg, Bound, DistributionEntry, Registry, registry
from fpl.stdlib.types import INT, REAL, Dim, RuleError, Ty, broadcast, dim_text, dims_equal

#: The checker's nesting budget, in expression levels counted through the bodies of the
#: user functions called (each call counts ``CALL_DEPTH`` levels more, for the extra
#: frames of instantiating a function).  A program within the parser's ``MAX_DEPTH`` and
#: free of functions never reaches it; deeper chains of calls are E0107, not a Python
#: ``RecursionError``.  Every pass over the IR recurses at most this deep, at most about
#: two Python frames a level, so all stay well inside Python's default recursion limit.
CHECK_DEPTH = MAX_DEPTH
CALL_DEPTH = 2


@dataclass
class Symbol:
    kind: ir.RefKind
    ty: Ty
    span: Span
    implicit: bool = False  # bound to an implicit node (has .residual/.iterations)
    #: a top-level `let` of data and constants only (computed once, at bind time); an
    #: integer one may stand for a size (``let K = max(y)`` then ``real[K - 1]``)
    data_only: bool = False


@dataclass
class Scope:
    names: dict[str, Symbol] = field(default_factory=dict)
    parent: Scope | None = None

    def lookup(self, name: str) -> Symbol | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def all_names(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out |= set(scope.names)
            scope = scope.parent
        return out


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
        self.calling: list[str] = []  # the user functions being instantiated, outermost first

    # ---- entry ----
    def program(self, prog: ast.Program, name: str) -> ir.Program:
        out: list[ir.Stmt] = []
        for stmt in prog.statements:
            out.extend(self.statement(stmt))
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

    def type_expr(
        self, t: ast.TypeExpr, allow_params: bool, weight: bool = False
    ) -> tuple[Ty, ir.Constraint]:
        if t.base in ir.WELL_POSED_KINDS:
            return self.well_posed_type(t, weight)
        if t.base in STRUCTURED and t.bounds:
            raise error("E0204", f"`{t.base}` takes no options", t.bounds[0].span)
        if t.base in STRUCTURED:
            # `simplex[K]` is one simplex; `simplex[M, K]` an array of M of them: the sizes
            # before the last are the array's (as in `real[M, K]`, M rows of K)
            rank, structured = STRUCTURED[t.base]
            if not t.shape:
                raise error("E0204", f"`{t.base}` takes a size, e.g. `{t.base}[K]`", t.span)
            *outer, k = (self.size(d) for d in t.shape)
            check_size((*outer, *(k,) * rank), t.span)
            return Ty("real", (*outer, *(k,) * rank)), ir.Constraint(structured)
        shape = tuple(self.size(d) for d in t.shape)
        check_size(shape, t.span)
        ty = Ty(t.base, shape)
        lower = upper = None
        for b in t.bounds:
            if b.name not in ("lower", "upper"):
                raise error(
                    "E0204",
                    f"unknown bound `{b.name}`",
                    b.span,
                    help=did_you_mean(b.name, ["lower", "upper"]),
                )
            value = self.expr(b.value)
            self.no_params(value, allow_params, "a bound")
            if value.ty.base not in ("int", "real"):
                raise error("E0201", "a bound must be a number", b.span)
            try:
                broadcast(value.ty.shape, shape)
            except RuleError as exc:
                raise error("E0202", f"bound `{b.name}`: {exc.message}", b.span) from None
            if b.name == "lower":
                lower = value
            else:
                upper = value
        kind: ir.BoundKind = (
            "interval"
            if lower is not None and upper is not None
            else "lower"
            if lower is not None
            else "upper"
            if upper is not None
            else "real"
        )
        constraint = ir.Constraint(kind, lower, upper)
        check_literal_bounds(constraint, t.span)
        return ty, constraint

    def well_posed_type(self, t: ast.TypeExpr, weight: bool) -> tuple[Ty, ir.Constraint]:
        """``contractive<bound=c>[H, H]`` / ``monotone<margin=m>[H]``: an H x H weight
        whose fixed-point layers are well posed (compiler/transforms.py); the option is
        a data expression kept in the ``Constraint`` (bound as upper, margin as lower)."""
        from fpl.compiler.transforms import WELL_POSED_OPTIONS

        option, side, default = WELL_POSED_OPTIONS[t.base]
        if not weight:
            raise error(
                "E0204",
                f"`{t.base}` is a weight type",
                t.span,
                help=f"declare `weight W: {t.base}[...] init ...`: its map onto the set is "
                "not one-to-one, so it has no density (no Jacobian) and cannot be a param",
            )
        sizes = tuple(self.size(d) for d in t.shape)
        want = 2 if t.base == "contractive" else 1
        if len(sizes) != want or (want == 2 and dims_equal(sizes[0], sizes[1]) is False):
            example = "contractive[H, H]" if want == 2 else "monotone[H]"
            raise error(
                "E0202",
                f"`{t.base}` is a square matrix: write `{example}`",
                t.span,
                help=f"got [{', '.join(dim_text(d) for d in sizes)}]",
            )
        shape = (sizes[0], sizes[0])
        check_size(shape, t.span)
        value = None
        for b in t.bounds:
            if b.name != option:
                raise error(
                    "E0204",
                    f"`{t.base}` takes the option `{option}`, not `{b.name}`",
                    b.span,
                    help=f"e.g. `{t.base}<{option}={default}>`",
                )
            value = self.expr(b.value)
            self.no_params(value, False, "an option")
            if value.ty not in (INT, REAL):
                raise error("E0201", f"`{option}` must be a number", b.span)
            bad = isinstance(value, ir.Const) and not (
                0 < value.value < 1 if option == "bound" else 0 < value.value <= 1
            )
            if bad:
                allowed = "0 < bound < 1" if option == "bound" else "0 < margin <= 1"
                raise error("E0204", f"`{option}` must satisfy {allowed}", b.span)
        kind: ir.WellPosedKind = "contractive" if t.base == "contractive" else "monotone"
        if side == "upper":
            return Ty("real", shape), ir.Constraint(kind, upper=value)
        return Ty("real", shape), ir.Constraint(kind, lower=value)

    def size(self, e: ast.Expr) -> Dim:
        value = self.expr(e)
        if value.ty != INT:
            raise error("E0201", f"a size must be an integer, not {value.ty}", e.span)
        dim = self.static(value)
        if dim is None:
            raise error(
                "E0201",
                "a size must be known before the model runs",
                e.span,
                label="not a literal or data integer",
                help="sizes may be literals, `data` integers, integer `let`s of data only "
                "(`let K = max(y)`), or + - * of those",
            )
        if isinstance(dim, int) and dim < 0:
            raise error("E0202", f"negative size {dim}", e.span)
        return dim

    def no_params(self, value: ir.Expr, allow_params: bool, what: str) -> None:
        if allow_params:
            return
        for node in ir.walk(value):
            if isinstance(node, ir.Ref) and node.kind not in ("data",):
                raise error(
                    "E0201",
                    f"{what} of data may only use data, not the {node.kind} `{node.name}`",
                    node.span,
                )

    # ---- statements ----
    def statement(self, s: ast.Stmt) -> list[ir.Stmt]:
        match s:
            case ast.DataDecl():
                ty, cons = self.type_expr(s.type, allow_params=False)
                self.declare(s.name, Symbol("data", ty, s.span))
                return [ir.DataDecl(s.name, ty, cons, s.span)]
            case ast.ParamDecl():
                return self.param_decl(s)
            case ast.WeightDecl():
                ty, cons = self.type_expr(s.type, allow_params=False, weight=True)
                if ty.base != "real":
                    raise error("E0201", "a weight must be real", s.type.span)
                init = self.weight_init(s, ty)
                self.declare(s.name, Symbol("weight", ty, s.span))
                return [ir.WeightDecl(s.name, ty, cons, init, s.span)]
            case ast.Let():
                value = self.expr(s.value)
                sym = Symbol("local", value.ty, s.span, _implicit(value), self.data_only(value))
                self.declare(s.name, sym)
                return [ir.Let(s.name, value, s.span)]
            case ast.Out():
                value = self.expr(s.value)
                self.declare(s.name, Symbol("out", value.ty, s.span, _implicit(value)))
                return [ir.Out(s.name, value, s.span)]
            case ast.Tilde():
                value = self.expr(s.lhs)
                dist = self.dist(s.dist, value=value)
                return [ir.Observe(value, dist, s.span)]
            case ast.Target() | ast.Loss():
                self.in_loss = isinstance(s, ast.Loss)
                try:
                    value = self.expr(s.value)
                finally:
                    self.in_loss = False
                if value.ty.base not in ("int", "real"):
                    raise error("E0201", f"cannot add a {value.ty.base} to the log density", s.span)
                if isinstance(s, ast.Loss):
                    value = ir.Op("neg", (value,), Ty("real", value.ty.shape), value.span)
                return [ir.Factor(value, s.span)]
            case ast.GenTilde():
                self.in_gen = True
                try:
                    dist = self.dist(s.dist)
                finally:
                    self.in_gen = False
                self.declare(s.name, Symbol("gen", dist.ty, s.span))
                return [ir.GenDraw(s.name, dist, s.span)]
            case ast.GenLet():
                self.in_gen = True
                try:
                    value = self.expr(s.value)
                finally:
                    self.in_gen = False
                self.declare(s.name, Symbol("gen", value.ty, s.span))
                return [ir.GenLet(s.name, value, s.span)]
            case ast.FnDef():
                return self.fn_def(s)
            case ast.Import():
                raise error("E0106", "imports must be resolved before checking", s.span)
            case _:
                assert_never(s)

    def param_decl(self, s: ast.ParamDecl) -> list[ir.Stmt]:
        if s.type is not None:
            ty, cons = self.type_expr(s.type, allow_params=True)
            if ty.base != "real":
                raise error(
                    "E0201",
                    "parameters must be real",
                    s.type.span,
                    help="discrete parameters are not supported: marginalise them out",
                )
        prior = None
        if s.prior is not None:
            target_ty = ty if s.type is not None else None
            prior = self.dist(s.prior, value_ty=target_ty)
            entry = self.reg.distributions[prior.name]
            if entry.support.discrete:
                raise error(
                    "E0201",
                    f"`{s.name}` has the discrete prior `{prior.name}`",
                    s.prior.span,
                    help="discrete parameters are not supported: marginalise them out",
                )
            if s.type is None:
                ty = prior.ty
                cons = self.support_constraint(entry, prior)
            else:
                self.check_support(s, cons, entry)
        elif s.type is None:
            raise error(
                "E0201",
                f"parameter `{s.name}` needs a type or a prior",
                s.span,
                help=f"write `param {s.name}: real` or `param {s.name} ~ normal(0, 1)`",
            )
        self.declare(s.name, Symbol("param", ty, s.span))
        out: list[ir.Stmt] = [ir.ParamDecl(s.name, ty, cons, s.span)]
        if prior is not None:
            out.append(ir.Observe(ir.Ref(s.name, "param", ty, s.span), prior, s.span))
        return out

    def support_constraint(self, entry: DistributionEntry, d: ir.Dist) -> ir.Constraint:
        sup = entry.support
        kind = _constraint_kind(sup.kind)
        if kind not in ("lower", "upper", "interval"):
            return ir.Constraint(kind)

        def bound(b: Bound | None) -> ir.Expr | None:
            if b is None:
                return None
            if b.arg is not None:
                return d.args[b.arg]
            return ir.Const(float(b.value or 0.0), REAL, d.span)

        return ir.Constraint(kind, bound(sup.lower), bound(sup.upper))

    def check_support(
        self, s: ast.ParamDecl, cons: ir.Constraint, entry: DistributionEntry
    ) -> None:
        """A declared support wider than the prior's is an error (the density would be
        zero on part of it); a narrower one truncates the prior, as in Stan."""
        sup = entry.support
        assert s.type is not None  # called for typed declarations only
        if sup.kind in ir.STRUCTURED_KINDS and cons.kind != sup.kind:
            raise error(
                "E0204",
                f"the prior `{entry.name}` is over {sup.kind} values but `{s.name}` is declared "
                f"{cons.kind}",
                s.type.span,
                help=f"declare `{s.name}` with the type `{sup.kind}[...]` or leave out the type",
            )
        for side in ("lower", "upper"):
            sb = getattr(sup, side)
            if sb is None or sb.value is None:
                continue
            cb = getattr(cons, side)
            ok = isinstance(cb, ir.Const) and (
                cb.value >= sb.value if side == "lower" else cb.value <= sb.value
            )
            if cb is None or (isinstance(cb, ir.Const) and not ok):
                raise error(
                    "E0204",
                    f"`{s.name}` is declared wider than the support of its prior `{entry.name}`",
                    s.type.span,
                    label=f"needs {side}={sb.value:g}",
                    help=f"declare `real<{side}={sb.value:g}>` or leave out the type",
                )

    def weight_init(self, s: ast.WeightDecl, ty: Ty):
        init = s.init
        if (
            isinstance(init, ast.Call)
            and isinstance(init.func, ast.Name)
            and init.func.id in self.reg.distributions
        ):
            return self.dist(init, value_ty=ty)
        value = self.expr(init)
        try:
            broadcast(value.ty.shape, ty.shape)
        except RuleError as exc:
            raise error("E0202", f"weight `{s.name}` init: {exc.message}", init.span) from None
        return value

    def fn_def(self, s: ast.FnDef) -> list[ir.Stmt]:
        if s.name in self.functions or self.scope.lookup(s.name) is not None:
            raise error("E0105", f"`{s.name}` is declared twice", s.span)
        names = [p.name for p in s.params]
        for p in s.params:
            if names.count(p.name) > 1:
                raise error("E0105", f"parameter `{p.name}` appears twice", p.span)
        self.functions[s.name] = s
        written = [p.type for p in s.params if p.type is not None]
        if len(written) == len(s.params):
            # fully typed: check the body now, so errors show without a call
            tys = [self.type_expr(t, allow_params=True)[0] for t in written]
            self.instantiate(s.name, tys, s.span)
        return []

    # ---- distributions ----
    def dist(self, call: ast.Call, value: ir.Expr | None = None, value_ty: Ty | None = None):
        if not isinstance(call.func, ast.Name):
            raise error("E0103", "expected a distribution name", call.func.span)
        name = call.func.id
        entry = self.reg.distributions.get(name)
        if entry is None:
            hint = did_you_mean(name, self.reg.distributions)
            label = "not a distribution"
            if name in self.reg.functions or name in self.functions:
                label = "a function, not a distribution"
            raise error(
                "E0103", f"unknown distribution `{name}`", call.func.span, label=label, help=hint
            )
        if call.kwargs:
            raise error("E0203", "distributions take positional arguments", call.kwargs[0].span)
        args = tuple(self.expr(a) for a in call.args)
        return self.dist_type(entry, args, call.span, call.func.span, value, value_ty)

    def dist_type(self, entry, args, span, name_span, value=None, value_ty=None) -> ir.Dist:
        n = len(entry.params)
        lo = entry.min_args if entry.min_args is not None else n
        if not lo <= len(args) <= n:
            sig = f"{entry.name}({', '.join(entry.params)})"
            raise error(
                "E0203",
                f"`{entry.name}` takes {n} argument{'s' * (n != 1)}, got {len(args)}",
                span,
                help=f"the signature is `{sig}`",
            )
        batch: list[tuple] = []
        for i, (a, r) in enumerate(zip(args, entry.arg_ranks)):
            if a.ty.base not in ("int", "real"):
                raise error("E0201", f"argument `{entry.params[i]}` must be a number", a.span)
            if a.ty.rank < r:
                raise error(
                    "E0202",
                    f"argument `{entry.params[i]}` of `{entry.name}` must have rank {r}, "
                    f"not {a.ty}",
                    a.span,
                )
            batch.append(a.ty.shape[: a.ty.rank - r])
        try:
            batch_shape = broadcast(*batch)
        except RuleError as exc:
            raise error("E0202", f"arguments of `{entry.name}`: {exc.message}", span) from None
        if entry.event_arg is not None:
            a = args[entry.event_arg]
            event = a.ty.shape[a.ty.rank - entry.event_rank :]
            if entry.event_rank == 1:  # a matrix argument is K x K for events of size K
                for i, (m, r) in enumerate(zip(args, entry.arg_ranks)):
                    square = m.ty.shape[m.ty.rank - r :]
                    if r == 2 and any(dims_equal(k, event[0]) is False for k in square):
                        raise error(
                            "E0202",
                            f"argument `{entry.params[i]}` of `{entry.name}` must be "
                            f"{dim_text(event[0])} x {dim_text(event[0])} (the size of "
                            f"`{entry.params[entry.event_arg]}`), not "
                            f"{' x '.join(map(dim_text, square))}",
                            m.span,
                        )
        elif entry.event_rank:
            known = value.ty if value is not None else value_ty
            event = (
                known.shape[-entry.event_rank :]
                if known is not None
                else (None,) * entry.event_rank
            )
        else:
            event = ()
        base = "int" if entry.support.discrete else "real"
        ty = Ty(base, (*batch_shape, *event))
        target = value.ty if value is not None else value_ty
        if target is not None:
            where = value.span if value is not None else span
            if entry.support.discrete and target.base == "real":
                raise error(
                    "E0201",
                    f"`{entry.name}` is a distribution over integers, but this value is real",
                    where,
                )
            if target.rank < entry.event_rank:
                raise error(
                    "E0202",
                    f"`{entry.name}` draws have rank {entry.event_rank}; this value is {target}",
                    where,
                )
            t_event = target.shape[target.rank - entry.event_rank :]
            for a, b in zip(t_event, event):
                if dims_equal(a, b) is False:
                    raise error(
                        "E0202",
                        f"`{entry.name}` draws have shape ({', '.join(map(dim_text, event))}) "
                        f"but this value has shape ({', '.join(map(dim_text, t_event))})",
                        where,
                    )
            try:
                broadcast(target.shape[: target.rank - entry.event_rank], batch_shape)
            except RuleError as exc:
                raise error(
                    "E0202", f"value and `{entry.name}` arguments: {exc.message}", where
                ) from None
            ty = Ty(base, tuple(target.shape))
        return ir.Dist(entry.name, args, ty, span)

    # ---- expressions ----
    def expr(self, e: ast.Expr) -> ir.Expr:
        # one frame per level besides the ``e_*`` method: see CHECK_DEPTH
        self.depth += 1
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
                    return self.e_Num(e)
                case ast.Name():
                    return self.e_Name(e)
                case ast.Unary():
                    return self.e_Unary(e)
                case ast.Binary():
                    return self.e_Binary(e)
                case ast.Cond():
                    return self.e_Cond(e)
                case ast.Call():
                    return self.e_Call(e)
                case ast.Index():
                    return self.e_Index(e)
                case ast.Attr():
                    return self.e_Attr(e)
                case ast.ArrayLit():
                    return self.e_ArrayLit(e)
                case ast.Implicit():
                    return self.e_Implicit(e)
                case _:
                    assert_never(e)
        finally:
            self.depth -= 1

    def e_Num(self, e: ast.Num) -> ir.Expr:
        return ir.Const(e.value, INT if e.is_int else REAL, e.span)

    def e_Name(self, e: ast.Name) -> ir.Expr:
        if e.id.startswith('"'):  # the grammar reads a string as a name in quotes
            raise error(
                "E0201",
                "a string is only the message of `reject`",
                e.span,
                help='write `reject("message", values...)`; FPL has no string values',
            )
        sym = self.scope.lookup(e.id)
        if sym is None:
            if e.id in self.functions or e.id in self.reg.functions:
                raise error(
                    "E0201",
                    f"`{e.id}` is a function; call it, or pass it to map/scan/fold/grad",
                    e.span,
                )
            hint = did_you_mean(e.id, self.scope.all_names())
            raise error(
                "E0102",
                f"unknown name `{e.id}`",
                e.span,
                label="not declared before here",
                help=hint,
            )
        if sym.kind == "gen" and not self.in_gen:
            raise error(
                "E0207",
                f"`{e.id}` is a generated quantity and can only be used in `gen` statements",
                e.span,
            )
        return ir.Ref(e.id, sym.kind, sym.ty, e.span)

    def op(self, name: str, args: list[ir.Expr], span: Span, arg_spans=None) -> ir.Op:
        entry = self.reg.functions[name]
        if (
            not entry.min_args
            <= len(args)
            <= (entry.max_args if entry.max_args is not None else 10**9)
        ):
            hi = "any number of" if entry.max_args is None else str(entry.max_args)
            want = (
                str(entry.min_args)
                if entry.min_args == entry.max_args
                else f"{entry.min_args} to {hi}"
            )
            plural = "" if want == "1" else "s"
            raise error("E0203", f"`{name}` takes {want} argument{plural}, got {len(args)}", span)
        for a in args:
            if a.ty.base not in ("int", "real", "bool"):
                raise error("E0201", f"`{name}` needs numbers", a.span)
        check_division(name, args, span)
        infos = [Arg(a.ty, self.static(a)) for a in args]
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
        return ir.Op(name, tuple(args), ty, span)

    def e_Unary(self, e: ast.Unary) -> ir.Expr:
        return self.op(e.op, [self.expr(e.operand)], e.span)

    def e_Binary(self, e: ast.Binary) -> ir.Expr:
        return self.op(e.op, [self.expr(e.left), self.expr(e.right)], e.span)

    def e_Cond(self, e: ast.Cond) -> ir.Expr:
        test, a, b = self.expr(e.test), self.expr(e.then), self.expr(e.orelse)
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

    def e_ArrayLit(self, e: ast.ArrayLit) -> ir.Expr:
        items = []
        for item in e.items:  # a loop, not a comprehension: one frame less per level
            items.append(self.expr(item))
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

    def e_Index(self, e: ast.Index) -> ir.Expr:
        target = self.expr(e.target)
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
                lo = self.expr(item.lo) if item.lo is not None else None
                hi = self.expr(item.hi) if item.hi is not None else None
                for b in (lo, hi):
                    if b is not None and b.ty != INT:
                        raise error("E0201", "slice bounds must be integers", b.span)
                lo_d = self.static(lo) if lo is not None else 1
                hi_d = self.static(hi) if hi is not None else dim
                if isinstance(lo_d, int) and isinstance(hi_d, int):
                    count = hi_d - lo_d + 1
                    size: Dim = count
                    if count < 0 or lo_d < 1 or (isinstance(dim, int) and hi_d > dim):
                        raise error(
                            "E0202", f"slice {lo_d}:{hi_d} is out of range 1:{dim}", item.span
                        )
                elif lo_d == 1 and hi_d is not None:
                    size = hi_d
                elif lo_d is not None and hi_d is not None:
                    size = f"{hi_d} - {lo_d} + 1"
                else:
                    size = None
                shape.append(size)
                items.append(ir.Slice(lo, hi))
            else:
                idx = self.expr(item)
                if idx.ty.base != "int":
                    raise error("E0201", f"an index must be an integer, not {idx.ty}", idx.span)
                d = self.static(idx)
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

    def e_Attr(self, e: ast.Attr) -> ir.Expr:
        target = self.expr(e.target)
        sym = self.scope.lookup(target.name) if isinstance(target, ir.Ref) else None
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

    def e_Call(self, e: ast.Call) -> ir.Expr:
        from fpl.compiler.passes.calls import check_call

        return check_call(self, e)

    def e_Implicit(self, e: ast.Implicit) -> ir.Expr:
        from fpl.compiler.passes.calls import check_implicit

        return check_implicit(self, e)

    # ---- user functions ----
    def instantiate(self, name: str, tys: list[Ty], span: Span) -> ir.Lambda:
        fn = self.functions[name]
        if len(tys) != len(fn.params):
            raise error(
                "E0203",
                f"`{name}` takes {len(fn.params)} arguments, got {len(tys)}",
                span,
                help=f"`{name}` is defined at {fn.span.location}",
            )
        key = (name, tuple(tys), self.in_gen)
        if key in self.instances:
            return self.instances[key]
        if name in self.calling:
            cycle = " -> ".join(f"`{n}`" for n in [*self.calling[self.calling.index(name) :], name])
            raise error(
                "E0201",
                f"`{name}` calls itself ({cycle}); functions cannot be recursive",
                span,
                help="write the recursion with `scan`/`fold`, or as a `fix` point",
            )
        self.calling.append(name)
        self.depth += CALL_DEPTH
        try:
            return self._instantiate(fn, key, tys, span)
        finally:
            self.depth -= CALL_DEPTH
            self.calling.pop()

    def _instantiate(
        self, fn: ast.FnDef, key: tuple[str, tuple[Ty, ...], bool], tys: list[Ty], span: Span
    ) -> ir.Lambda:
        name = fn.name
        inner = Scope(parent=self._global_scope())
        for p, ty in zip(fn.params, tys):
            if p.type is not None:
                want, _ = self.type_expr(p.type, allow_params=True)
                if want.rank != ty.rank or (want.base == "int" and ty.base != "int"):
                    raise error(
                        "E0201", f"argument `{p.name}` of `{name}` must be {want}, not {ty}", span
                    )
                for a, b in zip(want.shape, ty.shape):
                    if dims_equal(a, b) is False:
                        raise error(
                            "E0202",
                            f"argument `{p.name}` of `{name}` must be {want}, not {ty}",
                            span,
                        )
            inner.names[p.name] = Symbol("arg", ty, p.span)
        saved = self.scope
        self.scope = inner
        try:
            lets = []
            for let in fn.body:
                value = self.expr(let.value)
                if let.name in inner.names:
                    raise error("E0105", f"`{let.name}` is declared twice", let.span)
                inner.names[let.name] = Symbol(
                    "local", value.ty, let.span, isinstance(value, ir.Implicit)
                )
                lets.append((let.name, value))
            result = self.expr(fn.result)
        except FplError as exc:
            if span.line and fn.span.line:
                note = error(
                    "E0201",
                    f"in a call of `{name}` with argument types ({', '.join(map(str, tys))})",
                    span,
                ).diagnostics[0]
                raise FplError([*exc.diagnostics, note]) from None
            raise
        finally:
            self.scope = saved
        if fn.returns is not None:
            want, _ = self.type_expr(fn.returns, allow_params=True)
            if want.rank != result.ty.rank:
                raise error(
                    "E0201", f"`{name}` returns {result.ty}, declared {want}", fn.result.span
                )
        lam = ir.Lambda(
            name, tuple(p.name for p in fn.params), tuple(lets), result, result.ty, fn.span
        )
        self.instances[key] = lam
        return lam

    def _global_scope(self) -> Scope:
        scope = self.scope
        while scope.parent is not None:
            scope = scope.parent
        return scope


def _constraint_kind(kind: str) -> ir.ConstraintKind:
    """A distribution's (continuous) support kind as a constraint kind."""
    for known in ir.CONSTRAINT_KINDS:
        if kind == known:
            return known
    raise InternalError(f"support `{kind}` is not a constraint kind")


def _implicit(value: ir.Expr) -> bool:
    """Whether a name bound to ``value`` has ``.residual`` and ``.iterations``."""
    return isinstance(value, ir.Implicit)


def _op_text(name: str) -> str:
    """How the user wrote ``name``: an operator's spelling (from its registry entry)."""
    entry = registry().functions.get(name)
    return entry.spelling if entry is not None and entry.spelling else name


def check(
    prog: ast.Program, sizes: dict[str, int] | None = None, name: str = "model"
) -> ir.Program:
    """Resolve names and check types and shapes; ``sizes`` are the data integers."""
    return Checker(registry(), sizes).program(prog, name)


__all__ = ["check", "Checker"]
