"""One ``optimize`` step and a compiled chunk of steps, and the coded errors of a failed
step (E0406 a forward solve, E0411 a backward solve, E0410 a non-finite loss).

``setup`` is the run's ``fpl.runtime.optimize._Setup``: the objective of the step's
program, the optimizer, the minibatching and the RNG key.
"""

from __future__ import annotations

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.minibatch import batch_sampler
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
optax = LazyModule("optax")


def step_function(setup, tol: float = 0.0):
    """One optimizer step on the batch of step ``t``; a step with a failed solve or a
    non-finite loss, gradient or update keeps the old values (and is counted).

    Convergence (``tol > 0``): a step whose gradient at the current point has
    ``‖g‖₂ <= tol · max(1, |loss|)`` (loss and gradient finite, no failed solve) makes no
    update and sets the carried ``stopped`` flag, after which the chunk's steps idle.
    The test is on the point a step starts from, so a run resumed there stops at once,
    as the uninterrupted run did.  Returns ``(step, batch_of, value_and_grad)``; the
    step's carry is ``(theta, (state, warm), skipped, stopped)`` and its output
    ``(loss, failed, bad, converged)``."""
    optimizer, objective_ = setup.optimizer, setup.objective
    extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)
    batch_of = batch_sampler(setup.batching, jax.random.fold_in(setup.key, 1))
    value_and_grad = jax.value_and_grad(objective_, has_aux=True)

    def step(carry, t, args):
        theta, (state, warm), skipped, stopped = carry
        batch = batch_of(args, t)
        (loss, (failed, _, new_warm)), g = value_and_grad(theta, batch, warm)
        if extra_args:
            updates, new_state = optimizer.update(
                g,
                state,
                theta,
                value=loss,
                grad=g,
                value_fn=lambda th: objective_(th, batch, warm)[0],
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
        bad = jnp.logical_or(jnp.any(failed), jnp.logical_not(finite))
        keep = jax.tree_util.tree_map(
            lambda old, new: jnp.where(bad | converged, old, new),
            (theta, (state, warm)),
            (new_theta, (new_state, new_warm)),
        )
        carry = (*keep, skipped + bad.astype(jnp.int32), stopped | converged)
        return carry, (loss, failed, bad, converged)

    return step, batch_of, value_and_grad


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


__all__ = ["chunk_function", "raise_backward", "raise_step", "step_function"]
