"""``Model.sample`` and ``Model.generate``: NUTS, then params, outs and generated
quantities for every draw, computed in one vectorised pass.  ``sample``'s settings and
its entry in the methods table (``fpl sample``) are here too."""

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
from fpl.runtime.failures import SolverEvents, by_label, collecting, name_stats, reasons_by_label
from fpl.runtime.fit import Fit, split_data
from fpl.runtime.methods import Method, Settings, option
from fpl.stdlib.lazy import LazyModule

# JAX loads when a method runs, not when the CLI lists its settings
jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

INIT_RADIUS = 2.0  # Stan's default: uniform(-2, 2) on the unconstrained scale
INIT_CANDIDATES = 16  # points drawn per chain (per round); the best finite one is kept
INIT_TRIES = 100  # random points per chain before giving up (rounds of INIT_CANDIDATES)


def _float64():
    """Inference runs in float64 whatever the caller's global JAX setting, so results
    never depend on import order or on what else the process configured (and with the
    persistent compilation cache: ``fpl.runtime.platform``)."""
    from fpl.runtime.platform import use_compilation_cache

    use_compilation_cache()
    return jax.enable_x64(True)


def find_inits(cm: CompiledModel, args, chains: int, seed: int, init: Mapping[str, Any] | None):
    """Initial points, one per chain: the best of ``INIT_CANDIDATES`` random points.

    Each chain draws ``INIT_CANDIDATES`` points uniform(-2, 2) on the unconstrained scale
    (Stan's range) and starts from the one with the highest finite log density (finite
    gradient too).  Stan starts from the first finite point; a best-of-K start avoids
    the far corners of the box where the model may be ill-posed (an implicit node whose
    map is not a contraction there, with several solutions and a density that jumps
    between them), in which a chain can strand with a collapsed step size.  Different
    chains still start from different random points.  Rounds of candidates are drawn
    until one is finite, ``INIT_TRIES`` points in all.

    ``init`` fixes some or all params (constrained values by name), or is a fit (e.g.
    Pathfinder's) whose draws, evenly spaced, start the chains; the others are
    random, and the given ones are mapped to the unconstrained scale with bounds at each
    candidate.  Candidates come from NumPy's generator seeded by ``seed`` (reproducible);
    their unconstrained values, potentials and gradients are one compiled, vectorised
    function of the whole round."""
    shapes = cm.param_unc_shapes
    given: dict[str, Any] = {}
    per_chain = None
    if init is not None and hasattr(init, "posterior"):  # a Fit: a draw per chain
        per_chain = _draws_for_chains(cm, init, chains)
        init = per_chain[0]
    if init is not None:
        unknown = set(init) - set(shapes)
        if unknown:
            raise error("E0403", f"`init` names unknown params: {', '.join(sorted(unknown))}")
        given = {k: jnp.asarray(v, float) for k, v in init.items()}
    if not shapes:  # no params (a weights-only model being optimized): nothing to draw
        return [{} for _ in range(chains)]
    evaluate = _candidate_evaluator(cm)
    all_given = bool(given) and set(given) == set(shapes)
    rng = np.random.default_rng(seed)
    rounds = -(-INIT_TRIES // INIT_CANDIDATES)
    inits = []
    for c in range(chains):
        if per_chain is not None:
            given = {k: jnp.asarray(v, float) for k, v in per_chain[c].items()}
        for _round in range(rounds):
            cand = {
                name: rng.uniform(-INIT_RADIUS, INIT_RADIUS, size=(INIT_CANDIDATES, *shape))
                for name, shape in shapes.items()
            }
            u, pe, ok = evaluate(cand, given, args)
            pe, ok = np.asarray(pe), np.asarray(ok)
            if ok.any():
                best = int(np.argmin(np.where(ok, pe, np.inf)))
                inits.append({k: v[best] for k, v in u.items()})
                break
            if all_given:
                raise error(
                    "E0402",
                    "the log density is not finite at the given `init`",
                    help="check the values against the params' constraints",
                )
        else:
            tried = rounds * INIT_CANDIDATES
            blamed = _failing_node(cm, args, u)
            if blamed is not None:
                node, residual, reason = blamed
                raise error(
                    "E0402",
                    f"no finite log density after {tried} random initial points (chain "
                    f"{c + 1}): the {node.kind} here did not converge at any of them "
                    f"(smallest residual {residual:.3g}{reason})",
                    node.span,
                    label=f"{node.kind} never converged",
                    help="check that the node has a solution for every value of the params "
                    "(`fpl diagnose` tests it), or give `init` values where it does",
                )
            raise error(
                "E0402",
                f"no finite log density after {tried} random initial points (chain {c + 1})",
                help="give `init` values, or check priors, constraints and data",
            )
    return inits


def _failing_node(cm: CompiledModel, args, u):
    """The implicit node that failed at every candidate ``u`` of the last round (the one
    with the smallest best residual if several), as ``(node, residual, reason)``, or None:
    what makes E0402 point at the node instead of the whole model."""
    if not cm.nodes:
        return None
    from fpl.stdlib.solvers import reason_name

    thetas = jax.vmap(cm.ravel)(u)
    _, stats = jax.jit(jax.vmap(lambda th: cm.log_density(th, data=args, stats=True)))(thetas)
    worst = None
    for node in cm.nodes:
        st = stats.get(node.node_id)
        if st is None or bool(np.any(np.asarray(st["converged"]))):
            continue
        residuals = np.asarray(st["residual"], float)
        best = float(np.nanmin(residuals)) if np.isfinite(residuals).any() else float("nan")
        code = int(np.ravel(np.asarray(st.get("reason", 0)))[0])
        shown = f"; {reason_name(code)}" if code else ""
        if worst is None or best < worst[1]:
            worst = (node, best, shown)
    return worst


def _draws_for_chains(cm: CompiledModel, fit, chains: int) -> list[dict[str, np.ndarray]]:
    """Constrained params of ``chains`` draws of ``fit``, evenly spaced over its draws
    (Pathfinder or Laplace draws as NUTS inits, one per chain)."""
    missing = [p.name for p in cm.params if p.name not in fit.posterior]
    if missing:
        raise error("E0403", f"the `init` fit has no draws of param `{missing[0]}`")
    flat = {
        p.name: np.reshape(np.asarray(fit.posterior[p.name], float), (-1, *p.shape))
        for p in cm.params
    }
    n = len(next(iter(flat.values())))
    picks = np.linspace(0, n - 1, chains).round().astype(int)
    return [{k: v[i] for k, v in flat.items()} for i in picks]


def potential(cm: CompiledModel):
    """``args -> (u -> -log density(u))`` on the unconstrained scale, Jacobian included,
    over positions by name (as NumPyro's kernels move them) with the data as ``args``."""

    def gen(args):
        return lambda u: -cm.log_density(cm.ravel(u), data=args)

    return gen


def _candidate_evaluator(cm: CompiledModel):
    """``(random u, given, args) -> (u, potential, finite)`` over a round of candidates:
    the given params (constrained) replace the random ones, mapped to the unconstrained
    scale with the bounds at that point; finite means potential and gradient both are."""
    potential_gen = potential(cm)

    def one(u, given, args):
        if given:
            u = cm.unravel(cm.complete(cm.ravel(u), given, data=args))
        pe, g = jax.value_and_grad(potential_gen(args))(u)
        finite = jnp.isfinite(pe)
        for v in jax.tree_util.tree_leaves(g):
            finite &= jnp.all(jnp.isfinite(v))
        return u, pe, finite

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


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
        inits = find_inits(cm, args, s.chains, seed, s.init)
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
        positions = _unflatten(cm, result.positions)
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


def _unflatten(cm: CompiledModel, flat: np.ndarray) -> dict[str, np.ndarray]:
    """Flat unconstrained draws (chains, draws, d) -> {param: (chains, draws, *shape)}."""
    lead = flat.shape[:2]
    return {
        p.name: flat[..., p.offset : p.offset + p.unc_size].reshape(*lead, *p.unc_shape)
        for p in cm.params
    }


def _observed(cm: CompiledModel) -> dict[str, np.ndarray]:
    return {**{k: np.asarray(v) for k, v in cm.static.items()}, **cm.data}


def draws_fit(cm: CompiledModel, values: dict[str, np.ndarray], **fields: Any) -> Fit:
    """The :class:`Fit` of per-draw ``values`` (from :func:`_per_draw`): params and outs
    as the posterior, gens as generated quantities, the pointwise log-likelihood of the
    observed fields, the data as observed (fields observed by ``~``) and constant (the
    rest); ``fields`` are the rest (``sample_stats``, ``attrs``, ...).  Every method's
    draws become a fit here."""
    names = [*(p.name for p in cm.params), *cm.out_names]
    observed, constant = split_data(_observed(cm), {o.field for o in cm.observations})
    loglik = {k[len(LOG_LIK) :]: v for k, v in values.items() if k.startswith(LOG_LIK)}
    return Fit(
        model=cm.name,
        posterior={n: values[n] for n in names},
        generated={g: values[g] for g in cm.gen_names},
        observed=observed,
        constant_data=constant,
        **{"sample_stats": {}, "log_likelihood": loglik, **fields},
    )


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


#: the prefix of a per-draw value that is a field's pointwise log-likelihood (no FPL name
#: holds a colon)
LOG_LIK = "log_lik:"

#: draws evaluated together by the per-draw pass (``lax.map`` in batches): its memory is
#: O(GEN_BATCH x the model's size), not O(draws x size)
GEN_BATCH = 64


def _per_draw(
    cm: CompiledModel, args, positions: dict, key, unconstrained: bool, solver_stats: bool = False
):
    """Params, outs and gens for every (chain, draw), in batches of ``GEN_BATCH`` draws
    (one compiled program); from unconstrained draws also the pointwise log-likelihood of
    every observed data field (keys ``LOG_LIK + field``); with ``solver_stats`` returns
    ``(values, stats)`` with also each implicit node's residual, iterations, converged
    flag and reason at the draw (keys from ``fpl.runtime.failures.stat_name``)."""
    lead = next(iter(positions.values())).shape[:2]
    flat = {
        k: jnp.reshape(v, (v.shape[0] * v.shape[1], *v.shape[2:])) for k, v in positions.items()
    }
    n = lead[0] * lead[1]
    keys = jax.random.split(key, n)

    def each(flat, keys, a):
        def one(xs):
            out = cm.generate(
                xs[0], xs[1], constrained=not unconstrained, data=a, stats=solver_stats
            )
            if not unconstrained:  # predictions: new data need not hold the outcomes
                return out
            loglik = cm.pointwise_log_likelihood(xs[0], data=a)
            if solver_stats:
                return {**out[0], **{LOG_LIK + k: v for k, v in loglik.items()}}, out[1]
            return {**out, **{LOG_LIK + k: v for k, v in loglik.items()}}

        return _map_nonempty(one, (flat, keys), n)

    out = jax.jit(each)(flat, keys, args)
    if solver_stats:
        out, stats = out
        stats = name_stats(cm.nodes, stats)
        return _reshape(out, lead), _reshape(stats, lead)
    return _reshape(out, lead)


def _map_nonempty(one, xs, n: int):
    """``jax.lax.map(one, xs, batch_size=...)`` over ``n`` rows, with zero-size leaves (a
    ``real[0]`` param or gen: Stan's empty arrays) kept out of the batching, which cannot
    split them: they go in and come out as zeros of their shapes."""
    leaves, tree = jax.tree_util.tree_flatten(xs)
    empty = [leaf.size == 0 for leaf in leaves]
    kept = [leaf for leaf, e in zip(leaves, empty) if not e]

    def rebuild(row):
        it = iter(row)
        return jax.tree_util.tree_unflatten(
            tree,
            [
                jnp.zeros(leaf.shape[1:], leaf.dtype) if e else next(it)
                for leaf, e in zip(leaves, empty)
            ],
        )

    example = [jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype) for leaf in kept]
    out_shape = jax.eval_shape(lambda row: one(rebuild(row)), example)
    out_leaves, out_tree = jax.tree_util.tree_flatten(out_shape)
    out_empty = [leaf.size == 0 for leaf in out_leaves]

    def nonempty(row):
        values = jax.tree_util.tree_leaves(one(rebuild(row)))
        return [v for v, e in zip(values, out_empty) if not e]

    mapped = iter(
        jax.lax.map(nonempty, kept, batch_size=min(GEN_BATCH, n))
        if any(not e for e in out_empty)
        else []
    )
    return jax.tree_util.tree_unflatten(
        out_tree,
        [
            jnp.zeros((n, *leaf.shape), leaf.dtype) if e else next(mapped)
            for leaf, e in zip(out_leaves, out_empty)
        ],
    )


def _reshape(values: dict, lead) -> dict[str, np.ndarray]:
    return {k: np.asarray(v).reshape(*lead, *v.shape[1:]) for k, v in values.items()}


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
