"""Expanding ``import "file.fpl"``: the imported file's functions and weights are
spliced in where the import stands.  Paths are relative to the importing file and
may not leave its folder (no absolute paths, no ``..`` escapes, no symlink escapes)."""

from __future__ import annotations

from pathlib import Path

from fpl.dsl import ast
from fpl.dsl.diagnostics import error
from fpl.dsl.parser import parse
from fpl.dsl.reader import read_source

#: import chains longer than this are refused (E0106): each level is a recursive call
MAX_IMPORT_DEPTH = 64


def expand_imports(
    prog: ast.Program, base: Path | None, _seen: tuple[Path, ...] = ()
) -> ast.Program:
    if not any(isinstance(s, ast.Import) for s in prog.statements):
        return prog
    out: list = []
    for s in prog.statements:
        if not isinstance(s, ast.Import):
            out.append(s)
            continue
        if base is None:
            raise error("E0106", "`import` needs a model loaded from a file", s.span)
        folder = base.parent.resolve()
        if len(_seen) >= MAX_IMPORT_DEPTH:
            raise error(
                "E0106",
                f"imports nested more than {MAX_IMPORT_DEPTH} files deep",
                s.span,
                help="import the shared files from the model itself",
            )
        rel = Path(s.path)
        if not s.path.isprintable() or rel.is_absolute() or not s.path.endswith(".fpl"):
            raise error(
                "E0106",
                f"cannot import `{s.path!r}`"
                if not s.path.isprintable()
                else f"cannot import `{s.path}`",
                s.span,
                help="imports are relative paths to .fpl files in the model's folder",
            )
        target = (folder / rel).resolve()
        if folder not in target.parents:
            raise error(
                "E0106",
                f"`{s.path}` is outside the model's folder",
                s.span,
                help="imports may not leave the importing file's folder",
            )
        if target in _seen:
            raise error("E0106", f"`{s.path}` imports itself (a cycle)", s.span)
        text = read_source(target, code="E0106", span=s.span)
        sub = expand_imports(parse(text, str(target)), target, (*_seen, target))
        for inner in sub.statements:
            if isinstance(inner, (ast.FnDef, ast.WeightDecl)):
                out.append(inner)
    return ast.Program(tuple(out), prog.span)
