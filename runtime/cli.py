"""The ``fpl`` command line: a thin layer over the embedding API.

Exit codes: 0 ok, 1 model or data error, 2 usage error, 3 internal error.  Errors are
rendered as located diagnostics; a Python traceback is shown only with FPL_DEBUG=1.
``fpl check`` and ``fpl compile`` never import JAX.  One command per inference method
(``fpl sample``, ``optimize``, ``laplace``, ``pathfinder``, ``vi``, ``predict``,
``diagnose``) is built from the methods table (``fpl.runtime.cli_methods``).

Global flags (``--error-format``) are accepted before or after the subcommand.  The
method commands are registered only when the command line may need them (not for
``check``, ``compile``, ``summary``, ``list``), so those start without importing the
methods' modules.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_MODEL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that left
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: exit 2 with the usage line
        self.print_usage(sys.stderr)
        sys.stderr.write(f"fpl: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


#: commands that need no inference method: their command lines are parsed without
#: importing the methods' modules (which pull in NumPy)
LIGHT_COMMANDS = ("check", "compile", "summary", "list", "lsp")


def _add_global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Flags valid before and after the subcommand.  On the subcommands the default is
    ``SUPPRESS``, so a flag given before the subcommand is not overwritten."""
    parser.add_argument(
        "--error-format",
        choices=["text", "json"],
        default="text" if top else argparse.SUPPRESS,
        help="how diagnostics are printed: text, or json for editors (default: text)",
    )


def _parser(methods: bool = True) -> argparse.ArgumentParser:
    """The command line; ``methods=False`` leaves out the inference methods' commands."""
    from fpl import __version__

    p = _Parser(prog="fpl", description="FPL: differentiable probabilistic programming on JAX.")
    p.add_argument("--version", action="version", version=f"fpl {__version__}")
    _add_global_flags(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="parse and type-check a model")
    c.add_argument("model", help="the model file (.fpl)")
    c.add_argument("--data", help="also check a data file against the model (default: none)")

    c = sub.add_parser("compile", help="print a compilation stage")
    c.add_argument("model", help="the model file (.fpl)")
    c.add_argument(
        "--emit",
        choices=["ast", "ir", "jaxpr"],
        default="ir",
        help="ast: the syntax tree; ir: the typed IR; jaxpr: the JAX program of the "
        "log density (needs --data where the model has data) (default: ir)",
    )
    c.add_argument("--data", help="data file (for --emit jaxpr) (default: none)")

    from fpl.runtime import cli_list, cli_methods  # each adds its commands (no JAX import)

    if methods:
        COMMANDS.update(cli_methods.add_parsers(sub))
    c = sub.add_parser("summary", help="summarise a saved fit (.nc, .csv, .json)")
    c.add_argument("fit", help="the fit file")
    sub.add_parser("lsp", help="run the language server on stdio (needs the `lsp` extra)")

    COMMANDS.update(cli_list.add_parsers(sub))
    for command in sub.choices.values():
        _add_global_flags(command, top=False)
    return p


def _command_of(argv: list[str]) -> str | None:
    """The subcommand's name: the first word that is neither a flag nor a global flag's
    value (None if there is none, as for ``fpl --help``)."""
    words = iter(argv)
    for word in words:
        if word == "--error-format":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def print_error(exc, args) -> None:
    """A coded error on stderr, as text or JSON (``--error-format``)."""
    if getattr(args, "error_format", "text") == "json":
        print(exc.to_json(), file=sys.stderr)
    else:
        print(exc.render(), file=sys.stderr)


def _setup_jax() -> None:
    """Float64 and the persistent compilation cache, before JAX is first used."""
    import jax

    from fpl.runtime.platform import use_compilation_cache

    jax.config.update("jax_enable_x64", True)
    use_compilation_cache()


def _load(path: str):
    from fpl.compiler import front_end
    from fpl.dsl.reader import read_source

    return front_end(read_source(path), path, Path(path))


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
    from fpl.runtime.fit import load_fit

    print(load_fit(args.fit).summary())  # times, E-BFMI and solver failures included
    return EXIT_OK


# further commands come from ``cli_methods`` (one per inference method of the table) and
# ``cli_list``: each has ``add_parsers(sub) -> {name: handler}``
def cmd_lsp(args) -> int:
    from fpl.dsl.diagnostics import error
    from fpl.runtime.lsp import main as serve

    try:
        return serve()
    except ImportError as exc:
        raise error(
            "E0503", f"the language server needs pygls ({exc})", help='pip install "fpl[lsp]"'
        ) from None


COMMANDS = {"check": cmd_check, "compile": cmd_compile, "summary": cmd_summary, "lsp": cmd_lsp}


class _Signals:
    """Ctrl-C and SIGTERM for one ``main``: both raise ``KeyboardInterrupt`` where the
    program is (so checkpoints are written, temporary files removed, the resume command
    printed, through the one Ctrl-C path) and are remembered, so that a
    ``KeyboardInterrupt`` swallowed on its way (raised inside a callback that ignores
    exceptions, such as JAX's garbage-collection hook) still ends the command with 130;
    SIGTERM ends it with 143.  Installed first thing (before any heavy import), the
    previous handlers restored on exit (``main`` also runs in-process, in tests)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[number] = signal.signal(number, self._raise)
            except ValueError:  # not the main thread: leave signals alone
                break
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _raise(self, number: int, frame: Any) -> None:
        self.received = self.received or number
        raise KeyboardInterrupt

    def exit_code(self, code: int) -> int:
        """``code``, or 130 / 143 when Ctrl-C / SIGTERM arrived during the command."""
        if self.received is None:
            return code
        if code not in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            print("\nfpl: interrupted", file=sys.stderr)  # the interrupt was swallowed
        return EXIT_TERMINATED if self.received == signal.SIGTERM else EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    with _Signals() as signals:
        try:
            code = _main(argv)
        except KeyboardInterrupt:  # before the command's own handlers were reached
            print("\nfpl: interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
        return signals.exit_code(code)


def _main(argv: list[str] | None = None) -> int:
    from fpl.dsl.diagnostics import FplError

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(methods=_command_of(argv) not in LIGHT_COMMANDS)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version exit 0, usage errors exit 2
        return int(exc.code or 0)
    try:
        return COMMANDS[args.command](args)
    except FplError as exc:
        print_error(exc, args)
        return EXIT_MODEL
    except KeyboardInterrupt:
        print("\nfpl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `fpl summary fit.nc | head`: the reader left, nothing to say
        try:  # stdout to /dev/null, so that flushing it at exit does not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # no file descriptor (in-process)
            pass
        return EXIT_BROKEN_PIPE
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
