"""``fpl <method>`` for every inference method of the table (``fpl.runtime.methods``):
the flags, their defaults and help come from the method's settings fields (and its
command-line-only options, inputs and the help of ``-o`` / ``--quiet``).

A bad flag value is a usage error (exit 2) carrying the coded message (E0403) the API
raises for the same value; Ctrl-C during a checkpointed run prints the command that
resumes it and exits 130.

Before anything runs, ``-o`` is checked (a known extension, an existing writable
folder: E0502, exit 2), and a seed left out is drawn and printed ("seed: 123456" on
stderr), so every run can be repeated; the result stores it (``attrs["seed"]``).  After
the run the summary is printed first, then the output written; if that fails, the
result is kept in a recovery file whose path the error (E0502, exit 1) names.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

#: the range of seeds the CLI draws when none is given (short enough to retype)
DRAWN_SEED_LIMIT = 2**31

EXIT_INTERRUPTED = 130


def add_parsers(sub) -> dict:
    """Add one subcommand per method to ``sub``; returns ``{name: handler}``."""
    from fpl.runtime.methods import methods

    handlers = {}
    for method in methods().values():
        c = sub.add_parser(method.name, help=method.help, description=method.help)
        c.add_argument("model", help="the model file (.fpl)")
        c.add_argument("--data", help="CmdStan-style JSON data file (default: none)")
        for i in method.inputs:
            c.add_argument(
                f"--{i.name}",
                required=i.required,
                help=i.help + (" (required)" if i.required else " (default: none)"),
                metavar="FILE.json" if i.file else "FILE",
            )
        method.settings.add_arguments(c)
        if method.command is not None:
            method.command.add_arguments(c)
        if method.output is not None:
            c.add_argument(
                "-o", "--output", metavar="FILE", help=f"{method.output} (default: none)"
            )
        if method.quiet is not None:
            c.add_argument("--quiet", action="store_true", help=f"{method.quiet} (default: off)")
        handlers[method.name] = _handler(method)
    return handlers


def _settings(method, args):
    """The settings (and command-line-only options) from the flags, or the exit code of
    a usage error (a bad value, a bad ``-o``).  Files are read first: an unreadable file
    is a data error (exit 1).  A seed left out is drawn here and printed."""
    from fpl.dsl.diagnostics import FplError
    from fpl.runtime.cli import EXIT_USAGE, print_error
    from fpl.runtime.data import read_data

    values = _file_values(method, args, read_data)
    try:
        if getattr(args, "output", None):
            check_output(args.output, method.output_formats)
        if values.get("checkpoint"):
            check_writable(str(values["checkpoint"]), "--checkpoint")
        if "seed" in values and values["seed"] is None:
            values["seed"] = _seed(values)
        settings = method.settings(**values)
        command = None
        if method.command is not None:
            command = method.command(**method.command.cli_values(args, read_data))
    except FplError as exc:  # a bad flag value: a usage error, with its code
        print_error(exc, args)
        return EXIT_USAGE
    return settings, command


def _file_values(method, args, read_data) -> dict:
    """The settings' values from the flags, files read: ``--weights`` may also name a
    result (``fpl.runtime.io.read_weights``: an ``optimize`` result, a ``vi`` fit), the
    other files are data."""
    import argparse

    from fpl.runtime.io import read_weights

    path = getattr(args, "weights", None)
    if path is None:
        return method.settings.cli_values(args, read_data)
    values = method.settings.cli_values(
        argparse.Namespace(**{**vars(args), "weights": None}), read_data
    )
    values["weights"] = read_weights(path)
    return values


def _seed(values: dict) -> int:
    """The seed of a run given none: a resumed run's first seed (from its checkpoint),
    else a random one; printed on stderr so that the run can be repeated."""
    from fpl.runtime.checkpoint import saved_seed

    seed = None
    if values.get("resume") and values.get("checkpoint"):
        seed = saved_seed(values["checkpoint"])
        if seed is not None:
            print(f"seed: {seed} (from the checkpoint)", file=sys.stderr)
            return seed
    seed = secrets.randbelow(DRAWN_SEED_LIMIT)
    print(f"seed: {seed}", file=sys.stderr)
    return seed


def check_output(path: str, formats: tuple[str, ...]) -> None:
    """E0502 unless ``path`` can be written: one of ``formats`` (extensions) and in an
    existing, writable folder (checked before the run, so that no result is lost)."""
    from fpl.dsl.diagnostics import error

    shown = ", ".join(formats)
    suffix = Path(path).suffix.lower()
    if suffix not in formats:
        raise error(
            "E0502",
            f"cannot write `{path}`: unknown format `{suffix or '(none)'}`",
            help=f"`-o` takes a file ending in {shown}",
        )
    check_writable(path, "-o")


def check_writable(path: str, flag: str) -> None:
    """E0502 (naming ``flag``) unless a file can be written at ``path``: its folder
    exists and is writable, and it is not itself a folder.  Checked before the run for
    ``-o`` and ``--checkpoint``, so that no run is lost to a path that cannot be written."""
    from fpl.dsl.diagnostics import error

    folder = Path(path).parent
    if not folder.is_dir():
        raise error(
            "E0502",
            f"cannot write `{path}` ({flag}): the folder `{folder}` does not exist",
            help="create it first, or write somewhere else",
        )
    if Path(path).is_dir():
        raise error("E0502", f"cannot write `{path}` ({flag}): it is a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(
            "E0502", f"cannot write `{path}` ({flag}): the folder `{folder}` is not writable"
        )


def save_output(result, path: str | None, formats: tuple[str, ...]) -> int:
    """Write ``result`` to ``path`` (if given) and say so; if that fails, keep it in a
    recovery file (in the temporary folder, in the same format, else as JSON) and raise
    E0502 naming it: a finished run is never lost to a late I/O failure."""
    from fpl.dsl.diagnostics import FplError, error

    if not path:
        return 0
    try:
        written = result.save(path)
    except FplError as exc:
        reason = exc.diagnostics[0].message
        kept, failures = None, []
        for suffix in dict.fromkeys([Path(path).suffix.lower(), ".json"]):
            if suffix not in formats:
                continue
            fd, candidate = tempfile.mkstemp(prefix=f"{Path(path).stem}.recovered-", suffix=suffix)
            os.close(fd)
            try:
                result.save(candidate)
            except FplError as again:
                failures.append(again.diagnostics[0].message)
                Path(candidate).unlink(missing_ok=True)
                continue
            kept = candidate
            break
        if kept is None:
            raise error(
                "E0502",
                f"{reason}; the result could not be kept anywhere ({'; '.join(failures)})",
            ) from None
        raise error(
            "E0502",
            f"{reason}; the result was kept in `{kept}`",
            help=f"move `{kept}` where you want it; it is the complete result of this run",
        ) from None
    # a fit's save lists its files (a Stan CSV is one file per chain)
    files = written if isinstance(written, list) and written else [path]
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


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
    """The default output: unless ``--quiet`` the headline and the summary, then ``-o``
    written (see :func:`save_output`)."""
    if not args.quiet:
        if method.headline is not None:
            print(method.headline(fit))
        print(fit.summary())
    return save_output(fit, args.output, method.output_formats)


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


__all__ = ["add_parsers", "check_output", "check_writable", "report", "save_output"]
