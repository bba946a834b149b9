"""The embedding API: ``fpl.load`` / ``fpl.compile`` -> :class:`Model`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpl.compiler import front_end, ir
from fpl.compiler.passes.check import check
from fpl.dsl import ast
from fpl.dsl.diagnostics import error


@dataclass(frozen=True)
class Bound:
    """A model with its data bound: the IR at concrete sizes and the data arrays."""

    program: ir.Program
    static: dict[str, int]  # integer scalars: sizes, known at trace time
    arrays: dict[str, np.ndarray]  # everything else: passed to compiled code as arguments
    weights: dict[str, Any]


class Model:
    """A compiled FPL model.  Methods take data as a mapping (or a JSON file path)."""

    def __init__(self, program: ast.Program, source_name: str, path: Path | None = None):
        self.ast = program
        self.name = Path(source_name).stem if source_name != "<string>" else "model"
        self.path = path
        self.ir = check(program, None, self.name)

    # ---- structure ----
    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.ir.params]

    @property
    def out_names(self) -> list[str]:
        return [o.name for o in self.ir.outs]

    def __repr__(self) -> str:
        return f"<fpl.Model {self.name}: params {', '.join(self.param_names) or '-'}>"

    def bind(
        self, data: Mapping[str, Any] | str | Path | None, weights=None, *, weight_seed: int = 0
    ) -> Bound:
        """Check and bind data; weights not given are drawn from their ``init`` with
        ``weight_seed`` (0 by default, so every method sees the same initial weights)."""
        from fpl.runtime.data import bind_data, read_data

        if data is None:
            data = {}
        if isinstance(data, (str, Path)):
            data = read_data(data)
        program, values = bind_data(self.ast, self.ir, data, self.name)
        static = {k: v for k, v in values.items() if isinstance(v, int)}
        arrays = {k: v for k, v in values.items() if not isinstance(v, int)}
        return Bound(program, static, arrays, self._weights(program, values, weights, weight_seed))

    def _weights(self, program: ir.Program, data: dict, given, seed: int = 0) -> dict[str, Any]:
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
            shape = tuple(w.ty.shape)
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

    # ---- densities ----
    def log_density(
        self,
        params: Mapping[str, Any],
        data: Mapping[str, Any] | str | Path | None = None,
        *,
        jacobian: bool = False,
        weights: Mapping[str, Any] | None = None,
    ):
        """The log density at constrained param values (a dict by name).

        A plain JAX function of ``params``: ``jax.jit``, ``grad`` and ``vmap`` work.
        With ``jacobian=True`` the log-Jacobian of the unconstraining transform is
        added (the density of the unconstrained params, what samplers see).
        Values outside a param's support give -inf.
        """
        from fpl.compiler.lower import from_constrained, run

        b = self.bind(data, weights)
        self._check_params(b.program, params)
        env = {**b.static, **b.arrays, **b.weights}
        return run(b.program, env, from_constrained(params, jacobian)).target

    def _check_params(self, program: ir.Program, params: Mapping[str, Any]) -> None:
        missing = [p.name for p in program.params if p.name not in params]
        if missing:
            raise error(
                "E0405",
                f"missing value for param `{missing[0]}`",
                None,
                help="params are: " + ", ".join(p.name for p in program.params),
            )
        for p in program.params:
            shape = tuple(np.shape(params[p.name]))
            if shape != tuple(p.ty.shape):
                raise error(
                    "E0405",
                    f"param `{p.name}` has shape {shape}, the model needs {tuple(p.ty.shape)}",
                    p.span,
                )

    def potential_gen(self, bound: Bound):
        """``args -> (u -> -log density(u))`` on the unconstrained scale, Jacobian included."""
        from fpl.compiler.lower import from_unconstrained, run

        program, static, weights = bound.program, bound.static, bound.weights

        from fpl.runtime.failures import report

        def gen(args):
            def potential(u):
                env = {**static, **args, **weights}
                res = run(program, env, from_unconstrained(u))
                report(res.solver_stats)
                return -res.target

            return potential

        return gen

    def unconstrained_shapes(self, bound: Bound) -> dict[str, tuple[int, ...]]:
        from fpl.compiler.transforms import unconstrained_shape

        return {
            p.name: unconstrained_shape(p.constraint.kind, tuple(p.ty.shape))
            for p in bound.program.params
        }

    def constrain(self, unconstrained: Mapping[str, Any], data=None, *, weights=None) -> dict:
        """Map unconstrained values (by name) to params, outs included."""
        from fpl.compiler.lower import from_unconstrained, run

        b = self.bind(data, weights)
        env = {**b.static, **b.arrays, **b.weights}
        res = run(b.program, env, from_unconstrained(unconstrained))
        names = self.param_names + self.out_names
        return {n: res.env[n] for n in names}

    def unconstrain(self, params: Mapping[str, Any], data=None, *, weights=None) -> dict:
        """Map constrained params (by name) to the unconstrained scale."""
        from fpl.compiler import transforms
        from fpl.compiler.lower import Evaluator
        from fpl.stdlib.registry import registry

        b = self.bind(data, weights)
        ev = Evaluator(registry(), {**b.static, **b.arrays, **b.weights})
        out = {}
        for s in b.program.statements:
            if isinstance(s, ir.ParamDecl):
                c = s.constraint
                lo = ev.expr(c.lower) if c.lower is not None else None
                hi = ev.expr(c.upper) if c.upper is not None else None
                x = np.asarray(params[s.name], dtype=float)
                out[s.name] = x if c.kind == "real" else transforms.unconstrain(c.kind, x, lo, hi)
                ev.env[s.name] = x
            elif isinstance(s, (ir.Let, ir.Out)):
                ev.env[s.name] = ev.expr(s.value)
        return out

    # ---- inference ----
    def sample(
        self,
        data: Mapping[str, Any] | str | Path | None = None,
        *,
        chains: int = 4,
        warmup: int = 1000,
        draws: int = 1000,
        seed: int | None = None,
        target_accept: float = 0.8,
        max_tree_depth: int = 10,
        init: Mapping[str, Any] | None = None,
        progress: bool = True,
        weights: Mapping[str, Any] | None = None,
        checkpoint: str | Path | None = None,
        every: int | None = None,
        resume: bool = False,
    ):
        """Sample the posterior with NUTS (Stan's defaults); returns a :class:`Fit`.

        ``weights`` (held fixed) may be a dict by name or an ``OptimizeResult``.
        ``checkpoint`` names a file the run is saved to after each chain, every
        ``every`` iterations of a chain and on Ctrl-C; ``resume=True`` continues from it
        to the draws an uninterrupted run with the same seed gives."""
        from fpl.runtime.sampling import sample

        if weights is not None and not isinstance(weights, Mapping):
            weights = getattr(weights, "weights", weights)  # an OptimizeResult
        for name, value, lo in (("chains", chains, 1), ("warmup", warmup, 0), ("draws", draws, 1),
                                ("max_tree_depth", max_tree_depth, 1)):  # fmt: skip
            if not isinstance(value, int) or value < lo:
                raise error("E0403", f"`{name}` must be an integer >= {lo}, got {value!r}")
        if not 0 < target_accept < 1:
            raise error("E0403", f"`target_accept` must be in (0, 1), got {target_accept}")
        if every is not None and (not isinstance(every, int) or every < 1):
            raise error("E0403", f"`every` must be an integer >= 1, got {every!r}")
        if (every is not None or resume) and checkpoint is None:
            raise error("E0403", "`every` and `resume` need a `checkpoint` file")
        return sample(self, data, chains=chains, warmup=warmup, draws=draws, seed=seed,
                      target_accept=target_accept, max_tree_depth=max_tree_depth, init=init,
                      progress=progress, weights=weights, checkpoint=checkpoint, every=every,
                      resume=resume)  # fmt: skip

    def optimize(self, data=None, *, optimizer=None, steps: int = 1000, seed: int | None = None,
                 batch_size: int | None = None, batch_fields=None, init=None,
                 jacobian: bool = False, checkpoint=None, every: int | None = None,
                 resume: bool = False, progress: bool = True,
                 on_failure: str = "error"):  # fmt: skip
        """Fit weights and params (MAP; MLE where there are no priors) with an optax optimizer.

        Returns an :class:`~fpl.runtime.optimize.OptimizeResult`."""
        from fpl.runtime.optimize import optimize

        return optimize(self, data, optimizer=optimizer, steps=steps, seed=seed,
                        batch_size=batch_size, batch_fields=batch_fields, init=init,
                        jacobian=jacobian, checkpoint=checkpoint, every=every, resume=resume,
                        progress=progress, on_failure=on_failure)  # fmt: skip

    def laplace(self, data=None, *, draws: int = 4000, seed: int | None = None,
                init: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
                tol: float = 1e-8, max_iter: int = 2000):  # fmt: skip
        """The mode (L-BFGS, on the unconstrained scale, Jacobian included), then a Gaussian
        there with the Hessian's inverse as covariance; returns a :class:`Fit` of ``draws``
        draws (one chain).  Weights are held at ``weights`` or their initial values."""
        from fpl.runtime.laplace import laplace

        return laplace(self, data, draws=draws, seed=seed, init=init, weights=weights, tol=tol,
                       max_iter=max_iter)  # fmt: skip

    def vi(self, data=None, *, guide="normal", steps: int = 5000, optimizer=None,
           draws: int = 4000, seed: int | None = None, particles: int = 1,
           init: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
           progress: bool = True):  # fmt: skip
        """Variational inference on NumPyro's SVI with an autoguide (``normal``, ``mvn``,
        ``lowrank``, ``laplace``, ``delta``), weights fitted jointly, any optax optimizer
        (default adam(1e-2)); returns a :class:`Fit` of ``draws`` draws with ``.elbo``
        (the ELBO at every step) and ``.weights``."""
        from fpl.runtime.vi import vi

        return vi(self, data, guide=guide, steps=steps, optimizer=optimizer, draws=draws,
                  seed=seed, particles=particles, init=init, weights=weights,
                  progress=progress)  # fmt: skip

    def predict(self, fit, data=None, *, seed: int | None = None, weights=None):
        """Outs and gens for every draw of ``fit`` (a :class:`Fit` or a saved fit file)
        with ``data``, typically new data; returns a :class:`Fit` of the same draws."""
        from fpl.runtime.sampling import predict

        return predict(self, fit, data, seed=seed, weights=weights)

    def diagnose(self, params=None, data=None, *, weights=None, **kwargs):
        """Well-posedness diagnostics of every implicit node at ``params`` (default: a
        point found like sampler inits): residual, iterations, spectral radius, ‖J‖_F."""
        from fpl.runtime.diagnose import diagnose

        return diagnose(self, params, data, weights=weights, **kwargs)

    def generate(self, fit_or_params, data=None, *, seed: int | None = None, weights=None):
        """``out`` and ``gen`` values for a :class:`Fit` (every draw) or one params dict."""
        from fpl.runtime.sampling import generate

        return generate(self, fit_or_params, data, seed=seed, weights=weights)


def compile(text: str, name: str = "<string>") -> Model:  # noqa: A001 - the API name
    """Compile FPL source text to a :class:`Model`."""
    return Model(front_end(text, name), name)


def load(path: str | Path) -> Model:
    """Load and compile a ``.fpl`` file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise error("E0501", f"cannot read `{path}`: {exc.strerror or exc}") from None
    return Model(front_end(text, str(path), p), str(path), p)


__all__ = ["Model", "load", "compile"]
