"""Simulate the data files of the learning examples (models with ``weight`` declarations).

Run from anywhere: ``python examples/make_learning_data.py``. Every example gets its
training data ``<name>.json`` beside its ``.fpl`` and, where the example is judged on
data it was not trained on, ``<name>_heldout.json`` (same generator, another seed).
The generators are seeded, so the files are reproducible byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def r(x, nd=6):
    return np.round(np.asarray(x, float), nd).tolist()


# ---- deq_classifier: three interleaved spirals -----------------------------------------

SPIRAL_SCALE = 20.0  # outer radius; large inputs put tanh(X @ U) in its saturated range


def spirals(rng, per_class: int = 100, classes: int = 3, turns: float = 0.75):
    """Points on ``classes`` spiral arms (radius t, angle 2 pi (turns t + k / classes)),
    with noise growing along the arm.  X = [x1, x2, 1]: the constant column lets the
    bias-free program of LANGUAGE.md §5 learn offsets."""
    xs, labels = [], []
    for k in range(classes):
        t = rng.uniform(0.15, 1.0, per_class)
        angle = 2 * np.pi * (turns * t + k / classes)
        arm = np.c_[t * np.cos(angle), t * np.sin(angle)]
        xs.append(arm + 0.075 * t[:, None] * rng.normal(size=(per_class, 2)))
        labels.append(np.full(per_class, k + 1))
    x = SPIRAL_SCALE * np.vstack(xs)
    X = np.c_[x, np.ones(len(x))]
    label = np.concatenate(labels)
    return {"N": len(label), "D": 3, "K": classes, "X": r(X), "label": label.tolist()}


# ---- monotone_deq: two interleaved half moons ------------------------------------------


def moons(rng, n: int = 100, noise: float = 0.1):
    """Two interleaved half circles (the classic "moons"), ``n`` points, label 1 on the
    upper moon and 2 on the lower, Gaussian noise of sd ``noise``; X = [x1, x2, 1]."""
    k = n // 2
    upper, lower = rng.uniform(0, np.pi, k), rng.uniform(0, np.pi, n - k)
    x = np.vstack(
        [
            np.c_[np.cos(upper), np.sin(upper)],
            np.c_[1 - np.cos(lower), 0.5 - np.sin(lower)],
        ]
    )
    x = x + noise * rng.normal(size=x.shape)
    label = np.r_[np.ones(k, int), np.full(n - k, 2)]
    return {"N": n, "D": 3, "X": r(np.c_[x, np.ones(n)]), "label": label.tolist()}


# ---- bilevel_ridge / hyperparameter_learning: linear regression with a validation set ---


def ridge_problem(rng, n: int = 40, d: int = 20, noise: float = 1.0):
    """y = X w + noise with w ~ normal(0, 0.5): more noise than signal per coefficient,
    so the best ridge penalty is neither 0 nor infinite."""
    w = rng.normal(0.0, 0.5, size=d)
    Xtr, Xval = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    ytr = Xtr @ w + noise * rng.normal(size=n)
    yval = Xval @ w + noise * rng.normal(size=n)
    return {"n": n, "d": d, "Xtr": r(Xtr), "ytr": r(ytr), "Xval": r(Xval), "yval": r(yval)}


SIGNAL_FEATURES = 5  # hyperparameter_learning: features 1..5 carry signal, the rest are noise


def sparse_problem(rng, n: int = 40, m: int = 200, d: int = 20, noise: float = 1.0):
    """y depends on the first SIGNAL_FEATURES features only; the others are pure noise
    (a per-feature penalty should switch them off).  The coefficients come from their
    own seed, so the training and held-out files share them."""
    truth = np.random.default_rng(2025)
    w = np.zeros(d)
    k = SIGNAL_FEATURES
    w[:k] = truth.choice([-1.0, 1.0], k) * truth.uniform(1.0, 2.0, k)
    split = {}
    for part, rows in (("tr", n), ("val", m)):
        X = rng.normal(size=(rows, d))
        split["X" + part], split["y" + part] = r(X), r(X @ w + noise * rng.normal(size=rows))
    return {"n": n, "m": m, "d": d, **split}


# ---- hopfield: stored +-1 patterns, queries with flipped signs --------------------------


def hopfield(rng, patterns, queries: int, flip: float = 0.2):
    M, d = patterns.shape
    which = rng.integers(0, M, size=queries)
    clean = patterns[which]
    signs = np.where(rng.uniform(size=(queries, d)) < flip, -1.0, 1.0)
    return {
        "M": M,
        "d": d,
        "Q": queries,
        "X": r(patterns),
        "queries": r(clean * signs),
        "clean": r(clean),
        "which": (which + 1).tolist(),
    }


# ---- graph_solver: stationary values of a contractive graph operator --------------------

GRAPH_HIDDEN = 4


def graph(rng, nodes: int = 60, features: int = 3, hidden: int = GRAPH_HIDDEN):
    """A random geometric graph (nodes joined to their 4 nearest neighbours), the
    symmetrically normalised adjacency A = D^-1/2 (adjacency) D^-1/2 (spectral norm 1),
    node features X and targets y = H c where H solves H = tanh(A H W + X B) for a fixed
    true (W, B, c) with ||W||_2 = 0.8 (a contraction, so H is unique).  The true operator
    is drawn from its own seed, so every graph shares it."""
    truth = np.random.default_rng(2024)
    W = truth.normal(size=(hidden, hidden))
    W *= 0.8 / np.linalg.norm(W, 2)
    B = truth.normal(size=(features, hidden))
    c = truth.normal(size=hidden)
    pos = rng.uniform(size=(nodes, 2))
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    adj = np.zeros((nodes, nodes))
    for i, row in enumerate(dist):
        for j in np.argsort(row)[1:5]:
            adj[i, j] = adj[j, i] = 1.0
    deg = adj.sum(1)
    A = adj / np.sqrt(deg[:, None] * deg[None, :])
    X = rng.normal(size=(nodes, features))
    H = np.zeros((nodes, hidden))
    for _ in range(500):
        H = np.tanh(A @ H @ W + X @ B)
    return {"N": nodes, "F": features, "A": r(A), "X": r(X), "y": r(H @ c)}


def main():
    files = {
        "deq_classifier": spirals(np.random.default_rng(301)),
        "deq_classifier_heldout": spirals(np.random.default_rng(302)),
        "bilevel_ridge": ridge_problem(np.random.default_rng(303)),
        "hyperparameter_learning": sparse_problem(np.random.default_rng(304)),
        "hyperparameter_learning_heldout": sparse_problem(np.random.default_rng(305)),
        "graph_solver": graph(np.random.default_rng(306)),
        "graph_solver_heldout": graph(np.random.default_rng(307)),
        "monotone_deq": moons(np.random.default_rng(311), 100),
        "monotone_deq_heldout": moons(np.random.default_rng(312), 400),
    }
    patterns = np.where(np.random.default_rng(308).uniform(size=(8, 64)) < 0.5, -1.0, 1.0)
    files["hopfield"] = hopfield(np.random.default_rng(309), patterns, 40)
    files["hopfield_heldout"] = hopfield(np.random.default_rng(310), patterns, 200)
    for name, data in files.items():
        (HERE / f"{name}.json").write_text(json.dumps(data) + "\n")


if __name__ == "__main__":
    main()
