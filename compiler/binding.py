"""Binding data to a checked model: presence, base type, rank, sizes (inferred or
checked), every declared constraint, NaNs — each failure names the field and points at
its declaration — and the initial values of weights.

Data constraints are checked with the very constraint objects the transforms use
(``fpl.compiler.transforms.numpyro_constraint``), so a ``simplex[3]`` data field is held
to the same support a ``simplex[3]`` param is mapped onto: bounds element by element,
structured types (simplex, ordered, positive_ordered, cholesky_corr, corr_matrix,
cov_matrix, cholesky_cov) event by event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fpl.compiler import ir
from fpl.compiler.passes.bind_checks import _where as _where
from fpl.compiler.passes.bind_checks import (
    check_data_constraints,
    check_declared_bounds,
    check_integer_divisors,
    check_structured_sizes,
)
from fpl.compiler.passes.check import check
from fpl.compiler.passes.indices import check_index_data
from fpl.dsl import ast
from fpl.dsl.diagnostics import error
from fpl.stdlib.types import INT, Ty


@dataclass(frozen=True)
class Bound:
    """A model with its data bound: the IR at concrete sizes, the data and weights."""

    program: ir.Program
    static: dict[str, int]  # integer scalars: sizes, known at trace time
    arrays: dict[str, np.ndarray]  # everything else: passed to compiled code as arguments
    weights: dict[str, np.ndarray]


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


def _check_int64(d: ir.DataDecl, arr: np.ndarray) -> None:
    """An int field holds integers within int64 (E0303 naming the first element that
    is not: a fraction, a non-finite value, or one that would wrap when cast)."""
    if arr.dtype.kind == "f":
        # 2^63 is exactly representable; every float below it in magnitude fits int64
        bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) >= 2.0**63)
        bad &= ~(arr == -(2.0**63))
    elif arr.dtype.kind == "u":
        bad = arr > np.uint64(2**63 - 1)
    else:
        return
    if not np.any(bad):
        return
    idx = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
    value = arr[idx]
    if arr.dtype.kind == "f" and not (np.isfinite(value) and value == np.round(value)):
        raise error(
            "E0303", f"data field `{d.name}` is declared int but holds non-integer values", d.span
        )
    raise error(
        "E0303",
        f"data field `{d.name}{_where(idx)}` is declared int but holds {float(value):.6g}, "
        "outside the 64-bit integer range",
        d.span,
    )


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
            _check_int64(d, arr)
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
    computed = size_lets(symbolic, sizes, out, inferred_from)
    concrete = check(program_ast, {**sizes, **computed}, symbolic.name)
    concrete = _fix_size_lets(concrete, computed)
    for d in concrete.data:
        arr = np.asarray(out[d.name])
        if tuple(arr.shape) != tuple(d.ty.shape):
            want = "(" + ", ".join(str(x) for x in d.ty.shape) + ")"
            raise error(
                "E0302",
                f"data field `{d.name}` has shape {tuple(arr.shape)} but the model needs {want}",
                d.span,
            )
    check_data_constraints(concrete, out)
    check_declared_bounds(concrete, out)
    check_structured_sizes(concrete)
    return concrete, out


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _symbolic_names(program: ir.Program) -> set[str]:
    """The names the symbolic sizes of ``program`` are written in (``"K - 1"``: K)."""
    names: set[str] = set()
    for stmt in program.statements:
        for node in ir.walk(stmt):
            for dim in getattr(getattr(node, "ty", None), "shape", ()):
                if isinstance(dim, str):
                    names.update(_IDENTIFIER.findall(dim))
    return names


def size_lets(
    symbolic: ir.Program,
    sizes: Mapping[str, int],
    data: Mapping[str, Any],
    inferred_from: Mapping[str, str],
) -> dict[str, int]:
    """The integer `let`s of data only that the model uses as sizes (``let K = max(y)``
    then ``real[K - 1]``), computed from the data once, before the model is checked at
    concrete sizes: name -> value.  The lets they read are evaluated with them, in
    program order.  A size that is also the length of a data array must agree with it
    (E0302); a ``reject`` reached here is its located error (E0413)."""
    lets = {s.name: s for s in symbolic.statements if isinstance(s, ir.Let)}
    wanted = [n for n in _symbolic_names(symbolic) if n in lets and lets[n].value.ty == INT]
    if not wanted:
        return {}
    needed: set[str] = set()
    stack = list(wanted)
    while stack:  # the lets the wanted ones read, transitively
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        for node in ir.walk(lets[name].value):
            if isinstance(node, ir.Ref) and node.kind == "local" and node.name in lets:
                stack.append(node.name)
    import jax

    from fpl.compiler.lower import Evaluator
    from fpl.compiler.reporting import REJECT_CODE
    from fpl.stdlib.registry import registry

    out: dict[str, int] = {}
    with jax.enable_x64(True):
        ev = Evaluator(registry(), {**data, **sizes})
        ev.reject_code = REJECT_CODE  # a `reject` reached here is its located error
        for stmt in symbolic.statements:
            if not (isinstance(stmt, ir.Let) and stmt.name in needed):
                continue
            ev.env[stmt.name] = ev.expr(stmt.value)
            if stmt.name not in wanted:
                continue
            value = int(np.asarray(ev.env[stmt.name]))
            if stmt.name in sizes and sizes[stmt.name] != value:
                raise error(
                    "E0302",
                    f"`{stmt.name}` is {value} but `{inferred_from[stmt.name]}` has length "
                    f"{sizes[stmt.name]}",
                    stmt.span,
                )
            out[stmt.name] = value
    return out


def _fix_size_lets(program: ir.Program, computed: Mapping[str, int]) -> ir.Program:
    """``program`` with each size `let` replaced by its value: a Python integer when the
    model is traced, as a data integer is (a traced one could not give a shape)."""
    if not computed:
        return program
    statements = tuple(
        replace(s, value=ir.Const(computed[s.name], INT, s.value.span))
        if isinstance(s, ir.Let) and s.name in computed
        else s
        for s in program.statements
    )
    return replace(program, statements=statements)


def initial_weights(program: ir.Program, data: Mapping[str, Any], given, seed: int = 0):
    """Weights by name: those ``given``, the rest drawn from their ``init`` (every element
    independently) with the key ``seed``, or evaluated where the init is an expression."""
    import jax
    import jax.numpy as jnp

    from fpl.compiler.lower import Evaluator
    from fpl.stdlib.registry import registry

    given = dict(given or {})
    out: dict[str, Any] = {}
    ev = Evaluator(registry(), dict(data), jax.random.PRNGKey(seed))
    for w in program.weights:
        if w.name in given:
            out[w.name] = jnp.asarray(given[w.name], dtype=jnp.result_type(float))
            ev.env[w.name] = out[w.name]
            continue
        shape = tuple(int(d) for d in w.ty.shape if not (isinstance(d, str) or d is None))
        if len(shape) != len(w.ty.shape):
            raise AssertionError(f"the sizes of weight `{w.name}` are unresolved")
        if isinstance(w.init, ir.Dist):
            # an independent draw for every element: `init normal(0, 0.1)` on a
            # real[D, H] is D*H draws, not one draw copied (that would start every
            # hidden unit identical, and symmetric units stay identical in training)
            _, d = ev.dist(w.init)
            dshape = tuple(d.batch_shape) + tuple(d.event_shape)
            lead = len(shape) - len(dshape)
            if lead < 0 or jnp.broadcast_shapes(shape[lead:], dshape) != shape[lead:]:
                raise error(
                    "E0202",
                    f"the init of `{w.name}` has shape {dshape}, the weight {shape}",
                    w.span,
                )
            value = ev.draw(w.init, shape[:lead])
        else:
            value = ev.expr(w.init)
        out[w.name] = np.asarray(jnp.broadcast_to(jnp.asarray(value, float), shape))
        ev.env[w.name] = out[w.name]
    return out


def weight_transforms(program: ir.Program, env: Mapping[str, Any]):
    """``(to_raw, from_raw)`` for the weights of a bound ``program`` (``env``: its data):
    constrained weights move on the unconstrained scale of their constraint (no
    Jacobian: weights are points, not random)."""
    from fpl.compiler import transforms
    from fpl.compiler.lower import Evaluator
    from fpl.stdlib.registry import registry

    ev = Evaluator(registry(), dict(env))
    bounds = {}
    for w in program.weights:
        c = w.constraint
        if c.kind != "real":
            lo = ev.expr(c.lower) if c.lower is not None else None
            hi = ev.expr(c.upper) if c.upper is not None else None
            bounds[w.name] = (c.kind, lo, hi)

    def to_raw(weights):
        return {
            k: (transforms.unconstrain(bounds[k][0], v, *bounds[k][1:]) if k in bounds else v)
            for k, v in weights.items()
        }

    def from_raw(raw):
        return {
            k: (transforms.constrain(bounds[k][0], v, *bounds[k][1:])[0] if k in bounds else v)
            for k, v in raw.items()
        }

    return to_raw, from_raw


def bind(
    program_ast: ast.Program,
    symbolic: ir.Program,
    data: Mapping[str, Any],
    weights: Mapping[str, Any] | None = None,
    *,
    weight_seed: int = 0,
) -> Bound:
    """Check and bind data; weights not given are drawn from their ``init`` with
    ``weight_seed``."""
    program, values = bind_data(program_ast, symbolic, data, symbolic.name)
    check_index_data(program, values)  # E0307: `a[g]` with g outside 1..size(a)
    check_integer_divisors(program, values)  # E0208: `5 % N` with N = 0
    static = {k: v for k, v in values.items() if isinstance(v, int)}
    arrays = {k: v for k, v in values.items() if not isinstance(v, int)}
    return Bound(program, static, arrays, initial_weights(program, values, weights, weight_seed))


__all__ = [
    "Bound",
    "bind",
    "bind_data",
    "check_data_constraints",
    "check_declared_bounds",
    "check_integer_divisors",
    "check_structured_sizes",
    "initial_weights",
    "weight_transforms",
]
