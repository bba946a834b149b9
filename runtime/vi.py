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
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fpl.compiler.lower import from_unconstrained, run
from fpl.dsl.diagnostics import error
from fpl.runtime.fit import Fit
from fpl.runtime.nuts import Progress
from fpl.runtime.sampling import _float64, _per_draw, find_inits

GUIDES = {
    "normal": "AutoNormal",
    "mvn": "AutoMultivariateNormal",
    "lowrank": "AutoLowRankMultivariateNormal",
    "laplace": "AutoLaplaceApproximation",
    "delta": "AutoDelta",
}
DEFAULT_LEARNING_RATE = 1e-2
CHUNK = 500  # steps per compiled call; progress is reported between calls


def numpyro_model(bound) -> Callable:
    """The NumPyro model of a bound FPL model: ``model(args)`` with ``args`` the data arrays."""
    import numpyro
    import numpyro.distributions as dist

    from fpl.compiler.transforms import unconstrained_shape

    program, static = bound.program, bound.static
    shapes = {
        p.name: unconstrained_shape(p.constraint.kind, tuple(p.ty.shape)) for p in program.params
    }

    # Compiled once: NumPyro runs the model eagerly while setting a guide up, and an eager
    # walk of the FPL program would dispatch (and compile) every operation one by one.
    @jax.jit
    def log_density(u, w, args):
        return run(program, {**static, **args, **w}, from_unconstrained(u)).target

    def model(args):
        u = {
            name: numpyro.sample(name, dist.ImproperUniform(dist.constraints.real, (), shape))
            for name, shape in shapes.items()
        }
        w = {name: numpyro.param(name, jnp.asarray(v)) for name, v in bound.weights.items()}
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


def vi(model, data, *, guide: str | Callable = "normal", steps: int = 5000, optimizer=None,
       draws: int = 4000, seed: int | None = None, particles: int = 1,
       init: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
       progress: bool = True) -> Fit:  # fmt: skip
    """Fit ``guide`` by SVI (``Trace_ELBO`` with ``particles`` samples per step) for
    ``steps`` steps; returns a :class:`Fit` (one chain of ``draws`` draws from the guide)
    with ``.elbo`` (the ELBO estimate at every step) and ``.weights`` (fitted)."""
    from numpyro.infer import SVI, Trace_ELBO

    for name, value, lo in (("steps", steps, 1), ("draws", draws, 1), ("particles", particles, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise error("E0403", f"`{name}` must be an integer >= {lo}, got {value!r}")
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    began = time.perf_counter()
    with _float64():
        bound = model.bind(data, weights, weight_seed=seed)
        if not bound.program.params:
            raise error(
                "E0403", "the model has no params", help="to fit weights alone use `optimize`"
            )
        args = {k: jnp.asarray(v) for k, v in bound.arrays.items()}
        start = find_inits(model, bound, args, 1, seed, init)[0]
        np_model = numpyro_model(bound)
        q = _guide(guide, np_model, start)
        svi = SVI(np_model, q, _optimizer(optimizer), Trace_ELBO(num_particles=particles))
        key, run_key, draw_key, gen_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        state = svi.init(run_key, args)

        def chunk(s, a, n):
            return jax.lax.scan(lambda c, _: svi.update(c, a), s, None, length=n)

        compiled = jax.jit(chunk, static_argnums=2)
        bar = Progress(progress, steps, "vi")
        losses = []
        done = 0
        while done < steps:
            n = min(CHUNK, steps - done)
            state, loss = compiled(state, args, n)
            losses.append(np.asarray(loss))
            done += n
            bar.update(n, f"elbo {-float(np.mean(losses[-1][-min(n, 50) :])):.6g}")
        elbo = -np.concatenate(losses)
        params = svi.get_params(state)
        fitted = {name: np.asarray(params[name]) for name in bound.weights}
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
        fitted_bound = replace(bound, weights={k: jnp.asarray(v) for k, v in fitted.items()})
        values = _per_draw(fitted_bound, args, positions, gen_key, unconstrained=True)
    program = bound.program
    tail = elbo[-max(1, steps // 10) :]
    return Fit(
        model=model.name,
        posterior={n: values[n] for n in [*model.param_names, *model.out_names]},
        generated={g.name: values[g.name] for g in program.gens},
        sample_stats={},
        observed={**{k: np.asarray(v) for k, v in bound.static.items()}, **bound.arrays},
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
