"""``Model.vi``: variational inference on NumPyro's SVI and autoguides, started from a
Gaussian fit, with an adapted step size and Stan's relative-ELBO stopping rule.

The model.  The FPL model becomes a NumPyro model with one latent vector on the
unconstrained scale (``ImproperUniform`` over the real line, so NumPyro adds no
transform of its own), one ``numpyro.param`` site per weight, and a ``numpyro.factor``
holding the FPL log density, the log-Jacobian of the unconstraining transforms
included.  The guide ``q`` is a distribution on the unconstrained scale, the ELBO is
``E_q[ℓ(u)] + H[q]``, and draws from ``q`` are mapped back through the constraining
transforms (bounds that depend on other params recomputed per draw), with outs and gens
computed per draw with the fitted weights.  Weights are fitted jointly with the guide
(maximising the ELBO in them: empirical Bayes for weights inside priors, maximum
likelihood for weights in the likelihood).

The start (``fpl.runtime.vi_start``).  SVI runs in coordinates whitened by a Gaussian
fit found first (``start``: the Laplace approximation at the mode, else Pathfinder's,
else the samplers' initial point), so that every posterior sd is near 1 there and the
guide starts at that fit.

The step size.  The default optimiser is Adam with the step size
``η_k = η / √(1 + k / eval_elbo)`` (the ``k^(-1/2)`` decay of Stan's ADVI sequence).
``η`` is adapted as Stan adapts its ``eta``: from the start, each of
:data:`STEP_SIZES` runs ``eval_elbo`` steps, the ELBO is estimated after each with the
same ``elbo_draws`` draws, and the run continues from the best.  ``step_size`` fixes
``η``; ``optimizer`` replaces the whole rule (no adaptation, no decay).

Convergence (Stan's rule).  Every ``eval_elbo`` steps the ELBO is estimated with
``elbo_draws`` fresh draws and its relative change ``|E_t − E_{t−1}| / max(|E_{t−1}|, 1)``
recorded (Stan divides by ``|E_{t−1}|`` alone, which an ELBO near 0 never meets); the
run stops when the mean or the median of the last ``w = max(2, 0.1 · steps /
eval_elbo)`` changes (Stan's window) falls below ``tol_rel_obj``, tested once ``w``
changes exist (Stan tests from the first).  A run that reaches ``steps`` without
meeting it has ``attrs["converged"] = 0`` and ``fpl vi`` prints a warning (W0404).  The
returned guide is the average of the unconstrained guide parameters over the window's
``w · eval_elbo`` steps (tail averaging: the last iterate jitters by about
``√(η / 2)`` sds in the whitened coordinates; the average of ``W`` steps by about
``1/√W``, measured 0.03-0.05 sd for W = 1000).

Quality.  Each draw's log importance ratio ``ℓ(u) − log q(u)`` (``lp`` minus
``lp_approx`` in ``sample_stats``) goes to PSIS; its Pareto k̂ is ``attrs["pareto_k"]``
and above 0.7 (the guide misses mass the posterior has) ``fpl vi`` warns (W0405).  Not
for ``delta`` (a point, no density) nor for a callable guide.

Guides: ``normal`` (mean-field Gaussian, ``AutoNormal``), ``mvn`` (full-covariance,
``AutoMultivariateNormal``), ``lowrank`` (``AutoLowRankMultivariateNormal``),
``laplace`` (``AutoLaplaceApproximation``: a MAP fit, then the Hessian there), ``delta``
(``AutoDelta``: MAP, every draw the same point), or a callable ``numpyro_model -> guide``
for any other NumPyro guide (run on :func:`numpyro_model`, one site per param, from no
start: the callable sets its own).  Mean-field guides underestimate posterior variances
when params are correlated (reverse KL fits the conditional, not the marginal, spread).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.compiler.compiled import CompiledModel
from fpl.dsl.diagnostics import Diagnostic, error
from fpl.runtime.draws import draws_fit, per_draw
from fpl.runtime.fit import Fit
from fpl.runtime.loop import Progress, run_chunks
from fpl.runtime.methods import Method, Settings, option
from fpl.runtime.optimizers import OPTIMIZERS, OptimizerOptions, make_optimizer
from fpl.runtime.psis import K_THRESHOLD, pareto_k
from fpl.runtime.sampling import _float64
from fpl.runtime.vi_start import PREFIX, SITE, STARTS, gaussian_start, whitened_model
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

GUIDES = {
    "normal": "AutoNormal",
    "mvn": "AutoMultivariateNormal",
    "lowrank": "AutoLowRankMultivariateNormal",
    "laplace": "AutoLaplaceApproximation",
    "delta": "AutoDelta",
}
#: the step sizes ``η`` the adaptation tries (whitened coordinates: sds near 1)
STEP_SIZES = (1.0, 0.3, 0.1, 0.03, 0.01)


@dataclass(frozen=True)
class VISettings(Settings):
    guide: str | Callable = option(
        "normal",
        "the autoguide (or, in Python, a callable numpyro_model -> guide)",
        choices=tuple(GUIDES),
    )
    steps: int = option(10000, "SVI steps at most (fewer once converged)", min=1)
    start: str = option(
        "auto",
        "the Gaussian fit SVI starts from and is whitened by (auto: laplace, else "
        "pathfinder, else the initial point)",
        choices=STARTS,
    )
    tol_rel_obj: float = option(
        0.01, "stop when the mean or median relative ELBO change is below this", min=0
    )
    eval_elbo: int = option(100, "steps between ELBO estimates (and the convergence test)", min=1)
    elbo_draws: int = option(100, "draws per ELBO estimate", min=1)
    step_size: float | None = option(
        None, "Adam's initial step size in whitened coordinates (none: adapted)", gt=0
    )
    optimizer: Any = option(None, "an optax GradientTransformation (none: adapted Adam)", cli=False)
    particles: int = option(1, "ELBO samples per step", min=1)
    draws: int = option(4000, "draws from the fitted guide", min=1)
    seed: int | None = option(None, "random seed", min=0)
    init: Any = option(None, "initial param values (constrained, by name)", file=True)
    weights: Any = option(None, "initial weight values (none: their init)", file=True)
    progress: bool = option(True, "a progress line on stderr", cli=False)

    def check(self) -> None:
        if self.optimizer is not None:
            _optimizer(self.optimizer)  # E0403 unless an optax (or NumPyro) optimizer


@dataclass(frozen=True)
class VIOptimizerOptions(OptimizerOptions):
    """``fpl vi``'s optimizer flags: none given, the adapted Adam; any given, that optax
    optimizer (stochastic gradients, so no lbfgs)."""

    optimizer: str | None = option(
        None, "the optax optimizer (none: Adam, step size adapted)", choices=OPTIMIZERS[:-1]
    )
    schedule: str | None = option(
        None, "learning-rate schedule over the steps (with --optimizer or --lr)", choices=None
    )

    def check(self) -> None:
        from fpl.runtime.optimizers import SCHEDULES

        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise error("E0403", f"`schedule` must be one of {', '.join(SCHEDULES)}")
        super().check()

    def apply(self, settings: Settings) -> dict:
        if self.optimizer is None and self.lr is None and self.schedule is None:
            return {}
        name, schedule = self.optimizer or "adam", self.schedule or "constant"
        return {"optimizer": make_optimizer(name, self.lr, schedule, settings.steps)}


def run(model, data, s: VISettings) -> Fit:
    return vi(model, data, s)


def report(model, fit: Fit, args) -> int:
    """``fpl vi``'s output: unless ``--quiet`` the ELBO and the summary, the fit
    (``-o``), the loss plot (``--plot``), then on stderr the warnings of
    :func:`problems`."""
    import sys

    from fpl.runtime.cli_methods import report as default_report
    from fpl.runtime.optimizers import plot_loss

    code = default_report(METHOD, fit, args)
    if args.plot:
        plot_loss(args.plot, -fit.elbo, f"{model.name}: vi ({args.guide}), loss = -ELBO")
        print(f"wrote {args.plot}")
    for warning in problems(fit):
        if getattr(args, "error_format", "text") == "json":
            print(json.dumps(warning.to_json()), file=sys.stderr)
        else:
            print("\n" + warning.render(), file=sys.stderr)
    return code


def headline(fit: Fit) -> str:
    a = fit.attrs
    state = "converged" if a.get("converged") else "did not converge"
    khat = a.get("pareto_k")
    shown = "" if khat is None else f"; Pareto k̂ {float(khat):.2f}"
    return (
        f"ELBO {a['elbo']:.6g} ({state} in {a['steps']} steps, step size {a['step_size']}, "
        f"from the {a['start']} fit{shown})\n"
    )


def problems(fit: Fit) -> list[Diagnostic]:
    """The warnings of a VI fit: not converged (W0404), Pareto k̂ above 0.7 (W0405)."""
    a, out = fit.attrs, []
    if not a.get("converged", 1):
        out.append(
            Diagnostic(
                "W0404",
                f"variational inference did not converge in {a['steps']} steps (the "
                f"relative ELBO change stayed above tol_rel_obj = {a['tol_rel_obj']})",
                help="raise `steps`, or give a larger `tol_rel_obj`; the draws may be off",
                severity="warning",
            )
        )
    khat = a.get("pareto_k")
    if khat is not None and float(khat) > K_THRESHOLD:
        out.append(
            Diagnostic(
                "W0405",
                f"the variational approximation is unreliable here: Pareto k̂ = "
                f"{float(khat):.2f} > {K_THRESHOLD} (importance ratios of the posterior to "
                "the guide)",
                help="the guide misses posterior mass (heavy tails, a funnel, strong "
                'correlations under `normal`): try `guide="mvn"`, or use `fpl sample`',
                severity="warning",
            )
        )
    return out


def numpyro_model(cm: CompiledModel) -> Callable:
    """The NumPyro model of a compiled FPL model, one latent site per param:
    ``model(args)`` with ``args`` the data arrays (what a callable guide is given)."""
    import numpyro
    import numpyro.distributions as dist

    shapes = cm.param_unc_shapes

    # Compiled once: NumPyro runs the model eagerly while setting a guide up, and an eager
    # walk of the FPL program would dispatch (and compile) every operation one by one.
    @jax.jit
    def log_density(u, w, args):
        return cm.log_density(cm.ravel(u), data=args, weights=w)

    def model(args):
        u = {
            name: numpyro.sample(name, dist.ImproperUniform(dist.constraints.real, (), shape))
            for name, shape in shapes.items()
        }
        w = {name: numpyro.param(name, jnp.asarray(v)) for name, v in cm.weights.items()}
        numpyro.factor("fpl_log_density", log_density(u, w, args))

    return model


def _check_guide(guide: str) -> None:
    if guide not in GUIDES:
        raise error(
            "E0403",
            f"unknown guide `{guide}`",
            help="guides are: " + ", ".join(GUIDES) + " (or a callable model -> NumPyro guide)",
        )


def _autoguide(guide: str, model, n: int):
    """The autoguide on the whitened model, starting at ``z ~ N(0, I)``."""
    from numpyro.infer import autoguide
    from numpyro.infer.initialization import init_to_value

    options = {"prefix": PREFIX, "init_loc_fn": init_to_value(values={SITE: jnp.zeros(n)})}
    if guide in ("normal", "mvn", "lowrank"):
        options["init_scale"] = 1.0
    return getattr(autoguide, GUIDES[guide])(model, **options)


def _optimizer(optimizer):
    import optax
    from numpyro.optim import _NumPyroOptim, optax_to_numpyro

    if isinstance(optimizer, _NumPyroOptim):
        return optimizer
    if isinstance(optimizer, optax.GradientTransformation):
        return optax_to_numpyro(optimizer)
    raise error(
        "E0403",
        f"`optimizer` must be an optax transformation, got {type(optimizer).__name__}",
        help="e.g. optimizer=optax.adam(1e-2)",
    )


def _decaying_adam(eval_elbo: int):
    """Adam with step size ``η / √(1 + k / eval_elbo)``; ``η`` is a hyperparameter in
    the state (:func:`_with_step_size`), so one compiled update serves every ``η``."""
    import optax
    from numpyro.optim import optax_to_numpyro

    return optax_to_numpyro(
        optax.chain(
            optax.scale_by_adam(),
            optax.scale_by_schedule(lambda k: 1.0 / jnp.sqrt(1.0 + k / eval_elbo)),
            optax.inject_hyperparams(optax.scale)(step_size=-1.0),
        )
    )


def _with_step_size(state, eta: float):
    """The SVI state with the decaying Adam's ``η`` set to ``eta``."""

    def replace(path, leaf):
        last = path[-1] if path else None
        if isinstance(last, jax.tree_util.DictKey) and last.key == "step_size":
            return jnp.full_like(leaf, -eta)
        return leaf

    return jax.tree_util.tree_map_with_path(replace, state)


