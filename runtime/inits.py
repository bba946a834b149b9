"""Initial points: each chain's start, the best finite one of rounds of random candidates
on the unconstrained scale (with the params ``init`` gives held), and the coded E0402
that says why none was finite (a ``reject`` reached, an implicit node that never
converged).  ``sample`` starts its chains here; ``optimize``, ``vi``, ``pathfinder`` and
``laplace`` their runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fpl.compiler.compiled import CompiledModel
from fpl.dsl.diagnostics import error
from fpl.stdlib.lazy import LazyModule

# JAX loads when a method runs, not when the CLI lists its settings
jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

INIT_RADIUS = 2.0  # Stan's default: uniform(-2, 2) on the unconstrained scale
INIT_CANDIDATES = 16  # points drawn per chain (per round); the best finite one is kept
INIT_TRIES = 100  # random points per chain before giving up (rounds of INIT_CANDIDATES)


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
        per_chain = draws_for_chains(cm, init, chains)
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
                reached = _rejections(cm, args, u)
                if reached:  # E0413: the model rejects the given point
                    raise reached[0][0].error("at the given `init`")
                raise error(
                    "E0402",
                    "the log density is not finite at the given `init`",
                    help="check the values against the params' constraints",
                )
        else:
            tried = rounds * INIT_CANDIDATES
            reached = _rejections(cm, args, u)
            if reached:
                site, n = reached[0]
                raise site.error(
                    f"no finite log density after {tried} random initial points (chain "
                    f"{c + 1}): this `reject` was reached at {n} of the last {len(pe)}: "
                    f"{site.message.rstrip()}",
                    code="E0402",
                    help="give `init` values the model accepts, or check the `reject`'s test",
                )
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


def _rejections(cm: CompiledModel, args, u):
    """The ``reject``s reached at the candidates ``u`` (most often reached first, with
    counts): ``fpl.compiler.reporting.rejections``."""
    from fpl.compiler.reporting import has_rejects, rejections

    if not has_rejects(cm.hoisted.program):
        return []
    return rejections(lambda theta: cm.log_density(theta, data=args), jax.vmap(cm.ravel)(u))


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


def draws_for_chains(cm: CompiledModel, fit, chains: int) -> list[dict[str, np.ndarray]]:
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


__all__ = [
    "INIT_CANDIDATES",
    "INIT_RADIUS",
    "INIT_TRIES",
    "draws_for_chains",
    "find_inits",
    "potential",
]
