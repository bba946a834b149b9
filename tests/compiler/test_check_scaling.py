"""The checker's work grows linearly with the program (issue 11), counted, not timed:
every Python and built-in function call made while checking a program of B blocks is
counted for B and 10 B; Python work that revisits earlier statements per statement (a
re-walk, eager "did you mean" suggestions) makes the ratio grow with B.  (Work inside
one built-in call, such as copying a growing scope, counts once: it is not seen.)  Also
the pieces of the checker's speed that could change its output if they were wrong:
the type tables of ``op`` and ``dist_type``, the rule dispatch and the collector."""

from __future__ import annotations

import gc
import sys
from typing import get_args

import pytest

from fpl.compiler import compile_ir, ir
from fpl.compiler.passes.check import EXPRESSION_RULES, check, collector_paused
from fpl.dsl import ast
from fpl.dsl.diagnostics import FplError
from fpl.dsl.parser import parse

HEADER = """data N: int
data x: real[N]
data y: real[N]
fn scale(v, s) = v / (1 + abs(s))
"""


def block(b: int) -> str:
    """Ten lines with names of their own that read the shared data and functions (as
    ``benchmarks/check_scaling.py``'s programs): every kind of statement, user
    functions typed and untyped, indexing, priors, a gen."""
    return f"""param mu{b} ~ normal(0, 10)
param sigma{b}: real<lower=0> ~ exponential(1)
fn f{b}(v) = mu{b} + sigma{b} * tanh(v)
fn g{b}(v: real[N]) {{
    let w = scale(v, mu{b})
    return w + 1
}}
let eta{b} = f{b}(x) + 0.5 * x[1] - log1p(exp(-abs(mu{b})))
y ~ normal(g{b}(eta{b}) / (2 + {b % 7}), sigma{b} + 1)
gen yrep{b} = normal_rng(mu{b}, sigma{b})
"""


def calls_to_check(blocks: int) -> int:
    """Function calls (Python and built-in) made by ``check`` of a program of ``blocks``
    blocks, the parse left out."""
    tree = parse(HEADER + "".join(block(b) for b in range(blocks)), "scaling.fpl")
    check(tree)  # the registry loaded and every lazy import done before counting
    count = 0

    def counter(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(counter)
    try:
        check(tree)
    finally:
        sys.setprofile(None)
    return count


def test_the_checker_does_work_linear_in_the_program():
    small, large = calls_to_check(10), calls_to_check(100)
    # 100 lines against 1000: a linear checker makes 10x the calls, a little less for
    # the fixed part (the header, and the type tables the first blocks fill: 8.8x
    # today); one pass over the earlier statements' names per statement makes it ~50x
    assert 8.0 <= large / small <= 10.5, (small, large)


def test_every_expression_class_has_a_rule():
    assert set(EXPRESSION_RULES) == set(get_args(ast.Expr))


def test_a_remembered_operator_type_still_checks_the_values_it_reads():
    # `n % 2` fills the table for (mod, int, int); `n % 0` hits it and must still be
    # E0208 (integer division by a literal zero reads the value, not the type)
    with pytest.raises(FplError) as info:
        compile_ir("data n: int\nlet a = n % 2\nlet b = n % 0\n")
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line) == ("E0208", 3)


def test_remembered_types_are_per_signature_and_errors_located_each_time():
    # the same function and distribution at other argument types are checked anew
    source = """data x: real[3]
data A: real[2, 2]
let a = exp(x)
let b = exp(A)
param m ~ normal(0, 1)
x ~ normal(m, 1)
"""
    program = compile_ir(source)
    types = {s.name: str(s.value.ty) for s in program.statements if isinstance(s, ir.Let)}
    assert types == {"a": "real[3]", "b": "real[2, 2]"}
    for bad in ["x ~ normal(m, A[1])", "let c = exp(x) + exp(A)", "let c = exp(x, A)"]:
        with pytest.raises(FplError) as info:
            compile_ir(source + bad + "\n")
        assert info.value.diagnostics[0].span.line == 7, bad


def test_the_collector_is_resumed_with_what_was_made_counted_as_old():
    was = gc.isenabled()
    gc.enable()
    frozen = gc.get_freeze_count()
    try:
        with collector_paused():
            assert not gc.isenabled()
            made = [[] for _ in range(3)]
        assert gc.isenabled() and gc.get_freeze_count() == frozen
        if frozen == 0:  # (CPython 3.12 starts with frozen objects: then only paused)
            young = gc.get_objects(generation=0) + gc.get_objects(generation=1)
            assert not any(any(m is o for o in young) for m in made)
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()  # a collector that was off stays off
    finally:
        (gc.enable if was else gc.disable)()


def test_objects_a_process_froze_stay_frozen():
    was = gc.isenabled()
    gc.enable()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            pass
        # not `== frozen`: a frozen object that another thread (xdist's I/O thread) frees
        # meanwhile leaves the permanent generation, so the count may drop a little (seen
        # once in a run of 300 tests); unfreezing them would make it 0
        assert gc.get_freeze_count() > frozen // 2 and gc.isenabled()
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()
