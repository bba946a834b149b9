"""Coded, located diagnostics rendered in rustc's frame (see STYLE.md).

Every user-facing failure is an :class:`FplError` carrying one or more
:class:`Diagnostic`; the CLI renders them as text or JSON and never shows a
Python traceback.  Internal failures are :class:`InternalError` and say so.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from fpl.dsl.spans import Span

# The code table: one row per kind of failure.  Codes are stable; tests pin them.
CODES: dict[str, str] = {
    # E01xx: syntax and names
    "E0101": "syntax error",
    "E0102": "unknown name",
    "E0103": "unknown distribution",
    "E0104": "unknown function",
    "E0105": "name declared twice",
    "E0106": "bad import",
    "E0107": "program too deeply nested",
    "E0108": "Stan syntax that FPL writes differently",
    "E0109": "number out of range",
    # E02xx: types and shapes
    "E0201": "type mismatch",
    "E0202": "shape mismatch",
    "E0203": "wrong number of arguments",
    "E0204": "bad constraint",
    "E0205": "not assignable",
    "E0206": "bad solver option",
    "E0207": "invalid statement here",
    "E0208": "integer division by zero",
    # E03xx: data
    "E0301": "missing data field",
    "E0302": "data of the wrong rank or length",
    "E0303": "data of the wrong type",
    "E0304": "data violates its declared constraint",
    "E0305": "bad data file",
    "E0306": "NaN or infinity in data",
    "E0307": "index data out of range",
    # E04xx: runtime and numerics
    "E0401": "solver did not converge",
    "E0402": "no valid initial point",
    "E0403": "bad argument",
    "E0404": "bad fit file",
    "E0405": "bad parameter values",
    "E0407": "Laplace approximation failed",
    "E0409": "variational inference failed",
    "E0406": "implicit solve did not converge during optimization",
    "E0410": "optimization diverged (non-finite loss or gradient)",
    "E0411": "implicit gradient (backward) solve failed during optimization",
    "E0408": "bad or mismatched checkpoint",
    "E0412": "sampler chain stuck: its step size collapsed during warmup",
    # a `reject("message", values...)` reached: at bind time in data-only code; where a run
    # ends on a rejected point (an optimization, a given `init`); NUTS just rejects it
    "E0413": "`reject` reached",
    # W04xx: warnings about numerics (printed, never fatal unless asked)
    "W0401": "ill-posed implicit node",
    "W0402": "implicit solve did not converge at the diagnosed point",
    "W0403": "Laplace approximation unreliable (Pareto k̂ > 0.7)",
    "W0404": "variational inference did not converge",
    "W0405": "variational approximation unreliable (Pareto k̂ > 0.7)",
    "W0406": "draws ran away: the posterior is probably improper",
    # E05xx: files and I/O
    "E0501": "cannot read file",
    "E0502": "cannot write file",
    "E0503": "an optional package is not installed",
}


@dataclass(frozen=True)
class Note:
    """A secondary label: another span with its own message."""

    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    label: str = ""
    help: str | None = None
    notes: tuple[Note, ...] = field(default_factory=tuple)
    severity: str = "error"

    def render(self) -> str:
        """The rustc-style text.  Every echoed string (message, source line, label,
        path, help) has its control characters escaped (:func:`printable`), so no input
        can move the cursor, clear the screen or forge a line; a source line longer
        than ``LONG_LINE`` is shown as a window around the span."""
        head = f"{self.severity}[{self.code}]: {printable(self.message)}"
        if self.span is None or self.span.line <= 0:
            out = [head]
        else:
            out = [head] + _frame(self.span, printable(self.label))
            for note in self.notes:
                out.append(
                    f"   = note: {printable(note.message)} at {printable(note.span.location)}"
                )
        if self.help:
            out.append(f"   = help: {printable(self.help)}")
        return "\n".join(out)

    def to_json(self) -> dict:
        loc = None
        if self.span is not None and self.span.line > 0:
            s = self.span
            loc = {
                "file": s.source.name,
                "line": s.line,
                "col": s.col,
                "end_line": s.end_line,
                "end_col": s.end_col,
            }
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "location": loc,
            "label": self.label,
            "help": self.help,
        }


#: source lines longer than this (in characters, once escaped) are elided around the span
LONG_LINE = 200

#: characters kept before the span in an elided line
_LEAD = 60


def printable(text: str) -> str:
    """``text`` with every character that is not printable (control characters, line
    and paragraph separators, bidirectional overrides) escaped as Python writes it
    (``\\x1b``, ``\\u2028``), safe to echo to a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _shown_line(text: str, col: int, n: int) -> tuple[str, int, int]:
    """The source line as echoed (tabs as one space, other unprintable characters
    escaped, a long line cut to a window around the span marked with ``...``) and the
    0-based column and width of the span in it."""
    pieces = [" " if c == "\t" else printable(c) for c in text]
    start = sum(len(p) for p in pieces[: col - 1])
    width = max(1, sum(len(p) for p in pieces[col - 1 : col - 1 + n]))
    shown = "".join(pieces)
    if len(shown) <= LONG_LINE:
        return shown, start, width
    left = max(0, start - _LEAD)
    right = min(len(shown), left + LONG_LINE)
    window = shown[left:right]
    prefix = "..." if left > 0 else ""
    suffix = "..." if right < len(shown) else ""
    width = max(1, min(width, right - start))
    return prefix + window + suffix, start - left + len(prefix), width


def _frame(span: Span, label: str) -> list[str]:
    width = len(str(span.line))
    pad = " " * width
    text = span.source.line(span.line)
    if span.end_line == span.line:
        n = max(1, span.end_col - span.col + 1)
    else:
        n = max(1, len(text) - span.col + 1)
    shown, start, n = _shown_line(text, span.col, n)
    caret = " " * start + "^" * n + (f" {label}" if label else "")
    return [
        f"{pad}--> {printable(span.location)}",
        f"{pad} |",
        f"{span.line} | {shown}",
        f"{pad} | {caret}",
    ]


class FplError(Exception):
    """A user-facing failure: one or more located, coded diagnostics."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(self.render())

    @property
    def code(self) -> str:
        return self.diagnostics[0].code

    def render(self) -> str:
        return "\n\n".join(d.render() for d in self.diagnostics)

    def to_json(self) -> str:
        return json.dumps([d.to_json() for d in self.diagnostics], indent=2)


class InternalError(Exception):
    """A bug in FPL itself, never the user's fault; rendered as such."""


def error(
    code: str,
    message: str,
    span: Span | None = None,
    *,
    label: str = "",
    help: str | None = None,
) -> FplError:
    """Build (not raise) an :class:`FplError` with one diagnostic."""
    if code not in CODES:
        raise InternalError(f"undeclared diagnostic code {code}")
    return FplError(Diagnostic(code, message, span, label, help))


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A ``help:`` line suggesting the closest known names, if any is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
