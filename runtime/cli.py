"""The ``fpl`` command line: a thin layer over the embedding API.

Exit codes: 0 ok, 1 model or data error, 2 usage error, 3 internal error.  Errors are
rendered as located diagnostics; a Python traceback is shown only with FPL_DEBUG=1.
``fpl check`` and ``fpl compile`` never import JAX.  One command per inference method
(``fpl sample``, ``optimize``, ``laplace``, ``pathfinder``, ``vi``, ``predict``,
``diagnose``) is built from the methods table (``fpl.runtime.cli_methods``).
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
    p.add_argument(
        "--error-format",
        choices=["text", "json"],
        default="text",
        help="how diagnostics are printed (json for editors)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="parse and type-check a model")
    c.add_argument("model")
    c.add_argument("--data", help="also check a data file against the model")

    c = sub.add_parser("compile", help="print a compilation stage")
    c.add_argument("model")
    c.add_argument(
        "--emit",
        choices=["ast", "ir", "jaxpr"],
        default="ir",
        help="ast: the syntax tree; ir: the typed IR; jaxpr: the JAX program of the "
        "log density (needs --data where the model has data)",
    )
    c.add_argument("--data", help="data file (for --emit jaxpr)")

    from fpl.runtime import cli_list, cli_methods  # each adds its commands (no JAX import)

    COMMANDS.update(cli_methods.add_parsers(sub))
    c = sub.add_parser("summary", help="summarise a saved fit (.nc, .csv, .json)")
    c.add_argument("fit")

    COMMANDS.update(cli_list.add_parsers(sub))
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
    from fpl.compiler import check

    tree = _load(args.model)
    program = check(tree, None)
    if args.data:
        from fpl.compiler.compiled import compile_model
        from fpl.runtime.data import read_data

        compile_model(tree, program, read_data(args.data))
    n = len(program.params)
    print(
        f"{args.model}: ok ({len(program.data)} data, {n} params, "
        f"{len(program.weights)} weights, {len(program.outs)} outs)"
    )
    return EXIT_OK


def cmd_compile(args) -> int:
    tree = _load(args.model)
    if args.emit == "ast":
        from fpl.dsl.ast import dump

        print(dump(tree))
        return EXIT_OK
    from fpl.compiler import check

    program = check(tree, None, Path(args.model).stem)
    if args.emit == "ir":
        from fpl.compiler.printer import format_program

        print(format_program(program), end="")
        return EXIT_OK
    _setup_jax()
    print(emit_jaxpr(tree, program, args.data), end="")
    return EXIT_OK


def emit_jaxpr(tree, program, data_path: str | None) -> str:
    """``jax.make_jaxpr`` of the compiled log density (unconstrained scale, Jacobian
    included) at the data's sizes: the program the samplers run, so it cannot drift
    from the lowering."""
    import jax
    import jax.numpy as jnp

    from fpl.compiler.compiled import compile_model
    from fpl.runtime.data import read_data

    cm = compile_model(tree, program, read_data(data_path) if data_path else {})
    theta = jnp.zeros((cm.param_unc_num(),), jnp.result_type(float))
    data = {k: jnp.asarray(v) for k, v in cm.data.items()}
    jaxpr = jax.make_jaxpr(lambda t, d: cm.log_density(t, data=d))(theta, data)
    return f"{jaxpr}\n"


def cmd_summary(args) -> int:
    from fpl.runtime.io import load_fit
    from fpl.runtime.summary import format_summary, summarize

    fd = load_fit(args.fit)
    depth = int(fd.attrs.get("max_tree_depth", 10)) if fd.attrs else 10
    print(format_summary(summarize(fd.posterior), fd.sample_stats or None, max_tree_depth=depth))
    return EXIT_OK


# further commands come from ``cli_methods`` (one per inference method of the table) and
# ``cli_list``: each has ``add_parsers(sub) -> {name: handler}``
COMMANDS = {"check": cmd_check, "compile": cmd_compile, "summary": cmd_summary}


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
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in FPL; rerun with FPL_DEBUG=1 for a traceback and please report it.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
