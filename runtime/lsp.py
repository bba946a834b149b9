"""A small language server for FPL: ``python -m fpl.runtime.lsp`` (stdio).

It does two things, both from what the rest of FPL already has:

- **diagnostics** on open, change and save: the text is parsed, its imports expanded
  and checked exactly as ``fpl check`` does (``fpl.compiler.front_end`` then
  ``check``), and each coded diagnostic is published with the range of its span;
- **hover**: over a distribution (or one of its forms, ``normal_lpdf``), a function or a
  solver, its signature and documentation from the stdlib registries (the text
  ``docs/reference.md`` is generated from).

The work is in pure functions (:func:`diagnostics`, :func:`hover_markdown`), which the
server wraps; pygls is imported only when the server starts (``pip install fpl[lsp]``).

Ranges: a :class:`~fpl.dsl.spans.Span` is 1-based and end-inclusive, an LSP range is
0-based and end-exclusive, so ``line - 1, col - 1`` to ``end_line - 1, end_col``.  FPL
source is ASCII outside comments and strings, where columns in characters and in UTF-16
units agree.  A diagnostic located in another file (an imported one) is shown on the
document's first line with that location in its message.  Checking never imports JAX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fpl.dsl.diagnostics import Diagnostic, FplError

#: How a word is found under the cursor (FPL names).
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The suffixes of a distribution's function forms, longest first.
FORMS = ("_lupdf", "_lupmf", "_lccdf", "_lpdf", "_lpmf", "_lcdf", "_cdf", "_rng")


@dataclass(frozen=True)
class Problem:
    """One diagnostic in LSP terms: 0-based, end-exclusive positions."""

    line: int
    col: int
    end_line: int
    end_col: int
    severity: str  # "error" or "warning"
    code: str
    message: str


def _problem(d: Diagnostic, name: str) -> Problem:
    message = d.message
    if d.label:
        message += f" ({d.label})"
    if d.help:
        message += f"\nhelp: {d.help}"
    span = d.span
    if span is None or span.line <= 0:
        return Problem(0, 0, 0, 0, d.severity, d.code, message)
    if span.source.name != name:  # inside an imported file
        return Problem(0, 0, 0, 0, d.severity, d.code, f"{span.location}: {message}")
    return Problem(
        span.line - 1, span.col - 1, span.end_line - 1, span.end_col, d.severity, d.code, message
    )


def diagnostics(text: str, path: str | Path) -> list[Problem]:
    """What ``fpl check`` reports for ``text`` (the unsaved contents of ``path``)."""
    from fpl.compiler import check, front_end

    name = str(path)
    try:
        check(front_end(text, name, Path(path)), None)
    except FplError as exc:
        return [_problem(d, name) for d in exc.diagnostics]
    except RecursionError:
        return [Problem(0, 0, 0, 0, "error", "E0107", "program too deeply nested")]
    except Exception as exc:  # a bug in FPL: say so, keep the server alive
        return [
            Problem(0, 0, 0, 0, "error", "internal", f"internal error: {type(exc).__name__}: {exc}")
        ]
    return []


def word_at(line: str, col: int) -> str | None:
    """The FPL name around 0-based column ``col`` of ``line``."""
    for m in WORD.finditer(line):
        if m.start() <= col <= m.end():
            return m.group(0)
    return None


def hover_markdown(word: str) -> str | None:
    """Markdown documentation of a distribution, distribution form, function or solver
    named ``word``, read from the registries; None for other words."""
    from fpl.stdlib import docs
    from fpl.stdlib.registry import registry

    reg = registry()
    if word in reg.distributions:
        return _distribution(reg.distributions[word], None)
    for suffix in FORMS:
        base = word[: -len(suffix)]
        if word.endswith(suffix) and base in reg.distributions:
            if suffix in reg.distributions[base].forms:
                return _distribution(reg.distributions[base], suffix)
    if word in reg.functions:
        e = reg.functions[word]
        title = docs.CATEGORIES.get(e.category, e.category)
        return f"```fpl\n{docs.function_signature(e)}\n```\n*function — {title}*\n\n" + _doc(e.doc)
    if word in reg.solvers:
        s = reg.solvers[word]
        kinds = ", ".join(f"`{k}`" for k in s.kinds)
        return (
            f"```fpl\nwith {word}({docs.solver_options(s)})\n```\n*solver for {kinds}*"
            f"{' (unrollable)' if s.unrollable else ''}\n\n" + _doc(s.doc or "")
        )
    return None


def _distribution(e, suffix: str | None) -> str:
    from fpl.stdlib import docs

    sig = docs.distribution_signature(e)
    if suffix is not None:
        args = ", ".join(e.params)
        if suffix == "_rng":
            sig = f"{e.name}_rng({args})"
        else:
            sig = f"{e.name}{suffix}(y | {args})"
    forms = " ".join(f"`{f}`" for f in e.forms)
    return (
        f"```fpl\n{sig}\n```\n*distribution — support: {docs.support_text(e)}; forms: {forms}*"
        f"\n\n{_doc(e.doc)}"
    )


def _doc(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)


def server():
    """The pygls server (built on demand: pygls is an optional dependency)."""
    from lsprotocol import types
    from pygls import uris
    from pygls.lsp.server import LanguageServer

    from fpl import __version__

    ls = LanguageServer("fpl", __version__)
    severity = {
        "error": types.DiagnosticSeverity.Error,
        "warning": types.DiagnosticSeverity.Warning,
    }

    def publish(uri: str) -> None:
        document = ls.workspace.get_text_document(uri)
        path = uris.to_fs_path(uri) or uri
        items = [
            types.Diagnostic(
                range=types.Range(
                    types.Position(p.line, p.col), types.Position(p.end_line, p.end_col)
                ),
                message=p.message,
                severity=severity.get(p.severity, types.DiagnosticSeverity.Error),
                code=p.code,
                source="fpl",
            )
            for p in diagnostics(document.source, path)
        ]
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=items, version=document.version)
        )

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(params: types.HoverParams) -> types.Hover | None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        lines = document.lines
        line = params.position.line
        if not 0 <= line < len(lines):
            return None
        word = word_at(lines[line], params.position.character)
        text = hover_markdown(word) if word else None
        if text is None:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))

    return ls


def main() -> int:
    server().start_io()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Problem", "diagnostics", "hover_markdown", "word_at", "server", "main"]
