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
PATH_ITERATIONS = 100  # L-BFGS iterations per Pathfinder path at most (sample's starts)
PATH_TOL = 1e-6  # the path stops where max |grad| <= PATH_TOL * max(1, |log density|)
PATH_HISTORY = 6  # curvature pairs in each inverse-Hessian estimate (Pathfinder's default)
PATH_ELBO_DRAWS = 8  # draws per ELBO estimate at each path point
PATH_DRAWS = 64  # draws per path, pooled and importance-weighted across the paths
#: above this many unconstrained params the starts stay random: ``fpl.runtime.pathfinder``
#: forms each path point's inverse Hessian densely (d x d, at every point of every path)
PATH_MAX_DIMENSION = 500


def find_inits(
    cm: CompiledModel,
    args,
    chains: int,
    seed: int,
    init: Mapping[str, Any] | None,
    *,
    pathfinder: bool = False,
):
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
    function of the whole round.

    ``pathfinder=True`` (``sample``'s chains, when no ``init`` is given) moves the random
    starts into the posterior's main mode with multi-path Pathfinder:
    :func:`pathfinder_starts`."""
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
                what = "an integer division by zero" if site.divisor else "this `reject`"
                raise site.error(
                    f"no finite log density after {tried} random initial points (chain "
                    f"{c + 1}): {what} was reached at {n} of the last {len(pe)}: "
                    f"{site.message.rstrip()}",
                    code="E0402",
                    help="give `init` values the model accepts, or check the divisor"
                    if site.divisor
                    else "give `init` values the model accepts, or check the `reject`'s test",
                )
            blamed = _failing_node(cm, args, u)
            if blamed is not None:
                node, residual, reason = blamed
                if node.kind == "ode":  # no residual: the call, its step budget, tolerances
                    from fpl.stdlib import ode

                    raise error(
                        "E0402",
                        f"no finite log density after {tried} random initial points (chain "
                        f"{c + 1}): {ode.failure(node.solver, reason.lstrip('; '))} at every one",
                        node.span,
                        label="this ODE solve failed",
                        help=f"{ode.failure_help(node.solver)}; or give `init` values where it "
                        "solves",
                    )
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
    if pathfinder and init is None:
        return pathfinder_starts(cm, args, inits, seed, evaluate)
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


def pathfinder_starts(cm: CompiledModel, args, starts, seed: int, evaluate=None):
    """Each chain's start moved into the posterior's main mode by multi-path Pathfinder
    (Zhang, Carpenter, Gelman & Vehtari 2022, section 2.3), as Stan users start chains
    from ``pathfinder`` draws; ``starts`` (random, one per chain) are kept where it
    finds nothing.

    Why: a start drawn uniform(-2, 2) on the unconstrained scale can sit where warmup
    strands (hudson_lynx_hare-lotka_volterra, seed 20240501: of four best-of-16 starts,
    one chain's step size collapsed to ~1e-4 with 1023-leapfrog trees for its whole
    warmup and another settled in a local mode 43 below the main one in log density,
    fitting fast oscillations as noise; R-hat 1.6 and 117 divergences at 4 x (500 +
    500)), and a chain never leaves a local mode once warmup ends.

    The maths.  From each chain's start ``u_c`` one L-BFGS path on ``-ℓ`` (at most
    ``PATH_ITERATIONS`` iterations, all paths one vectorised program) gives at each point
    ``l`` a Gaussian ``q_cl = N(u_l + H_l g_l, H_l)`` (``H_l`` the L-BFGS inverse Hessian
    from the last ``PATH_HISTORY`` curvature pairs, ``fpl.runtime.pathfinder``); the one
    with the largest ELBO estimate (``PATH_ELBO_DRAWS`` draws) is path ``c``'s ``q_c``.
    ``PATH_DRAWS`` draws ``x ~ q_c`` from every path are pooled with importance weights
    ``w ∝ exp(ℓ(x) - log q_c(x))``; a path that ended in a minor mode has weights smaller
    by the factor ``exp(Δℓ)`` (``Δℓ`` the modes' gap in log density, 43 above), so its
    draws are not picked.  The chains' starts are ``chains`` draws picked without
    replacement in proportion to ``w`` (Gumbel top-k: distinct starts), so different
    chains still start from different points and R-hat still compares chains that
    warmed up independently from overdispersed starts within the mode.  Draws whose
    density or gradient is not finite have weight 0.

    Above ``PATH_MAX_DIMENSION`` unconstrained params the starts stay as given (the
    dense inverse Hessians would not fit).  Reproducible: the draws come from NumPy's
    generator seeded by ``(seed, 1)``, and the paths are deterministic.  Not checked:
    that the posterior has one important mode (with several of comparable mass, the
    starts follow their weights, which is still better than uniform starts), nor that
    some path reaches the main mode (if none does, the chains start where the paths
    went, as they would have warmed up to; the cost, measured by
    ``benchmarks/init_cost.py``: ~3.5-4.5 s of CPU per run for a small model, mostly
    tracing and compiling the vectorised L-BFGS program)."""
    import jax

    from fpl.runtime.pathfinder import _elbos, _gaussian, _history, _log_q

    if not 0 < cm.param_unc_num() <= PATH_MAX_DIMENSION:
        return starts
    evaluate = _candidate_evaluator(cm) if evaluate is None else evaluate
    x0 = np.stack([np.asarray(cm.ravel(u)) for u in starts])
    paths, grads, lengths = _paths(cm, args, x0)
    paths, grads, lengths = np.asarray(paths), np.asarray(grads), np.asarray(lengths)
    rng = np.random.default_rng([seed, 1])
    d = x0.shape[1]
    rows, owners = [], []  # every path point with its Gaussian's pieces, and its chain
    for c in range(len(starts)):
        n = int(lengths[c])
        pairs = _history(paths[c, : n + 1], grads[c, : n + 1], PATH_HISTORY)
        if pairs is None:  # a flat or noisy density: no curvature to build a Gaussian on
            continue
        z = np.broadcast_to(rng.standard_normal((PATH_ELBO_DRAWS, d)), (n + 1, PATH_ELBO_DRAWS, d))
        rows.append((paths[c, : n + 1], grads[c, : n + 1], *pairs, z))
        owners.extend([c] * (n + 1))
    if not rows:
        return starts
    items = tuple(np.concatenate(parts) for parts in zip(*rows))
    points, gradients, S, Y, mask, z = items  # every path's points, one row each
    elbos = np.asarray(_elbos(_traced_once(cm), points, gradients, (S, Y, mask), z, args))
    owners_ = np.asarray(owners)
    means, factors = [], []
    gaussian = jax.jit(_gaussian)  # one compile for every path
    for c in np.unique(owners_):
        at = np.flatnonzero((owners_ == c) & np.isfinite(elbos))
        if not at.size:
            continue
        best = at[int(np.argmax(elbos[at]))]
        mean, chol = gaussian(*(v[best] for v in items[:5]))
        if np.all(np.isfinite(np.asarray(chol))):
            means.append(np.asarray(mean))
            factors.append(np.asarray(chol))
    if not means:
        return starts
    z = rng.standard_normal((len(means), PATH_DRAWS, d))
    x = np.concatenate([m + z[k] @ f.T for k, (m, f) in enumerate(zip(means, factors))])
    log_q = np.concatenate([np.asarray(_log_q(z[k], f)) for k, f in enumerate(factors)])
    # in batches of INIT_CANDIDATES: the candidates' compiled program serves again
    batches = [x[i : i + INIT_CANDIDATES] for i in range(0, len(x), INIT_CANDIDATES)]
    short = INIT_CANDIDATES - len(batches[-1])
    batches[-1] = np.concatenate([batches[-1], np.repeat(batches[-1][-1:], short, 0)])
    results = [evaluate(jax.vmap(cm.unravel)(jnp.asarray(b)), {}, args) for b in batches]
    u = {k: np.concatenate([np.asarray(r[0][k]) for r in results])[: len(x)] for k in results[0][0]}
    potential = np.concatenate([np.asarray(r[1]) for r in results])[: len(x)]
    finite = np.concatenate([np.asarray(r[2]) for r in results])[: len(x)]
    log_w = np.where(finite, -potential - log_q, -np.inf)
    if np.isfinite(log_w).sum() < len(starts):
        return starts
    keys = log_w + rng.gumbel(size=log_w.shape)  # Gumbel top-k: weighted, no replacement
    picks = np.argsort(-keys)[: len(starts)]
    return [{k: np.asarray(v[i]) for k, v in u.items()} for i in picks]


def _paths(cm: CompiledModel, args, x0):
    """L-BFGS paths on ``-log density`` from every row of ``x0``, vectorised over the
    rows: ``(paths, grads, lengths)``, the iterates and ``∇log density`` there as
    ``(chains, PATH_ITERATIONS + 1, d)`` arrays (rows past a path's last iterate are
    zeros) and each path's number of iterations.  A path stops at convergence,
    at a non-finite step, or after ``PATH_ITERATIONS``."""
    import optax

    from fpl.runtime.pathfinder import lbfgs_search

    # a backtracking (Armijo) line search: a smaller program than the zoom search's
    backtracking = optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=20, store_grad=True
    )
    search = lbfgs_search(_traced_once(cm), PATH_TOL, PATH_ITERATIONS, backtracking)
    program = jax.jit(jax.vmap(search, in_axes=(0, None)))
    return program(jnp.asarray(x0), args)


def _traced_once(cm: CompiledModel):
    """``(theta, args) -> log density`` as a ``jit`` function: inside a program that
    calls it several times (L-BFGS's step, line search and gradient) the model's Python
    is traced once and its program reused, where each direct call traces it again."""
    return jax.jit(lambda theta, args: cm.log_density(theta, data=args))


__all__ = [
    "PATH_DRAWS",
    "PATH_ELBO_DRAWS",
    "PATH_ITERATIONS",
    "PATH_MAX_DIMENSION",
    "INIT_CANDIDATES",
    "INIT_RADIUS",
    "INIT_TRIES",
    "draws_for_chains",
    "find_inits",
    "pathfinder_starts",
    "potential",
]
