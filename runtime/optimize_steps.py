"""One ``optimize`` step and a compiled chunk of steps, the objective, and the coded
errors of a failed step (E0406 a forward solve, E0411 a backward solve, E0410 a
non-finite loss, E0413 a ``reject`` reached).

``setup`` is the run's :class:`Setup`: the objective of the step's program, the
optimizer, the minibatching and the RNG key; :class:`RunState` is how far a run is.

Fresh randomness: ``_rng`` draws in a ``loss`` use the key ``fold_in(fold_in(key, 2),
t)`` at step ``t`` (the run's key from its seed), so every step draws anew — a loss
whose gradient is an unbiased estimate only with fresh noise (a reparametrised ELBO, a
noise-pool objective) is stochastic gradient descent on its expectation — and a resumed
run draws what the uninterrupted one did.  The final full-data evaluation uses
``fold_in(key, 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.minibatch import Batching, batch_sampler
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
optax = LazyModule("optax")


@dataclass(frozen=True)
class Setup:
    """What the steps of one run are made of (fixed for the run)."""

    model: Any
    full: Any  # the CompiledModel of all the data
    step_model: Any  # ... one step runs (at the batch size)
    batching: Batching | None
    from_raw: Any  # raw (optimized) weights -> weights
    to_raw: Any
    args: dict  # the full data, as JAX arrays
    objective: Any  # (theta, batch, warm, key) -> (loss, (failed, values, warm))
    optimizer: Any
    key: Any
    seed: int
    fingerprint: str


@dataclass
class RunState:
    """How far the run is: replaced (not mutated) after each chunk."""

    done: int
    theta: Any
    opt_state: Any  # (optimizer state, warm starts of `warm=true` implicit nodes)
    trace: list
    skipped: int


def objective(cm, from_raw, jacobian, term_scale, names=()):
    """(theta, args, warm, key) -> (loss, (per-node solver result codes (0: converged;
    see ``fpl.stdlib.solvers.Result``), {name: value} for ``names``, the new warm-start
    state of ``warm=true`` implicit nodes)); ``key`` feeds a loss's ``_rng`` draws."""
    from fpl.compiler.compiled import result_code

    def objective(theta, args, warm=None, key=None):
        res = cm.evaluate(
            theta["params"],
            jacobian=jacobian,
            data=args,
            weights=from_raw(theta["weights"]),
            key=key,
            term_scale=term_scale,
            warm=warm,
            report=False,
        )
        ids = objective.node_ids = sorted(res.stats)  # the order of `failed`
        failed = (
            jnp.stack([result_code(res.stats[i]) for i in ids])
            if ids
            else jnp.zeros((0,), jnp.int32)
        )
        return -res.log_density, (failed, {n: res.values[n] for n in names}, res.warm)

    return objective


def noise_key(key, t):
    """The key of step ``t``'s ``_rng`` draws (see the module docstring)."""
    return jax.random.fold_in(jax.random.fold_in(key, 2), t)


