"""``optimize``'s checkpoints: writing a run, resuming one, and Ctrl-C.

A checkpoint (``fpl.runtime.checkpoint``'s format, kind ``"optimize"``) holds the
optimized values ``theta`` (unconstrained params, raw weights), the carried state (the
optimizer's, and the warm starts of ``warm=true`` implicit nodes), the trace of losses,
the RNG key, the count of skipped steps and the seed.  Steps are deterministic given
the step index and the key, so a resumed run gives the steps of an uninterrupted one.
The saved trees are read back against zeros shaped like the run's own
(:func:`theta_like`, :func:`state_like`): a checkpoint of another model or optimizer is
an error, never a silent reshape.
"""

from __future__ import annotations

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.optimize_steps import RunState, Setup
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")


def theta_like(full, to_raw) -> dict:
    """Zeros shaped like the optimized values: unconstrained params and raw weights (a
    ``monotone[H]`` weight's raw value is (2, H, H))."""
    raw = jax.eval_shape(to_raw, {k: jnp.asarray(v, float) for k, v in full.weights.items()})
    return {
        "params": {k: jnp.zeros(s) for k, s in full.param_unc_shapes.items()},
        "weights": {k: jnp.zeros(v.shape) for k, v in raw.items()},
    }


def state_like(full, step_model, optimizer, to_raw):
    """The carried state's structure: the optimizer's, and the warm starts of
    ``warm=true`` implicit nodes."""
    return (optimizer.init(theta_like(full, to_raw)), step_model.warm_state())


def resume(setup: Setup, checkpoint, steps: int) -> RunState:
    """The run saved in ``checkpoint`` (no such file: ``load`` raises; a lying header:
    E0408; a step beyond ``steps``: E0403)."""
    from fpl.runtime import checkpoint as ckpt

    full = setup.full
    path = str(checkpoint)
    header, saved = ckpt.load(path, "optimize", setup.fingerprint)
    resumed = ckpt.OptimizeResumed(header, saved, path)
    start = resumed.step
    if start > steps:
        raise error("E0403", f"the checkpoint is at step {start}, beyond steps={steps}")
    theta = ckpt.tree_from("theta", saved, theta_like(full, setup.to_raw), path)
    like = state_like(full, setup.step_model, setup.optimizer, setup.to_raw)
    opt_state = ckpt.tree_from("opt", saved, like, path)
    return RunState(start, theta, opt_state, [resumed.trace], resumed.skipped)


def write(setup: Setup, path, run: RunState) -> None:
    """Checkpoint ``run``: theta, the carried state, the trace and the RNG key."""
    from fpl.runtime import checkpoint as ckpt

    arrays = {
        **ckpt.tree_arrays("theta", run.theta),
        **ckpt.tree_arrays("opt", run.opt_state),
        "trace": np.concatenate(run.trace),
        "key": np.asarray(setup.key),
    }
    meta = {"skipped": int(run.skipped), "seed": setup.seed}
    ckpt.save(str(path), "optimize", setup.fingerprint, run.done, meta, arrays)


def interrupted(setup: Setup, checkpoint, run: RunState):
    """Ctrl-C: the run so far checkpointed (to ``checkpoint``, or later with
    ``save_checkpoint``)."""
    from fpl.runtime import checkpoint as ckpt

    if checkpoint is not None:
        write(setup, checkpoint, run)
    where = f"; checkpoint written to {checkpoint}" if checkpoint is not None else ""
    how = (
        f"; resume with: model.optimize(..., checkpoint={str(checkpoint)!r}, resume=True)"
        if checkpoint is not None
        else "; pass checkpoint= (and every=) to be able to resume"
    )
    return ckpt.Interrupted(
        f"interrupted at step {run.done}{where}{how}",
        step=run.done,
        checkpoint=None if checkpoint is None else str(checkpoint),
        save=lambda path: write(setup, path, run),
    )


__all__ = ["interrupted", "resume", "state_like", "theta_like", "write"]
