"""Distributions: a ``~`` statement's or a prior's distribution call checked against its
registry entry (argument count, ranks, batch and event shapes) and against the value it
is a distribution of."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpl.compiler import ir
from fpl.dsl import ast
from fpl.dsl.diagnostics import did_you_mean, error
from fpl.stdlib.types import RuleError, Ty, broadcast, dim_text, dims_equal

if TYPE_CHECKING:
    from fpl.compiler.passes.check import Checker


def distribution(
    c: Checker, call: ast.Call, value: ir.Expr | None = None, value_ty: Ty | None = None
):
    """A distribution call (``normal(mu, sigma)``) as a typed ``ir.Dist``, of ``value``
    (or a value of type ``value_ty``) where one is given."""
    if not isinstance(call.func, ast.Name):
        raise error("E0103", "expected a distribution name", call.func.span)
    name = call.func.id
    entry = c.reg.distributions.get(name)
    if entry is None:
        hint = did_you_mean(name, c.reg.distributions)
        label = "not a distribution"
        if name in c.reg.functions or name in c.functions:
            label = "a function, not a distribution"
        raise error(
            "E0103", f"unknown distribution `{name}`", call.func.span, label=label, help=hint
        )
    if call.kwargs:
        raise error("E0203", "distributions take positional arguments", call.kwargs[0].span)
    args = tuple([c.expr(a) for a in call.args])
    return dist_type(c, entry, args, call.span, call.func.span, value, value_ty)


def dist_type(c: Checker, entry, args, span, name_span, value=None, value_ty=None) -> ir.Dist:
    """The ``ir.Dist`` of registry ``entry`` at checked ``args``: their count and ranks,
    batch shapes broadcast, the event shape, and the value's type against them.

    The draw type is a function of the distribution, the argument types and the value's
    type alone, so it is found once per such key and remembered in ``c.dist_types``
    (a key is remembered only when its checks passed: errors are found and located
    exactly as without the table)."""
    target = value.ty if value is not None else value_ty
    key = (entry.name, tuple([a.ty for a in args]), target)
    ty = c.dist_types.get(key)
    if ty is None:
        ty = _draw_type(entry, args, span, value, value_ty)
        c.dist_types[key] = ty
    return ir.Dist(entry.name, args, ty, span)


def _draw_type(entry, args, span, value, value_ty) -> Ty:
    """``dist_type``'s checks: the type of one draw of ``entry`` at ``args``."""
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
                f"argument `{entry.params[i]}` of `{entry.name}` must have rank {r}, not {a.ty}",
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
            known.shape[-entry.event_rank :] if known is not None else (None,) * entry.event_rank
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
    return ty


__all__ = ["distribution", "dist_type"]
