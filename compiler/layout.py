"""What a bound model is, before what it computes: ``ModelLayout``, the frozen record of a
model bound to its data (the checked program at the data's sizes, data, weights,
params, implicit nodes, the data-only values) and the layout of the flat unconstrained
vector ``theta`` (each param's unconstrained array raveled row-major and concatenated in
declaration order): names, shapes and counts in BridgeStan's terms, ``ravel`` /
``unravel``, the checks that given params and flat vectors have their shapes, and how
the functions are called (``_compiled``: one compiled program per function and static
option, see ``fpl.compiler.compiled``).  Its functions are
``fpl.compiler.compiled.CompiledModel``'s, a subclass adding no fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.compiler import ir, reporting
from fpl.compiler.analyses import bound_shape, component_names
from fpl.compiler.passes.hoist import Hoisted
from fpl.compiler.pointwise import Observation
from fpl.compiler.structure import NodeInfo, ParamInfo
from fpl.dsl.diagnostics import error


@dataclass(frozen=True, eq=False)
class ModelLayout:
    """A model bound to its data and the layout of ``theta`` over its params (see the
    module docstring); built as a :class:`~fpl.compiler.compiled.CompiledModel`."""

    name: str
    program: ir.Program  # the checked IR at the data's sizes (printable)
    static: Mapping[str, int]  # integer scalar data: sizes, known at trace time
    data: Mapping[str, np.ndarray]  # the data arrays (operands of compiled code)
    weights: Mapping[str, np.ndarray]  # current weight values
    params: tuple[ParamInfo, ...]
    nodes: tuple[NodeInfo, ...]
    hoisted: Hoisted  # ``program`` with its data-only computations split off (evaluated)
    derived: Mapping[str, np.ndarray]  # their values at ``data``
    observations: tuple[Observation, ...]  # the ``~`` of data (pointwise_log_likelihood)

    # ---- how the functions are called: compiled, once per static option ------------
    def _compiled(self, name: str, static: tuple, impl: Callable, operands: tuple, data, weights):
        """``impl(*operands, data, weights)``: as one compiled program cached per
        ``(name, *static)`` when every value is concrete and no solver-events scope is
        open (see ``fpl.compiler.compiled``), else ``impl`` itself, traced into the
        caller's program.  ``impl`` depends on nothing but its arguments and ``static``."""
        import jax

        if not self._plain(operands, data, weights):
            return impl(*operands, data, weights)
        cache = self.__dict__.setdefault("_jitted", {})  # per object: not a field
        key = (name, *static)
        if key not in cache:
            cache[key] = jax.jit(impl)
        operands = tuple(
            x if x is None or isinstance(x, (jax.Array, np.ndarray, Mapping)) else np.asarray(x)
            for x in operands
        )
        # prepare_data is CompiledModel's (the subclass every layout is)
        data = self.prepare_data() if data is None else dict(data)  # type: ignore[attr-defined]
        return cache[key](*operands, data, dict(self.weights if weights is None else weights))

    def _plain(self, operands: tuple, data, weights) -> bool:
        """Whether a call may run compiled: no traced value, data that override no size
        (``static``: known at trace time), arrays and numbers only, and no solver-events
        or keep-unconverged scope (what traced code reports is decided at trace time)."""
        import jax

        if reporting.current() is not None or reporting.keep_unconverged():
            return False
        if data is not None and any(name in self.static for name in data):
            return False
        plain = (jax.Array, np.ndarray, np.generic, int, float, bool)
        for leaf in jax.tree_util.tree_leaves((operands, data, weights)):
            if isinstance(leaf, jax.core.Tracer) or not isinstance(leaf, plain):
                return False
        return True

    # ---- structure ------------------------------------------------------------------
    def param_unc_num(self) -> int:
        """The length of ``theta``."""
        return sum(p.unc_size for p in self.params)

    def param_num(self, include_tp: bool = False, include_gq: bool = False) -> int:
        return len(self.param_names(include_tp, include_gq))

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Constrained shapes by param name."""
        return {p.name: p.shape for p in self.params}

    @property
    def param_unc_shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.name: p.unc_shape for p in self.params}

    @property
    def out_names(self) -> list[str]:
        return [o.name for o in self.program.outs]

    @property
    def gen_names(self) -> list[str]:
        return [g.name for g in self.program.gens]

    @property
    def weight_names(self) -> list[str]:
        return [w.name for w in self.program.weights]

    @property
    def data_names(self) -> list[str]:
        return [d.name for d in self.program.data]

    def _shapes_of(self, include_tp: bool, include_gq: bool) -> list[tuple[str, tuple]]:
        out = [(p.name, p.shape) for p in self.params]
        if include_tp:
            out += [(o.name, bound_shape(o.value.ty)) for o in self.program.outs]
        if include_gq:
            out += [
                (g.name, bound_shape(g.dist.ty if isinstance(g, ir.GenDraw) else g.value.ty))
                for g in self.program.gens
            ]
        return out

    def param_names(self, include_tp: bool = False, include_gq: bool = False) -> list[str]:
        """Constrained component names (``theta.2``; matrices column-major, as Stan)."""
        names: list[str] = []
        for name, shape in self._shapes_of(include_tp, include_gq):
            names += component_names(name, shape)
        return names

    def param_unc_names(self) -> list[str]:
        """The names of ``theta``'s components (row-major within each param)."""
        names: list[str] = []
        for p in self.params:
            if not p.unc_shape:
                names.append(p.name)
                continue
            for index in np.ndindex(*p.unc_shape):
                names.append(p.name + "".join(f".{i + 1}" for i in index))
        return names

    # ---- flat <-> by name ---------------------------------------------------------
    def unravel(self, theta) -> dict[str, Any]:
        """``theta`` -> ``{param: unconstrained array}`` (works on traced values)."""
        import jax.numpy as jnp

        theta = jnp.asarray(theta)
        return {
            p.name: jnp.reshape(theta[p.offset : p.offset + p.unc_size], p.unc_shape)
            for p in self.params
        }

    def ravel(self, unconstrained: Mapping[str, Any]):
        """``{param: unconstrained array}`` -> ``theta``."""
        import jax.numpy as jnp

        if not self.params:
            return jnp.zeros((0,), jnp.result_type(float))
        return jnp.concatenate([jnp.ravel(jnp.asarray(unconstrained[p.name])) for p in self.params])

    def check_theta(self, theta, what: str = "theta", size: int | None = None) -> None:
        """``theta`` (or another flat vector: ``what``, of ``size`` components, default
        the length of ``theta``) is a vector of that length (E0405 otherwise: the check
        before a compiled call, whose shape error would be JAX's).  A mapping (unconstrained
        values by name) passes; traced values are checked by their shapes."""
        if isinstance(theta, Mapping):
            return
        n = self.param_unc_num() if size is None else size
        shape = tuple(np.shape(theta))
        if shape != (n,):
            raise error(
                "E0405",
                f"`{what}` has shape {shape}, the model needs a vector of {n} components",
                None,
                help="`param_unc_names()` names the components of theta, `param_names()` "
                "those of the constrained values",
            )

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Every param present with its shape (E0405 naming the first that is not)."""
        missing = [p.name for p in self.params if p.name not in params]
        if missing:
            raise error(
                "E0405",
                f"missing value for param `{missing[0]}`",
                None,
                help="params are: " + ", ".join(p.name for p in self.params),
            )
        for p in self.params:
            shape = tuple(np.shape(params[p.name]))
            if shape != tuple(p.shape):
                raise error(
                    "E0405",
                    f"param `{p.name}` has shape {shape}, the model needs {tuple(p.shape)}",
                    p.span,
                )


__all__ = ["ModelLayout"]
