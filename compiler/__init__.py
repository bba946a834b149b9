"""The FPL compiler: AST -> checked IR -> JAX.  Parsing and checking import no JAX."""

from __future__ import annotations

from pathlib import Path

from fpl.compiler import ir
from fpl.compiler.passes.check import check
from fpl.compiler.passes.imports import expand_imports
from fpl.dsl import ast
from fpl.dsl.parser import parse


def front_end(text: str, name: str = "<string>", path: Path | None = None) -> ast.Program:
    """Parse and expand imports."""
    return expand_imports(parse(text, name), path)


def compile_ir(text: str, name: str = "<string>", path: Path | None = None) -> ir.Program:
    """Parse, expand imports and check (symbolic sizes)."""
    model_name = Path(name).stem if name != "<string>" else "model"
    return check(front_end(text, name, path), None, model_name)


__all__ = ["front_end", "compile_ir", "check", "ir"]
