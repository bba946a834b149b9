"""Stan habits: when a line fails to parse and reads as Stan, say how FPL writes it.

A table of Stan constructs, each a pattern over the source line where the parse
failed, with the message and the FPL form for ``help:`` (code E0108).  The parser
consults it only after a syntax error, so valid FPL is never affected; a line that
matches nothing keeps the plain E0101.  The porting guide (docs/guide/from-stan.md)
covers each construct at length.

The table is tried in order and the first match wins; each pattern is anchored on the
construct's opening words, so a table row cannot fire on an unrelated FPL line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

GUIDE = "docs/guide/from-stan.md"

_STAN_BASES = (
    "int",
    "real",
    "vector",
    "row_vector",
    "matrix",
    "simplex",
    "ordered",
    "positive_ordered",
    "unit_vector",
    "cholesky_factor_corr",
    "cholesky_factor_cov",
    "corr_matrix",
    "cov_matrix",
)
#: Stan's type names -> FPL's (a vector or row vector is a one-dimensional ``real``)
_BASE_TO_FPL = {
    "vector": "real",
    "row_vector": "real",
    "matrix": "real",
    "cholesky_factor_corr": "cholesky_corr",
    "cholesky_factor_cov": "cholesky_cov",
}
#: type names Stan has and FPL does not (after a declaration's colon they can only be Stan)
_STAN_ONLY = (
    "array",
    "vector",
    "row_vector",
    "matrix",
    "cholesky_factor_corr",
    "cholesky_factor_cov",
    "unit_vector",
)
#: a Stan type after a declaration's colon (``data L: cholesky_factor_corr[K]``)
_STAN_ONLY_TYPE = (
    rf"(?=(?:{'|'.join(_STAN_ONLY)})\b)"
    r"(?P<type>(?:array\s*\[[^\]]*\]\s*)*\w+\s*(?:<[^>]*>)?\s*(?:\[[^\]]*\])?)"
)
_BASE = "|".join(sorted(_STAN_BASES, key=len, reverse=True))
_STAN_TYPE = (
    rf"(?:array\s*\[[^\]]*\]\s*)*(?:{_BASE})\b\s*(?:<[^>]*>)?\s*(?:\[[^\]]*\])?(?:\s*\[[^\]]*\])?"
)


def fpl_type(stan: str) -> str | None:
    """FPL's spelling of a Stan type: ``vector<lower=0>[N]`` -> ``real<lower=0>[N]``,
    ``matrix[N, K]`` -> ``real[N, K]``, ``array[J] vector[K]`` -> ``real[J, K]``,
    ``array[N] int`` -> ``int[N]``.  None where FPL has no such type."""
    sizes: list[str] = []
    text = stan.strip()
    while m := re.match(r"array\s*\[([^\]]*)\]\s*", text):
        sizes.append(m.group(1).strip())
        text = text[m.end() :]
    m = re.fullmatch(rf"({_BASE})\s*(<[^>]*>)?\s*(?:\[([^\]]*)\])?", text)
    if m is None:
        return None
    base, bounds, inner = m.group(1), m.group(2) or "", m.group(3)
    if base == "unit_vector":
        return None
    dims = [*sizes, *([inner.strip()] if inner else [])]
    shape = f"[{', '.join(dims)}]" if dims else ""
    if base in ("simplex", "ordered", "positive_ordered") or "cholesky" in base:
        return f"{_BASE_TO_FPL.get(base, base)}{shape}"
    return f"{_BASE_TO_FPL.get(base, base)}{bounds.replace(' ', '')}{shape}"


@dataclass(frozen=True)
class Habit:
    """One Stan construct: ``pattern`` matched against the failing line; ``explain``
    gives (message, help) from the match."""

    name: str
    pattern: re.Pattern[str]
    explain: Callable[[re.Match[str]], tuple[str, str]]


def _loop(m: re.Match[str]) -> tuple[str, str]:
    return (
        f"FPL has no `{m.group(1)}` loops",
        "FPL has no loops: use vector arithmetic (`y ~ normal(X @ beta, sigma)` covers "
        "every `n`), `map(f, xs)` for independent elements, `scan(f, init, xs)` or "
        f"`fold(f, init, xs)` for a recursion; see {GUIDE}",
    )


def _if(m: re.Match[str]) -> tuple[str, str]:
    return (
        "FPL has no `if` statements",
        "choose between values with the conditional expression `test ? a : b` "
        f"(elementwise on arrays); see {GUIDE}",
    )


def _block(m: re.Match[str]) -> tuple[str, str]:
    return (
        f"FPL has no `{m.group(1)}` block",
        "write each declaration as one statement, in any order before its use: "
        "`data N: int`, `param mu: real ~ normal(0, 1)`, `let`/`out` for transformed "
        f"values, `y ~ ...` and `target += ...` for the model, `gen` for generated "
        f"quantities; see {GUIDE}",
    )


def _suggestion(stan_type: str, name: str, keyword: str | None) -> str:
    """``keyword`` is None for a function's parameter (``fn f(x: real[N])``)."""
    declared = f"{keyword} {name}" if keyword else name
    fpl = fpl_type(stan_type)
    if fpl is None:
        return f"FPL declares `{declared}: <type>`; see {GUIDE} for its types"
    return f"write `{declared}: {fpl}`"


