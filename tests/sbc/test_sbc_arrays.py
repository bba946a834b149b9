"""Simulation-based calibration of arrays of constrained params (issue 13):
``simplex[M, K]``, ``ordered[M, K]`` and ``cholesky_corr[M, K]`` (M = 2 of each), each
element with its own transform and log-Jacobian, through the harness and settings of
test_sbc.py (the sbc module says how).

Level: the 15 components checked are tested at 1% overall (Bonferroni: each
chi-square p-value must exceed 0.01 / 15)."""

from __future__ import annotations

import numpy as np
import pytest

from .test_sbc import check_uniform_ranks

N_COMPONENTS = 15
LEVEL = 0.01 / N_COMPONENTS
N = 10  # observations per group and simulated data set


def _simplexes(rng):
    theta = rng.dirichlet([2.0, 2.0, 2.0], size=2)
    y = np.stack([rng.choice(3, N, p=t) + 1 for t in theta])
    return {"theta": theta}, {"N": N, "y": y}


def _ordered(rng):
    beta = rng.normal(0, 1)
    c = np.sort(rng.normal(0, 2, (2, 2)), axis=1)  # normal(0, 2) restricted: sorted iid
    x = rng.normal(0, 1, (2, N))
    z = x * beta + rng.logistic(0, 1, (2, N))  # latent; y = 1 + #(cut points below z)
    y = 1 + np.sum(c[:, None, :] < z[:, :, None], axis=2)
    return {"beta": beta, "c": c}, {"N": N, "x": x, "y": y}


def _cholesky_corrs(rng):
    import jax

    from fpl.stdlib.registry import registry

    lkj = registry().distributions["lkj_corr_cholesky"].build(2.0, event_shape=(3, 3))
    chol = np.asarray(lkj.sample(jax.random.PRNGKey(int(rng.integers(2**31))), (2,)))
    y = np.einsum("jnk,jmk->jnm", rng.normal(0, 1, (2, N, 3)), chol)  # rows y = L z
    return {"L": chol}, {"N": N, "y": y}


def _simplex_parts(p):
    t = p["theta"]
    return {f"theta[{j + 1},{k + 1}]": t[..., j, k] for j in range(2) for k in range(2)}


def _ordered_parts(p):
    c = p["c"]
    out = {"beta": p["beta"]}
    out.update({f"c[{j + 1},{k + 1}]": c[..., j, k] for j in range(2) for k in range(2)})
    return out


def _corr_parts(p):
    omega = p["L"] @ np.swapaxes(p["L"], -1, -2)
    pairs = ((1, 0), (2, 0), (2, 1))
    return {
        f"Omega[{j + 1}][{a + 1},{b + 1}]": omega[..., j, a, b] for j in range(2) for a, b in pairs
    }


MODELS = {
    "simplex_array": (
        """
        data N: int
        data y: int[2, N]
        param theta: simplex[2, 3] ~ dirichlet(rep_vector(2, 3))
        fn group(t, yj) = categorical_lpmf(yj | t)
        target += map(group, theta, y)
        """,
        _simplexes,
        _simplex_parts,
    ),
    "ordered_array": (
        """
        data N: int
        data x: real[2, N]
        data y: int[2, N]
        param beta ~ normal(0, 1)
        param c: ordered[2, 2] ~ normal(0, 2)
        fn group(cj, xj, yj) = ordered_logistic_lpmf(yj | xj * beta, cj)
        target += map(group, c, x, y)
        """,
        _ordered,
        _ordered_parts,
    ),
    "cholesky_corr_array": (
        """
        data N: int
        data y: real[2, N, 3]
        param L: cholesky_corr[2, 3] ~ lkj_corr_cholesky(2)
        fn group(Lj, yj) = multi_normal_cholesky_lpdf(yj | zeros(3), Lj)
        target += map(group, L, y)
        """,
        _cholesky_corrs,
        _corr_parts,
    ),
}


def test_component_count_matches_the_correction():
    rng = np.random.default_rng(0)
    total = sum(len(parts(sim(rng)[0])) for _, sim, parts in MODELS.values())
    assert total == N_COMPONENTS


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_sbc_ranks_are_uniform_for_arrays_of_constrained_params(name):
    check_uniform_ranks(name, MODELS[name], LEVEL)
