"""``Model.sample`` and ``Model.generate``: NUTS, then params, outs and generated
quantities for every draw, computed in one vectorised pass."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fpl.compiler import ir
from fpl.compiler.lower import from_constrained, from_unconstrained, run
from fpl.dsl.diagnostics import error
from fpl.runtime.fit import Fit
from fpl.runtime.nuts import run_nuts

INIT_RADIUS = 2.0  # Stan's default: uniform(-2, 2) on the unconstrained scale
INIT_TRIES = 100


def _float64():
    """Inference runs in float64 whatever the caller's global JAX setting, so results
    never depend on import order or on what else the process configured."""
    return jax.enable_x64(True)


def find_inits(model, bound, args, chains: int, seed: int, init: Mapping[str, Any] | None):
    """Stan's initialisation: uniform(-2, 2) on the unconstrained scale, retried until the
    log density and its gradient are finite.  Candidates come from NumPy (no per-draw JAX
    dispatch); the density and gradient are one compiled function."""
    shapes = model.unconstrained_shapes(bound)
    value_and_grad = jax.jit(jax.value_and_grad(lambda u, a: model.potential_gen(bound)(a)(u)))
    given = None
    if init is not None:
        unknown = set(init) - set(shapes)
        if unknown:
            raise error("E0403", f"`init` names unknown params: {', '.join(sorted(unknown))}")
        given = dict(init)
    rng = np.random.default_rng(seed)
    inits = []
    for c in range(chains):
        for _attempt in range(INIT_TRIES):
            u = {
                name: jnp.asarray(rng.uniform(-INIT_RADIUS, INIT_RADIUS, size=shape))
                for name, shape in shapes.items()
            }
            if given is not None:  # the given values, the rest random (bounds recomputed)
                full = model.constrain(u, _data(bound), weights=bound.weights)
                params = {n: full[n] for n in shapes} | given
                u = model.unconstrain(params, _data(bound), weights=bound.weights)
                u = {n: jnp.asarray(v, float) for n, v in u.items()}
            pe, g = value_and_grad(u, args)
            if np.isfinite(float(pe)) and all(
                np.all(np.isfinite(np.asarray(v))) for v in g.values()
            ):
                inits.append(u)
                break
            if given is not None and set(init) == set(shapes):
                raise error(
                    "E0402",
                    "the log density is not finite at the given `init`",
                    help="check the values against the params' constraints",
                )
        else:
            raise error(
                "E0402",
                f"no finite log density after {INIT_TRIES} random initial points (chain {c + 1})",
                help="give `init` values, or check priors, constraints and data",
            )
    return inits


def _data(bound):
    return {**bound.static, **bound.arrays}


def sample(model, data, *, chains, warmup, draws, seed, target_accept, max_tree_depth, init,
           progress, weights) -> Fit:  # fmt: skip
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    with _float64():
        bound = model.bind(data, weights)
        if not bound.program.params:
            raise error(
                "E0403",
                "the model has no params to sample",
                help="`fpl sample` needs at least one `param`",
            )
        args = {k: jnp.asarray(v) for k, v in bound.arrays.items()}
        key = jax.random.PRNGKey(seed)
        key, run_key, gen_key = jax.random.split(key, 3)
        inits = find_inits(model, bound, args, chains, seed, init)
        result = run_nuts(
            model.potential_gen(bound), args, inits, warmup=warmup, draws=draws, key=run_key,
            target_accept=target_accept, max_tree_depth=max_tree_depth, progress=progress,
        )  # fmt: skip
        values = _per_draw(bound, args, result.positions, gen_key, unconstrained=True)
    program = bound.program
    posterior = {n: values[n] for n in [*model.param_names, *model.out_names]}
    gens = {g.name: values[g.name] for g in program.gens}
    return Fit(
        model=model.name,
        posterior=posterior,
        generated=gens,
        sample_stats=result.stats,
        observed={**{k: np.asarray(v) for k, v in bound.static.items()}, **bound.arrays},
        attrs={"seed": seed, "chains": chains, "warmup": warmup, "draws": draws,
               "max_tree_depth": max_tree_depth, "seconds": round(result.seconds, 3)},
        warmup_divergences=result.warmup_divergences,
        solver_failures={
            f"{n.kind}#{n.node_id} at {n.span.location}": result.solver_failures.get(
                n.node_id, [0] * chains
            )
            for n in program.implicit_nodes
        },
    )  # fmt: skip


def _per_draw(bound, args, positions: dict, key, unconstrained: bool) -> dict[str, np.ndarray]:
    """Params, outs and gens for every (chain, draw), vectorised."""
    program: ir.Program = bound.program
    names = [p.name for p in program.params] + [o.name for o in program.outs]
    names += [g.name for g in program.gens]
    lead = next(iter(positions.values())).shape[:2]
    flat = {k: jnp.reshape(v, (-1, *v.shape[2:])) for k, v in positions.items()}
    n = lead[0] * lead[1]
    keys = jax.random.split(key, n)

    def one(u, k, a):
        env = {**bound.static, **a, **bound.weights}
        source = from_unconstrained(u) if unconstrained else from_constrained(u)
        res = run(program, env, source, rng_key=k, generate=True)
        return {name: jnp.asarray(res.env[name]) for name in names}

    out = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))(flat, keys, args)
    return {k: np.asarray(v).reshape(*lead, *v.shape[1:]) for k, v in out.items()}


def generate(model, fit_or_params, data, *, seed, weights) -> dict[str, np.ndarray]:
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    with _float64():
        bound = model.bind(data, weights)
        args = {k: jnp.asarray(v) for k, v in bound.arrays.items()}
        if isinstance(fit_or_params, Fit):
            params = {p: fit_or_params.posterior[p] for p in model.param_names}
            values = _per_draw(bound, args, params, jax.random.PRNGKey(seed), unconstrained=False)
        else:
            model._check_params(bound.program, fit_or_params)
            params = {k: np.asarray(v, float)[None, None] for k, v in fit_or_params.items()
                      if k in model.param_names}  # fmt: skip
            values = _per_draw(bound, args, params, jax.random.PRNGKey(seed), unconstrained=False)
            values = {k: v[0, 0] for k, v in values.items()}
    names = set(model.out_names) | {g.name for g in bound.program.gens}
    return {k: v for k, v in values.items() if k in names}
