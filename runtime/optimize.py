"""``Model.optimize``: fit params and weights with any optax optimizer.

The objective is the negative log density, on the unconstrained scale of each param
(and of each constrained weight), without the log-Jacobian by default — the mode of
the posterior on the params' own scale, as Stan's ``optimize`` finds it; with
``jacobian=True`` the log-Jacobian is added (the mode on the unconstrained scale, what
a Laplace approximation there is centred on).  Models without priors give the MLE.

One optimizer step (value and gradient, then the optax update) is one compiled
function of the data (arguments, never baked-in constants); steps run in compiled
chunks of ``lax.scan`` driven by ``fpl.runtime.loop`` (progress, checkpoints and Ctrl-C
between chunks).  The minibatching is in ``fpl.runtime.minibatch``, the result
(:class:`OptimizeResult`, saved as JSON) in ``fpl.runtime.optimize_result``, one step and
its coded errors in ``fpl.runtime.optimize_steps``, checkpoints and resuming in
``fpl.runtime.optimize_checkpoint``; this module holds the settings, the method's entry
and the loop.

Minibatching (``batch_size=B``) slices the *batched fields* along their leading axis
(length N).  By default they are the data arrays whose declared leading size is the
size name leading the most data arrays (``N`` for ``x: real[N]``, ``X: real[N, D]``,
``y: int[N]``); ``batch_fields=`` names them explicitly.  Each epoch is a random
permutation of the N rows cut into ``N // B`` batches (a remainder is left out of that
epoch), so every batch is a uniform random subset.  The batch program is the model
bound to data of length B (the size names become B).  Each ``~`` or ``target +=``
statement that reads a batched field (directly or through ``let``/``out`` values) is a
likelihood term and is multiplied by N / B; everything else (priors) is not, so the
batch objective is an unbiased estimate of the full one when likelihood terms are sums
over rows.  A term that is an average at its top (``loss mean(...)``, ``target +=
-mean(...)``) is not scaled: a batch mean already estimates the full mean without bias.
Other non-sum terms (e.g. ``loss log(sum(...))``) have no unbiased minibatch estimate.

Convergence: on the full data (no minibatching) a run stops before ``steps`` once the
gradient at its current point has ``‖g‖₂ <= tol · max(1, |loss|)`` (``tol``, default
1e-8, as Stan's ``tol_grad``; 0 runs every step): the result then says "converged after
N of M steps" and ``attrs["stopped"]`` is ``"converged"`` (else ``"steps"``).  Minibatch
gradients are noisy, so minibatched runs always take every step.

Failure policy (``on_failure``), as DEQ training expects:

=========  =====================================  ======================================
policy     a forward solve that does not converge  a non-finite loss or gradient (a
                                                    diverged iterate, a failed backward
                                                    solve)
=========  =====================================  ======================================
``best``   the step goes on from the solver's      the step is skipped
(default)  best (lowest-residual) iterate (its
           implicit gradient taken there)
``skip``   the step is skipped                     the step is skipped
``error``  E0406 naming the node and the step      E0410 / E0411 naming the step (and node)
=========  =====================================  ======================================

Non-converged forward solves are counted per node (``OptimizeResult.solver_failures``,
keyed by the node's label with its source location), failed backward solves likewise
(``gradient_failures``), skipped steps in ``skipped``.  Whatever the policy, a final
loss, param or weight that is not finite is an error (E0410) naming the last step and
the nodes whose final solve failed — or, where the model reaches a ``reject`` at that
point (or at the failed step under ``error``), E0413 naming the ``reject``.  Inside NUTS
the rule stays: -inf.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.methods import Method, Settings, option
from fpl.runtime.minibatch import (
    likelihood_terms,
    minibatch_objective,
    plan_batches,
    problem,
)
from fpl.runtime.optimize_checkpoint import interrupted, resume, state_like, write
from fpl.runtime.optimize_result import GTOL, OptimizeResult, load_result
from fpl.runtime.optimize_steps import (
    RunState,
    Setup,
    check_final,
    chunk_function,
    noise_key,
    objective,
    policy_scope,
    raise_backward,
    raise_if_rejected,
    raise_step,
    step_function,
    stuck_since,
)
from fpl.runtime.optimizers import OptimizerOptions
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
optax = LazyModule("optax")

CHUNK = 200  # steps per compiled chunk: progress and Ctrl-C are checked between chunks
DEFAULT_TOL = 1e-8  # gradient norm relative to max(1, |loss|) at which a run stops


def _fields(text: str) -> list[str]:
    return [f.strip() for f in text.split(",")]


@dataclass(frozen=True)
class OptimizeSettings(Settings):
    optimizer: Any = option(None, "an optax GradientTransformation (none: adam(1e-2))", cli=False)
    steps: int = option(1000, "optimizer steps at most", min=1)
    tol: float = option(
        DEFAULT_TOL,
        "stop once the gradient norm is at most tol * max(1, |loss|) (0: take every step; "
        "minibatched runs always do)",
        min=0,
    )
    seed: int | None = option(None, "random seed", min=0)
    batch_size: int | None = option(None, "minibatch rows per step", min=1)
    batch_fields: Any = option(
        None,
        "comma-separated data fields to minibatch (none: the arrays led by the most "
        "common size name)",
        parse=_fields,
    )
    init: Any = option(None, "initial param and weight values", file=True)
    jacobian: bool = option(False, "add the log-Jacobian (mode on the unconstrained scale)")
    on_failure: str = option(
        "best",
        "a non-converged implicit solve: go on from its lowest-residual iterate (best), skip the "
        "step (skip), or stop with an error (error)",
        choices=("best", "skip", "error"),
    )
    checkpoint: str | Path | None = option(
        None, "checkpoint file (written at the end, every `every` steps and on Ctrl-C)"
    )
    every: int | None = option(None, "also checkpoint every N steps", min=1)
    resume: bool = option(False, "continue from the checkpoint")
    progress: bool = option(True, "a progress line on stderr", cli=False)

    def check(self) -> None:
        if (self.every is not None or self.resume) and self.checkpoint is None:
            raise error("E0403", "`every` and `resume` need a `checkpoint` file")
        if self.batch_fields is not None and self.batch_size is None:
            raise error("E0403", "`batch_fields` needs `batch_size`")
        if self.optimizer is not None and not isinstance(
            self.optimizer, optax.GradientTransformation
        ):
            raise error(
                "E0403",
                "`optimizer` must be an optax GradientTransformation, got "
                f"{type(self.optimizer).__name__}",
            )


def run(model, data, s: OptimizeSettings) -> OptimizeResult:
    """Fit weights and params (MAP; MLE where there are no priors) with ``s``."""
    return optimize(model, data, s)


def report(model, res: OptimizeResult, args) -> int:
    """``fpl optimize``'s output: the result (``-o``), the loss plot (``--plot``) and the
    summary (``--quiet`` only silences the progress)."""
    from fpl.runtime.cli_methods import save_output
    from fpl.runtime.optimizers import plot_loss

    print(res.summary())
    code = save_output(res, args.output, METHOD.output_formats)
    if args.plot:
        plot_loss(args.plot, res.trace, f"{model.name}: {args.optimizer}")
        print(f"wrote {args.plot}")
    return code


METHOD = Method(
    name="optimize",
    help="fit params and weights with an optax optimizer (MAP)",
    settings=OptimizeSettings,
    run="fpl.runtime.optimize:run",
    command=OptimizerOptions,
    report=report,
    output="write the result (.json, or .nc: ArviZ's netCDF with the weights in its attributes)",
    quiet="no progress bar",
    output_formats=(".json", ".nc"),
)


# ---- the optimization ------------------------------------------------------------------


def optimize(model, data, s: OptimizeSettings) -> OptimizeResult:
    from fpl.runtime.failures import SolverEvents, collecting
    from fpl.runtime.sampling import _float64

    with _float64():
        setup, init_params, raw = _prepare(model, data, s)
        run = _start(setup, s, init_params, raw)
        began = time.perf_counter()
        # failed backward solves are reported by the lowering through a host callback to
        # this run's events (the compiled functions are traced inside its scope below)
        events = SolverEvents()
        grad_fail: dict[int, int] = {}
        solve_fail: dict[int, int] = {}
        with collecting(events), policy_scope(s.on_failure):
            run = _run_steps(setup, s, run, events, grad_fail, solve_fail)
        if s.checkpoint is not None:
            write(setup, s.checkpoint, run)
        seconds = time.perf_counter() - began
        # the optimum, on the full data: loss, gradient norm, params, weights and outs
        names = [*model.param_names, *model.out_names]
        full_objective = objective(setup.full, setup.from_raw, s.jacobian, {}, names)
        final = jax.jit(jax.value_and_grad(full_objective, has_aux=True))
        with policy_scope(s.on_failure):
            key = jax.random.fold_in(setup.key, 3)
            (loss, (failed, values, _)), g = final(run.theta, setup.args, None, key)
        grad_norm = float(optax.global_norm(g))
        values = {k: np.asarray(v) for k, v in values.items()}
        weights = {k: np.asarray(v) for k, v in setup.from_raw(run.theta["weights"]).items()}
        labels = {n.node_id: n.label for n in setup.full.nodes}
        unconverged = [
            labels.get(i, f"implicit node #{i}")
            for i, code in zip(full_objective.node_ids, np.asarray(failed).reshape(-1))
            if code
        ]
        if not np.isfinite(float(loss)):
            with policy_scope(s.on_failure):
                raise_if_rejected(setup, s.jacobian, run.theta, key, stuck_since(run))
        check_final(setup.full.nodes, run.done, float(loss), {**values, **weights}, unconverged)
    return OptimizeResult(
        model=model.name,
        param_values={p: values[p] for p in model.param_names},
        weights=weights,
        outputs={o: values[o] for o in model.out_names},
        trace=np.concatenate(run.trace),
        loss=float(loss),
        grad_norm=grad_norm,
        steps=run.done,
        skipped=run.skipped,
        gradient_failures={n.label: grad_fail.get(n.node_id, 0) for n in setup.step_model.nodes},
        solver_failures={n.label: solve_fail.get(n.node_id, 0) for n in setup.step_model.nodes},
        attrs={
            "on_failure": s.on_failure,
            "unconverged_at_end": unconverged,
            "seed": setup.seed,
            "optimizer": _optimizer_name(setup.optimizer),
            "jacobian": bool(s.jacobian),
            "batch_size": s.batch_size or 0,
            "seconds": round(seconds, 3),
            "max_steps": s.steps,
            "tol": _tol(s, setup),
            "stopped": "converged" if run.done < s.steps else "steps",
        },
    )


def _prepare(model, data, s: OptimizeSettings):
    """The run's :class:`Setup` (the seed of a resumed run is the first run's), the
    given initial params and the raw data."""
    from fpl.runtime import checkpoint as ckpt

    optimizer = optax.adam(1e-2) if s.optimizer is None else s.optimizer
    seed = s.seed
    if seed is None and s.resume:  # the seed of the first run
        seed = ckpt.saved_seed(s.checkpoint)
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    if isinstance(data, (str, Path)):
        from fpl.runtime.data import read_data

        data = read_data(data)
    raw = dict(data or {})
    init_params, init_weights = _split_init(model, s.init)
    prob = problem(model, raw, init_weights, s.batch_size, s.batch_fields, seed)
    full, batching = prob.full, prob.batching
    settings = {
        "seed": seed,
        "jacobian": bool(s.jacobian),
        "on_failure": s.on_failure,
        "batch": None if batching is None else [batching.fields, batching.size],
        "tol": s.tol,
        # the structure of the optimizer's state (for checking a checkpoint)
        "optimizer": str(
            jax.tree_util.tree_structure(state_like(full, prob.step_model, optimizer, prob.to_raw))
        ),
    }
    setup = Setup(
        model=model,
        full=full,
        step_model=prob.step_model,
        batching=batching,
        from_raw=prob.from_raw,
        to_raw=prob.to_raw,
        args={k: jnp.asarray(v) for k, v in full.data.items()},
        objective=objective(prob.step_model, prob.from_raw, s.jacobian, prob.term_scale),
        optimizer=optimizer,
        key=jax.random.PRNGKey(seed),
        seed=seed,
        fingerprint=ckpt.fingerprint(model, full.data, settings),
    )
    return setup, init_params, raw


def _start(setup: Setup, s: OptimizeSettings, init_params, raw) -> RunState:
    """The run from the checkpoint (``resume``) or from the initial values."""
    from fpl.runtime.inits import find_inits

    full, model = setup.full, setup.model
    if s.resume:
        return resume(setup, s.checkpoint, s.steps)
    if init_params is not None and set(init_params) == set(model.param_names):
        full.check_params(init_params)
        u = model.unconstrain(init_params, raw, weights=full.weights)
        u = {k: jnp.asarray(v, float) for k, v in u.items()}
    else:  # Stan's random inits (for the params not given)
        (u,) = find_inits(full, setup.args, 1, setup.seed, init_params)
    w = setup.to_raw({k: jnp.asarray(v, float) for k, v in full.weights.items()})
    theta = {"params": u, "weights": w}
    opt_state = (setup.optimizer.init(theta), setup.step_model.warm_state())
    return RunState(0, theta, opt_state, [np.zeros(0)], 0)


def _run_steps(
    setup: Setup,
    s: OptimizeSettings,
    run: RunState,
    events,
    grad_fail: dict[int, int],
    solve_fail: dict[int, int],
) -> RunState:
    """The steps from ``run.done`` to ``s.steps`` in chunks (``fpl.runtime.loop``); a
    failed step is an error (``on_failure="error"``) naming the node and the step;
    non-converged forward solves are counted per node in ``solve_fail``."""
    from fpl.runtime.loop import Early, Progress, run_chunks

    step, gradient_at = step_function(setup, _tol(s, setup), s.on_failure)
    chunk_len = min(CHUNK, s.every or CHUNK, s.steps)
    chunk = chunk_function(step, chunk_len)
    grad_at = jax.jit(gradient_at)
    nodes = {n.node_id: n for n in setup.step_model.nodes}
    args = setup.args
    state = {"run": run}

    def rerun(at: RunState, k: int):
        """The values and state step ``at.done + k`` starts from (steps are deterministic)."""
        if not k:
            return at.theta, at.opt_state
        skipped = jnp.asarray(at.skipped, jnp.int32)
        (theta, opt_state, _), _ = chunk(
            at.theta, at.opt_state, skipped, at.done, at.done + k, args
        )
        return theta, opt_state

    def backward_failures_at(at: RunState, k: int):
        """The nodes whose backward solve fails in step ``at.done + k``."""
        theta, opt_state = rerun(at, k)
        jax.effects_barrier()
        events.drain_backward()
        jax.block_until_ready(grad_at(theta, args, opt_state[1], at.done + k))
        jax.effects_barrier()
        return events.drain_backward()

    def advance(done: int, n: int) -> str:
        at = state["run"]
        (theta, opt_state, skipped), (losses, failed, bad, converged) = chunk(
            at.theta, at.opt_state, jnp.asarray(at.skipped, jnp.int32), done, done + n, args
        )
        converged = np.asarray(converged)[:n]
        ran = int(np.argmax(converged)) if converged.any() else n  # steps that updated
        losses, bad = np.asarray(losses)[:ran], np.asarray(bad)[:ran]
        ids = setup.objective.node_ids
        codes = np.asarray(failed)[:ran].reshape(ran, len(ids))
        for i, count in zip(ids, np.count_nonzero(codes, axis=0)):
            solve_fail[i] = solve_fail.get(i, 0) + int(count)
        jax.effects_barrier()  # every callback of the chunk has run
        hits = events.drain_backward()
        for i in hits:
            grad_fail[i] = grad_fail.get(i, 0) + 1
        if s.on_failure == "error" and bad.any():
            k = int(np.argmax(bad))
            if hits and not np.asarray(failed)[k].any():
                hit = backward_failures_at(at, k)
                if hit:
                    raise_backward(done + k + 1, hit[0], nodes)
            if not np.isfinite(losses[k]) and not np.asarray(failed)[k].any():
                theta_k, _ = rerun(at, k)
                raise_if_rejected(
                    setup,
                    s.jacobian,
                    theta_k,
                    noise_key(setup.key, done + k),
                    f"where optimization step {done + k + 1} starts",
                )
            raise_step(
                done + k + 1,
                np.asarray(failed)[k],
                setup.objective.node_ids,
                nodes,
                float(losses[k]),
            )
        trace = [*at.trace, np.asarray(losses, float)]
        state["run"] = RunState(done + ran, theta, opt_state, trace, int(skipped))
        if ran < n:
            return Early(f"converged after {done + ran} steps", ran)
        return f"loss {float(trace[-1][-1]):.6g}"

    def stopped(done: int) -> BaseException:
        return interrupted(setup, s.checkpoint, state["run"])

    bar = Progress(s.progress, s.steps, "optimize")
    bar.resume(run.done)
    run_chunks(
        advance,
        done=run.done,
        total=s.steps,
        chunk=chunk_len,
        bar=bar,
        every=s.every,
        save=lambda done: write(setup, s.checkpoint, state["run"]),
        interrupted=stopped,
    )
    return state["run"]


def _tol(s: OptimizeSettings, setup: Setup) -> float:
    """The convergence tolerance in force: none (0) for minibatched runs."""
    return 0.0 if setup.batching is not None else float(s.tol)


def _split_init(model, init) -> tuple[dict | None, dict | None]:
    if init is None:
        return None, None
    if isinstance(init, OptimizeResult):
        init = init.params
    if isinstance(init, (str, Path)):
        from fpl.runtime.data import read_data

        init = read_data(init)
    weights = {w.name for w in model.ir.weights}
    unknown = set(init) - weights - set(model.param_names)
    if unknown:
        raise error(
            "E0403", f"`init` names unknown params or weights: {', '.join(sorted(unknown))}"
        )
    p = {k: v for k, v in init.items() if k in model.param_names}
    w = {k: v for k, v in init.items() if k in weights}
    return p or None, w or None


def _optimizer_name(optimizer) -> str:
    name = getattr(optimizer, "fpl_name", None)
    return name or type(optimizer).__name__


__all__ = [
    "GTOL",
    "METHOD",
    "OptimizeResult",
    "OptimizeSettings",
    "likelihood_terms",
    "load_result",
    "minibatch_objective",
    "optimize",
    "plan_batches",
    "run",
]
