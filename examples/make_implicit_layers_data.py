"""Data of the implicit-layer examples of issue 12 (seeded; run from anywhere):

* ``pnp_deblur.json`` / ``pnp_deblur_heldout.json``: sparse 1-D signals (3 spikes of
  random sign and size on 24 samples) blurred by the 3-tap kernel (0.15, 0.7, 0.15) with
  reflecting ends, plus N(0, 0.02²) noise; the clean signals are the targets; ``S`` the
  shift operators a learned 5-tap filter is built from.
* ``halpern_nnls.json`` / ``halpern_nnls_heldout.json``: nonnegative least squares
  problems ``min_z ½‖A z − b‖²``, ``z ≥ 0`` (one per row of ``B``), ``‖A‖ = 1``, with
  targets the true nonnegative coefficients.
* ``self_tuning_ridge.json``: the data of ``bilevel_ridge.json`` (the same bilevel
  problem, solved without an implicit node), copied.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KERNEL = (0.15, 0.7, 0.15)


def blur_matrix(n: int) -> np.ndarray:
    """The blur as an n × n matrix (reflecting ends: the row sums are 1)."""
    K = np.zeros((n, n))
    for i in range(n):
        for offset, weight in zip((-1, 0, 1), KERNEL, strict=True):
            j = min(max(i + offset, 0), n - 1)
            K[i, j] += weight
    return K


def spikes(rng, count: int, n: int, per: int = 3) -> np.ndarray:
    X = np.zeros((count, n))
    for row in X:
        where = rng.choice(n, per, replace=False)
        row[where] = rng.choice([-1.0, 1.0], per) * rng.uniform(0.5, 1.5, per)
    return X


def shifts(n: int, taps: int = 5) -> np.ndarray:
    """``taps`` shift operators: ``(S_k x)_i = x_{i + k - (taps + 1) / 2}`` (zero outside),
    so ``Σ_k c_k S_k`` is the convolution with the filter ``c``."""
    half = taps // 2
    return np.stack([np.eye(n, k=offset) for offset in range(-half, half + 1)])


def pnp_deblur(seed: int, count: int = 40, n: int = 24) -> dict:
    rng = np.random.default_rng(seed)
    K = blur_matrix(n)
    X = spikes(rng, count, n)
    Y = X @ K.T + 0.02 * rng.normal(size=X.shape)
    S = shifts(n)
    return {
        "n": n,
        "m": count,
        "taps": len(S),
        "K": K.tolist(),
        "S": S.tolist(),
        "Y": Y.tolist(),
        "X": X.tolist(),
    }


def halpern_nnls(seed: int, count: int = 30, rows: int = 12, n: int = 8) -> dict:
    rng = np.random.default_rng(seed)
    A = np.random.default_rng(0).normal(size=(rows, n))  # the same operator in both files
    A /= np.linalg.norm(A, 2)
    Z = np.maximum(rng.normal(0.5, 1.0, size=(count, n)), 0.0)
    B = Z @ A.T + 0.3 * rng.normal(size=(count, rows))
    return {"rows": rows, "n": n, "m": count, "A": A.tolist(), "B": B.tolist(), "Z": Z.tolist()}


def main() -> None:
    outputs = {
        "pnp_deblur.json": pnp_deblur(1),
        "pnp_deblur_heldout.json": pnp_deblur(2),
        "halpern_nnls.json": halpern_nnls(3),
        "halpern_nnls_heldout.json": halpern_nnls(4),
    }
    for name, data in outputs.items():
        (HERE / name).write_text(json.dumps(data))
    shutil.copyfile(HERE / "bilevel_ridge.json", HERE / "self_tuning_ridge.json")


if __name__ == "__main__":
    main()
