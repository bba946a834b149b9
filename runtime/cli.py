"""The ``fpl`` command line: a thin layer over the embedding API.

Exit codes: 0 ok, 1 model or data error, 2 usage error, 3 internal error.  Errors are
rendered as located diagnostics; a Python traceback is shown only with FPL_DEBUG=1.
``fpl check`` and ``fpl compile`` never import JAX.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_MODEL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: exit 2 with the usage line
        self.print_usage(sys.stderr)
        sys.stderr.write(f"fpl: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    from fpl import __version__

    p = _Parser(prog="fpl", description="FPL: differentiable probabilistic programming on JAX.")
    p.add_argument("--version", action="version", version=f"fpl {__version__}")
    p.add_argument("--error-format", choices=["text", "json"], default="text",
                   help="how diagnostics are printed (json for editors)")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="parse and type-check a model")
    c.add_argument("model")
    c.add_argument("--data", help="also check a data file against the model")

    c = sub.add_parser("compile", help="print a compilation stage")
    c.add_argument("model")
    c.add_argument("--emit", choices=["ast", "ir", "python"], default="ir")

    c = sub.add_parser("sample", help="sample the posterior with NUTS")
    c.add_argument("model")
    c.add_argument("--data", help="CmdStan-style JSON data file")
    c.add_argument("--chains", type=int, default=4)
    c.add_argument("--warmup", type=int, default=1000)
    c.add_argument("--draws", type=int, default=1000)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--target-accept", type=float, default=0.8)
    c.add_argument("--max-tree-depth", type=int, default=10)
    c.add_argument("--init", help="JSON file of initial param values")
    c.add_argument("-o", "--output", help="write the fit: .nc (ArviZ netCDF), .csv or .json")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.add_argument("--checkpoint", help="checkpoint file (after each chain and on Ctrl-C)")
    c.add_argument("--every", type=int, default=None, help="also checkpoint every N iterations")
    c.add_argument("--resume", action="store_true", help="continue from --checkpoint")

    c = sub.add_parser("summary", help="summarise a saved fit (.nc, .csv, .json)")
    c.add_argument("fit")

    import importlib

    for plugin in PLUGINS:  # further commands, each module owning its own (no JAX import here)
        COMMANDS.update(importlib.import_module(f"fpl.runtime.{plugin}").add_parsers(sub))
    return p


def _setup_jax() -> None:
    """Float64 and a persistent compilation cache, before JAX is first used."""
    cache = os.environ.get("FPL_CACHE_DIR") or str(Path.home() / ".cache" / "fpl" / "jax")
    import jax

    jax.config.update("jax_enable_x64", True)
    try:
        Path(cache).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except OSError:
        pass  # an unwritable cache only costs speed


def _load(path: str):
    from fpl.compiler import front_end
    from fpl.dsl.diagnostics import error

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error("E0501", f"cannot read `{path}`: {exc.strerror or exc}") from None
    return front_end(text, path, Path(path))


def cmd_check(args) -> int:
    from fpl.compiler.passes.check import check

    program = check(_load(args.model), None)
    if args.data:
        from fpl.runtime.data import bind_data, read_data

        bind_data(_load(args.model), program, read_data(args.data), program.name)
    n = len(program.params)
    print(f"{args.model}: ok ({len(program.data)} data, {n} params, "
          f"{len(program.weights)} weights, {len(program.outs)} outs)")  # fmt: skip
    return EXIT_OK


def cmd_compile(args) -> int:
    tree = _load(args.model)
    if args.emit == "ast":
        from fpl.dsl.ast import dump

        print(dump(tree))
        return EXIT_OK
    from fpl.compiler.passes.check import check

    program = check(tree, None, Path(args.model).stem)
    if args.emit == "ir":
        from fpl.compiler.printer import format_program

        print(format_program(program), end="")
    else:
        from fpl.compiler.emit_python import emit_python

        print(emit_python(program), end="")
    return EXIT_OK


def cmd_sample(args) -> int:
    _setup_jax()
    import fpl
    from fpl.runtime.data import read_data

    model = fpl.load(args.model)
    data = read_data(args.data) if args.data else {}
    init = read_data(args.init) if args.init else None
    if (args.every is not None or args.resume) and not args.checkpoint:
        print("fpl: error: --every and --resume need --checkpoint", file=sys.stderr)
        return EXIT_USAGE
    from fpl.runtime.checkpoint import Interrupted, resume_hint

    try:
        fit = model.sample(
            data, chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed,
            target_accept=args.target_accept, max_tree_depth=args.max_tree_depth, init=init,
            progress=not args.quiet, checkpoint=args.checkpoint, every=args.every,
            resume=args.resume,
        )  # fmt: skip
    except Interrupted as exc:
        print(f"\nfpl: {exc.message.split('; resume with')[0]}\n"
              + resume_hint("sample", args.model, exc.checkpoint), file=sys.stderr)  # fmt: skip
        return 130
    if args.output:
        fit.save(args.output)
    print(fit.summary())
    if args.output:
        print(f"\nwrote {args.output}")
    return EXIT_OK


def cmd_summary(args) -> int:
    from fpl.runtime.io import load_fit
    from fpl.runtime.summary import format_summary, summarize

    fd = load_fit(args.fit)
    depth = int(fd.attrs.get("max_tree_depth", 10)) if fd.attrs else 10
    print(format_summary(summarize(fd.posterior), fd.sample_stats or None, max_tree_depth=depth))
    return EXIT_OK


COMMANDS = {"check": cmd_check, "compile": cmd_compile, "sample": cmd_sample,
            "summary": cmd_summary}  # fmt: skip

# Modules adding commands: each has ``add_parsers(sub) -> {name: handler}``.
PLUGINS = ("cli_optimize", "cli_infer", "cli_diagnose", "cli_list")


def main(argv: list[str] | None = None) -> int:
    from fpl.dsl.diagnostics import FplError

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version exit 0, usage errors exit 2
        return int(exc.code or 0)
    try:
        return COMMANDS[args.command](args)
    except FplError as exc:
        if args.error_format == "json":
            print(exc.to_json(), file=sys.stderr)
        else:
            print(exc.render(), file=sys.stderr)
        return EXIT_MODEL
    except KeyboardInterrupt:
        print("\nfpl: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in FPL, never the user's fault
        if os.environ.get("FPL_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc}\n"
              "This is a bug in FPL; rerun with FPL_DEBUG=1 for a traceback and please report it.",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
