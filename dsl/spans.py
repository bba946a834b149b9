"""Source text and spans: every AST and IR node points back to the text it came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A source text and the name it is reported under (a path or ``<string>``)."""

    text: str
    name: str = "<string>"

    def line(self, number: int) -> str:
        """Line ``number`` (1-based), counting line breaks as the lexer does: ``\\n``
        only (a ``\\r`` before it dropped).  ``str.splitlines`` would also split at
        ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85`` and U+2028/2029, and every error
        after one of them would show the wrong line."""
        lines = self.text.split("\n")
        if 1 <= number <= len(lines):
            return lines[number - 1].removesuffix("\r")
        return ""


@dataclass(frozen=True)
class Span:
    """A 1-based, end-inclusive region of a source: ``line:col`` to ``end_line:end_col``."""

    source: Source
    line: int
    col: int
    end_line: int
    end_col: int

    @property
    def location(self) -> str:
        return f"{self.source.name}:{self.line}:{self.col}"

    def __repr__(self) -> str:  # spans are long; keep AST dumps readable
        return f"Span({self.line}:{self.col}-{self.end_line}:{self.end_col})"

    def to(self, other: Span) -> Span:
        """The span covering ``self`` through ``other``."""
        return Span(self.source, self.line, self.col, other.end_line, other.end_col)


UNKNOWN_SOURCE = Source("", "<internal>")
NO_SPAN = Span(UNKNOWN_SOURCE, 0, 0, 0, 0)
