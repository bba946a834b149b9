"""Integer data used as indices, range-checked when the data are bound (issue 11).

An ``int`` data array written as an index, ``a[g]`` with ``data g: int[N]``, must hold
values in ``1 .. n`` where ``n`` is the size of the indexed axis of ``a``.  JAX does not
check indices (it clamps them), so an out-of-range value would either make every
initial point fail (a bare E0402) or silently read another element.  This pass checks
every such field once, at bind, against every axis it indexes, and names the field
(E0307, at its declaration, with the index's location as a note).

What is checked: an index item that is the data field itself (``a[g]``, ``X[g, 2]``,
inside function bodies too); an index computed from data (``a[g[n]]``, ``a[g + 1]``)
is not, since only part of the field may be used.  Checked against the concrete sizes
of the bound program.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from fpl.compiler import ir
from fpl.dsl.diagnostics import Diagnostic, FplError, Note


def _nodes(program: ir.Program) -> Iterator[ir.Node]:
    """Every node of ``program`` once (a function body once, however often it is called:
    ``ir.walk`` would visit a body per use, exponentially many for nested calls)."""
    seen: set[int] = set()
    stack: list[ir.Node] = list(reversed(program.statements))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(reversed(ir.children(node)))


def check_index_data(program: ir.Program, data: Mapping[str, Any]) -> None:
    """E0307 unless every ``int`` data field used directly as an index holds values
    within the indexed axis (``1 .. n``)."""
    decls = {d.name: d for d in program.data}
    for node in _nodes(program):
        if not isinstance(node, ir.Index):
            continue
        shape = node.target.ty.shape
        for axis, item in enumerate(node.items):
            if not (isinstance(item, ir.Ref) and item.kind == "data" and item.name in data):
                continue
            size = shape[axis] if axis < len(shape) else None
            if not isinstance(size, int) or item.ty.base != "int":
                continue
            values = np.asarray(data[item.name])
            if values.size == 0 or values.dtype.kind not in "iu":
                continue
            bad = np.flatnonzero((values.ravel() < 1) | (values.ravel() > size))
            if bad.size:
                raise _out_of_range(item, decls.get(item.name), values, int(bad[0]), size, node)


def _out_of_range(item: ir.Ref, decl, values: np.ndarray, flat: int, size: int, node: ir.Index):
    where = np.unravel_index(flat, values.shape) if values.ndim else ()
    at = f"[{', '.join(str(i + 1) for i in where)}]" if values.ndim else ""
    value = int(values.ravel()[flat])
    message = (
        f"data field `{item.name}` is used as an index into an axis of size {size} but "
        f"`{item.name}{at}` is {value}"
    )
    return FplError(
        Diagnostic(
            "E0307",
            message,
            decl.span if decl is not None else node.span,
            label=f"indices must be 1 .. {size}",
            help="FPL indices start at 1; fix the data or the size of the indexed value",
            notes=(Note(node.span, "used as an index here"),),
        )
    )


__all__ = ["check_index_data"]
