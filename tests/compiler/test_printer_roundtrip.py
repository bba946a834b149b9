"""The printed declarations (``fpl compile --emit ir``) lose nothing of a declared type:
each ``data``/``param``/``weight`` line, written back as FPL (the printed type, its
bounds or its kind with the kind's option), compiles to the same declaration — name,
type, constraint (kind, bounds, option) and a weight's ``init`` — on every example and
on declarations of every constraint kind (issue 13/12: a weight's ``contractive``,
``monotone`` or bounds were dropped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fpl
from fpl.compiler import ir
from fpl.compiler.passes.types import STRUCTURED
from fpl.compiler.printer import format_program

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(ROOT.glob("examples/*.fpl"))

# `data x: real[N]<lower=0>`, `weight W: real[H, H] as contractive<bound=0.5> init ...`
DECLARATION = re.compile(
    r"^  (?P<keyword>data|param|weight)\s+(?P<name>\w+): (?P<base>int|real)"
    r"(?:\[(?P<shape>[^\]]*)\])?(?:<(?P<bounds>[^>]*)>)?"
    r"(?: as (?P<kind>\w+)(?:<(?P<option>[^>]*)>)?)?(?: init (?P<init>.*))?$"
)

# The sizes an FPL type names, from the printed (constrained) shape: a rank-2 structured
# kind (`cov_matrix[K]`) and `monotone[H]` name one size for a K x K value.
SQUARE = {kind for kind, (rank, _) in STRUCTURED.items() if rank == 2} | {"monotone"}


def fpl_declaration(line: str) -> str:
    """The FPL source of one printed declaration line."""
    m = DECLARATION.match(line)
    assert m is not None, f"not a printed declaration: {line!r}"
    shape = m["shape"].split(", ") if m["shape"] else []
    kind = m["kind"]
    if kind is None:
        bounds = f"<{m['bounds']}>" if m["bounds"] else ""
        ty = m["base"] + bounds + (f"[{', '.join(shape)}]" if shape else "")
    else:
        assert m["bounds"] is None, line
        sizes = shape[:-1] if kind in SQUARE else shape
        option = f"<{m['option']}>" if m["option"] else ""
        ty = f"{kind}{option}[{', '.join(sizes)}]"
    init = f" init {m['init']}" if m["init"] is not None else ""
    return f"{m['keyword']} {m['name']}: {ty}{init}"


def declarations(program: ir.Program) -> list:
    return [
        s for s in program.statements if isinstance(s, ir.DataDecl | ir.ParamDecl | ir.WeightDecl)
    ]


def reparsed(program: ir.Program) -> ir.Program:
    """The printed declarations of ``program``, written as FPL and compiled again."""
    lines = format_program(program).splitlines()
    printed = [line for line in lines if DECLARATION.match(line)]
    assert len(printed) == len(declarations(program))
    return fpl.compile("\n".join(fpl_declaration(line) for line in printed) + "\n").ir


def assert_same_declarations(program: ir.Program) -> None:
    again = declarations(reparsed(program))
    for before, after in zip(declarations(program), again, strict=True):
        # (IR nodes compare without spans: the same types, constraints, bounds and inits)
        assert type(before) is type(after) and before.name == after.name
        assert before.ty == after.ty, before.name
        assert before.constraint == after.constraint, before.name
        if isinstance(before, ir.WeightDecl):
            assert before.init == after.init, before.name


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example(path: Path):
    assert_same_declarations(fpl.compile(path.read_text(), path.stem).ir)


# a declaration of each constraint kind (weights where only a weight may have it)
KINDS = {
    "real": "param a: real[N]",
    "lower": "data b: int<lower=0>[N]",
    "upper": "param c: real<upper=N>",
    "interval": "weight d: real<lower=-1, upper=2.5>[N, 2] init 0.5",
    "simplex": "param e: simplex[N]",
    "ordered": "param f: ordered[2, N]",
    "positive_ordered": "weight g: positive_ordered[N] init normal(0, 1)",
    "cholesky_corr": "param h: cholesky_corr[N]",
    "corr_matrix": "param i: corr_matrix[3]",
    "cov_matrix": "weight j: cov_matrix[N] init 0.1",
    "cholesky_cov": "param k: cholesky_cov[N]",
    "contractive": "weight l: contractive<bound=0.5>[N, N] init normal(0, 0.1)",
    "monotone": "weight m: monotone<margin=0.2>[N] init normal(0, 0.1)",
}
DEFAULTS = "weight n: contractive[N, N] init 0.0\nweight o: monotone[3] init 0.0\n"


def test_every_constraint_kind():
    assert set(KINDS) == {"real", *ir.CONSTRAINT_KINDS}
    program = fpl.compile("data N: int\n" + "\n".join(KINDS.values()) + "\n" + DEFAULTS).ir
    kinds = {s.name: s.constraint.kind for s in declarations(program)}
    assert [kinds[line.split()[1].rstrip(":")] for line in KINDS.values()] == list(KINDS)
    assert_same_declarations(program)


def test_a_weight_line_shows_its_kind_and_option():
    text = format_program(fpl.compile("weight W: contractive<bound=0.5>[3, 3] init 0.0\n").ir)
    assert "  weight W: real[3, 3] as contractive<bound=0.5> init 0.0\n" in text