def step_function(setup, tol: float = 0.0, on_failure: str = "skip"):
    """One optimizer step on the batch of step ``t``; a step with a non-finite loss,
    gradient or update keeps the old values (and is counted), and so does one with a
    failed forward solve unless ``on_failure="best"`` (then the step goes on from the
    solver's best (lowest-residual) iterate, traced under
    ``reporting.keeping_unconverged``; the failure is still in the step's ``failed`` codes,
    so it is counted per node).

    Convergence (``tol > 0``): a step whose gradient at the current point has
    ``‖g‖₂ <= tol · max(1, |loss|)`` (loss and gradient finite, no failed solve) makes no
    update and sets the carried ``stopped`` flag, after which the chunk's steps idle.
    The test is on the point a step starts from, so a run resumed there stops at once,
    as the uninterrupted run did.  Returns ``(step, batch_of, value_and_grad)``; the
    step's carry is ``(theta, (state, warm), skipped, stopped)`` and its output
    ``(loss, failed, bad, converged)``; ``gradient_at(theta, args, warm, t)`` is step
    ``t``'s value and gradient (its batch and noise)."""
    optimizer, objective_ = setup.optimizer, setup.objective
    extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)
    batch_of = batch_sampler(setup.batching, jax.random.fold_in(setup.key, 1))
    value_and_grad = jax.value_and_grad(objective_, has_aux=True)

    def gradient_at(theta, args, warm, t):
        return value_and_grad(theta, batch_of(args, t), warm, noise_key(setup.key, t))

    def step(carry, t, args):
        theta, (state, warm), skipped, stopped = carry
        batch, key = batch_of(args, t), noise_key(setup.key, t)
        (loss, (failed, _, new_warm)), g = value_and_grad(theta, batch, warm, key)
        if extra_args:
            updates, new_state = optimizer.update(
                g,
                state,
                theta,
                value=loss,
                grad=g,
                value_fn=lambda th: objective_(th, batch, warm, key)[0],
            )
        else:
            updates, new_state = optimizer.update(g, state, theta)
        new_theta = optax.apply_updates(theta, updates)
        finite = jnp.isfinite(loss)
        for leaf in jax.tree_util.tree_leaves(g):
            finite = jnp.logical_and(finite, jnp.all(jnp.isfinite(leaf)))
        converged = (
            (tol > 0)
            & finite
            & ~jnp.any(failed)
            & (optax.global_norm(g) <= tol * jnp.maximum(1.0, jnp.abs(loss)))
        )
        for leaf in jax.tree_util.tree_leaves(new_theta):
            finite = jnp.logical_and(finite, jnp.all(jnp.isfinite(leaf)))
        bad = jnp.logical_not(finite)
        if on_failure != "best":
            bad = jnp.logical_or(jnp.any(failed), bad)
        keep = jax.tree_util.tree_map(
            lambda old, new: jnp.where(bad | converged, old, new),
            (theta, (state, warm)),
            (new_theta, (new_state, new_warm)),
        )
        carry = (*keep, skipped + bad.astype(jnp.int32), stopped | converged)
        return carry, (loss, failed, bad, converged)

    return step, gradient_at


def chunk_function(step, chunk_len: int):
    """Steps ``start .. stop - 1`` as one compiled ``lax.scan`` of ``chunk_len`` (one
    compiled length for every chunk: the last one's spare steps, and every step after
    convergence, idle)."""

    @jax.jit
    def chunk(theta, state, skipped, start, stop, args):
        carry = (theta, state, skipped, jnp.asarray(False))
        outs = jax.eval_shape(step, carry, start, args)[1]

        def idle(carry, t, args):
            return carry, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), outs)

        def body(c, t):
            return jax.lax.cond((t < stop) & ~c[3], step, idle, c, t, args)

        ts = start + jnp.arange(chunk_len)
        (theta, state, skipped, _), outs = jax.lax.scan(body, carry, ts)
        return (theta, state, skipped), outs

    return chunk


def policy_scope(on_failure: str):
    """The trace-time scope of the policy: ``best`` keeps non-converged iterates."""
    import contextlib

    from fpl.compiler.reporting import keeping_unconverged

    return keeping_unconverged() if on_failure == "best" else contextlib.nullcontext()


def check_final(nodes, step: int, loss: float, values: dict, unconverged: list) -> None:
    """E0410 where the final loss or a param, weight or out is not finite, naming the
    step and the nodes whose final solve failed (whatever the policy)."""
    bad = [k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, float)))]
    if np.isfinite(loss) and not bad:
        return
    what = "the loss" if not np.isfinite(loss) else f"`{bad[0]}`"
    which = f"; the solve of {', '.join(unconverged)} did not converge" if unconverged else ""
    by_label = {n.label: n for n in nodes}
    node = by_label.get(unconverged[0]) if unconverged else None
    if node is not None and node.kind == "ode":  # the call and its step budget, not a solver
        from fpl.stdlib import ode

        raise error(
            "E0410",
            f"{what} is not finite after optimization step {step} (loss {loss:g}): "
            f"{ode.failure(node.solver)} at the point it reached",
            node.span,
            label="this ODE solve failed",
            help=f"{ode.failure_help(node.solver)}; or lower the learning rate, or give the "
            "params bounds or priors that keep them where the ODE solves",
        )
    raise error(
        "E0410",
        f"{what} is not finite after optimization step {step} (loss {loss:g}){which}",
        node.span if node is not None else None,
        label="this implicit node" if unconverged else "",
        help="lower the learning rate, declare well-posed weights (`contractive`, "
        "`monotone`) so the solves converge, or raise the solver's `max_iter`",
    )


