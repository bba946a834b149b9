"""Type rules against implementations on every combination of argument shapes.

The function table (test_functions_table.py) checks each rule at one hand-picked input;
here every registry function is called on every combination of argument kinds from a
small pool (scalars, vectors of two lengths, square and non-square matrices, a known
integer and an integer known only at run time).  Wherever the rule accepts the
arguments, the implementation must run and return exactly the shape and base the rule
predicted: a rule that accepts too much gives a raw JAX error at run time, and one that
predicts the wrong shape gives a silently wrong program (issue 13: ``append_col`` and the
``_lpdf`` forms).  The implementations are traced abstractly (``jax.eval_shape``), so
values do not matter and nothing is computed.

Stan's own shapes for ``append_row``/``append_col`` are written out as a table below.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import pytest

from fpl.stdlib.registry import Arg, registry
from fpl.stdlib.types import RuleError, Ty

# (label, argument info for the rule, the value the implementation gets)
_REAL = jnp.float64
POOL: list[tuple[str, Arg, object]] = [
    ("real", Arg(Ty("real")), jax.ShapeDtypeStruct((), _REAL)),
    ("real[3]", Arg(Ty("real", (3,))), jax.ShapeDtypeStruct((3,), _REAL)),
    ("real[2]", Arg(Ty("real", (2,))), jax.ShapeDtypeStruct((2,), _REAL)),
    ("real[3, 3]", Arg(Ty("real", (3, 3))), jax.ShapeDtypeStruct((3, 3), _REAL)),
    ("real[2, 3]", Arg(Ty("real", (2, 3))), jax.ShapeDtypeStruct((2, 3), _REAL)),
    # a size or position known before the model runs: the evaluator passes a Python int
    ("int=1", Arg(Ty("int"), 1), 1),
    # an integer computed at run time (a `map` argument): a traced int
    ("int", Arg(Ty("int")), jax.ShapeDtypeStruct((), jnp.int64)),
]
STATIC_SIZE = ("int=2", Arg(Ty("int"), 2), 2)
MAX_ARITY = 3  # variadic entries are tried with up to this many arguments
BASES = {"f": "real", "i": "int", "b": "bool"}


def _combinations(entry):
    hi = entry.max_args if entry.max_args is not None else entry.min_args + 1
    for arity in range(entry.min_args, min(hi, MAX_ARITY) + 1):
        choices = [
            [STATIC_SIZE] if k in entry.static_args else POOL
            for k in range(arity)  # static positions always get a known size
        ]
        yield from itertools.product(*choices)


def _shape_after_tracing(entry, combo):
    """The implementation's result (a ShapeDtypeStruct) at the combination's values."""
    fixed = {k: v for k, (_, _, v) in enumerate(combo) if isinstance(v, int)}
    traced = [v for _, _, v in combo if not isinstance(v, int)]

    def call(*values):
        it = iter(values)
        return entry.impl(*[fixed[k] if k in fixed else next(it) for k in range(len(combo))])

    return jax.eval_shape(call, *traced)


@pytest.mark.parametrize("name", sorted(registry().functions))
def test_rule_and_implementation_agree_on_every_shape(name):
    entry = registry().functions[name]
    wrong = []
    with jax.enable_x64(True):
        for combo in _combinations(entry):
            labels = ", ".join(label for label, _, _ in combo)
            try:
                ty = entry.rule([info for _, info, _ in combo])
            except RuleError:
                continue  # refused by the checker: a coded error, never run
            if None in ty.shape:
                continue  # a size only the data give: checked again at bind time
            try:
                out = _shape_after_tracing(entry, combo)
            except Exception as exc:  # the rule let through what the implementation refuses
                wrong.append(f"{name}({labels}): rule says {ty}, implementation raises {exc!r}")
                continue
            if tuple(out.shape) != tuple(ty.shape) or BASES[out.dtype.kind] != ty.base:
                wrong.append(f"{name}({labels}): rule says {ty}, implementation gives {out}")
    assert not wrong, "\n".join(wrong[:10])


def test_rules_raise_only_rule_errors():
    """A rule meeting arguments it does not accept says so (a coded error), it never
    crashes the checker (``mdivide_left(A, 2.0)`` was an IndexError)."""
    crashes = []
    for name, entry in sorted(registry().functions.items()):
        for combo in _combinations(entry):
            try:
                entry.rule([info for _, info, _ in combo])
            except RuleError:
                pass
            except Exception as exc:
                crashes.append(f"{name}({', '.join(c[0] for c in combo)}): {exc!r}")
    assert not crashes, "\n".join(crashes[:10])


# ---- Stan's append_row / append_col ---------------------------------------------------
# FPL has one rank-1 type; beside a matrix in append_row it is a row (Stan's row_vector),
# everywhere else a column (Stan's vector).  None: the rule refuses the combination.

STAN_APPEND: list[tuple[str, tuple, tuple, tuple | None]] = [
    # Stan: vector append_row(vector, vector), (real, vector), (vector, real)
    ("append_row", (3,), (2,), (5,)),
    ("append_row", (), (2,), (3,)),
    ("append_row", (3,), (), (4,)),
    # Stan: matrix append_row(matrix, matrix), (matrix, row_vector), (row_vector, matrix)
    ("append_row", (2, 3), (3, 3), (5, 3)),
    ("append_row", (2, 3), (3,), (3, 3)),
    ("append_row", (3,), (2, 3), (3, 3)),
    ("append_row", (2, 3), (2,), None),  # a row of the wrong length
    ("append_row", (2, 3), (2, 2), None),  # column counts differ
    ("append_row", (), (2, 3), None),
    # Stan: matrix append_col(vector, vector): two columns (issue 13's silent bug)
    ("append_col", (3,), (3,), (3, 2)),
    ("append_col", (3,), (2,), None),  # row counts differ
    # Stan: matrix append_col(matrix, matrix), (matrix, vector), (vector, matrix)
    ("append_col", (3, 2), (3, 3), (3, 5)),
    ("append_col", (3, 2), (3,), (3, 3)),
    ("append_col", (3,), (3, 2), (3, 3)),
    ("append_col", (3, 2), (2,), None),
    ("append_col", (2, 3), (3, 3), None),
    # Stan: row_vector append_col(real, row_vector), (row_vector, real)
    ("append_col", (), (3,), (4,)),
    ("append_col", (3,), (), (4,)),
    ("append_col", (), (3, 2), None),
]


@pytest.mark.parametrize("name, a, b, want", STAN_APPEND, ids=lambda v: str(v).replace(" ", ""))
def test_append_shapes_are_stans(name, a, b, want):
    entry = registry().functions[name]
    try:
        ty = entry.rule([Arg(Ty("real", a)), Arg(Ty("real", b))])
    except RuleError:
        assert want is None, f"{name}{a, b} refused, Stan gives {want}"
        return
    assert want is not None, f"{name}{a, b} accepted as {ty}; Stan refuses it"
    assert ty.shape == want
    x = jnp.arange(float(max(1, int(jnp.prod(jnp.array(a)))))).reshape(a)
    y = 100 + jnp.arange(float(max(1, int(jnp.prod(jnp.array(b)))))).reshape(b)
    assert entry.impl(x, y).shape == want


def test_append_col_of_two_vectors_puts_them_side_by_side():
    f = registry().functions["append_col"].impl
    x, y = jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, 5.0, 6.0])
    assert f(x, y).tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]


def test_append_sizes_stay_symbolic():
    row, col = registry().functions["append_row"], registry().functions["append_col"]
    n_k, k = Arg(Ty("real", ("N", "K"))), Arg(Ty("real", ("K",)))
    assert row.rule([n_k, k]) == Ty("real", ("N + 1", "K"))
    assert col.rule([Arg(Ty("real", ("N",))), Arg(Ty("real", ("N",)))]) == Ty("real", ("N", 2))
    assert col.rule([n_k, Arg(Ty("real", ("N",)))]) == Ty("real", ("N", "K + 1"))
