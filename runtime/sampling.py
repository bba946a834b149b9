"""``Model.sample`` and ``Model.generate``: NUTS, then params, outs and generated
quantities for every draw, computed in one vectorised pass.  ``sample``'s settings and
its entry in the methods table (``fpl sample``) are here too, with the adapted metric
saved into and read back from a fit and the diagnostic of a stuck chain (E0412).

The chains' initial points are ``fpl.runtime.inits``'s, the per-draw pass and the fit
``fpl.runtime.draws``'s; the names other modules import from here stay importable."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpl.compiler.compiled import CompiledModel
from fpl.dsl.diagnostics import FplError, error
from fpl.runtime import runaway
from fpl.runtime.draws import draws_fit, unflatten
from fpl.runtime.draws import per_draw as _per_draw
from fpl.runtime.failures import SolverEvents, by_label, collecting, reasons_by_label
from fpl.runtime.fit import Fit
from fpl.runtime.inits import INIT_CANDIDATES, INIT_RADIUS, INIT_TRIES, find_inits, potential
from fpl.runtime.methods import Method, Settings, option
from fpl.stdlib.lazy import LazyModule

# JAX loads when a method runs, not when the CLI lists its settings
jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")


def _float64():
    """Inference runs in float64 whatever the caller's global JAX setting, so results
    never depend on import order or on what else the process configured (and with the
    persistent compilation cache: ``fpl.runtime.platform``)."""
    from fpl.runtime.platform import use_compilation_cache

    use_compilation_cache()
    return jax.enable_x64(True)


#: the samplers ``sample`` runs: NUTS (runtime/nuts.py), ChEES-HMC (runtime/chees.py)
SAMPLERS = ("nuts", "chees")


def _metric_arg(text: str):
    """``--metric``: a metric's name, or the path of a fit whose adaptation is reused."""
    from fpl.runtime.adaptation import METRICS

    if text in METRICS:
        return text
    from fpl.runtime.fit import load_fit

    return load_fit(text)


@dataclass(frozen=True)
class SampleSettings(Settings):
    chains: int = option(4, "chains, run in parallel over the local devices", min=1)
    sampler: str = option(
        "nuts",
        "nuts (adaptive NUTS, a program per chain), or chees (ChEES-HMC: all chains in one "
        "vectorised program, for many chains on an accelerator)",
        choices=SAMPLERS,
    )
    warmup: int = option(1000, "warmup (adaptation) iterations per chain", min=0)
    draws: int = option(1000, "draws per chain after warmup", min=1)
    seed: int | None = option(None, "random seed", min=0)
    target_accept: float = option(0.8, "target acceptance rate of step-size adaptation", gt=0, lt=1)
    max_tree_depth: int = option(10, "NUTS tree depth at most", min=1)
    metric: Any = option(
        "low_rank",
        "metric adapted in warmup: low_rank (diagonal plus low-rank, from draws and "
        "gradients: nutpie's), diag, dense; or a fit (file) whose adapted metric and step "
        "size are reused (warmup then adapts the step size only)",
        parse=_metric_arg,
    )
    max_rank: int = option(10, "rank of the low-rank metric's correction at most", min=1)
    early_window: float = option(
        0.3, "fraction of warmup with short (10-draw) metric windows", min=0, lt=1
    )
    step_size_window: float = option(
        0.15, "final fraction of warmup adapting the step size only", min=0, lt=1
    )
    metric_window: int = option(80, "first metric window after the early ones (then x1.5)", min=1)
    shard_data: bool = option(
        False,
        "split the data's observation axis over all devices (chains then take turns, each "
        "on every device): for large N",
    )
    init: Any = option(None, "initial param values (constrained, by name) or a fit", file=True)
    starts: str = option(
        "random",
        "where chains start without `init`: random (the best of 16 points uniform(-2, 2) on "
        "the unconstrained scale, as Stan) or pathfinder (those points moved into the main "
        "mode by multi-path Pathfinder: for multimodal posteriors whose chains strand in "
        "minor modes; costs an L-BFGS compile, a few seconds)",
        choices=("random", "pathfinder"),
    )
    weights: Any = option(None, "weight values held fixed (none: their init)", file=True)
    checkpoint: str | Path | None = option(
        None, "checkpoint file (written every `every` iterations, at the end, on Ctrl-C)"
    )
    every: int | None = option(None, "also checkpoint every N iterations", min=1)
    resume: bool = option(False, "continue from the checkpoint")
    progress: bool = option(True, "a progress line on stderr", cli=False)

    def check(self) -> None:
        from fpl.runtime.adaptation import METRICS

        if (self.every is not None or self.resume) and self.checkpoint is None:
            raise error("E0403", "`every` and `resume` need a `checkpoint` file")
        if isinstance(self.metric, str) and self.metric not in METRICS:
            shown = ", ".join(repr(m) for m in METRICS)
            raise error("E0403", f"`metric` must be one of {shown} or a fit, got {self.metric!r}")
        if not isinstance(self.metric, str) and not getattr(self.metric, "adaptation", None):
            raise error(
                "E0403",
                "the `metric` fit holds no adapted metric",
                help="pass a fit made by `sample` (FPL 0.2 or later), or a metric's name",
            )
        if self.early_window + self.step_size_window >= 1:
            raise error("E0403", "`early_window` + `step_size_window` must be below 1")
        if self.sampler == "chees":
            from fpl.runtime.chees import check_settings

            check_settings(self)

    def adaptation(self):
        """The warmup adaptation these settings ask for."""
        from fpl.runtime.adaptation import Adaptation

        given = not isinstance(self.metric, str)
        return Adaptation(
            metric=self.metric.attrs.get("metric", "diag") if given else self.metric,
            max_rank=self.max_rank,
            early_window=self.early_window,
            step_size_window=self.step_size_window,
            switch=self.metric_window,
            target_accept=self.target_accept,
            adapt_metric=not given,
        )


