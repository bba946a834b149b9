"""compiler/affine.py: the degree analysis reads linearity from the registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import fpl
from fpl.compiler.affine import NONPOLY, degree, is_affine
from fpl.stdlib.registry import registry

# The test table of library linearity (the only parallel list): a function whose entry
# changes linearity must change here too.
LINEARITY = {
    "sum": {"add", "sub", "append_row", "append_col", "add_diag"},
    "same": {
        "neg",
        "pos",
        "sum",
        "mean",
        "transpose",
        "to_vector",
        "to_row_vector",
        "flatten",
        "to_matrix",
        "reverse",
        "head",
        "tail",
        "segment",
        "cumulative_sum",
        "diagonal",
        "diag_matrix",
        "rep_vector",
        "rep_row_vector",
        "rep_matrix",
        "rep_array",
    },
    "product": {
        "mul",
        "matmul",
        "dot_product",
        "rows_dot_product",
        "columns_dot_product",
        "diag_pre_multiply",
        "diag_post_multiply",
    },
    "double": {"square", "dot_self", "crossprod", "tcrossprod"},
    "quotient": {"div"},
    "solve": {"mdivide_left"},
    "quad_form": {"quad_form"},
    "power": {"pow"},
}


def test_registry_linearity_is_the_table():
    found: dict[str, set[str]] = {}
    for name, entry in registry().functions.items():
        if entry.linearity is not None:
            found.setdefault(entry.linearity, set()).add(name)
    assert found == LINEARITY


HEAD = "data n: int\ndata A: real[n, n]\ndata u: real[n]\nparam c: real\n"


def node_of(body: str):
    return fpl.compile(HEAD + f"let z = {body}\ntarget += sum(z)\n").ir.implicit_nodes[0]


@pytest.mark.parametrize(
    "body, expected",
    [
        ("fix z: real[n] = c * u", 0),
        ("fix z: real[n] = A @ z + u", 1),
        ("argmin z: real[n] of dot_self(z) + sum(z)", 2),
        ("argmin z: real[n] of quad_form(A, z)", 2),
        ("root z: real[n] of mdivide_left(A, z) - u", 1),
        ("root z: real[n] of z ^ 2 - u", 2),
        ("root z: real[n] of exp(z)", NONPOLY),
        ("root z: real[n] of u / z", NONPOLY),
    ],
)
def test_degrees(body, expected):
    node = node_of(body)
    assert degree(node.body, node.var) == expected


def test_agrees_with_the_affine_examples():
    # the bodies of test_implicit_affine.py (which tests the lowering side)
    path = Path(__file__).with_name("test_implicit_affine.py")
    spec = importlib.util.spec_from_file_location("_affine_cases", path)
    assert spec is not None and spec.loader is not None
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    AFFINE, NOT_AFFINE = cases.AFFINE, cases.NOT_AFFINE
    assert all(is_affine(node_of(b)) for b in AFFINE)
    assert not any(is_affine(node_of(b)) for b in NOT_AFFINE)
