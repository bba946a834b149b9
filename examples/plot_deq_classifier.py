"""Plot for deq_classifier.fpl and monotone_deq.fpl: train one (Adam 1e-2, as in
examples/README.md), then draw the decision regions of the trained deep-equilibrium
classifier over the plane with the training points, and the loss trace.  The regions are
computed here in NumPy with the fitted weights (an independent route to the model's
equilibrium): plain fixed-point iteration of Z = tanh(Z W + X U) for the contractive
DEQ; forward-backward splitting z <- relu(z - a ((I - W) z - U'x)) with a = m / ‖I - W‖²
(a contraction, I - W being m-strongly monotone) for the monotone one.

Run:  python examples/plot_deq_classifier.py [--example monotone_deq] [--steps 400]
      [-o examples/plots/deq_classifier.png]
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


def monotone_equilibrium(X, U, W, margin: float = 0.1, iters: int = 3000) -> np.ndarray:
    """z = relu(W z + U'x) for every row x of X, by forward-backward splitting."""
    forward = np.eye(W.shape[0]) - W
    step = margin / np.linalg.norm(forward, 2) ** 2
    Z = np.zeros((X.shape[0], W.shape[0]))
    C = X @ U
    for _ in range(iters):
        Z = np.maximum(Z - step * (Z @ forward.T - C), 0.0)
    return Z


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--example", choices=("deq_classifier", "monotone_deq"), default="deq_classifier"
    )
    ap.add_argument(
        "--steps", type=int, default=None, help="400 (deq_classifier), 200 (monotone_deq)"
    )
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args(argv)
    steps = args.steps or (400 if args.example == "deq_classifier" else 200)
    output = args.output or str(HERE / "plots" / f"{args.example}.png")

    import jax

    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optax

    import fpl
    from fpl.runtime.io import write_atomic

    d = json.loads((HERE / f"{args.example}.json").read_text())
    res = fpl.load(HERE / f"{args.example}.fpl").optimize(
        d, optimizer=optax.adam(1e-2), steps=steps, seed=0, progress=False
    )
    U, W, V = (np.asarray(res.weights[k]) for k in ("U", "W", "V"))
    solve = equilibrium if args.example == "deq_classifier" else monotone_equilibrium
    X = np.asarray(d["X"], float)
    label = np.asarray(d["label"])
    accuracy = np.mean(np.argmax(solve(X, U, W) @ V, axis=1) + 1 == label)

    lo, hi = X[:, :2].min(axis=0) - 0.3, X[:, :2].max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    grid = np.column_stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])  # X = [x1, x2, 1]
    region = np.argmax(solve(grid, U, W) @ V, axis=1).reshape(gx.shape)

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.5))
    a.contourf(gx, gy, region, levels=np.arange(-0.5, 3), alpha=0.3, cmap="brg")
    a.scatter(X[:, 0], X[:, 1], c=label, s=10, cmap="brg", edgecolors="k", linewidths=0.2)
    a.set_title(f"{args.example}: {steps} Adam steps (train accuracy {accuracy:.2f})")
    a.set_xlabel("x1")
    a.set_ylabel("x2")
    b.plot(np.arange(1, len(res.trace) + 1), res.trace)
    b.set_xlabel("Adam step")
    b.set_ylabel("negative log likelihood")
    b.set_title("training trace")
    fig.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(output, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
