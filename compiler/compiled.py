"""The boundary between compiler and runtime: a model with its data bound, as pure JAX
functions of a flat vector of unconstrained parameters.

``compile_model(ast, ir, data)`` checks the data once (sizes, types, every declared
constraint: ``fpl.compiler.binding``) and returns a frozen :class:`CompiledModel`.  Its
methods are plain functions of JAX values — ``jax.jit``, ``grad``, ``vmap``,
``jacfwd``/``hessian`` all work — and every inference method of the runtime is built on
them alone; nothing in ``fpl.runtime`` reaches the lowering, the evaluator or the
checker's passes (a test forbids it).

The names and meanings follow BridgeStan's ``StanModel`` (the model-as-a-library
interface that nutpie, walnuts and BlackJAX users know):

========================================  ===========================================
``log_density(theta, *, jacobian=True)``   log p(θ(u) | y) [+ log |det ∂θ/∂u|]
``log_density_gradient(theta)``            (lp, ∇lp)
``log_density_hessian(theta)``             (lp, ∇lp, ∇²lp)  (forward over reverse)
``log_density_hessian_vector_product``     (lp, ∇²lp · v)
``param_constrain(theta, include_tp,       flat constrained values (Stan's column-major
include_gq, rng)``                         order), outs (``tp``) and gens (``gq``)
``param_unconstrain(x)``                   flat constrained → flat unconstrained
``param_names / param_unc_names``          component names, ``theta.2``, ``Sigma.1.2``
``param_num / param_unc_num``              their counts
========================================  ===========================================

``theta`` is the flat unconstrained vector: each param's unconstrained array, raveled
(row-major) and concatenated in declaration order (:meth:`CompiledModel.unravel` /
:meth:`ravel` convert).  Data and weights are held by the object and may be passed
explicitly as arguments (``data=``, ``weights=``) so that compiled code receives them as
operands instead of constants (the samplers do).

Data-only computations (``let``s and subexpressions that read data and constants only:
``fpl.compiler.passes.hoist``) are evaluated once, when the data are bound, and held in
``derived``; the log density reads them as data.  ``data=`` may hold them too
(:meth:`CompiledModel.prepare_data` computes them: pass its result as ``data=`` so that
a compiled loop does not recompute them); where it does not hold all of them they are
computed from the ``data=`` given, inside the call, so other data give right answers.

Compiled calls.  Called from Python with concrete values outside any solver-events
scope, the BridgeStan functions and the by-name views each run as one compiled program
(``jax.jit`` of the eager function, cached on the object per function and static option
— ``jacobian``, ``stats``, ``include_tp``/``include_gq`` — with ``theta``, ``v``, the key,
data and weights as operands, the held ones by default), so a new ``theta`` is not traced
again.  With traced values (a user's ``jit``/``grad``/``vmap``, a sampler) or inside a
solver-events scope (whose callbacks are chosen at trace time) they run the eager function
itself, traced into the caller's program.  Compiled and eager results agree to rounding
(XLA may fuse and reorder operations: a few ulps).  Shapes are checked on the host first
(E0405, not JAX's shape error); dtypes follow JAX's x64 mode as in eager calls.

Solver results travel as data: :meth:`evaluate` (and ``log_density(..., stats=True)``)
return each implicit node's residual, iterations, converged flag and failure reason.
Failures inside a sampler's trajectory are also reported to the run's
``fpl.compiler.reporting.SolverEvents`` when one is collecting at trace time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.compiler import ir, reporting
from fpl.compiler.analyses import column_major, likelihood_terms, result_code
from fpl.compiler.binding import Bound, bind
from fpl.compiler.layout import ModelLayout
from fpl.compiler.passes.hoist import Hoisted, hoist
from fpl.compiler.pointwise import observations, pointwise
from fpl.compiler.structure import (
    Evaluation,
    NodeInfo,
    ParamInfo,
    node_infos,
    param_infos,
)
from fpl.dsl import ast
from fpl.dsl.diagnostics import error


@dataclass(frozen=True, eq=False)
class CompiledModel(ModelLayout):
    """A model bound to its data: pure JAX functions over the flat unconstrained vector
    ``theta`` (see the module docstring).  Build with :func:`compile_model`.  Its fields,
    names, shapes and ``ravel``/``unravel`` are :class:`~fpl.compiler.layout.ModelLayout`'s."""

    # ---- data ---------------------------------------------------------------------
    def prepare_data(self, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``data`` (default: the bound data) with the data-only values computed from
        them: what to pass as ``data=`` to compiled code (pure: ``jit``-able)."""
        if data is None:
            return {**self.data, **self.derived}
        if all(name in data for name in self.hoisted.names):
            return dict(data)
        from fpl.compiler.lower import derive

        h = self.hoisted
        return {**data, **derive(h.derivations, {**self.static, **data}, h.constants)}

    def _density(self, theta, jacobian: bool, data, weights):
        """The eager log density (what the compiled functions are built from)."""
        return self.evaluate(theta, jacobian=jacobian, data=data, weights=weights).log_density

    def _env(self, data, weights) -> dict[str, Any]:
        return {
            **self.static,
            **self.prepare_data(data),
            **(self.weights if weights is None else weights),
        }

    # ---- the one evaluation everything is built on --------------------------------
    def evaluate(
        self,
        theta,
        *,
        constrained: bool = False,
        jacobian: bool = True,
        data: Mapping[str, Any] | None = None,
        weights: Mapping[str, Any] | None = None,
        key=None,
        generate: bool = False,
        term_scale: Mapping[int, Any] | None = None,
        warm: Mapping[int, Any] | None = None,
        probe: Callable | None = None,
        report: bool = True,
    ) -> Evaluation:
        """Run the program once.

        ``theta``: the flat unconstrained vector, or with ``constrained=True`` a dict of
        constrained values by param name (outside the support the log density is -inf).
        ``jacobian``: add the log-Jacobian of the constraining transforms.
        ``key`` and ``generate``: also draw the ``gen`` values.
        ``term_scale``: statement index -> factor for that ``~``/``target +=`` term
        (minibatching; see :meth:`likelihood_terms`).
        ``warm``: warm-start state of ``warm=true`` implicit nodes (node id -> previous
        solution; :meth:`warm_state` for a first call); the new state is returned.
        ``probe(node, f, z, z0)``: called per top-level implicit node at its solution.
        ``report``: send failed forward solves to the collecting run (if any).
        """
        from fpl.compiler.lower import from_constrained, from_unconstrained, run

        if constrained:
            source = from_constrained(dict(theta), jacobian)
        elif isinstance(theta, Mapping):
            source = from_unconstrained(dict(theta), jacobian)
        else:
            source = from_unconstrained(self.unravel(theta), jacobian)
        res = run(
            self.hoisted.program,
            self._env(data, weights),
            source,
            rng_key=key,
            generate=generate,
            term_scale=dict(term_scale) if term_scale else None,
            warm=None if warm is None else dict(warm),
            probe=probe,
        )
        if report and res.solver_stats:
            import jax.numpy as jnp

            ids = tuple(res.solver_stats)
            codes = jnp.stack([result_code(res.solver_stats[i]) for i in ids])
            reporting.report_forward(ids, codes)
        if report and res.rejected:  # (only to a run that asks: error diagnosis)
            reporting.report_rejects(res.rejected, res.reject_nodes)
        return Evaluation(
            res.target, res.env, res.solver_stats, res.solver_failures, res.warm, res.probes
        )

    # ---- BridgeStan's functions ---------------------------------------------------
    def log_density(
        self,
        theta,
        *,
        jacobian: bool = True,
        propto: bool = False,
        data: Mapping[str, Any] | None = None,
        weights: Mapping[str, Any] | None = None,
        stats: bool = False,
    ):
        """The log density at unconstrained ``theta`` (with the log-Jacobian when
        ``jacobian``); -inf where an implicit node's solve failed.  ``propto`` is
        accepted for BridgeStan compatibility: FPL always keeps the normalising
        constants.  With ``stats=True`` returns ``(lp, {node id: solver results})``."""
        del propto
        self.check_theta(theta)

        def impl(theta, data, weights):
            ev = self.evaluate(theta, jacobian=jacobian, data=data, weights=weights)
            return (ev.log_density, ev.stats) if stats else ev.log_density

        return self._compiled("lp", (jacobian, stats), impl, (theta,), data, weights)

    def log_density_gradient(
        self, theta, *, jacobian: bool = True, propto: bool = False, data=None, weights=None
    ):
        """``(lp, ∇lp)`` at ``theta``."""
        import jax

        self.check_theta(theta)

        def impl(theta, data, weights):
            return jax.value_and_grad(self._density)(theta, jacobian, data, weights)

        return self._compiled("gradient", (jacobian,), impl, (theta,), data, weights)

    def log_density_hessian(
        self, theta, *, jacobian: bool = True, propto: bool = False, data=None, weights=None
    ):
        """``(lp, ∇lp, ∇²lp)``; the Hessian is forward-over-reverse, which through
        implicit nodes differentiates their IFT rule and so is exact there too."""
        import jax

        self.check_theta(theta)

        def impl(theta, data, weights):
            f = lambda t: self._density(t, jacobian, data, weights)  # noqa: E731
            lp, grad = jax.value_and_grad(f)(theta)
            return lp, grad, jax.jacfwd(jax.grad(f))(theta)

        return self._compiled("hessian", (jacobian,), impl, (theta,), data, weights)

    def log_density_hessian_vector_product(
        self, theta, v, *, jacobian: bool = True, propto: bool = False, data=None, weights=None
    ):
        """``(lp, ∇²lp · v)`` (a JVP of the gradient: no Hessian is formed)."""
        import jax

        self.check_theta(theta)
        self.check_theta(v, "v")

        def impl(theta, v, data, weights):
            f = lambda t: self._density(t, jacobian, data, weights)  # noqa: E731
            return f(theta), jax.jvp(jax.grad(f), (theta,), (v,))[1]

        return self._compiled("hvp", (jacobian,), impl, (theta, v), data, weights)

    def pointwise_log_likelihood(self, theta, data=None, weights=None) -> dict[str, Any]:
        """The log density of each observed value: ``{field: array}`` for every data
        field (or data-only ``let``) observed by a ``~``, with that field's shape (one
        term per event for multivariate distributions); their sum is the likelihood part
        of :meth:`log_density`.  What is covered and skipped: ``fpl.compiler.pointwise``."""
        import jax.numpy as jnp

        from fpl.compiler.lower import from_unconstrained, run

        self.check_theta(theta)

        def impl(theta, data, weights):
            u = theta if isinstance(theta, Mapping) else self.unravel(theta)
            env = self._env(data, weights)
            res = run(self.hoisted.program, env, from_unconstrained(dict(u)))
            valid = jnp.logical_and(res.in_support, res.solver_failures == 0)
            return pointwise(self.observations, res.env, res.terms, valid)

        return self._compiled("pointwise", (), impl, (theta,), data, weights)

    def param_constrain(
        self,
        theta,
        include_tp: bool = False,
        include_gq: bool = False,
        rng=None,
        *,
        data=None,
        weights=None,
    ):
        """The flat constrained values (components in :meth:`param_names` order).
        ``include_gq`` needs ``rng`` (a JAX PRNG key or an int seed)."""
        import jax
        import jax.numpy as jnp

        if include_gq and rng is None:
            raise error("E0403", "generated quantities need `rng` (a key or a seed)")
        self.check_theta(theta)
        key = jax.random.PRNGKey(rng) if isinstance(rng, int) else rng
        if not include_gq:
            key = None  # not an operand: no program per key type

        def impl(theta, key, data, weights):
            values = self.evaluate(
                theta, key=key, generate=include_gq, data=data, weights=weights, report=False
            ).values
            parts = [
                column_major(jnp.asarray(values[name], jnp.result_type(float)), shape)
                for name, shape in self._shapes_of(include_tp, include_gq)
            ]
            return jnp.concatenate(parts) if parts else jnp.zeros((0,))

        static = (include_tp, include_gq)
        return self._compiled("constrain_flat", static, impl, (theta, key), data, weights)

    def param_unconstrain(self, x, *, data=None, weights=None):
        """Flat constrained values (params only, :meth:`param_names` order) -> ``theta``."""
        import jax.numpy as jnp

        self.check_theta(x, "x", self.param_num())

        def impl(x, data, weights):
            x = jnp.asarray(x)
            values, at = {}, 0
            for p in self.params:
                n = math.prod(p.shape)
                part = x[at : at + n]
                # column-major back to the array
                values[p.name] = (
                    jnp.transpose(jnp.reshape(part, p.shape[::-1])) if p.shape else part[0]
                )
                at += n
            return self._unconstrained(None, values, False, data, weights)

        return self._compiled("unconstrain_flat", (), impl, (x,), data, weights)

    # ---- by-name views ----------------------------------------------------------
    def constrain(self, theta, *, data=None, weights=None) -> dict[str, Any]:
        """Params and outs by name at ``theta``."""
        self.check_theta(theta)

        def impl(theta, data, weights):
            values = self.evaluate(theta, data=data, weights=weights, report=False).values
            return {n: values[n] for n in [*(p.name for p in self.params), *self.out_names]}

        return self._compiled("constrain", (), impl, (theta,), data, weights)

    def generate(
        self, theta, key, *, constrained: bool = False, data=None, weights=None, stats: bool = False
    ):
        """Params, outs and gens by name at one point (``theta`` flat unconstrained, a
        dict of unconstrained values, or with ``constrained`` constrained values by
        name).  With ``stats`` returns ``(values, {node id: {field: value}})`` with each
        node's ``residual``, ``iterations``, ``converged``, ``reason``, ``solves`` and
        ``failures`` (a node in ``map``/``scan``/``fold`` or called twice: the worst
        residual, the most iterations, the first failure's reason, counts summed)."""
        import jax.numpy as jnp

        if not constrained:
            self.check_theta(theta)

        def impl(theta, key, data, weights):
            ev = self.evaluate(
                theta,
                constrained=constrained,
                jacobian=False,
                key=key,
                generate=True,
                data=data,
                weights=weights,
                report=False,
            )
            names = [*(p.name for p in self.params), *self.out_names, *self.gen_names]
            out = {n: jnp.asarray(ev.values[n]) for n in names}
            if not stats:
                return out
            node_stats: dict[int, dict[str, Any]] = {}
            for node in self.nodes:
                st = ev.stats.get(node.node_id)
                if st is None:  # a node in a function that is never called
                    continue
                one = {
                    "residual": jnp.asarray(st["residual"], float),
                    "iterations": jnp.asarray(st["iterations"], jnp.int32),
                    "converged": jnp.asarray(st["converged"], bool),
                }
                one["reason"] = result_code(st)
                # a node in `map`/`scan`/`fold`: solves and failed solves per evaluation
                one["solves"] = jnp.asarray(st.get("solves", 1), jnp.int32)
                one["failures"] = jnp.asarray(st.get("failures", 0), jnp.int32)
                node_stats[node.node_id] = one
            return out, node_stats

        static = (constrained, stats)
        return self._compiled("generate", static, impl, (theta, key), data, weights)

    def unconstrain(self, params: Mapping[str, Any], *, data=None, weights=None):
        """Constrained params by name -> ``theta`` (bounds that depend on other params
        are evaluated at the given values)."""
        return self._unconstrained(None, params, False, data, weights)

    def complete(self, theta, given: Mapping[str, Any], *, data=None, weights=None):
        """``theta`` with the params in ``given`` (constrained values by name) replaced
        by their unconstrained values, bounds evaluated at that point; NaN where a given
        value is outside its support."""
        return self._unconstrained(self.unravel(theta), given, True, data, weights)

    def _unconstrained(self, u, given, nan_outside: bool, data, weights):
        """One walk of the program: given params (constrained) mapped to the unconstrained
        scale with the bounds at that point, the others taken from ``u``."""
        import jax.numpy as jnp

        from fpl.compiler import transforms
        from fpl.compiler.lower import run

        captured: dict[str, Any] = {}

        def source(decl: ir.ParamDecl, lower, upper):
            kind = decl.constraint.kind
            if decl.name not in given:
                v = u[decl.name]
                x = v if kind == "real" else transforms.constrain(kind, v, lower, upper)[0]
            else:
                x = jnp.asarray(given[decl.name], jnp.result_type(float))
                v = x if kind == "real" else transforms.unconstrain(kind, x, lower, upper)
                if nan_outside:
                    v = jnp.where(transforms.in_support(kind, x, lower, upper), v, jnp.nan)
            captured[decl.name] = v
            return x, 0.0, True

        run(self.hoisted.program, self._env(data, weights), source)
        return self.ravel(captured)

    # ---- weights (the learnable points of `optimize`) ------------------------------
    def weight_transforms(self):
        """``(to_raw, from_raw)``: constrained weights move on the unconstrained scale of
        their constraint (no Jacobian: weights are points, not random)."""
        from fpl.compiler.binding import weight_transforms

        return weight_transforms(self.program, {**self.static, **self.data})

    def with_weights(self, weights: Mapping[str, Any]) -> CompiledModel:
        """The same model with other weight values."""
        from dataclasses import replace

        return replace(self, weights={k: weights[k] for k in self.weight_names})

    # ---- analyses the runtime needs -------------------------------------------------
    def warm_state(self) -> dict[int, Any]:
        """The warm-start state of a first call (no previous solutions)."""
        from fpl.compiler.implicit import warm_state

        return warm_state(self.program)

    def likelihood_terms(self, fields: list[str]) -> list[int]:
        """Statement indices of the ``~`` / ``target +=`` terms that read one of the data
        ``fields`` (directly or through ``let`` / ``out`` values) and are not averages
        at their top (``loss mean(...)``): the terms minibatching scales by N / B."""
        return likelihood_terms(self.program, fields)

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.params) or "-"
        n = self.param_unc_num()
        return f"<fpl.CompiledModel {self.name}: params {names}; {n} unconstrained>"


