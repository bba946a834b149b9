"""``Model.sample`` and ``Model.generate``: NUTS, then params, outs and generated
quantities for every draw, computed in one vectorised pass."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fpl.compiler import ir, transforms
from fpl.compiler.lower import from_constrained, from_unconstrained, run
from fpl.dsl.diagnostics import FplError, error
from fpl.runtime.failures import is_stat_name, node_stats_at
from fpl.runtime.fit import Fit
from fpl.runtime.nuts import StuckChainError, run_nuts

INIT_RADIUS = 2.0  # Stan's default: uniform(-2, 2) on the unconstrained scale
INIT_CANDIDATES = 16  # points drawn per chain (per round); the best finite one is kept
INIT_TRIES = 100  # random points per chain before giving up (rounds of INIT_CANDIDATES)


def _float64():
    """Inference runs in float64 whatever the caller's global JAX setting, so results
    never depend on import order or on what else the process configured."""
    return jax.enable_x64(True)


def find_inits(model, bound, args, chains: int, seed: int, init: Mapping[str, Any] | None):
    """Initial points, one per chain: the best of ``INIT_CANDIDATES`` random points.

    Each chain draws ``INIT_CANDIDATES`` points uniform(-2, 2) on the unconstrained scale
    (Stan's range) and starts from the one with the highest finite log density (finite
    gradient too).  Stan starts from the first finite point; a best-of-K start avoids
    the far corners of the box where the model may be ill-posed (an implicit node whose
    map is not a contraction there, with several solutions and a density that jumps
    between them), in which a chain can strand with a collapsed step size.  Different
    chains still start from different random points.  Rounds of candidates are drawn
    until one is finite, ``INIT_TRIES`` points in all.

    ``init`` fixes some or all params (constrained values by name); the others are
    random, and the given ones are mapped to the unconstrained scale with bounds at each
    candidate.  Candidates come from NumPy's generator seeded by ``seed`` (reproducible);
    their unconstrained values, potentials and gradients are one compiled, vectorised
    function of the whole round."""
    shapes = model.unconstrained_shapes(bound)
    given: dict[str, Any] = {}
    if init is not None:
        unknown = set(init) - set(shapes)
        if unknown:
            raise error("E0403", f"`init` names unknown params: {', '.join(sorted(unknown))}")
        given = {k: jnp.asarray(v, float) for k, v in init.items()}
    if not shapes:  # no params (a weights-only model being optimized): nothing to draw
        return [{} for _ in range(chains)]
    evaluate = _candidate_evaluator(model, bound)
    all_given = bool(given) and set(given) == set(shapes)
    rng = np.random.default_rng(seed)
    rounds = -(-INIT_TRIES // INIT_CANDIDATES)
    inits = []
    for c in range(chains):
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
            raise error(
                "E0402",
                f"no finite log density after {rounds * INIT_CANDIDATES} random initial "
                f"points (chain {c + 1})",
                help="give `init` values, or check priors, constraints and data",
            )
    return inits


def _candidate_evaluator(model, bound):
    """``(random u, given, args) -> (u, potential, finite)`` over a round of candidates:
    the given params (constrained) replace the random ones, mapped to the unconstrained
    scale with the bounds at that point; finite means potential and gradient both are."""
    program = bound.program
    potential_gen = model.potential_gen(bound)

    def full_u(u, given, args):
        captured = {}

        def source(decl: ir.ParamDecl, lower, upper):
            kind = decl.constraint.kind
            if decl.name not in given:
                v = u[decl.name]
                x = v if kind == "real" else transforms.constrain(kind, v, lower, upper)[0]
            else:
                x = given[decl.name]
                v = x if kind == "real" else transforms.unconstrain(kind, x, lower, upper)
                v = jnp.where(transforms.in_support(kind, x, lower, upper), v, jnp.nan)
            captured[decl.name] = v
            return x, 0.0, True

        run(program, {**bound.static, **args, **bound.weights}, source)
        return captured

    def one(u, given, args):
        u = full_u(u, given, args) if given else u
        pe, g = jax.value_and_grad(potential_gen(args))(u)
        finite = jnp.isfinite(pe)
        for v in jax.tree_util.tree_leaves(g):
            finite &= jnp.all(jnp.isfinite(v))
        return u, pe, finite

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def _data(bound):
    return {**bound.static, **bound.arrays}


def sample(model, data, *, chains, warmup, draws, seed, target_accept, max_tree_depth, init,
           progress, weights, checkpoint=None, every=None, resume=False) -> Fit:  # fmt: skip
    if seed is None and resume and checkpoint is not None:  # the seed of the first run
        from fpl.runtime.checkpoint import saved_seed

        seed = saved_seed(checkpoint)
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
        saver = None
        if checkpoint is not None:
            from fpl.runtime import checkpoint as ckpt

            given = {k: np.asarray(v).tolist() for k, v in (init or {}).items()}
            settings = {"seed": seed, "chains": chains, "warmup": warmup, "draws": draws,
                        "target_accept": target_accept, "max_tree_depth": max_tree_depth,
                        "init": given}  # fmt: skip
            weights_ = {f"weight {k}": v for k, v in bound.weights.items()}
            fp = ckpt.fingerprint(model, {**bound.arrays, **weights_}, settings)
            saver = ckpt.NutsCheckpoint(checkpoint, fp, every, resume, list(inits[0]), seed)
        try:
            result = run_nuts(
                model.potential_gen(bound), args, inits, warmup=warmup, draws=draws,
                key=run_key, target_accept=target_accept, max_tree_depth=max_tree_depth,
                progress=progress, checkpoint=saver,
            )  # fmt: skip
        except StuckChainError as stuck:
            raise _stuck_error(model, bound, data, weights, stuck, chains, progress) from None
        values = _per_draw(bound, args, result.positions, gen_key, unconstrained=True,
                           solver_stats=True)  # fmt: skip
    program = bound.program
    node_stats = {k: values.pop(k) for k in list(values) if is_stat_name(k)}
    posterior = {n: values[n] for n in [*model.param_names, *model.out_names]}
    gens = {g.name: values[g.name] for g in program.gens}
    return Fit(
        model=model.name,
        posterior=posterior,
        generated=gens,
        sample_stats={**result.stats, **node_stats},
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
        gradient_failures={
            f"{n.kind}#{n.node_id} at {n.span.location}": result.gradient_failures.get(
                n.node_id, [0] * chains
            )
            for n in program.implicit_nodes
        },
    )  # fmt: skip


def _stuck_error(model, bound, data, weights, stuck: StuckChainError, chains: int, progress):
    """The coded diagnostic of a chain stopped by the stuck-chain guard: where it sits,
    its step size, and, for implicit nodes, which one is ill-posed at that point."""
    from fpl.runtime.diagnose import diagnose

    if progress:
        sys.stderr.write("\n")  # end the progress line of the stopped chain
    values = model.constrain(stuck.position, _data(bound), weights=bound.weights)
    params = {n: np.asarray(values[n]) for n in model.param_names}
    where = ", ".join(f"{n} = {_show(v)}" for n, v in params.items())
    message = (
        f"chain {stuck.chain + 1} of {chains} is stuck: its step size collapsed to "
        f"{stuck.step_size:.2g} during warmup (iteration {stuck.iteration}) at {where} "
        f"(log density {stuck.lp:.4g})"
    )
    span = None
    if bound.program.implicit_nodes:
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


def _per_draw(bound, args, positions: dict, key, unconstrained: bool,
              solver_stats: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
    """Params, outs and gens for every (chain, draw), vectorised; with ``solver_stats``
    also each implicit node's residual, iterations and converged flag at the draw (keys
    from ``fpl.runtime.failures.stat_name``)."""
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
        out = {name: jnp.asarray(res.env[name]) for name in names}
        if solver_stats:
            out.update(node_stats_at(program, res.solver_stats))
        return out

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


def predict(model, fit, data, *, seed, weights) -> Fit:
    """Outs and gens for every draw of ``fit`` (a :class:`Fit`, a ``FitData`` or a fit
    file) with ``data`` (typically new data); a :class:`Fit` of the same draws."""
    import json

    from fpl.runtime.io import FitData, load_fit

    source = str(fit) if not isinstance(fit, (Fit, FitData)) else "the fit"
    if not isinstance(fit, (Fit, FitData)):
        fit = load_fit(source)
    if weights is None and isinstance(fit, Fit) and fit.weights:
        weights = fit.weights  # the weights a VI fit was computed with
    elif weights is None and "weights" in fit.attrs:  # ... as saved with it
        weights = json.loads(str(fit.attrs["weights"]))
    posterior = fit.posterior
    missing = [p for p in model.param_names if p not in posterior]
    if missing:
        raise error(
            "E0404",
            f"{source} has no draws of param `{missing[0]}`",
            help="predict needs a fit of this model: it has " + (", ".join(posterior) or "none"),
        )
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    with _float64():
        bound = model.bind(data, weights)
        for p in bound.program.params:
            got = tuple(np.shape(posterior[p.name])[2:])
            if got != tuple(p.ty.shape):
                raise error(
                    "E0405",
                    f"param `{p.name}` has shape {got} in {source}, the model with this data "
                    f"needs {tuple(p.ty.shape)}",
                    p.span,
                    help="sizes that params depend on must be the same as in the fitted data",
                )
        args = {k: jnp.asarray(v) for k, v in bound.arrays.items()}
        params = {p: np.asarray(posterior[p], float) for p in model.param_names}
        values = _per_draw(bound, args, params, jax.random.PRNGKey(seed), unconstrained=False)
    attrs = {**fit.attrs, "fit_method": fit.attrs.get("method", "sample"), "predict_seed": seed}
    return Fit(
        model=model.name,
        posterior={n: values[n] for n in [*model.param_names, *model.out_names]},
        generated={g.name: values[g.name] for g in bound.program.gens},
        sample_stats={},
        observed={**{k: np.asarray(v) for k, v in bound.static.items()}, **bound.arrays},
        attrs={**attrs, "method": "predict"},
        weights={k: np.asarray(v) for k, v in bound.weights.items()},
    )
