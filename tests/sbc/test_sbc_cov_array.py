"""Simulation-based calibration of an array of covariance matrices (issue 13):
``cov_matrix[2, 2]`` with an ``inv_wishart`` prior, each element with its own transform
and log-Jacobian, through the harness and settings of test_sbc.py (the sbc module says
how).  The other structured arrays are in test_sbc_arrays.py.

Level: the 6 components checked are tested at 1% overall (Bonferroni: each chi-square
p-value must exceed 0.01 / 6)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from .test_sbc import check_uniform_ranks

N_COMPONENTS = 6
LEVEL = 0.01 / N_COMPONENTS
N = 10  # observations per group and simulated data set
NU = 5  # inv_wishart degrees of freedom: a proper prior with finite variances (nu > K + 3)


def _covariances(rng):
    sigma = stats.invwishart(df=NU, scale=np.eye(2)).rvs(size=2, random_state=rng)
    y = np.stack([rng.multivariate_normal(np.zeros(2), s, size=N) for s in sigma])
    return {"Sigma": sigma}, {"N": N, "y": y}


def _parts(p):
    s = p["Sigma"]
    pairs = ((0, 0), (1, 0), (1, 1))
    return {f"Sigma[{j + 1}][{a + 1},{b + 1}]": s[..., j, a, b] for j in range(2) for a, b in pairs}


MODEL = (
    f"""
    data N: int
    data y: real[2, N, 2]
    param Sigma: cov_matrix[2, 2] ~ inv_wishart({NU}, identity_matrix(2))
    fn group(S, yj) = multi_normal_lpdf(yj | zeros(2), S)
    target += map(group, Sigma, y)
    """,
    _covariances,
    _parts,
)


def test_component_count_matches_the_correction():
    assert len(_parts(_covariances(np.random.default_rng(0))[0])) == N_COMPONENTS


@pytest.mark.slow
def test_sbc_ranks_are_uniform_for_an_array_of_covariance_matrices():
    check_uniform_ranks("cov_matrix_array", MODEL, LEVEL)
