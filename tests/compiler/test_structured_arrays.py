"""Arrays of structured types (issue 13): ``T[M, ...]`` for every structured kind is M
independent values of type ``T``.

Invariant checked, for each of the 7 kinds: at random unconstrained points, a param
``x: T[M, K]`` gives the same constrained values and the same log-Jacobian as M
separate params ``x1: T[K]`` ... ``xM: T[K]`` (θ laid out as the array's rows in order,
which is also the separate params' declaration order), so each row has its own
transform and its own Jacobian term.  Data arrays of each kind are checked row by row:
a bad row is an E0304 naming its index."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError

M = 3  # rows: three, so a transform that reused or swapped rows would show

# (kind, K): K is the size in the type (a K-simplex, a K x K matrix)
KINDS = [
    ("simplex", 3),
    ("ordered", 3),
    ("positive_ordered", 3),
    ("cholesky_corr", 3),
    ("corr_matrix", 3),
    ("cov_matrix", 2),
    ("cholesky_cov", 2),
]


@pytest.mark.parametrize("kind, size", KINDS, ids=[k for k, _ in KINDS])
def test_array_param_is_rows_of_separate_params(kind, size):
    array = fpl.compile(f"param x: {kind}[{M}, {size}]\n").bind({})
    separate = fpl.compile("".join(f"param x{m}: {kind}[{size}]\n" for m in range(1, M + 1))).bind(
        {}
    )
    n = array.param_unc_num()
    assert n == separate.param_unc_num()
    rng = np.random.default_rng(13)
    for _ in range(1):
        theta = jnp.asarray(rng.normal(size=n))
        values = np.asarray(array.constrain(theta)["x"])
        rows = separate.constrain(theta)
        assert values.shape[0] == M
        for m in range(M):
            # same arithmetic on the same numbers: equal to rounding
            np.testing.assert_allclose(values[m], np.asarray(rows[f"x{m + 1}"]), rtol=1e-12)
        # no density term here, so log_density is the log-Jacobian alone
        log_jacobian = float(array.log_density(theta, jacobian=True))
        assert float(array.log_density(theta, jacobian=False)) == 0.0
        assert log_jacobian != 0.0  # every kind here has a Jacobian term
        assert log_jacobian == pytest.approx(
            float(separate.log_density(theta, jacobian=True)), rel=1e-12, abs=1e-12
        )


def _valid(kind: str, size: int) -> list:
    return {
        "simplex": [0.2, 0.3, 0.5],
        "ordered": [-1.0, 0.5, 2.0],
        "positive_ordered": [0.5, 1.0, 3.0],
        "cholesky_corr": np.linalg.cholesky([[1, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 1]]).tolist(),
        "corr_matrix": [[1, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 1]],
        "cov_matrix": [[2.0, 0.5], [0.5, 1.0]],
        "cholesky_cov": [[1.5, 0.0], [0.4, 0.7]],
    }[kind]


#: one invalid value per kind, each breaking only that kind's constraint
INVALID = {
    "simplex": [0.2, 0.3, 0.6],  # sums to 1.1
    "ordered": [1.0, 0.5, 2.0],  # not increasing
    "positive_ordered": [-0.5, 1.0, 3.0],  # increasing, not positive
    "cholesky_corr": [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 1]],  # row 2 not unit length
    "corr_matrix": [[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]],  # not symmetric
    "cov_matrix": [[1.0, 2.0], [2.0, 1.0]],  # symmetric, not positive definite
    "cholesky_cov": [[1.0, 1.0], [0.0, 1.0]],  # upper triangular
}


@pytest.mark.parametrize("kind, size", KINDS, ids=[k for k, _ in KINDS])
def test_data_arrays_are_checked_row_by_row(kind, size):
    model = fpl.compile(f"data x: {kind}[{M}, {size}]\nout first = x[1]\n")
    good = _valid(kind, size)
    bound = model.bind({"x": [good] * M})  # every row valid: accepted
    assert bound is not None
    with pytest.raises(FplError) as exc:
        model.bind({"x": [good, INVALID[kind], good]})
    diagnostic = exc.value.diagnostics[0]
    assert diagnostic.code == "E0304", exc.value.render()
    assert "`x[2]`" in diagnostic.message and kind in diagnostic.message, diagnostic.message