def raise_backward(step: int, node_id: int, nodes) -> None:
    node = nodes.get(node_id)
    what = f"`{node.kind}`" if node is not None else f"implicit node #{node_id}"
    raise error(
        "E0411",
        f"the gradient (backward) solve of the {what} failed at optimization step {step}: "
        "its linear system (the Jacobian of the residual in the unknown, at the solution) "
        "is singular or was not solved, so the gradient is NaN",
        None if node is None else node.span,
        label="this implicit node",
        help="the solution must be locally unique (an invertible Jacobian) for its gradient "
        "to exist: check the model there (`fpl diagnose`), start elsewhere, or pass "
        "on_failure='skip' (CLI: --on-solver-failure skip) to skip such steps",
    )


def raise_step(step: int, failed, node_ids, nodes, loss: float) -> None:
    from fpl.stdlib.solvers import reason_message, reason_name

    failed = np.asarray(failed).reshape(-1)
    for i, code in zip(node_ids, failed):
        if code and nodes[i].kind == "ode":  # the call and its step budget, not a solver
            from fpl.stdlib import ode

            node = nodes[i]
            raise error(
                "E0406",
                f"{ode.failure(node.solver, reason_name(code))} at optimization step {step}",
                node.span,
                label="this ODE solve failed",
                help=f"{ode.failure_help(node.solver)}; or pass on_failure='skip' (CLI: "
                "--on-solver-failure skip) to skip such steps",
            )
        if code:
            node = nodes[i]
            raise error(
                "E0406",
                f"the `{node.kind}` solve did not converge at optimization step {step} "
                f"({reason_name(code)}: {reason_message(code)})",
                node.span,
                label="this implicit node",
                help="raise the solver's `max_iter` or loosen `tol`, start nearer a solution, "
                "or pass on_failure='skip' (CLI: --on-solver-failure skip) to skip such steps",
            )
    raise error(
        "E0410",
        f"the loss or its gradient is not finite at optimization step {step} (loss {loss:g})",
        help="lower the learning rate, give `init` values, or pass on_failure='skip' "
        "(CLI: --on-solver-failure skip) to skip such steps",
    )


def stuck_since(run: RunState) -> str:
    """When the run met the point it ends on, from its losses: the steps at the end whose
    loss is not finite started there (and were skipped)."""
    trace = np.concatenate(run.trace)  # the loss where each step started
    finite = np.flatnonzero(np.isfinite(trace))
    if not len(trace) or len(finite) == len(trace):
        return f"at the point optimization step {run.done} reached"
    if not len(finite):
        return f"at the starting point; all {len(trace)} steps were skipped"
    reached = int(finite[-1]) + 1
    return (
        f"at the point optimization step {reached} reached; the {len(trace) - reached} "
        "steps after it were skipped"
    )


def raise_if_rejected(setup: Setup, jacobian: bool, theta, key, when: str) -> None:
    """E0413 where a ``reject`` is reached at ``theta`` (params and raw weights) on the
    full data, naming it and its message; nothing otherwise (the caller's error follows).
    The objective's one evaluation re-run in a scope that reports rejects."""
    from fpl.compiler.reporting import has_rejects, rejections

    full, args = setup.full, setup.args
    if not has_rejects(full.hoisted.program):
        return

    def density(point):
        return full.evaluate(
            point["params"],
            jacobian=jacobian,
            data=args,
            weights=setup.from_raw(point["weights"]),
            key=key,
        ).log_density

    reached = rejections(density, jax.tree_util.tree_map(lambda v: jnp.asarray(v)[None], theta))
    if reached:
        raise reached[0][0].error(
            when,
            help="start elsewhere (`init`), lower the learning rate, or constrain the params "
            "(`real<lower=..., upper=...>`) to the region the `reject` allows",
        )


__all__ = [
    "RunState",
    "Setup",
    "check_final",
    "chunk_function",
    "policy_scope",
    "noise_key",
    "objective",
    "raise_backward",
    "raise_if_rejected",
    "raise_step",
    "step_function",
    "stuck_since",
]
