"""What a bound model is, before what it computes: ``ModelLayout``, the frozen record of a
model bound to its data (the checked program at the data's sizes, data, weights,
params, implicit nodes, the data-only values) and the layout of the flat unconstrained
vector ``theta`` (each param's unconstrained array raveled row-major and concatenated in
declaration order): names, shapes and counts in BridgeStan's terms, ``ravel`` /
``unravel``, and the check that given params have their shapes.  Its functions are
``fpl.compiler.compiled.CompiledModel``'s, a subclass adding no fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.compiler import ir
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
