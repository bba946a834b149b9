"""Token-level mutants of FPL programs, and one in-process ``fpl check`` (or ``fpl
compile --emit jaxpr --data``) per mutant.

A program is split into tokens (names, numbers, strings, operators, brackets, blanks and
newlines, comments) and mutated a few times over: a token deleted, duplicated or swapped
with its neighbour; a number replaced by an extreme one (``1e999``, 30 nines, ``-0``); a
name replaced by a keyword or a builtin; a bracket inserted; a statement of another
program spliced in; a byte flipped (which may make the file invalid UTF-8).

:func:`run_case` writes the mutant to a file, runs ``fpl check`` on it in this process
(``fpl.runtime.cli.main``) under a wall-clock limit, and returns a :class:`Outcome`.  A
share of the mutants of examples that have a data file (``examples/<name>.json``) is
instead compiled against that data and its log density traced (``fpl compile --emit
jaxpr --data``), so that crashes past the checker (binding, lowering, the transforms)
are found too;
:func:`problems` lists what is wrong with an outcome: an exit code outside {0, 1, 2} (3 is
an internal error), a diagnostic without ``file:line:col``, an echoed source line that
is not the file's line (or a control character echoed), a hang.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from fpl.dsl.parser import _KEYWORDS as _PARSER_KEYWORDS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

_TOKEN = re.compile(
    r"""(?P<comment>\#[^\n]*)
      | (?P<string>"[^"\n]*")
      | (?P<number>(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<newline>\n)
      | (?P<blank>[ \t]+)
      | (?P<op>\.\*|\./|==|!=|<=|>=|&&|\|\||\+=|->|[-+*/%@^<>=~!?:,.;'|()\[\]{}])
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)

EXTREME_NUMBERS = (
    "0",
    "1",
    "-1",
    "0.0",
    "-0.0",
    "1e999",
    "-1e999",
    "1e-400",
    "9" * 30,
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "4294967296",
    "1e308",
    "3.5",
    "1000000000",
)
# the parser's own keyword set (a new keyword is fuzzed without touching this file)
KEYWORDS = tuple(sorted(_PARSER_KEYWORDS))
BRACKETS = ("(", ")", "[", "]", "{", "}", "<", ">")


def tokens(text: str) -> list[str]:
    """``text`` as a list of tokens whose concatenation is ``text``."""
    return [m.group() for m in _TOKEN.finditer(text)]


def _kind(token: str) -> str:
    m = _TOKEN.fullmatch(token)
    return m.lastgroup or "other" if m else "other"


def mutate(text: str, rng: random.Random, corpus: list[str]) -> bytes:
    """One mutant of ``text``: one to four mutations, then UTF-8 bytes (a byte flip acts
    on those)."""
    toks = tokens(text)
    flip = False
    for _ in range(rng.randint(1, 4)):
        if not toks:
            toks = [""]
        i = rng.randrange(len(toks))
        choice = rng.randrange(9)
        if choice == 0:
            del toks[i]
        elif choice == 1:
            toks.insert(i, toks[i])
        elif choice == 2 and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif choice == 3:
            numbers = [k for k, t in enumerate(toks) if _kind(t) == "number"]
            k = rng.choice(numbers) if numbers else i
            toks[k] = rng.choice(EXTREME_NUMBERS)
        elif choice == 4:
            names = [k for k, t in enumerate(toks) if _kind(t) == "name"]
            k = rng.choice(names) if names else i
            toks[k] = rng.choice(KEYWORDS)
        elif choice == 5:
            toks.insert(i, rng.choice(BRACKETS))
        elif choice == 6:
            other = rng.choice(corpus).splitlines(keepends=True)
            toks.insert(i, "\n" + rng.choice(other) if other else "")
        elif choice == 7:
            toks.insert(i, rng.choice(("(" * 50, "-" * 50, "[" * 30, "f(" * 20, " + x" * 40)))
        else:
            flip = True
    data = "".join(toks).encode("utf-8")
    if flip and data:
        data = bytearray(data)
        k = rng.randrange(len(data))
        data[k] ^= 1 << rng.randrange(8)
        data = bytes(data)
    return data


def corpus() -> dict[str, str]:
    """The shipped example programs, by file name."""
    return {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.fpl"))}


@dataclass(frozen=True)
class Outcome:
    path: str
    code: int | None  # None: the time limit was reached (a hang)
    stdout: str
    stderr: str
    source: str | None = None  # the file's text, to compare the echoed lines with


class _TimeLimit(BaseException):  # not an Exception: the CLI's handlers do not catch it
    pass


def _on_alarm(signum, frame):
    raise _TimeLimit


def run_case(data: bytes, path: Path, time_limit: float, data_file: Path | None = None) -> Outcome:
    """``fpl check path`` in this process, ``path`` holding ``data``, stopped after
    ``time_limit`` seconds (``SIGALRM``: Unix, main thread); with ``data_file``, ``fpl
    compile path --emit jaxpr --data data_file`` instead."""
    from fpl.runtime.cli import main

    path.write_bytes(data)
    argv = ["check", str(path)]
    if data_file is not None:
        argv = ["compile", str(path), "--emit", "jaxpr", "--data", str(data_file)]
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    code: int | None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except _TimeLimit:
        code = None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    text = data.decode("utf-8", errors="replace")
    return Outcome(str(path), code, out.getvalue(), err.getvalue(), text)


_LOCATED = re.compile(r"^\s*--> (.+):(\d+):(\d+)$", re.MULTILINE)


def problems(outcome: Outcome) -> list[str]:
    """What is wrong with ``outcome`` (empty when it is fine)."""
    if outcome.code is None:
        return ["hang: no answer within the time limit"]
    found = []
    if outcome.code not in (0, 1, 2):
        found.append(f"exit {outcome.code}: {outcome.stderr.strip()[:300]}")
    heads = outcome.stderr.count("error[")
    located = [m for m in _LOCATED.finditer(outcome.stderr) if m.group(1) == outcome.path]
    if outcome.code == 1 and len(located) < max(1, heads):
        found.append(f"an error without file:line:col: {outcome.stderr.strip()[:300]}")
    if outcome.source is not None:
        found += _misquoted(outcome, located)
    return found


def _escaped(line: str) -> str:
    """A source line as a diagnostic may echo it: tabs as spaces, every unprintable
    character escaped (written independently of ``fpl.dsl.diagnostics``)."""
    return "".join(" " if c == "\t" else c if c.isprintable() else repr(c)[1:-1] for c in line)


def _misquoted(outcome: Outcome, located: list[re.Match]) -> list[str]:
    """The located errors whose echoed source line is not the file's line (the lexer's
    count: ``\\n`` only), or which echo a control character."""
    lines = (outcome.source or "").split("\n")
    found = []
    for m in located:
        number = int(m.group(2))
        after = outcome.stderr[m.end() :].split("\n")[1:4]
        echo = next((e for e in after if e.startswith(f"{number} | ")), None)
        if echo is None:
            continue
        shown = echo[len(f"{number} | ") :]
        want = _escaped(lines[number - 1].removesuffix("\r")) if number <= len(lines) else ""
        core = shown.removeprefix("...").removesuffix("...")
        if shown != want and not (shown != core and core in want):
            found.append(f"line {number} echoed as {shown[:80]!r}, not {want[:80]!r}")
    if any(c != "\n" and not c.isprintable() for c in outcome.stderr):
        found.append("an unprintable character reached the terminal")
    return found


#: the share of mutants (of examples with a data file) compiled rather than checked
COMPILE_SHARE = 0.25
#: a compile traces the whole log density (up to ~3 s for the largest example on a
#: loaded 2-core machine, against ~0.03 s for a check): its time limit is this multiple
COMPILE_TIME_FACTOR = 3.0


def fuzz(
    cases: int,
    seed: int,
    folder: Path,
    time_limit: float = 10.0,
    budget: float | None = None,
    compile_share: float = COMPILE_SHARE,
):
    """Run up to ``cases`` mutants (fewer where ``budget`` seconds run out first), a
    ``compile_share`` of those whose example has a data file compiled against it, the
    rest checked; return ``(count, compiled, failures)``: mutants run, how many of them
    were compiled, and each failure as ``(case number, mutant bytes, problems)``."""
    import time

    programs = corpus()
    texts = list(programs.values())
    names = list(programs)
    rng = random.Random(seed)
    start = time.monotonic()
    failures = []
    count = compiled = 0
    for n in range(cases):
        if budget is not None and time.monotonic() - start > budget:
            break
        base = rng.randrange(len(texts))
        data = mutate(texts[base], rng, texts)
        data_file = (EXAMPLES / names[base]).with_suffix(".json")
        path = folder / f"case{n % 100}_{names[base]}"
        if rng.random() < compile_share and data_file.exists():
            outcome = run_case(data, path, time_limit * COMPILE_TIME_FACTOR, data_file)
            compiled += 1
        else:
            outcome = run_case(data, path, time_limit)
        count += 1
        bad = problems(outcome)
        if bad:
            failures.append((n, data, bad))
    return count, compiled, failures


__all__ = ["Outcome", "corpus", "fuzz", "mutate", "problems", "run_case", "tokens"]