def vi(model, data, s: VISettings) -> Fit:
    """Fit the guide (see the module docstring); returns a :class:`Fit` (one chain of
    ``draws`` draws from the guide) with ``.elbo`` (the one-sample ELBO estimate at every
    step) and ``.weights`` (fitted)."""
    from fpl.runtime.vi_run import SVIRun

    seed = secrets.randbelow(2**31) if s.seed is None else int(s.seed)
    began = time.perf_counter()
    custom = callable(s.guide) and not isinstance(s.guide, str)
    with _float64():
        cm = model.bind(data, s.weights, weight_seed=seed)
        if not cm.params:
            raise error(
                "E0403", "the model has no params", help="to fit weights alone use `optimize`"
            )
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        if custom:
            origin, np_model = None, numpyro_model(cm)
            q = s.guide(np_model)
        else:
            _check_guide(s.guide)  # E0403 before any fitting
            origin = gaussian_start(
                cm, args, start=s.start, full_rank=s.guide == "mvn", seed=seed, init=s.init
            )
            np_model = whitened_model(cm, origin)
            q = _autoguide(s.guide, np_model, origin.mean.size)
        adaptive = s.optimizer is None
        optim = _decaying_adam(s.eval_elbo) if adaptive else _optimizer(s.optimizer)
        runner = SVIRun(np_model, q, optim, s, args, seed)
        eta = runner.adapt(s.step_size) if adaptive else None
        bar = Progress(s.progress, s.steps, "vi")
        done = run_chunks(runner.advance, done=0, total=s.steps, chunk=s.eval_elbo, bar=bar)
        params = runner.final_params()
        fitted = {name: np.asarray(params[name]) for name in cm.weights}
        fitted_cm = cm.with_weights({k: jnp.asarray(v) for k, v in fitted.items()})
        draw_key, gen_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 1))
        u, log_q = runner.draws(draw_key, params, s.guide, origin, cm, s.draws)
        lp = np.asarray(
            jax.jit(jax.vmap(lambda x, a: fitted_cm.log_density(x, data=a), in_axes=(0, None)))(
                u, args
            )
        )
        positions = {k: np.asarray(v)[None] for k, v in jax.vmap(cm.unravel)(u).items()}
        values = per_draw(fitted_cm, args, positions, gen_key, unconstrained=True)
        elbo_final = runner.elbo(params, final=True)
    khat = None if log_q is None else pareto_k(lp - log_q)
    stats = {} if log_q is None else {"lp": lp[None], "lp_approx": np.asarray(log_q)[None]}
    return draws_fit(
        cm,
        values,
        sample_stats=stats,
        attrs={
            "method": "vi",
            "guide": s.guide
            if isinstance(s.guide, str)
            else getattr(s.guide, "__name__", "custom"),
            "seed": seed,
            "steps": done,
            "max_steps": s.steps,
            "converged": int(runner.converged),
            "tol_rel_obj": s.tol_rel_obj,
            "relative_elbo_change": runner.last_change(),
            "start": origin.kind if origin is not None else "none",
            "step_size": "optimizer" if eta is None else eta,
            "draws": s.draws,
            "particles": s.particles,
            "elbo": elbo_final,  # with elbo_draws draws, at the returned guide
            **({} if khat is None else {"pareto_k": khat if np.isfinite(khat) else str(khat)}),
            "seconds": round(time.perf_counter() - began, 3),
            # read back by `predict`, so that a saved fit carries the weights it was fitted with
            **(
                {"weights": json.dumps({k: v.tolist() for k, v in fitted.items()})}
                if fitted
                else {}
            ),
        },
        elbo=runner.trace(),
        weights=fitted,
    )


METHOD = Method(
    name="vi",
    help="variational inference (NumPyro SVI with an autoguide)",
    settings=VISettings,
    run="fpl.runtime.vi:run",
    headline=headline,
    command=VIOptimizerOptions,
    report=report,
    quiet="no progress bar and no summary",
)

__all__ = [
    "GUIDES",
    "METHOD",
    "STEP_SIZES",
    "VISettings",
    "numpyro_model",
    "problems",
    "run",
    "vi",
]
