"""``fpl optimize``: fit weights and params with an optax optimizer."""

from __future__ import annotations

import sys
from pathlib import Path

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential", "warmup_cosine")
DEFAULT_LR = 1e-2
EXP_FINAL = 0.01  # `exponential`: the rate decays to EXP_FINAL * lr over the run
WARMUP_FRACTION = 0.1  # `warmup_cosine`: linear warmup over this share of the steps


def add_parsers(sub) -> dict:
    """Add this module's subcommands to ``sub``; returns ``{name: handler}``."""
    c = sub.add_parser("optimize", help="fit params and weights with an optax optimizer (MAP)")
    c.add_argument("model")
    c.add_argument("--data", help="CmdStan-style JSON data file")
    c.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    c.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate (default {DEFAULT_LR}; lbfgs: 1 with a line search)",
    )
    c.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="constant",
        help="learning-rate schedule over the steps",
    )
    c.add_argument("--steps", type=int, default=1000)
    c.add_argument("--batch-size", type=int, default=None, help="minibatch rows per step")
    c.add_argument(
        "--batch-fields",
        default=None,
        help="comma-separated data fields to minibatch (default: see docs)",
    )
    c.add_argument("--seed", type=int, default=None)
    c.add_argument(
        "--jacobian",
        action="store_true",
        help="add the log-Jacobian (mode on the unconstrained scale)",
    )
    c.add_argument("--init", help="JSON file of initial param and weight values")
    c.add_argument(
        "--on-solver-failure",
        choices=["error", "skip"],
        default="error",
        help="a non-converged implicit solve: stop with an error, or skip the step",
    )
    c.add_argument("-o", "--output", help="write the result (.json)")
    c.add_argument("--plot", help="write the loss curve (.png, .pdf, .svg; needs matplotlib)")
    c.add_argument("--checkpoint", help="checkpoint file (written at the end and on Ctrl-C)")
    c.add_argument("--every", type=int, default=None, help="also checkpoint every N steps")
    c.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    return {"optimize": cmd_optimize}


def make_optimizer(name: str, lr: float | None, schedule: str, steps: int):
    """An optax optimizer from the command line's choices."""
    import optax

    from fpl.dsl.diagnostics import error

    if lr is not None and not lr > 0:
        raise error("E0403", f"`--lr` must be positive, got {lr}")
    if name == "lbfgs":
        if schedule != "constant":
            raise error("E0403", "lbfgs takes no --schedule (its line search sets the steps)")
        opt = optax.lbfgs(learning_rate=lr)
    else:
        base = DEFAULT_LR if lr is None else lr
        if schedule == "constant":
            rate = base
        elif schedule == "cosine":
            rate = optax.cosine_decay_schedule(base, steps)
        elif schedule == "exponential":
            rate = optax.exponential_decay(base, transition_steps=steps, decay_rate=EXP_FINAL)
        else:
            warm = max(1, int(WARMUP_FRACTION * steps))
            rate = optax.warmup_cosine_decay_schedule(0.0, base, warm, max(steps, warm + 1))
        opt = {
            "adam": optax.adam,
            "adamw": optax.adamw,
            "sgd": optax.sgd,
            "rmsprop": optax.rmsprop,
        }[name](rate)
    return opt


def plot_loss(path: str, trace, title: str) -> None:
    """The loss per step, written atomically (matplotlib, Agg backend)."""
    from fpl.dsl.diagnostics import error
    from fpl.runtime.io import write_atomic

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise error("E0403", "`--plot` needs matplotlib", help="pip install 'fpl[plot]'") from None
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise error("E0502", f"cannot write `{path}`: use a .png, .pdf or .svg file")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(trace) + 1), trace, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if len(trace) and min(trace) > 0 and max(trace) / min(trace) > 100:
        ax.set_yscale("log")
    fig.tight_layout()
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, format=suffix))
    finally:
        plt.close(fig)


def cmd_optimize(args) -> int:
    from fpl.runtime.cli import EXIT_OK, EXIT_USAGE, _setup_jax

    if args.steps < 1:
        print("fpl: error: --steps must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.resume and not args.checkpoint:
        print("fpl: error: --resume needs --checkpoint", file=sys.stderr)
        return EXIT_USAGE
    if args.every is not None and (args.every < 1 or not args.checkpoint):
        print("fpl: error: --every needs --checkpoint and a value >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.batch_fields and args.batch_size is None:
        print("fpl: error: --batch-fields needs --batch-size", file=sys.stderr)
        return EXIT_USAGE
    _setup_jax()
    import fpl
    from fpl.runtime.checkpoint import Interrupted, resume_hint
    from fpl.runtime.data import read_data

    model = fpl.load(args.model)
    data = read_data(args.data) if args.data else {}
    init = read_data(args.init) if args.init else None
    fields = [f.strip() for f in args.batch_fields.split(",")] if args.batch_fields else None
    optimizer = make_optimizer(args.optimizer, args.lr, args.schedule, args.steps)
    try:
        res = model.optimize(
            data,
            optimizer=optimizer,
            steps=args.steps,
            seed=args.seed,
            batch_size=args.batch_size,
            batch_fields=fields,
            init=init,
            jacobian=args.jacobian,
            checkpoint=args.checkpoint,
            every=args.every,
            resume=args.resume,
            progress=not args.quiet,
            on_failure=args.on_solver_failure,
        )
    except Interrupted as exc:
        path = exc.checkpoint
        if path is None:  # keep what was done even without --checkpoint
            path = f"{Path(args.output or args.model).stem}.optimize.ckpt"
            exc.save_checkpoint(path)
        print(
            f"\nfpl: interrupted at step {exc.step}; checkpoint written to {path}\n"
            + resume_hint("optimize", args.model, path),
            file=sys.stderr,
        )
        return 130
    if args.output:
        res.save(args.output)
    if args.plot:
        plot_loss(args.plot, res.trace, f"{model.name}: {args.optimizer}")
    print(res.summary())
    for path in (args.output, args.plot):
        if path:
            print(f"wrote {path}")
    return EXIT_OK
