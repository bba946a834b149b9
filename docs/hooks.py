"""MkDocs hooks: pages generated at build time, so they cannot drift from the code.

- ``cli.md``: the command-line reference, every subcommand's ``--help`` from the
  argparse parser the ``fpl`` command itself uses;
- ``reference.md``: the standard library reference (``docs/reference.md``, generated
  from the registries by ``python -m fpl.stdlib.docs --write``);
- ``architecture.md``: ``docs/architecture.md``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent
COPIED = {"reference.md": DOCS / "reference.md", "architecture.md": DOCS / "architecture.md"}


def cli_reference() -> str:
    """Markdown of ``fpl --help`` and each subcommand's ``--help``."""
    from fpl.runtime.cli import _parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "96"  # argparse wraps help to the terminal width
    try:
        parser = _parser()
        out = [
            "# Command line",
            "",
            "<!-- Generated from the `fpl` argument parser (docs/hooks.py); "
            "every flag below is the one the command accepts. -->",
            "",
            "Exit codes: 0 ok, 1 model or data error, 2 usage error, 3 internal error, "
            "130 after Ctrl-C. Every inference command takes the model file, `--data`, "
            "and the settings of its method (the same names as the Python API's keywords, "
            "`--warmup` for `warmup=`).",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, command in sub.choices.items():
            out += ["", f"## fpl {name}", "", "```text", command.format_help().rstrip(), "```"]
        return "\n".join(out) + "\n"
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def on_files(files, config):
    generated = {"cli.md": cli_reference()}
    generated.update({name: path.read_text() for name, path in COPIED.items()})
    for name, content in generated.items():
        files.append(File.generated(config, name, content=content))
    return files