def from_bound(bound: Bound, name: str, *, hoist_data: bool = True) -> CompiledModel:
    """The :class:`CompiledModel` of already-bound data; its data-only computations
    evaluated once here (in float64, as inference runs).  ``hoist_data=False`` keeps
    them in the log density (the program as checked: for comparisons)."""
    import jax

    from fpl.compiler.lower import derive
    from fpl.stdlib.registry import registry

    hoisted = hoist(bound.program, bound.arrays)
    # concrete values even when the model is bound inside someone's jit trace
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        env = {**bound.static, **bound.arrays}
        values = derive(hoisted.derivations, env, hoisted.constants)
    derived = {k: np.asarray(v) for k, v in values.items()}
    # the ``~`` of data fields and of data-only lets (with or without hoisting)
    shapes = {k: np.shape(v) for k, v in derived.items() if not k.startswith("$")}
    events = {d: entry.event_rank for d, entry in registry().distributions.items()}
    if not hoist_data:
        hoisted, derived = Hoisted(bound.program, ()), {}
    return CompiledModel(
        name=name,
        program=bound.program,
        static=dict(bound.static),
        data=dict(bound.arrays),
        weights=dict(bound.weights),
        params=param_infos(bound.program),
        nodes=node_infos(bound.program),
        hoisted=hoisted,
        derived=derived,
        observations=observations(bound.program, shapes, events),
    )


def compile_model(
    program_ast: ast.Program,
    symbolic: ir.Program,
    data: Mapping[str, Any] | None = None,
    *,
    weights: Mapping[str, Any] | None = None,
    weight_seed: int = 0,
    name: str | None = None,
    hoist_data: bool = True,
) -> CompiledModel:
    """Check ``data`` against the model and return its :class:`CompiledModel`; weights
    not given start from their ``init`` drawn with ``weight_seed``; ``hoist_data``: see
    :func:`from_bound`."""
    bound = bind(program_ast, symbolic, dict(data or {}), weights, weight_seed=weight_seed)
    return from_bound(bound, name or symbolic.name, hoist_data=hoist_data)


__all__ = ["CompiledModel", "Evaluation", "NodeInfo", "ParamInfo", "compile_model", "from_bound"]
