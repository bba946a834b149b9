"""The fast route's lexer (``dsl/fastparse.py``) and the words both parsers share.

:class:`Tokens` reads a text with one regular expression into the token stream lark's
lexer and ``parser.NewlineFilter`` make of it: the terminals of ``dsl/grammar.lark``
(longest operator first), newlines dropped inside ``(...)``/``[...]`` and after a token
of :data:`CONTINUING`, comments, blanks and ``\\``-newlines skipped.  Two differences,
both handled by the parser giving up: lark's contextual lexer reads a word as a keyword
only where the keyword may come next, and splits a word where no name may come
(``offset`` after a type reads ``of fset``), while here a word is one token, a keyword
or ``NAME``; and a statement longer than :data:`MAX_OPERATORS`, or brackets nested
deeper than :data:`NESTING`, are not read at all (:class:`GiveUpError`).
"""

from __future__ import annotations

import re

#: Expressions nested deeper than this are rejected with E0107; every later pass
#: recurses over the tree, and this bound keeps them far from Python's stack limit:
#: the deepest walker (hoisting, then the lowering under the sampler's traces) takes
#: three Python frames a level and starts about 200 frames deep, so 250 levels stay
#: under the default limit of 1,000 (at 400, 350 nested unary ``-`` overflowed it).
MAX_DEPTH = 250

#: Integer literals above int64's maximum are refused (E0109): they would wrap or fail
#: in the int64 arrays the model computes with.
MAX_INT = 2**63 - 1

#: A line ending in one of these continues on the next (``target += a -`` / ``b``): none
#: can end a statement.  (``<`` and ``>`` are left out: ``>`` closes ``real<lower=0>``.)
CONTINUING = frozenset("+ - * / % @ ^ .* ./ == != <= >= && || = ~ += , | ? : ->".split())

#: Words that open a statement are soft keywords: data files use names like `weight`
#: (posteriordb's mesquite), so they may be declared and used inside expressions.
SOFT = frozenset(("data", "param", "weight", "let", "out", "target", "loss", "gen"))
#: the structured types' names, in the grammar's order (``STRUCT_TYPE`` in grammar.lark)
STRUCT_TYPE_NAMES = (
    "simplex",
    "ordered",
    "positive_ordered",
    "cholesky_corr",
    "corr_matrix",
    "cov_matrix",
    "cholesky_cov",
    "contractive",
    "monotone",
)
STRUCT_TYPES = frozenset(STRUCT_TYPE_NAMES)
KEYWORDS = SOFT | STRUCT_TYPES | {"fn", "return", "import", "fix", "root", "argmin"}
KEYWORDS |= {"of", "init", "with", "int", "real"}
RESERVED = KEYWORDS - SOFT

#: Recursive entries (expressions, prefix operators, powers) nested deeper than this
#: are left to lark (a few Python frames each: far below the recursion limit).
NESTING = 60

#: A statement with more operators and brackets than this is left to lark, whose lexer
#: refuses an over-long chain (``1 + 1 + ...``, 170k terms) at its 251st operator: the
#: fast route must not lex all of it first.
MAX_OPERATORS = 20_000

#: One token and the blanks before it.  The groups, by number: a word, a real number (before
#: integers: ``1.5``; before operators: ``.5``), an integer, an operator (longest first), a
#: newline run, a string, a comment, a ``\\``-newline, anything else (lark's error).
_TOKEN = re.compile(
    r"""[\t \f]*(?:
        ([A-Za-z_][A-Za-z0-9_]*)
      | ((?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)
      | ([0-9]+)
      | (\.\*|\./|==|!=|<=|>=|&&|\|\||\+=|->|[-+*/%@^<>=~!?:,.;'|()\[\]{}])
      | ((?:\r?\n[\t ]*)+)
      | ("[^"\n]*")
      | (\#[^\n]*)
      | (\\[\t \f]*\r?\n)
      | ([\s\S]))""",
    re.VERBOSE,
)
_WORD, _FLOAT, _INT, _OP, _NL, _STRING, _COMMENT, _JOIN = range(1, 9)
_OPEN = frozenset("([")
_CLOSE = frozenset(")]")


class GiveUpError(Exception):
    """This parser does not accept the input: the lark route parses it."""


class Tokens:
    """The token stream as parallel lists: ``kinds`` (``NAME``, ``INT``, ``FLOAT``,
    ``STRING``, ``NL``, ``EOF``, a keyword itself, an operator itself), ``texts``,
    ``lines`` and ``columns`` (1-based, counted as lark counts: ``\\n`` only); two
    ``EOF`` tokens end it, so one token of lookahead never runs off the end."""

    __slots__ = ("kinds", "texts", "lines", "columns")

    def __init__(self, text: str):
        kinds: list[str] = []
        texts: list[str] = []
        lines: list[int] = []
        columns: list[int] = []
        add_kind, add_text, add_line, add_column = (
            kinds.append,
            texts.append,
            lines.append,
            columns.append,
        )
        # line_start: the offset of the line's first character, less one (columns are 1-based)
        line, line_start, depth, previous, operators = 1, -1, 0, "", 0
        keyword = {word: word for word in KEYWORDS}.get
        for match in _TOKEN.finditer(text):
            group = match.lastindex
            value = match.group(group)  # type: ignore[arg-type]  # a group always matched
            if group == _WORD:
                kind = keyword(value, "NAME")
            elif group == _OP:
                kind = value
                operators += 1
                if operators > MAX_OPERATORS:
                    raise GiveUpError
                if value == ";":
                    operators = 0
                elif value in _OPEN:
                    depth += 1
                    if depth > NESTING:
                        raise GiveUpError
                elif value in _CLOSE:
                    depth = depth - 1 if depth else 0
            elif group == _FLOAT:
                kind = "FLOAT"
            elif group == _INT:
                kind = "INT"
            elif group == _NL:
                start = match.start(group)
                if not depth and previous not in CONTINUING:
                    add_kind("NL")
                    add_text(value)
                    add_line(line)
                    add_column(start - line_start)
                    previous = value
                    operators = 0
                line += value.count("\n")
                line_start = start + value.rindex("\n")
                continue
            elif group == _STRING:
                kind = "STRING"
            elif group == _COMMENT:
                continue
            elif group == _JOIN:
                line += 1
                line_start = match.end() - 1
                continue
            else:
                raise GiveUpError
            add_kind(kind)
            add_text(value)
            add_line(line)
            add_column(match.start(group) - line_start)
            previous = value
        kinds += ("EOF", "EOF")
        texts += ("", "")
        lines += (line, line)
        columns += (1, 1)
        self.kinds, self.texts, self.lines, self.columns = kinds, texts, lines, columns
