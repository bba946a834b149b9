"""Binding data to a model: presence, base type, rank, sizes (inferred or checked),
declared constraints and NaNs — every failure names the field and points at its
declaration."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fpl.compiler import ir
from fpl.compiler.passes.check import check
from fpl.dsl import ast
from fpl.dsl.diagnostics import error
from fpl.stdlib.types import Ty


def read_data(path: str | Path) -> dict[str, Any]:
    """Read a CmdStan-style JSON data file."""
    from fpl.runtime.jsondata import read_json_data

    return read_json_data(str(path))


def _as_array(name: str, value: Any, decl: ir.DataDecl) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception:
        raise error("E0303", f"data field `{name}` is not numeric", decl.span) from None
    if arr.dtype == object:
        raise error("E0302", f"data field `{name}` is not a rectangular array", decl.span)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise error("E0303", f"data field `{name}` is not numeric ({arr.dtype})", decl.span)
    return arr


def bind_data(
    program_ast: ast.Program, symbolic: ir.Program, raw: Mapping[str, Any], name: str
) -> tuple[ir.Program, dict[str, Any]]:
    """Check ``raw`` against the data declarations; return the program re-checked with
    concrete sizes and the data as NumPy arrays / Python ints."""
    decls = symbolic.data
    arrays: dict[str, np.ndarray] = {}
    for d in decls:
        if d.name in raw:
            arrays[d.name] = _as_array(d.name, raw[d.name], d)
    # infer sizes that are lengths of data arrays (N from x: real[N])
    sizes: dict[str, int] = {}
    inferred_from: dict[str, str] = {}
    for d in decls:
        if d.name not in arrays:
            continue
        arr = arrays[d.name]
        if arr.ndim != d.ty.rank:  # ranks first: a size is only inferred from a right-rank array
            raise error(
                "E0302",
                f"data field `{d.name}` has rank {arr.ndim} (shape {arr.shape}) but is declared "
                f"{d.ty}",
                d.span,
            )
        for axis, dim in enumerate(d.ty.shape):
            if isinstance(dim, str) and dim.isidentifier() and axis < arr.ndim:
                if dim not in inferred_from:
                    sizes.setdefault(dim, int(arr.shape[axis]))
                    inferred_from[dim] = d.name
    out: dict[str, Any] = {}
    for d in decls:
        if d.name not in arrays:
            if d.ty == Ty("int") and d.name in sizes:
                arrays[d.name] = np.asarray(sizes[d.name])
            else:
                raise error(
                    "E0301",
                    f"data field `{d.name}` is missing",
                    d.span,
                    label="declared here",
                    help=f'add `"{d.name}": ...` to the data',
                )
        arr = arrays[d.name]
        if arr.ndim != d.ty.rank:
            raise error(
                "E0302",
                f"data field `{d.name}` has rank {arr.ndim} (shape {arr.shape}) but is declared "
                f"{d.ty}",
                d.span,
            )
        if d.ty.base == "int":
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                    raise error(
                        "E0303",
                        f"data field `{d.name}` is declared int but holds non-integer values",
                        d.span,
                    )
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(np.float64)
            if not np.all(np.isfinite(arr)):
                first = tuple(int(i) + 1 for i in np.argwhere(~np.isfinite(arr))[0])
                where = f"[{', '.join(map(str, first))}]" if first else ""
                bad = arr[tuple(i - 1 for i in first)] if first else arr
                what = "NaN" if np.isnan(bad) else "infinite"
                raise error(
                    "E0306",
                    f"data field `{d.name}{where}` is {what}",
                    d.span,
                    help="data must be finite numbers; drop or impute missing values",
                )
        if d.ty.rank == 0 and d.ty.base == "int":
            value = int(arr)
            if d.name in sizes and sizes[d.name] != value:
                raise error(
                    "E0302",
                    f"data field `{d.name}` is {value} but `{inferred_from[d.name]}` has "
                    f"length {sizes[d.name]}",
                    d.span,
                )
            sizes[d.name] = value
            out[d.name] = value
        else:
            out[d.name] = arr
    concrete = check(program_ast, sizes, symbolic.name)
    for d in concrete.data:
        arr = np.asarray(out[d.name])
        if tuple(arr.shape) != tuple(d.ty.shape):
            want = "(" + ", ".join(str(x) for x in d.ty.shape) + ")"
            raise error(
                "E0302",
                f"data field `{d.name}` has shape {tuple(arr.shape)} but the model needs {want}",
                d.span,
            )
    _check_constraints(concrete, out)
    return concrete, out


def _check_constraints(program: ir.Program, data: dict[str, Any]) -> None:
    from fpl.compiler.lower import Evaluator
    from fpl.stdlib.registry import registry

    ev = Evaluator(registry(), dict(data))
    for d in program.data:
        c = d.constraint
        if c.kind == "real":
            continue
        arr = np.asarray(data[d.name])
        for side, bound_expr in (("lower", c.lower), ("upper", c.upper)):
            if bound_expr is None:
                continue
            bound = np.asarray(ev.expr(bound_expr))
            bad = arr < bound if side == "lower" else arr > bound
            bad = np.broadcast_to(bad, arr.shape)
            if np.any(bad):
                idx = tuple(int(i) + 1 for i in np.argwhere(bad)[0])
                where = f"[{', '.join(map(str, idx))}]" if idx else ""
                value = arr[tuple(i - 1 for i in idx)] if idx else arr
                b = np.broadcast_to(bound, arr.shape)[tuple(i - 1 for i in idx)] if idx else bound
                raise error(
                    "E0304",
                    f"data field `{d.name}{where}` = {value} violates its constraint "
                    f"{side}={float(b):g}",
                    d.span,
                )
