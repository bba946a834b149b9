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


def step_function(setup):
    """One optimizer step on the batch of step ``t``; a step with a failed solve or a
    non-finite loss, gradient or update keeps the old values (and is counted)."""
    optimizer, objective_ = setup.optimizer, setup.objective
    extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)
    batch_of = batch_sampler(setup.batching, jax.random.fold_in(setup.key, 1))
    value_and_grad = jax.value_and_grad(objective_, has_aux=True)

    def step(carry, t, args):
        theta, (state, warm), skipped = carry
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
        for leaf in jax.tree_util.tree_leaves((g, new_theta)):
            finite = jnp.logical_and(finite, jnp.all(jnp.isfinite(leaf)))
        bad = jnp.logical_or(jnp.any(failed), jnp.logical_not(finite))
        keep = jax.tree_util.tree_map(
            lambda old, new: jnp.where(bad, old, new),
            (theta, (state, warm)),
            (new_theta, (new_state, new_warm)),
        )
        return (*keep, skipped + bad.astype(jnp.int32)), (loss, failed, bad)

    return step, batch_of, value_and_grad


def chunk_function(step, chunk_len: int):
    """Steps ``start .. stop - 1`` as one compiled ``lax.scan`` of ``chunk_len`` (one
    compiled length for every chunk: the last one's spare steps idle)."""

    @jax.jit
    def chunk(theta, state, skipped, start, stop, args):
        outs = jax.eval_shape(step, (theta, state, skipped), start, args)[1]

        def idle(carry, t, args):
            return carry, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), outs)

        def body(c, t):
            return jax.lax.cond(t < stop, step, idle, c, t, args)

        ts = start + jnp.arange(chunk_len)
        return jax.lax.scan(body, (theta, state, skipped), ts)

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
