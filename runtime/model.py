"""The embedding API: ``fpl.load`` / ``fpl.compile`` -> :class:`Model`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fpl.compiler import check, front_end
from fpl.compiler.compiled import CompiledModel, compile_model
from fpl.dsl import ast
from fpl.dsl.diagnostics import error
from fpl.runtime.methods import run_method


class Model:
    """A compiled FPL model.  Methods take data as a mapping (or a JSON file path).

    Inference methods run in float64 whatever JAX's global setting; the density
    functions (``log_density``, ``constrain``, ``unconstrain``) run at the caller's
    precision (float32 unless 64-bit values are enabled), so they stay plain JAX
    functions that ``jit``, ``grad`` and ``vmap`` compose with."""

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
    ) -> CompiledModel:
        """The model with ``data`` bound: a :class:`~fpl.compiler.compiled.CompiledModel`
        (pure JAX functions of the flat unconstrained params; BridgeStan's interface).
        Data are checked once, every declared constraint included; weights not given
        are drawn from their ``init`` with ``weight_seed`` (0 by default, so every
        method sees the same initial weights)."""
        from fpl.runtime.data import read_data

        if data is None:
            data = {}
        if isinstance(data, (str, Path)):
            data = read_data(data)
        if isinstance(weights, (str, Path)):  # a result file, or weights by name (JSON)
            from fpl.runtime.io import read_weights

            weights = read_weights(str(weights))
        elif weights is not None and not isinstance(weights, Mapping):
            weights = getattr(weights, "weights", weights)  # an OptimizeResult, a Fit
        return compile_model(
            self.ast, self.ir, data, weights=weights, weight_seed=weight_seed, name=self.name
        )

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

        Precision: this runs at the caller's JAX precision, which is float32 unless the
        process enabled 64-bit values (``jax.config.update("jax_enable_x64", True)``)
        or the call is inside ``with jax.enable_x64(True):``; the result's dtype says
        which.  The inference methods (``sample``, ``optimize``, ...) always run in
        float64 in a scope of their own, whatever the process's setting, so a float32
        value here can differ from the ``lp__`` of a fit by float32 rounding.
        """
        cm = self.bind(data, weights)
        cm.check_params(params)
        return cm.evaluate(params, constrained=True, jacobian=jacobian).log_density

    def constrain(self, unconstrained: Mapping[str, Any], data=None, *, weights=None) -> dict:
        """Map unconstrained values (by name) to params, outs included."""
        cm = self.bind(data, weights)
        return cm.constrain(cm.ravel(unconstrained))

    def unconstrain(self, params: Mapping[str, Any], data=None, *, weights=None) -> dict:
        """Map constrained params (by name) to the unconstrained scale."""
        cm = self.bind(data, weights)
        theta = cm.unconstrain({k: np.asarray(v, dtype=float) for k, v in params.items()})
        return {k: np.asarray(v) for k, v in cm.unravel(theta).items()}

    # ---- inference: each method's settings are in its module (``fpl.runtime.methods``) ----
    def sample(self, data=None, settings=None, **kwargs):
        """Sample the posterior with NUTS, chains in parallel over the local devices;
        returns a :class:`Fit`.  Settings (keywords or a
        :class:`~fpl.runtime.sampling.SampleSettings`): ``chains`` (4), ``warmup`` (1000),
        ``draws`` (1000), ``seed``, ``target_accept`` (0.8), ``max_tree_depth`` (10),
        ``metric`` ("low_rank": nutpie's Fisher-divergence diagonal plus low-rank; "diag";
        "dense"; or a fit whose adapted metric and step size are reused), ``max_rank``
        (10), ``early_window`` (0.3), ``step_size_window`` (0.15), ``metric_window`` (80),
        ``shard_data`` (False: split the data's observation axis over the devices
        instead), ``init`` (values by name, or a fit whose draws start the chains),
        ``weights`` (held fixed: a dict by name or an ``OptimizeResult``), ``progress``
        (True), ``checkpoint`` (a file the run is saved to every ``every`` iterations, at
        the end and on Ctrl-C), ``every``, ``resume`` (continue from the checkpoint to the
        draws an uninterrupted run with the same seed gives)."""
        return run_method("sample", self, data, settings, **kwargs)

    def optimize(self, data=None, settings=None, **kwargs):
        """Fit weights and params (MAP; MLE where there are no priors) with an optax
        optimizer; returns an :class:`~fpl.runtime.optimize.OptimizeResult`.  Settings
        (keywords or an :class:`~fpl.runtime.optimize.OptimizeSettings`): ``optimizer``
        (an optax GradientTransformation, default adam(1e-2)), ``steps`` (1000), ``seed``,
        ``batch_size``, ``batch_fields``, ``init``, ``jacobian`` (False), ``checkpoint``,
        ``every``, ``resume``, ``progress`` (True), ``on_failure`` ("best", the default: go on
        from the solver's best (lowest-residual) iterate; "skip"; or "error")."""
        return run_method("optimize", self, data, settings, **kwargs)

    def laplace(self, data=None, settings=None, **kwargs):
        """The mode (L-BFGS, on the unconstrained scale, Jacobian included), then a Gaussian
        there with the Hessian's inverse as covariance; returns a :class:`Fit` of ``draws``
        draws (one chain).  Weights are held at ``weights`` or their initial values.
        Settings (keywords or a :class:`~fpl.runtime.laplace.LaplaceSettings`): ``draws``
        (4000), ``seed``, ``init``, ``weights``, ``tol`` (1e-8), ``max_iter`` (2000)."""
        return run_method("laplace", self, data, settings, **kwargs)

    def pathfinder(self, data=None, settings=None, **kwargs):
        """Single-path Pathfinder (Zhang et al. 2022): a Gaussian at the best point of the
        L-BFGS path (by ELBO); returns a :class:`Fit` of ``draws`` draws (one chain), which
        ``sample(init=fit)`` can start chains from.  Settings (keywords or a
        :class:`~fpl.runtime.pathfinder.PathfinderSettings`): ``draws`` (1000), ``seed``,
        ``init``, ``max_lbfgs`` (1000), ``tol`` (1e-8), ``history`` (6), ``elbo_draws``
        (25), ``importance`` (True)."""
        return run_method("pathfinder", self, data, settings, **kwargs)

    def vi(self, data=None, settings=None, **kwargs):
        """Variational inference on NumPyro's SVI with an autoguide (``normal``, ``mvn``,
        ``lowrank``, ``laplace``, ``delta``), weights fitted jointly, any optax optimizer
        (default adam(1e-2)); returns a :class:`Fit` of ``draws`` draws with ``.elbo``
        (the ELBO at every step) and ``.weights``.  Settings (keywords or a
        :class:`~fpl.runtime.vi.VISettings`): ``guide`` ("normal"), ``steps`` (5000),
        ``optimizer``, ``draws`` (4000), ``seed``, ``particles`` (1), ``init``,
        ``weights``, ``progress`` (True)."""
        return run_method("vi", self, data, settings, **kwargs)

    def predict(self, fit, data=None, settings=None, **kwargs):
        """Outs and gens for every draw of ``fit`` (a :class:`Fit` or a saved fit file)
        with ``data``, typically new data; returns a :class:`Fit` of the same draws.
        Settings: ``seed``, ``weights`` (default: the fit's, else their init)."""
        return run_method("predict", self, data, settings, fit=fit, **kwargs)

    def diagnose(self, params=None, data=None, settings=None, **kwargs):
        """Well-posedness diagnostics of every implicit node at ``params`` (default: a
        point found like sampler inits): residual, iterations, spectral radius, ‖J‖_F.
        Settings (keywords or a :class:`~fpl.runtime.diagnose.DiagnoseSettings`):
        ``seed`` (0), ``weights``, ``power_iters`` (200), ``probes`` (64),
        ``drift_steps`` (200)."""
        return run_method("diagnose", self, data, settings, params=params, **kwargs)

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
