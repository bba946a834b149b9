"""``fpl <method>`` for every inference method of the table (``fpl.runtime.methods``):
the flags, their defaults and help come from the method's settings fields (and its
command-line-only options, inputs and the help of ``-o`` / ``--quiet``).

A bad flag value is a usage error (exit 2) carrying the coded message (E0403) the API
raises for the same value; Ctrl-C during a checkpointed run prints the command that
resumes it and exits 130.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_INTERRUPTED = 130


def add_parsers(sub) -> dict:
    """Add one subcommand per method to ``sub``; returns ``{name: handler}``."""
    from fpl.runtime.methods import methods

    handlers = {}
    for method in methods().values():
        c = sub.add_parser(method.name, help=method.help, description=method.help)
        c.add_argument("model")
        c.add_argument("--data", help="CmdStan-style JSON data file")
        for i in method.inputs:
            c.add_argument(
                f"--{i.name}",
                required=i.required,
                help=i.help,
                metavar="FILE.json" if i.file else "FILE",
            )
        method.settings.add_arguments(c)
        if method.command is not None:
            method.command.add_arguments(c)
        if method.output is not None:
            c.add_argument("-o", "--output", help=method.output)
        if method.quiet is not None:
            c.add_argument("--quiet", action="store_true", help=method.quiet)
        handlers[method.name] = _handler(method)
    return handlers


def _settings(method, args):
    """The settings (and command-line-only options) from the flags, or the exit code of
    a usage error.  Files are read first: an unreadable file is a data error (exit 1)."""
    from fpl.dsl.diagnostics import FplError
    from fpl.runtime.cli import EXIT_USAGE
    from fpl.runtime.data import read_data

    values = method.settings.cli_values(args, read_data)
    try:
        settings = method.settings(**values)
        command = None
        if method.command is not None:
            command = method.command(**method.command.cli_values(args, read_data))
    except FplError as exc:  # a bad flag value: a usage error, with its code
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    return settings, command


def _handler(method):
    def handle(args) -> int:
        import dataclasses

        from fpl.runtime.checkpoint import Interrupted
        from fpl.runtime.cli import _setup_jax
        from fpl.runtime.data import read_data

        built = _settings(method, args)
        if isinstance(built, int):
            return built
        settings, command = built
        _setup_jax()
        import fpl

        if command is not None:
            settings = dataclasses.replace(settings, **command.apply(settings))
        inputs = {}
        for i in method.inputs:
            value = getattr(args, i.name)
            inputs[i.name] = read_data(value) if i.file and value is not None else value
        model = fpl.load(args.model)
        data = read_data(args.data) if args.data else {}
        try:
            result = method(model, data, settings, **inputs)
        except Interrupted as exc:
            return _interrupted(method, args, exc)
        if method.report is not None:
            return method.report(model, result, args)
        return report(method, result, args)

    return handle


def report(method, fit, args) -> int:
    """The default output: ``-o`` written, then (unless ``--quiet``) the headline and
    the summary."""
    from fpl.runtime.cli import EXIT_OK

    if args.output:
        fit.save(args.output)
    if not args.quiet:
        if method.headline is not None:
            print(method.headline(fit))
        print(fit.summary())
    if args.output:
        print(f"wrote {args.output}")
    return EXIT_OK


def _interrupted(method, args, exc) -> int:
    """Ctrl-C: what was done is kept (in ``--checkpoint``, else in
    ``<name>.<method>.ckpt``) and the command that resumes it printed."""
    from fpl.runtime.checkpoint import resume_hint

    if exc.checkpoint is None:  # keep what was done even without --checkpoint
        path = f"{Path(getattr(args, 'output', None) or args.model).stem}.{method.name}.ckpt"
        exc.save_checkpoint(path)
        head = f"interrupted at step {exc.step}; checkpoint written to {path}"
    else:
        path = exc.checkpoint
        head = exc.message.split("; resume with")[0]
    print(f"\nfpl: {head}\n" + resume_hint(method.name, args.model, path), file=sys.stderr)
    return EXIT_INTERRUPTED


__all__ = ["add_parsers", "report"]
