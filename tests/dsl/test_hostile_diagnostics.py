"""Diagnostics under hostile input (issue 11): the echoed line is the line the lexer
counted, nothing unprintable reaches the terminal, and a huge line is shown as a window
around the span."""

from __future__ import annotations

import pytest

import fpl
from fpl.dsl.diagnostics import LONG_LINE, Diagnostic, FplError, printable
from fpl.dsl.spans import Source, Span


def _error(src: str) -> FplError:
    with pytest.raises(FplError) as exc:
        fpl.compile(src, "m.fpl")
    return exc.value


# \v, \f, the file/group/record separators, NEL and U+2028/2029 are line breaks to
# str.splitlines but not to the lexer, which counts "\n" only
@pytest.mark.parametrize("brk", ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_the_echoed_line_is_the_lexers_line(brk):
    err = _error(f"data N: int\n# a comment {brk} with a break\nparam mu ~ nromal(0, 1)\n")
    text = err.render()
    assert err.code == "E0103" and "m.fpl:3:12" in text
    assert "3 | param mu ~ nromal(0, 1)" in text


def test_windows_line_ends_are_not_echoed():
    text = _error("data N: int\r\nparam mu ~ nromal(0, 1)\r\n").render()
    assert "2 | param mu ~ nromal(0, 1)\n" in text and "\r" not in text


def test_control_characters_are_escaped_everywhere():
    span = Span(Source("let y = 1\x1b[2J\n", "a\x1bb.fpl"), 1, 10, 1, 13)
    forged = "`\x1b[2J\nerror[E9999]: forged`"
    d = Diagnostic("E0101", forged, span, label="here\x07", help="try\x1b[31m")
    text = d.render()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J\\nerror[E9999]" in text  # one line, visibly escaped
    assert [line for line in text.splitlines() if line.startswith("error")] == [
        text.splitlines()[0]
    ]
    # the caret still sits under the span, whose text was widened by escaping
    source_line, caret_line = text.splitlines()[3:5]
    start = caret_line.index("^") - caret_line.index("|")
    assert source_line[source_line.index("|") + start :].startswith("\\x1b[2J")


def test_printable_leaves_ordinary_text_alone():
    assert printable("μ ~ normal(0, σ) # é") == "μ ~ normal(0, σ) # é"
    assert printable("\u202e") == "\\u202e"  # a bidirectional override, escaped


def test_a_huge_line_is_elided_around_the_span():
    items = "1.0, " * 3000  # a 30 KB line
    src = f"param mu ~ normal(0, 1)\nlet y = sum([{items}nromal(1.0), {items}1.0])\n"
    err = _error(src)
    text = err.render()
    assert err.code == "E0104" and len(text) < 4 * LONG_LINE + 400  # not the 100 KB line
    source_line, caret_line = text.splitlines()[3:5]
    assert source_line.startswith("2 | ...") and source_line.endswith("...")
    bar = caret_line.index("|")
    start = caret_line.index("^") - bar
    assert source_line[bar + start :].startswith("nromal")