def run(model, data, s: SampleSettings) -> Fit:
    """NUTS with ``s``: a :class:`Fit` of ``chains`` chains of ``draws`` draws."""
    weights = s.weights
    if weights is not None and not isinstance(weights, Mapping):
        weights = getattr(weights, "weights", weights)  # an OptimizeResult
    return sample(model, data, s, weights)


def sample(model, data, s: SampleSettings, weights) -> Fit:
    from fpl.runtime.nuts import Run, StuckChainError, run_nuts

    seed = s.seed
    if seed is None and s.resume and s.checkpoint is not None:  # the seed of the first run
        from fpl.runtime.checkpoint import saved_seed

        seed = saved_seed(s.checkpoint)
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    a = s.adaptation()
    with _float64():
        cm = model.bind(data, weights)
        if not cm.params:
            raise error(
                "E0403",
                "the model has no params to sample",
                help="`fpl sample` needs at least one `param`",
            )
        args = {k: jnp.asarray(v) for k, v in cm.prepare_data().items()}  # data-only lets once
        key = jax.random.PRNGKey(seed)
        key, run_key, gen_key = jax.random.split(key, 3)
        inits = find_inits(cm, args, s.chains, seed, s.init, pathfinder=s.starts == "pathfinder")
        flat_inits = np.stack([np.asarray(cm.ravel(u)) for u in inits])
        metric, step_size = (None, None) if a.adapt_metric else _given_metric(cm, s)
        saver = None
        if s.checkpoint is not None:
            from fpl.runtime import checkpoint as ckpt

            given = {k: np.asarray(v).tolist() for k, v in (s.init or {}).items()}
            settings = {
                "seed": seed,
                "chains": s.chains,
                "warmup": s.warmup,
                "draws": s.draws,
                "max_tree_depth": s.max_tree_depth,
                "adaptation": repr(a),
                "shard_data": s.shard_data,
                "metric": None if metric is None else [np.asarray(x).tolist() for x in metric],
                "init": given,
            }
            weights_ = {f"weight {k}": v for k, v in cm.weights.items()}
            fp = ckpt.fingerprint(model, {**cm.data, **weights_}, settings)
            saver = ckpt.NutsCheckpoint(s.checkpoint, fp, s.every, s.resume, seed)
        events = SolverEvents()
        try:
            with collecting(events):  # the density, traced in there, reports to this run
                if s.sampler == "chees":
                    from fpl.runtime.chees import run_settings

                    result = run_settings(cm, args, flat_inits, s, run_key, events)
                else:
                    result = run_nuts(
                        lambda theta, data: cm.log_density(theta, data=data),
                        args,
                        flat_inits,
                        run=Run(s.warmup, s.draws, s.max_tree_depth, a),
                        key=run_key,
                        progress=s.progress,
                        checkpoint=saver,
                        events=events,
                        metric=metric,
                        step_size=step_size,
                        shard_data=s.shard_data,
                    )
        except StuckChainError as stuck:
            raise _stuck_error(model, cm, data, weights, stuck, s.chains, s.progress) from None
        positions = unflatten(cm, result.positions)
        values, node_stats = _per_draw(
            cm, args, positions, gen_key, unconstrained=True, solver_stats=True
        )
    kind = "diag" if s.sampler == "chees" else a.metric  # ChEES adapts a diagonal metric
    adapted = _adapted(result, kind, cm.param_unc_num())
    return draws_fit(
        cm,
        values,
        sample_stats={**result.stats, **node_stats},
        warmup_sample_stats=result.warmup_stats,
        adaptation=adapted,
        attrs={
            "seed": seed,
            "chains": s.chains,
            "warmup": s.warmup,
            "draws": s.draws,
            "max_tree_depth": s.max_tree_depth,
            "sampler": s.sampler,
            "metric": kind,
            "devices": _devices(s),
            "shard_data": s.shard_data,
            "seconds": round(result.seconds, 3),
            **runaway.attrs(cm, result.positions, values),  # W0406: an improper posterior?
        },
        warmup_divergences=np.sum(result.warmup_stats["diverging"], axis=1),
        solver_failures=by_label(cm.nodes, result.solver_failures, s.chains),
        gradient_failures=by_label(cm.nodes, result.gradient_failures, s.chains),
        solver_failure_reasons=reasons_by_label(cm.nodes, events.reasons_per_node()),
    )


