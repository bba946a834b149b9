"""Plot for deq_classifier.fpl: train it (SGD, as in examples/README.md), then draw the
decision regions of the trained deep-equilibrium classifier over the plane with the
training points, and the loss trace.  The regions are computed here in NumPy by plain
fixed-point iteration of Z = tanh(Z W + X U) with the fitted weights (an independent route
to the model's equilibrium).

Run:  python examples/plot_deq_classifier.py [--steps 120] [-o examples/plots/deq_classifier.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def equilibrium(X: np.ndarray, U: np.ndarray, W: np.ndarray, iters: int = 300) -> np.ndarray:
    Z = np.zeros((X.shape[0], W.shape[0]))
    for _ in range(iters):
        Z = np.tanh(Z @ W + X @ U)
    return Z


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("-o", "--output", default=str(HERE / "plots" / "deq_classifier.png"))
    args = ap.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optax

    import fpl
    from fpl.runtime.io import write_atomic

    d = json.loads((HERE / "deq_classifier.json").read_text())
    res = fpl.load(HERE / "deq_classifier.fpl").optimize(
        d, optimizer=optax.sgd(3e-4), steps=args.steps, seed=0, progress=False
    )
    U, W, V = (np.asarray(res.weights[k]) for k in ("U", "W", "V"))
    X = np.asarray(d["X"], float)
    label = np.asarray(d["label"])
    accuracy = np.mean(np.argmax(equilibrium(X, U, W) @ V, axis=1) + 1 == label)

    lo, hi = X[:, :2].min(axis=0) - 0.3, X[:, :2].max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    grid = np.column_stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])  # X = [x1, x2, 1]
    region = np.argmax(equilibrium(grid, U, W) @ V, axis=1).reshape(gx.shape)

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.5))
    a.contourf(gx, gy, region, levels=np.arange(-0.5, 3), alpha=0.3, cmap="brg")
    a.scatter(X[:, 0], X[:, 1], c=label, s=10, cmap="brg", edgecolors="k", linewidths=0.2)
    a.set_title(f"decision regions after {args.steps} SGD steps (train accuracy {accuracy:.2f})")
    a.set_xlabel("x1")
    a.set_ylabel("x2")
    b.plot(np.arange(1, len(res.trace) + 1), res.trace)
    b.set_xlabel("SGD step")
    b.set_ylabel("negative log likelihood")
    b.set_title("training trace")
    fig.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
