"""The polynomial degree of an IR expression in an implicit node's unknown.

A node that names no solver and whose residual is affine in the unknown is solved by one
direct linear solve (compiler/implicit.py).  The test is on the IR, exact and
conservative: ``degree`` bounds the polynomial degree of an expression in the unknown
(0: free of it, 1: affine, 2: quadratic, ``NONPOLY``: anything else).  ``fix``/``root``
qualify with degree <= 1, ``argmin`` with an objective of degree <= 2 (its gradient is
then affine).

How a library function combines the degrees ``d_i`` of its arguments is its registry
entry's ``linearity`` (stdlib/registry.py), not a list of names here:

=================  ==========================================  ===========================
linearity          meaning                                     degree
=================  ==========================================  ===========================
``sum``            a linear combination of its arguments       max d_i
``same``           a linear map of its argument(s)             max d_i
``product``        bilinear (``a * b``, ``a @ b``)             d_1 + d_2
``double``         a quadratic form of its argument            2 d_1
``quotient``       linear in the first, divides by the second  d_1 if d_2 = 0
``solve``          ``A \\ b``: linear in the second              d_2 if d_1 = 0
``quad_form``      ``b' A b``                                  d_1 + 2 d_2
``power``          ``a ^ p``, p a literal integer in 0..2        p d_1
``None``           anything else                               ``NONPOLY`` unless all d_i = 0
=================  ==========================================  ===========================

Invariant (checked by tests/compiler/test_implicit_affine.py on affine and non-affine
bodies): a function without a linearity is ``NONPOLY`` as soon as an argument depends on
the unknown, so a misdetection can only miss an affine body (which is then iterated),
never call a nonlinear one affine.
"""

from __future__ import annotations

from typing import assert_never

from fpl.compiler import ir
from fpl.stdlib.registry import registry

NONPOLY = 1 << 20


def degree(e: ir.Expr, var: str, local: dict[str, int] | None = None) -> int:
    """An upper bound of the polynomial degree of ``e`` in the unknown ``var``; ``local``
    maps a function's parameters and lets (which shadow the unknown) to their degrees."""
    local = local or {}
    match e:
        case ir.Ref():
            if e.name in local:
                return local[e.name]
            return 1 if e.name == var else 0
        case ir.Const() | ir.Attr():
            return 0
        case ir.Op():
            return _op_degree(e, [degree(a, var, local) for a in e.args])
        case ir.Cond():
            if degree(e.test, var, local) != 0:
                return NONPOLY
            return max(degree(e.then, var, local), degree(e.orelse, var, local))
        case ir.Index():
            bounds: list[ir.Expr | None] = []
            for item in e.items:
                bounds.extend((item.lo, item.hi) if isinstance(item, ir.Slice) else (item,))
            if any(b is not None and degree(b, var, local) != 0 for b in bounds):
                return NONPOLY
            return degree(e.target, var, local)
        case ir.ArrayLit():
            return max((degree(i, var, local) for i in e.items), default=0)
        case ir.Apply(fn=ir.Lambda() as fn):
            inner = dict(zip(fn.params, (degree(a, var, local) for a in e.args)))
            for name, value in fn.lets:
                inner[name] = degree(value, var, inner)
            return degree(fn.result, var, inner)
        case ir.Apply() | ir.HigherOrder() | ir.LogProb() | ir.Rng() | ir.Implicit():
            # derivatives, map/scan/fold, distributions, nested nodes: affine only if
            # they do not read the unknown at all
            names = {var} | {k for k, d in local.items() if d}
            hit = any(isinstance(x, ir.Ref) and x.name in names for x in ir.walk(e))
            return NONPOLY if hit else 0
        case _:
            assert_never(e)


def _op_degree(e: ir.Op, ds: list[int]) -> int:
    if max(ds, default=0) == 0:
        return 0
    entry = registry().functions.get(e.name)
    linearity = entry.linearity if entry is not None else None
    match linearity:
        case "sum" | "same":
            return max(ds)
        case "product":
            return min(NONPOLY, sum(ds))
        case "double":
            return min(NONPOLY, 2 * ds[0])
        case "quotient":
            return ds[0] if ds[1] == 0 else NONPOLY
        case "solve":
            return ds[1] if ds[0] == 0 else NONPOLY
        case "quad_form":
            return min(NONPOLY, ds[0] + 2 * ds[1])
        case "power":
            p = e.args[1]
            if ds[1] == 0 and isinstance(p, ir.Const):
                if isinstance(p.value, int) and 0 <= p.value <= 2:
                    return min(NONPOLY, ds[0] * p.value)
            return NONPOLY
        case None:
            return NONPOLY
        case _:
            assert_never(linearity)


def is_affine(node: ir.Implicit) -> bool:
    """Whether the residual of ``node`` is affine in its unknown (decided on the IR)."""
    return degree(node.body, node.var) <= (2 if node.kind == "argmin" else 1)


__all__ = ["NONPOLY", "degree", "is_affine"]
