"""Plot for bilevel_ridge.fpl: the validation loss as a function of log_lam (closed-form
ridge at each value) and where ``Model.optimize`` ends up, with its loss trace.

Run:  python examples/plot_bilevel_ridge.py [--steps 200] [-o examples/plots/bilevel_ridge.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def val_loss(log_lam: float, d: dict) -> float:
    Xtr, ytr, Xval, yval = (np.asarray(d[k], float) for k in ("Xtr", "ytr", "Xval", "yval"))
    w = np.linalg.solve(Xtr.T @ Xtr + np.exp(log_lam) * np.eye(Xtr.shape[1]), Xtr.T @ ytr)
    return float(np.mean(np.square(Xval @ w - yval)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("-o", "--output", default=str(HERE / "plots" / "bilevel_ridge.png"))
    args = ap.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optax

    import fpl
    from fpl.runtime.io import write_atomic

    d = json.loads((HERE / "bilevel_ridge.json").read_text())
    res = fpl.load(HERE / "bilevel_ridge.fpl").optimize(
        d, optimizer=optax.adam(0.05), steps=args.steps, seed=0, progress=False
    )
    found = float(res.weights["log_lam"])
    grid = np.linspace(-4, 6, 401)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(grid, [val_loss(x, d) for x in grid], label="validation loss (closed form)")
    a.plot([found], [res.loss], "o", label=f"fpl optimize: log_lam = {found:.3f}")
    a.set_xlabel("log_lam")
    a.set_ylabel("validation MSE")
    a.legend()
    b.plot(np.arange(1, len(res.trace) + 1), res.trace)
    b.set_xlabel("adam step")
    b.set_ylabel("validation MSE")
    b.set_title("training trace")
    fig.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
