"""``Model.vi``: variational inference on NumPyro's SVI and autoguides.

The FPL model becomes a NumPyro model with one latent site per param, on the
unconstrained scale (``ImproperUniform`` over the real line, so NumPyro adds no
transform of its own), one ``numpyro.param`` site per weight, and a single
``numpyro.factor`` holding the FPL log density of those values, the log-Jacobian of the
unconstraining transforms included.  The guide ``q(u)`` is therefore a distribution on
the unconstrained scale, the ELBO is ``E_q[ℓ(u)] + H[q]``, and draws from ``q`` are mapped
back through the constraining transforms (bounds that depend on other params recomputed
per draw), with outs and gens computed per draw with the fitted weights.

Weights are fitted jointly with the guide (maximising the ELBO in them: empirical Bayes
for weights inside priors, maximum likelihood for weights in the likelihood).

Guides: ``normal`` (mean-field Gaussian, ``AutoNormal``), ``mvn`` (full-covariance,
``AutoMultivariateNormal``), ``lowrank`` (``AutoLowRankMultivariateNormal``),
``laplace`` (``AutoLaplaceApproximation``: a MAP fit, then the Hessian there), ``delta``
(``AutoDelta``: MAP, every draw the same point), or a callable ``numpyro_model -> guide``
for any other NumPyro guide.  Mean-field guides underestimate posterior variances when
params are correlated (reverse KL fits the conditional, not the marginal, spread).
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
from fpl.dsl.diagnostics import error
from fpl.runtime.fit import Fit
from fpl.runtime.loop import Progress, run_chunks
from fpl.runtime.methods import Method, Settings, option
from fpl.runtime.optimizers import StochasticOptimizerOptions
from fpl.runtime.sampling import _float64, _per_draw, draws_fit, find_inits
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
DEFAULT_LEARNING_RATE = 1e-2
CHUNK = 500  # steps per compiled call; progress is reported between calls


@dataclass(frozen=True)
class VISettings(Settings):
    guide: str | Callable = option(
        "normal",
        "the autoguide (or, in Python, a callable numpyro_model -> guide)",
        choices=tuple(GUIDES),
    )
    steps: int = option(5000, "SVI steps", min=1)
    optimizer: Any = option(None, "an optax GradientTransformation (none: adam(1e-2))", cli=False)
    particles: int = option(1, "ELBO samples per step", min=1)
    draws: int = option(4000, "draws from the fitted guide", min=1)
    seed: int | None = option(None, "random seed", min=0)
    init: Any = option(None, "initial param values (constrained, by name)", file=True)
    weights: Any = option(None, "initial weight values (none: their init)", file=True)
    progress: bool = option(True, "a progress line on stderr", cli=False)

    def check(self) -> None:
        if self.optimizer is not None:
            _optimizer(self.optimizer)  # E0403 unless an optax (or NumPyro) optimizer


def run(model, data, s: VISettings) -> Fit:
    return vi(
        model,
        data,
        guide=s.guide,
        steps=s.steps,
        optimizer=s.optimizer,
        draws=s.draws,
        seed=s.seed,
        particles=s.particles,
        init=s.init,
        weights=s.weights,
        progress=s.progress,
    )


def report(model, fit: Fit, args) -> int:
    """``fpl vi``'s output: unless ``--quiet`` the ELBO and the summary, the fit
    (``-o``), then the loss plot (``--plot``)."""
    from fpl.runtime.cli_methods import report as default_report
    from fpl.runtime.optimizers import plot_loss

    code = default_report(METHOD, fit, args)
    if args.plot:
        plot_loss(args.plot, -fit.elbo, f"{model.name}: vi ({args.guide}), loss = -ELBO")
        print(f"wrote {args.plot}")
    return code


def headline(fit: Fit) -> str:
    steps = fit.attrs["steps"]
    return f"ELBO {fit.attrs['elbo']:.6g} (mean over the last tenth of {steps} steps)\n"


def numpyro_model(cm: CompiledModel) -> Callable:
    """The NumPyro model of a compiled FPL model: ``model(args)`` with ``args`` the data
    arrays."""
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


def _guide(guide, model, start: dict):
    from numpyro.infer import autoguide
    from numpyro.infer.initialization import init_to_value

    if callable(guide) and not isinstance(guide, str):
        return guide(model)
    if guide not in GUIDES:
        raise error(
            "E0403",
            f"unknown guide `{guide}`",
            help="guides are: " + ", ".join(GUIDES) + " (or a callable model -> NumPyro guide)",
        )
    cls = getattr(autoguide, GUIDES[guide])
    return cls(model, prefix="fpl_guide", init_loc_fn=init_to_value(values=start))


def _optimizer(optimizer):
    import optax
    from numpyro.optim import _NumPyroOptim, optax_to_numpyro

    if optimizer is None:
        return optax_to_numpyro(optax.adam(DEFAULT_LEARNING_RATE))
    if isinstance(optimizer, _NumPyroOptim):
        return optimizer
    if isinstance(optimizer, optax.GradientTransformation):
        return optax_to_numpyro(optimizer)
    raise error(
        "E0403",
        f"`optimizer` must be an optax transformation, got {type(optimizer).__name__}",
        help="e.g. optimizer=optax.adam(1e-2)",
    )


def vi(
    model,
    data,
    *,
    guide: str | Callable,
    steps: int,
    optimizer,
    draws: int,
    seed: int | None,
    particles: int,
    init,
    weights,
    progress: bool,
) -> Fit:
    """Fit ``guide`` by SVI (``Trace_ELBO`` with ``particles`` samples per step) for
    ``steps`` steps; returns a :class:`Fit` (one chain of ``draws`` draws from the guide)
    with ``.elbo`` (the ELBO estimate at every step) and ``.weights`` (fitted)."""
    from numpyro.infer import SVI, Trace_ELBO

    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    began = time.perf_counter()
    with _float64():
        cm = model.bind(data, weights, weight_seed=seed)
        if not cm.params:
            raise error(
                "E0403", "the model has no params", help="to fit weights alone use `optimize`"
            )
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        start = find_inits(cm, args, 1, seed, init)[0]
        np_model = numpyro_model(cm)
        q = _guide(guide, np_model, start)
        svi = SVI(np_model, q, _optimizer(optimizer), Trace_ELBO(num_particles=particles))
        key, run_key, draw_key, gen_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        state = svi.init(run_key, args)

        def chunk(s, a, n):
            return jax.lax.scan(lambda c, _: svi.update(c, a), s, None, length=n)

        compiled = jax.jit(chunk, static_argnums=2)
        run = {"state": state, "losses": []}

        def advance(done: int, n: int) -> str:
            state, loss = compiled(run["state"], args, n)
            run["state"], run["losses"] = state, [*run["losses"], np.asarray(loss)]
            return f"elbo {-float(np.mean(run['losses'][-1][-min(n, 50) :])):.6g}"

        run_chunks(advance, done=0, total=steps, chunk=CHUNK, bar=Progress(progress, steps, "vi"))
        state = run["state"]
        elbo = -np.concatenate(run["losses"])
        params = svi.get_params(state)
        fitted = {name: np.asarray(params[name]) for name in cm.weights}
        bad = [k for k, v in params.items() if not np.all(np.isfinite(np.asarray(v)))]
        if bad:
            raise error(
                "E0409",
                f"variational inference diverged: non-finite values in {', '.join(sorted(bad))}",
                help="use a smaller learning rate, more `particles`, or `init` values; a "
                "param whose posterior the guide cannot cover may also cause this",
            )
        latent = q.sample_posterior(draw_key, params, args, sample_shape=(draws,))
        positions = {name: np.asarray(latent[name])[None] for name in start}
        fitted_cm = cm.with_weights({k: jnp.asarray(v) for k, v in fitted.items()})
        values = _per_draw(fitted_cm, args, positions, gen_key, unconstrained=True)
    tail = elbo[-max(1, steps // 10) :]
    return draws_fit(
        cm,
        values,
        sample_stats={},
        attrs={
            "method": "vi",
            "guide": guide if isinstance(guide, str) else getattr(guide, "__name__", "custom"),
            "seed": seed,
            "steps": steps,
            "draws": draws,
            "particles": particles,
            "elbo": float(np.mean(tail)),  # mean over the last tenth of the steps
            "seconds": round(time.perf_counter() - began, 3),
            # read back by `predict`, so that a saved fit carries the weights it was fitted with
            **(
                {"weights": json.dumps({k: v.tolist() for k, v in fitted.items()})}
                if fitted
                else {}
            ),
        },
        elbo=elbo,
        weights=fitted,
    )


METHOD = Method(
    name="vi",
    help="variational inference (NumPyro SVI with an autoguide)",
    settings=VISettings,
    run="fpl.runtime.vi:run",
    headline=headline,
    command=StochasticOptimizerOptions,
    report=report,
    quiet="no progress bar and no summary",
)

__all__ = ["GUIDES", "METHOD", "VISettings", "numpyro_model", "run", "vi"]