def _devices(s: SampleSettings) -> int:
    """Devices the run used: all with ``shard_data``; one for ChEES (one program)."""
    from fpl.runtime.nuts import chain_devices

    if s.sampler == "chees":
        return 1
    return len(jax.local_devices() if s.shard_data else chain_devices(s.chains))


#: a low-rank metric is saved in dense form (``inv_metric``) up to this many unconstrained
#: params; above, its diagonal and its factors (exact either way)
DENSE_SAVE_MAX = 200


def _adapted(result, kind: str, d: int) -> dict[str, np.ndarray]:
    """The fit's ``adaptation``: step sizes and inverse metrics per chain (a low-rank
    metric also as its exact factors; in dense form only up to ``DENSE_SAVE_MAX``
    dimensions, its diagonal above)."""
    from fpl.runtime.adaptation import dense_form

    out = {"step_size": np.asarray(result.step_size)}
    if kind != "low_rank":
        return {**out, "inv_metric": dense_form(result.metric)}
    sigma, u, lam = (np.asarray(x) for x in result.metric)
    if d <= DENSE_SAVE_MAX:
        inv = dense_form(result.metric)
    else:  # diag of diag(σ)(I + U(Λ-I)Uᵀ)diag(σ)
        inv = sigma**2 * (1.0 + np.einsum("cik,ck->ci", u**2, lam - 1.0))
    return {**out, "inv_metric": inv, "metric_sigma": sigma, "metric_U": u, "metric_lam": lam}


