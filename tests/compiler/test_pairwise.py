"""Pairwise indexing (issue 13): index arrays in one index pick elements pairwise,
``A[i, j]`` is ``[A[i[1], j[1]], ..., A[i[n], j[n]]]`` (what a Stan loop
``for (n in 1:N) mu[n] = A[i[n], j[n]]`` computes, and NumPy's rule); a submatrix is
``A[i, :][:, j]``.  Their common shape stands where the first index array was.

Values are checked against element-by-element loops written here, gradients against
finite differences and against the closed form (the scatter-add of the weights)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError

RNG = np.random.default_rng(11)
A = RNG.normal(size=(3, 4))
B = RNG.normal(size=(3, 4, 5))
I = np.array([1, 3, 2, 3, 1])  # noqa: E741 - Stan's index names
J = np.array([4, 1, 2, 4, 3])
K = np.array([5, 1, 3, 2, 2])

MODEL = """
data A: real[3, 4]
data B: real[3, 4, 5]
data i: int[5]
data j: int[5]
data k: int[5]
data ii: int[2, 5]
out pairs = A[i, j]
out sub = A[i, :][:, j]
out rows_pairs = B[i, j, :]
out cols_pairs = B[:, j, k]
out three = B[i, j, k]
out apart = B[i, :, k]
out fixed = B[i, 2, k]
out sliced = B[2:3, j, k]
out single = A[i, 2]
out grid = A[ii, j[1:5]]
fn pick(r) = A[r, j]
out mapped = map(pick, ii)
"""


def _loops() -> dict[str, np.ndarray]:
    """The same values element by element (0-based here)."""
    i, j, k = I - 1, J - 1, K - 1
    n = range(5)
    ii = np.stack([I, I[::-1]])
    return {
        "pairs": np.array([A[i[m], j[m]] for m in n]),
        "sub": np.array([[A[i[r], j[c]] for c in n] for r in n]),
        "rows_pairs": np.array([B[i[m], j[m], :] for m in n]),
        "cols_pairs": np.array([[B[a, j[m], k[m]] for m in n] for a in range(3)]),
        "three": np.array([B[i[m], j[m], k[m]] for m in n]),
        "apart": np.array([[B[i[m], b, k[m]] for b in range(4)] for m in n]),
        "fixed": np.array([B[i[m], 1, k[m]] for m in n]),
        "sliced": np.array([[B[a, j[m], k[m]] for m in n] for a in (1, 2)]),
        "single": np.array([A[i[m], 1] for m in n]),
        "grid": np.array([[A[ii[r, m] - 1, j[m]] for m in n] for r in range(2)]),
        "mapped": np.array([[A[ii[r, m] - 1, j[m]] for m in n] for r in range(2)]),
    }


def _data():
    return {"A": A, "B": B, "i": I, "j": J, "k": K, "ii": np.stack([I, I[::-1]])}


def test_types_follow_the_pairing_rule():
    outs = {s.name: s.value.ty for s in fpl.compile(MODEL).ir.outs}
    want = {
        "pairs": (5,),
        "sub": (5, 5),
        "rows_pairs": (5, 5),
        "cols_pairs": (3, 5),
        "three": (5,),
        "apart": (5, 4),
        "fixed": (5,),
        "sliced": (2, 5),
        "single": (5,),
        "grid": (2, 5),
        "mapped": (2, 5),
    }
    assert {name: ty.shape for name, ty in outs.items()} == want


def test_values_match_element_by_element_loops():
    cm = fpl.compile(MODEL).bind(_data())
    with jax.enable_x64(True):
        values = jax.jit(cm.constrain)(jnp.zeros(0))
    for name, expected in _loops().items():
        np.testing.assert_array_equal(np.asarray(values[name]), expected, err_msg=name)


GRADIENT = """
data i: int[5]
data j: int[5]
data w: real[5]
param M: real[3, 4] ~ normal(0, 1)
target += w * exp(M[i, j])
"""


def test_gradient_matches_finite_differences_and_the_scatter_add():
    w = np.array([0.5, -1.0, 2.0, 0.25, 1.5])
    cm = fpl.compile(GRADIENT).bind({"i": I, "j": J, "w": w})
    with jax.enable_x64(True):
        vg = jax.jit(cm.log_density_gradient)
        theta = 0.3 * RNG.normal(size=12)
        _, grad = vg(theta)
        h = 1e-6
        fd = [(vg(theta + h * e)[0] - vg(theta - h * e)[0]) / (2 * h) for e in np.eye(12)]
        # central differences of a smooth float64 function: error O(h^2) + O(eps / h)
        np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-8)
    # the closed form: d/dM[a, b] of -M^2/2 + sum_n w[n] exp(M[i[n], j[n]]) (unconstrained M
    # is raveled row-major, as the param is declared)
    M = theta.reshape(3, 4)
    closed = -M.copy()
    for n in range(5):
        closed[I[n] - 1, J[n] - 1] += w[n] * np.exp(M[I[n] - 1, J[n] - 1])
    np.testing.assert_allclose(np.asarray(grad), closed.ravel(), rtol=1e-12)


def test_index_arrays_of_different_lengths_do_not_pair():
    with pytest.raises(FplError) as info:
        fpl.compile("data A: real[3, 4]\ndata i: int[2]\ndata j: int[3]\nout p = A[i, j]\n")
    d = info.value.diagnostics[0]
    assert d.code == "E0202" and "do not pair up" in d.message
    assert "A[i, :][:, j]" in (d.help or "")


def test_lengths_known_only_from_the_data_are_checked_at_bind():
    src = "data A: real[3, 4]\ndata i: int[N]\ndata j: int[M]\nout p = A[i, j]\n"
    model = fpl.compile("data N: int\ndata M: int\n" + src)
    with pytest.raises(FplError) as info:
        model.bind({"A": A, "i": [1, 2], "j": [1, 2, 3]})
    assert info.value.diagnostics[0].code == "E0202"


@pytest.mark.parametrize("bad", list(itertools.product([0, 4], [1])))
def test_an_index_out_of_range_is_located(bad):
    # computed indices (data fields used directly are checked when bound: E0307)
    src = "data A: real[3, 4]\ndata i: int[1]\ndata j: int[1]\nout p = A[i + 0, j + 0]\n"
    model = fpl.compile(src)
    with pytest.raises(FplError) as info:
        model.bind({"A": A, "i": [bad[0]], "j": [bad[1]]}).constrain(jnp.zeros(0))
    d = info.value.diagnostics[0]
    assert d.code == "E0202" and "out of range" in d.message
