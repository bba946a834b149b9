"""The IR printer (``fpl compile --emit ir``) and ``ir.digest``: every example and
posteriordb model prints exactly as its snapshot in ``snapshots/``; user-function
bodies are printed, and the digest sees every change of meaning.

Regenerate the snapshots after an intended change with

    FPL_UPDATE_SNAPSHOTS=1 pytest tests/compiler/test_printer.py

and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fpl
from fpl.compiler import ir
from fpl.compiler.printer import format_program

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "snapshots"
MODELS = sorted(ROOT.glob("examples/*.fpl")) + sorted(ROOT.glob("tests/posteriordb/models/*.fpl"))
UPDATE = os.environ.get("FPL_UPDATE_SNAPSHOTS") == "1"


def snapshot_name(path: Path) -> str:
    return f"{path.parent.name}__{path.stem}.ir"


def test_every_model_is_snapshotted():
    assert len(MODELS) >= 20
    expected = {snapshot_name(p) for p in MODELS}
    assert {p.name for p in HERE.glob("*.ir")} == expected


@pytest.mark.parametrize("path", MODELS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_printed_ir_matches_snapshot(path: Path):
    text = format_program(fpl.compile(path.read_text(), path.stem).ir)
    snap = HERE / snapshot_name(path)
    if UPDATE:
        snap.write_text(text)
    assert snap.exists(), f"no {snap.name}: run with FPL_UPDATE_SNAPSHOTS=1 and review it"
    assert text == snap.read_text()


HEAD = "data n: int\ndata y: real[n]\nparam mu: real\n"


def program(body: str, tail: str = "out z = f(mu)\n") -> ir.Program:
    return fpl.compile(HEAD + body + tail).ir


def test_function_bodies_are_printed():
    two = format_program(program("fn f(x) = 2 * x\n"))
    three = format_program(program("fn f(x) = 3 * x\n"))
    assert two != three
    assert "  fn     f(x: real): real = (2 * x)\n" in two


def test_instances_are_numbered_and_defined_before_use():
    text = format_program(program("fn g(x) = x + 1\nfn f(x) = g(x) * g(2)\n", "out z = f(y)\n"))
    lines = text.splitlines()
    defs = [line.split("(")[0].split()[-1] for line in lines if line.startswith("  fn ")]
    assert defs == ["g#1", "g#2", "f"]
    assert "f(x: real[n]): real[n] = (g#1(x) * g#2(2))" in text


def test_map_body_is_printed():
    text = format_program(program("fn f(x) = exp(x)\n", "out z = map(f, y)\n"))
    assert "fn     f(x: real): real = exp(x)" in text and "map(f, y)" in text


def test_digest_is_stable_and_sees_meaning():
    base = "fn f(x) = 2 * x\nout z = f(mu)\ny ~ normal(mu, 1)\n"
    d = ir.digest(program(base, ""))
    assert len(d) == 64
    assert d == ir.digest(program(base, ""))  # same source twice
    # spans do not count: the same program laid out differently
    assert d == ir.digest(program(base.replace("2 * x", "2  *  x"), ""))
    changed = [
        base.replace("2 * x", "3 * x"),  # a function body
        base.replace("normal(mu, 1)", "normal(mu, 2)"),  # a constant
        base.replace("normal", "cauchy"),  # a distribution
    ]
    for other in changed:
        assert ir.digest(program(other, "")) != d, other


def test_digest_sees_solver_options():
    src = "let w = fix w: real = 0.5 * w + mu with iterate(tol={})\ntarget += w\n"
    a, b = (ir.digest(program(src.format(t), "")) for t in ("1e-8", "1e-9"))
    assert a != b
    assert a == ir.digest(program(src.format("1e-8"), ""))


def test_walk_visits_each_function_body_once():
    """Once per walk, not once per call: a call graph with shared sub-calls (issue 11's
    doubling program) is walked in linear time."""
    prog = program("fn g(x) = x + 1\nfn f(x) = g(x) * g(x)\n")
    lambdas = [n for s in prog.statements for n in ir.walk(s) if isinstance(n, ir.Lambda)]
    assert sorted(lam.name for lam in lambdas) == ["f", "g"]
    assert [lam.name for lam in ir.functions(prog)] == ["g", "f"]


def test_every_operator_is_spelled_by_its_registry_entry():
    """The printer spells operators from their registry entries (no table of its own):
    each infix/prefix/postfix entry written in source prints back as written."""
    from fpl.stdlib.registry import registry

    ops = {n: e for n, e in registry().functions.items() if e.fixity is not None}
    assert {
        "add",
        "sub",
        "mul",
        "div",
        "mod",
        "matmul",
        "pow",
        "eq",
        "and",
        "neg",
        "not",
        "transpose",
    } <= set(ops)
    for name, entry in ops.items():
        assert entry.spelling, name
        if name in ("and", "or", "not"):
            a, b, ty = "p", "q", "int"  # logic on comparisons: p, q are ints (bools)
            text = {
                "infix": f"({a} > 0) {entry.spelling} ({b} > 0)",
                "prefix": f"{entry.spelling}({a} > 0)",
            }[entry.fixity]
        else:
            a, b, ty = "x", "y", "real[2, 2]"
            text = {
                "infix": f"{a} {entry.spelling} {b}",
                "prefix": f"{entry.spelling}{a}",
                "postfix": f"{a}{entry.spelling}",
            }[entry.fixity]
        src = f"data {a}: {ty}\ndata {b}: {ty}\nout r = {text}\n"
        printed = format_program(fpl.compile(src).ir)
        out_line = next(ln for ln in printed.splitlines() if ln.lstrip().startswith("out"))
        assert entry.spelling in out_line, (name, out_line)