def _given_metric(cm: CompiledModel, s: SampleSettings):
    """The metric and step size of the fit ``s.metric``, one per chain (its chains
    reused in turn), in the form the sampler takes."""
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    fit = s.metric
    ad = {k: np.asarray(v, float) for k, v in fit.adaptation.items()}
    d = cm.param_unc_num()
    kind = fit.attrs.get("metric", "diag")
    width = ad["metric_sigma"].shape[-1] if kind == "low_rank" else ad["inv_metric"].shape[-1]
    if width != d:
        raise error(
            "E0403",
            f"the `metric` fit's metric has {width} unconstrained dimensions, this model {d}",
        )
    pick = np.arange(s.chains) % len(ad["step_size"])
    step = jnp.asarray(ad["step_size"][pick])
    if kind == "low_rank":
        parts = (ad["metric_sigma"], ad["metric_U"], ad["metric_lam"])
        return LowRankInverseMassMatrix(*(jnp.asarray(p[pick]) for p in parts)), step
    return jnp.asarray(ad["inv_metric"][pick]), step


def _stuck_error(model, cm: CompiledModel, data, weights, stuck, chains: int, progress):
    """The coded diagnostic of a chain stopped by the stuck-chain guard: where it sits,
    its step size, and, for implicit nodes, which one is ill-posed at that point."""
    from fpl.runtime.diagnose import diagnose

    values = cm.constrain(jnp.asarray(stuck.position))
    params = {n: np.asarray(values[n]) for n in model.param_names}
    where = ", ".join(f"{n} = {_show(v)}" for n, v in params.items())
    message = (
        f"chain {stuck.chain + 1} of {chains} is stuck: its step size collapsed to "
        f"{stuck.step_size:.2g} during warmup (iteration {stuck.iteration}) at {where} "
        f"(log density {stuck.lp:.4g})"
    )
    span = None
    if cm.nodes:
        try:
            ill = diagnose(model, params, data, weights=weights).ill_posed
        except FplError:  # the point itself may defeat the diagnosis: report the rest
            ill = []
        if ill:
            node = ill[0]
            span = node.span
            message += f"; `{node.kind}` at {node.location} is ill-posed there: {node.message}"
        else:
            message += "; its implicit nodes look well-posed there"
    return error(
        "E0412",
        message,
        span,
        help="the density is discontinuous or ill-posed near that point, so no step size "
        "works; start the chains elsewhere with `init=` (`--init`), or tighten the priors "
        "to keep the params where the model is well-posed",
    )


def _show(v: np.ndarray) -> str:
    if v.ndim == 0:
        return f"{float(v):.4g}"
    return np.array2string(v, precision=3, threshold=6, separator=", ")


def generate(model, fit_or_params, data, *, seed, weights) -> dict[str, np.ndarray]:
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    with _float64():
        cm = model.bind(data, weights)
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        if isinstance(fit_or_params, Fit):
            params = {p: fit_or_params.posterior[p] for p in model.param_names}
            values = _per_draw(cm, args, params, jax.random.PRNGKey(seed), unconstrained=False)
        else:
            cm.check_params(fit_or_params)
            params = {
                k: np.asarray(v, float)[None, None]
                for k, v in fit_or_params.items()
                if k in model.param_names
            }
            values = _per_draw(cm, args, params, jax.random.PRNGKey(seed), unconstrained=False)
            values = {k: v[0, 0] for k, v in values.items()}
    names = set(model.out_names) | set(cm.gen_names)
    return {k: v for k, v in values.items() if k in names}


def report(model, fit, args) -> int:
    """``fpl sample``'s output: the summary (``--quiet`` only silences the progress),
    then ``-o`` written (a failed write keeps the fit in a recovery file, E0502)."""
    from fpl.runtime.cli_methods import save_output

    print(fit.summary())
    if args.output:
        print()
    return save_output(fit, args.output, METHOD.output_formats)


METHOD = Method(
    name="sample",
    help="sample the posterior with NUTS",
    settings=SampleSettings,
    run="fpl.runtime.sampling:run",
    report=report,
    output="write the fit: .nc (ArviZ netCDF), .csv or .json",
    quiet="no progress bars",
)

#: ``sample``'s own names, and those other modules import from here (the initial points
#: are ``fpl.runtime.inits``'s, the per-draw pass ``fpl.runtime.draws``'s)
__all__ = [
    "INIT_CANDIDATES",
    "INIT_RADIUS",
    "INIT_TRIES",
    "METHOD",
    "SampleSettings",
    "find_inits",
    "generate",
    "potential",
    "run",
    "sample",
]
