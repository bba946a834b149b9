"""A Pygments lexer for FPL (``.fpl``), used by the documentation site.

Registered as a Pygments plugin (``[project.entry-points."pygments.lexers"]`` in
pyproject), so ``pygmentize -l fpl``, Markdown's code highlighting and MkDocs find it by
the alias ``fpl``.  Pygments is imported only here; nothing else in FPL needs it.

What it recognises is read from the grammar, not from the registries (``dsl`` comes
before ``stdlib``): the keywords and type names of ``grammar.lark`` (a test checks that
:data:`KEYWORDS` and :data:`TYPES` are exactly the words the grammar spells out), and,
by position, the names that play a known role:

- the name after ``~`` (a distribution) and any ``name_lpdf(``-style form,
- the name after ``with`` (a solver) and after ``grad=`` (a backward mode),
- the name after ``fn`` (a function being defined) and after ``data``, ``param``, ...
  (a name being declared),
- the higher-order built-ins and the derivative operators (:data:`BUILTINS`).

The statement words ``data``, ``param``, ... are soft keywords (``data weight: real[N]``
is legal), so they are keywords only where they open a declaration.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from fpl.dsl.lexer import STRUCT_TYPE_NAMES

#: Words that open a declaration of a name (soft keywords: names elsewhere).
DECLARATIONS = ("data", "param", "weight", "let", "out", "gen")
#: The other words the grammar spells out (``target`` and ``loss`` open statements).
KEYWORDS = (
    *DECLARATIONS,
    "target",
    "loss",
    "fn",
    "return",
    "import",
    "fix",
    "root",
    "argmin",
    "of",
    "init",
    "with",
)
#: The grammar's base and structured type names.
TYPES = ("int", "real", *STRUCT_TYPE_NAMES)
#: Built-ins the checker treats specially (higher-order functions and derivatives).
BUILTINS = ("map", "scan", "fold", "grad", "jacobian", "hessian", "jvp", "vjp")
#: Values of implicit-node options (``warm=true``, ``grad=phantom(k=5)``).
CONSTANTS = ("true", "false")
#: The suffixes of a distribution's function forms (``normal_lpdf``, ``poisson_rng``).
FORMS = ("lpdf", "lupdf", "lpmf", "lupmf", "cdf", "lcdf", "lccdf", "rng")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FLOAT = r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+"


class FplLexer(RegexLexer):
    """Tokens for FPL model files (see the module docstring for the roles)."""

    name = "FPL"
    aliases = ["fpl"]
    filenames = ["*.fpl"]
    mimetypes = ["text/x-fpl"]

    tokens = {
        "root": [
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (r"\\[\t \f]*\r?\n", Text),
            (r"\s+", Whitespace),
            # declarations: the keyword, then the declared name
            (
                rf"\b({'|'.join(DECLARATIONS)})(\s+)({_NAME})(?=\s*[:=~])",
                bygroups(Keyword.Declaration, Whitespace, Name.Variable),
            ),
            (rf"\b(fn)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (r"\b(target)(\s*)(\+=)", bygroups(Keyword, Whitespace, Operator)),
            (r"\bloss\b(?=\s)", Keyword),
            # roles by position
            (rf"(~)(\s*)({_NAME})(?=\s*\()", bygroups(Operator, Whitespace, Name.Builtin)),
            (rf"\b(with)(\s+)({_NAME})", bygroups(Keyword, Whitespace, Name.Builtin.Pseudo)),
            (
                rf"\b(grad)(\s*)(=)(\s*)({_NAME})",
                bygroups(Name, Whitespace, Operator, Whitespace, Name.Builtin.Pseudo),
            ),
            (rf"{_NAME}_({'|'.join(FORMS)})\b(?=\s*\()", Name.Builtin),
            (words(BUILTINS, suffix=r"\b(?=\s*\()"), Name.Builtin),
            (words(CONSTANTS, prefix=r"\b", suffix=r"\b"), Keyword.Constant),
            (words(TYPES, prefix=r"\b", suffix=r"\b"), Keyword.Type),
            (words(KEYWORDS[len(DECLARATIONS) :], prefix=r"\b", suffix=r"\b"), Keyword),
            (_NAME, Name),
            (_FLOAT, Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"\+=|->|==|!=|<=|>=|&&|\|\||\.\*|\./|[-+*/%@^~=<>!|?:']", Operator),
            (r"[()\[\]{},;.]", Punctuation),
        ]
    }


__all__ = ["FplLexer", "KEYWORDS", "TYPES", "BUILTINS", "CONSTANTS", "FORMS"]