def _stan_declaration(m: re.Match[str]) -> tuple[str, str]:
    stan_type, name = " ".join(m.group("type").split()), m.group("name")
    return (
        f"a Stan declaration `{stan_type} {name}`",
        "FPL puts the name first and the type after a colon, with `data` or `param`: "
        f"{_suggestion(stan_type, name, 'data')} (or `param`); `vector[N]` is "
        "`real[N]`, `matrix[N, K]` is `real[N, K]`, `array[N] real` is `real[N]`",
    )


def _stan_type(m: re.Match[str]) -> tuple[str, str]:
    stan_type = " ".join(m.group("type").split())
    return (
        f"`{stan_type}` is Stan's type, not FPL's",
        f"{_suggestion(stan_type, m.group('name'), m.groupdict().get('keyword'))}: a vector or row "
        "vector is `real[N]`, a matrix `real[N, K]`, an array adds its sizes in front "
        "(`array[J] vector[K]` is `real[J, K]`)",
    )


def _array_of_structures(m: re.Match[str]) -> tuple[str, str]:
    base, inner, outer = m.group(1), m.group(2).strip(), m.group(3).strip()
    return (
        f"an array of `{base}` is written with one pair of brackets",
        f"write `{base}[{outer}, {inner}]`: the sizes before the last are the array's, "
        f"as in `real[{outer}, {inner}]` ({outer} rows of {inner})",
    )


def _leading_operator(m: re.Match[str]) -> tuple[str, str]:
    op = m.group(1)
    return (
        f"a statement cannot start with `{op}`",
        f"to continue the previous line, end that line with the operator (`... {op}`) "
        "or wrap the expression in parentheses",
    )


def _increment(m: re.Match[str]) -> tuple[str, str]:
    return (
        f"FPL has no `{m.group(1)}`",
        "FPL adds to the log density only with `target += expr`; values are not "
        "reassigned: name a new value with `let`",
    )


def _print(m: re.Match[str]) -> tuple[str, str]:
    return (
        f"FPL has no `{m.group(1)}` statement",
        "inspect values with `out name = expr` (saved with every draw) or `fpl compile --emit ir`",
    )


HABITS: tuple[Habit, ...] = (
    Habit("loop", re.compile(r"^\s*(for|while)\s*\("), _loop),
    Habit("if", re.compile(r"^\s*(if)\s*\("), _if),
    Habit(
        "block",
        re.compile(
            r"^\s*((?:transformed\s+)?data|(?:transformed\s+)?parameters|model|functions"
            r"|generated\s+quantities)\s*\{"
        ),
        _block,
    ),
    Habit(
        "stan declaration",
        re.compile(rf"^\s*(?P<type>{_STAN_TYPE})\s+(?P<name>[A-Za-z_]\w*)\s*(?:=|;|$)"),
        _stan_declaration,
    ),
    Habit(
        "stan type",
        re.compile(
            r"^\s*(?P<keyword>data|param|weight|gen|fix|root|argmin)\s+(?P<name>[A-Za-z_]\w*)"
            rf"\s*:\s*{_STAN_ONLY_TYPE}"
        ),
        _stan_type,
    ),
    Habit(
        "stan type of a function parameter",
        re.compile(
            rf"^\s*fn\s+\w+\s*\((?:[^)]*,)?\s*(?P<name>[A-Za-z_]\w*)\s*:\s*{_STAN_ONLY_TYPE}"
        ),
        _stan_type,
    ),
    Habit(
        "array of structures",
        re.compile(
            r":\s*(simplex|ordered|positive_ordered|cholesky_corr|corr_matrix|cov_matrix"
            r"|cholesky_cov)\s*\[([^\]]*)\]\s*\[([^\]]*)\]"
        ),
        _array_of_structures,
    ),
    Habit(
        "leading operator",
        re.compile(r"^\s*(\*|/|\+|-|@|\^|%|&&|\|\||==|!=)(?!=)"),
        _leading_operator,
    ),
    Habit(
        "increment",
        re.compile(r"^\s*(?!target\b)[A-Za-z_]\w*(?:\[[^\]]*\])?\s*(\+=|-=|\*=|/=)"),
        _increment,
    ),
    Habit("print", re.compile(r"^\s*(print)\s*\("), _print),
)


def explain(line: str) -> tuple[str, str] | None:
    """(message, help) for a line that reads as Stan, or None."""
    for habit in HABITS:
        m = habit.pattern.search(line)
        if m is not None:
            return habit.explain(m)
    return None
