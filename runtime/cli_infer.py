"""``fpl laplace | vi | predict``: Laplace approximation, variational inference and prediction."""

from __future__ import annotations

import sys

GUIDE_NAMES = ("normal", "mvn", "lowrank", "laplace", "delta")  # keys of fpl.runtime.vi.GUIDES
VI_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")  # stochastic gradients: no line search
OUTPUT_HELP = "write the draws: .nc (ArviZ netCDF), .csv or .json"


def add_parsers(sub) -> dict:
    """Add this module's subcommands to ``sub``; returns ``{name: handler}``."""
    from fpl.runtime.cli_optimize import SCHEDULES

    c = sub.add_parser("laplace", help="Laplace approximation: the mode and a Gaussian there")
    c.add_argument("model")
    c.add_argument("--data", help="CmdStan-style JSON data file")
    c.add_argument("--draws", type=int, default=4000)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--init", help="JSON file of initial param values for the mode search")
    c.add_argument("--tol", type=float, default=1e-8, help="relative gradient tolerance")
    c.add_argument("--max-iter", type=int, default=2000, help="L-BFGS iterations at most")
    c.add_argument("-o", "--output", help=OUTPUT_HELP)
    c.add_argument("--quiet", action="store_true", help="print no summary")

    c = sub.add_parser("vi", help="variational inference (NumPyro SVI with an autoguide)")
    c.add_argument("model")
    c.add_argument("--data", help="CmdStan-style JSON data file")
    c.add_argument("--guide", choices=GUIDE_NAMES, default="normal")
    c.add_argument("--steps", type=int, default=5000)
    c.add_argument("--optimizer", choices=VI_OPTIMIZERS, default="adam")
    c.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-2)")
    c.add_argument("--schedule", choices=SCHEDULES, default="constant")
    c.add_argument("--particles", type=int, default=1, help="ELBO samples per step")
    c.add_argument("--draws", type=int, default=4000)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--init", help="JSON file of initial param values")
    c.add_argument("-o", "--output", help=OUTPUT_HELP)
    c.add_argument("--plot", help="write the loss (-ELBO) per step (.png, .pdf, .svg)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser("predict", help="outs and gens for every draw of a saved fit, new data")
    c.add_argument("model")
    c.add_argument("--fit", required=True, help="a saved fit (.nc, .csv, .json)")
    c.add_argument("--data", help="CmdStan-style JSON data file (the new data)")
    c.add_argument("--weights", help="JSON file of weight values (default: their init)")
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("-o", "--output", help=OUTPUT_HELP)
    c.add_argument("--quiet", action="store_true", help="print no summary")
    return {"laplace": cmd_laplace, "vi": cmd_vi, "predict": cmd_predict}


def _usage(message: str) -> int:
    from fpl.runtime.cli import EXIT_USAGE

    print(f"fpl: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _finish(fit, args) -> int:
    from fpl.runtime.cli import EXIT_OK

    if args.output:
        fit.save(args.output)
    if not args.quiet:
        print(fit.summary())
    if args.output:
        print(f"wrote {args.output}")
    return EXIT_OK


def cmd_laplace(args) -> int:
    from fpl.runtime.cli import _setup_jax

    for name, value in (("--draws", args.draws), ("--max-iter", args.max_iter)):
        if value < 1:
            return _usage(f"{name} must be >= 1")
    if not args.tol > 0:
        return _usage("--tol must be positive")
    _setup_jax()
    import fpl
    from fpl.runtime.data import read_data

    model = fpl.load(args.model)
    data = read_data(args.data) if args.data else {}
    init = read_data(args.init) if args.init else None
    fit = model.laplace(data, draws=args.draws, seed=args.seed, init=init, tol=args.tol,
                        max_iter=args.max_iter)  # fmt: skip
    if not args.quiet:
        print(f"mode found in {fit.attrs['mode_iterations']} L-BFGS iterations, "
              f"log density there {fit.attrs['log_density_at_mode']:.6g}\n")  # fmt: skip
    return _finish(fit, args)


def cmd_vi(args) -> int:
    from fpl.runtime.cli import _setup_jax

    for name, value in (("--steps", args.steps), ("--draws", args.draws),
                        ("--particles", args.particles)):  # fmt: skip
        if value < 1:
            return _usage(f"{name} must be >= 1")
    if args.lr is not None and not args.lr > 0:
        return _usage("--lr must be positive")
    _setup_jax()
    import fpl
    from fpl.runtime.cli_optimize import make_optimizer, plot_loss
    from fpl.runtime.data import read_data

    model = fpl.load(args.model)
    data = read_data(args.data) if args.data else {}
    init = read_data(args.init) if args.init else None
    optimizer = make_optimizer(args.optimizer, args.lr, args.schedule, args.steps)
    fit = model.vi(data, guide=args.guide, steps=args.steps, optimizer=optimizer,
                   draws=args.draws, seed=args.seed, particles=args.particles, init=init,
                   progress=not args.quiet)  # fmt: skip
    if args.plot:
        plot_loss(args.plot, -fit.elbo, f"{model.name}: vi ({args.guide}), loss = -ELBO")
    if not args.quiet:
        print(f"ELBO {fit.attrs['elbo']:.6g} (mean over the last tenth of {args.steps} steps)\n")
    code = _finish(fit, args)
    if args.plot:
        print(f"wrote {args.plot}")
    return code


def cmd_predict(args) -> int:
    from fpl.runtime.cli import _setup_jax

    _setup_jax()
    import fpl
    from fpl.runtime.data import read_data

    model = fpl.load(args.model)
    data = read_data(args.data) if args.data else {}
    weights = read_data(args.weights) if args.weights else None
    fit = model.predict(args.fit, data, seed=args.seed, weights=weights)
    return _finish(fit, args)
