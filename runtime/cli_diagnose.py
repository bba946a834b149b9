"""``fpl diagnose``: well-posedness diagnostics of implicit nodes.

Prints one row per implicit node (residual, iterations, ‖J‖_F, spectral radius or
singular values / Hessian eigenvalues) and, on stderr, a located warning (W0401) for
each ill-posed node and (W0402) for each that did not converge at the point.  Exit code
0 unless ``--strict`` and a node is ill-posed or did not converge (then 1).
"""

from __future__ import annotations

import sys


def add_parsers(sub) -> dict:
    """Add this module's subcommands to ``sub``; returns ``{name: handler}``."""
    c = sub.add_parser("diagnose", help="residuals and spectral radii of implicit nodes")
    c.add_argument("model")
    c.add_argument("--data", help="CmdStan-style JSON data file")
    c.add_argument("--params", help="JSON file of param values (default: a random init point)")
    c.add_argument("--seed", type=int, default=0, help="seed of the init point and the probes")
    c.add_argument("--strict", action="store_true",
                   help="exit 1 if a node is ill-posed or did not converge")  # fmt: skip
    return {"diagnose": cmd_diagnose}


def cmd_diagnose(args) -> int:
    from fpl.runtime.cli import EXIT_MODEL, EXIT_OK, _setup_jax

    _setup_jax()
    import fpl
    from fpl.runtime.data import read_data

    model = fpl.load(args.model)
    data = read_data(args.data) if args.data else {}
    params = read_data(args.params) if args.params else None
    result = model.diagnose(params, data, seed=args.seed)
    print(result)
    warnings = [w for w in (n.warning() for n in result.nodes) if w is not None]
    for w in warnings:
        if args.error_format == "json":
            import json

            print(json.dumps(w.to_json()), file=sys.stderr)
        else:
            print("\n" + w.render(), file=sys.stderr)
    return EXIT_MODEL if args.strict and warnings else EXIT_OK
