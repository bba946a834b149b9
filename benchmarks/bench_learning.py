"""Learning benchmarks: the DEQ classifier of LANGUAGE.md §5 (examples/deq_classifier.fpl).

Run:  python benchmarks/bench_learning.py [--reps 3] [--only depth|throughput]

(a) depth: one training step (value and gradient of the loss w.r.t. the weights, then an
    SGD update), jit-compiled, with ``grad=implicit`` vs ``grad=unrolled`` as the solver's
    ``max_iter`` grows.  Reports the median step time and XLA's ``memory_analysis`` of the
    compiled step (temporary buffers: what back-propagation through the iterations keeps).
    The implicit forward stops at the tolerance (1e-8, the default); the unrolled one is a
    ``fori_loop`` that always runs ``max_iter`` steps (it must, to be differentiable), so
    below the iterations needed to converge both report a non-converged (NaN) loss.
(b) throughput: ``Model.optimize`` (steps/s, compile excluded: the difference of a
    2*S-step and an S-step run, which compile the same chunk) vs a hand-written loop of
    the same model: ``jax.jit`` of ``value_and_grad(-model.log_density(weights=...))`` and
    the same optax update, called S times from Python.  Ratio = FPL time / peer time.

Runs alternate (A B A B ...) in one process; medians are reported.  Writes
benchmarks/results/learning.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import fpl  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "deq_classifier.fpl"
DATA = json.loads((ROOT / "examples" / "deq_classifier.json").read_text())
DEPTHS = (5, 10, 20, 50, 100, 200)
LR = 3e-4
SOLVE = "with anderson(memory=5)"


def weights(seed: int = 5) -> dict:
    """Random weights at the §5 init scales (W rescaled to spectral norm 0.9, so the
    fixed point needs a few dozen Anderson steps, as after some training)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(32, 32))
    return {
        "U": jnp.asarray(0.1 * rng.normal(size=(3, 32))),
        "W": jnp.asarray(0.9 * W / np.linalg.norm(W, 2)),
        "V": jnp.asarray(0.1 * rng.normal(size=(32, 3))),
    }


def variant(max_iter: int, grad: str) -> fpl.Model:
    source = EXAMPLE.read_text()
    assert SOLVE in source
    return fpl.compile(
        source.replace(SOLVE, f"with anderson(memory=5, max_iter={max_iter}) grad={grad}")
        + "out iterations = Z.iterations\n"
    )


def step_fn(model: fpl.Model, optimizer):
    def loss(w):
        return -model.log_density({}, DATA, weights=w)

    @jax.jit
    def step(w, state):
        value, g = jax.value_and_grad(loss)(w)
        updates, state = optimizer.update(g, state, w)
        return optax.apply_updates(w, updates), state, value

    return step


def timed(fn, *args, repeat: int = 5) -> float:
    out = fn(*args)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_depth(reps: int) -> list[dict]:
    rows = []
    optimizer = optax.sgd(LR)
    w = weights()
    state = optimizer.init(w)
    for depth in DEPTHS:
        row = {"max_iter": depth}
        times = {"implicit": [], "unrolled": []}
        for grad in ("implicit", "unrolled"):
            model = variant(depth, grad)
            step = step_fn(model, optimizer)
            compiled = step.lower(w, state).compile()
            mem = compiled.memory_analysis()
            row[f"{grad}_temp_mb"] = round(mem.temp_size_in_bytes / 2**20, 2)
            _, _, value = step(w, state)
            row[f"{grad}_loss"] = float(value)
            row["iterations"] = int(model.constrain({}, DATA, weights=w)["iterations"])
            row[f"_{grad}"] = step
        for _ in range(reps):  # interleaved
            for grad in ("implicit", "unrolled"):
                times[grad].append(timed(row[f"_{grad}"], w, state))
        for grad in ("implicit", "unrolled"):
            del row[f"_{grad}"]
            row[f"{grad}_ms"] = round(1e3 * statistics.median(times[grad]), 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def bench_throughput(reps: int, steps: int = 200) -> dict:
    model = fpl.load(EXAMPLE)
    init = {k: np.asarray(v) for k, v in weights().items()}
    optimizer = optax.sgd(LR)

    def fpl_run(n):
        res = model.optimize(DATA, optimizer=optimizer, steps=n, init=init, seed=0, progress=False)
        return res.attrs["seconds"]

    step = step_fn(model, optimizer)

    def peer_run(n):
        w = {k: jnp.asarray(v) for k, v in init.items()}
        state = optimizer.init(w)
        jax.block_until_ready(step(w, state))  # compiled once, outside the timing
        t = time.perf_counter()
        for _ in range(n):
            w, state, value = step(w, state)
        jax.block_until_ready(value)
        return time.perf_counter() - t

    fpl_times, peer_times = [], []
    fpl_run(steps)  # warm: traces, and fills the persistent compilation cache
    for _ in range(reps):
        fpl_times.append((fpl_run(2 * steps) - fpl_run(steps)) / steps)
        peer_times.append(peer_run(steps) / steps)
    f, p = statistics.median(fpl_times), statistics.median(peer_times)
    out = {
        "steps": steps,
        "fpl_ms_per_step": round(1e3 * f, 3),
        "peer_ms_per_step": round(1e3 * p, 3),
        "fpl_steps_per_s": round(1 / f, 2),
        "peer_steps_per_s": round(1 / p, 2),
        "ratio": round(f / p, 3),
        "fpl_all_ms": [round(1e3 * x, 3) for x in fpl_times],
        "peer_all_ms": [round(1e3 * x, 3) for x in peer_times],
    }
    print(out, flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["depth", "throughput"])
    args = ap.parse_args()
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "device": str(jax.devices()[0]),
        },
        "model": "examples/deq_classifier.fpl (N=300, D=3, K=3, hidden 32), sgd",
    }
    if args.only in (None, "depth"):
        results["depth"] = bench_depth(args.reps)
    if args.only in (None, "throughput"):
        results["throughput"] = bench_throughput(args.reps)
    out = (
        HERE / "results" / ("learning.json" if args.only is None else f"learning_{args.only}.json")
    )
    from fpl.runtime.io import write_atomic

    text = json.dumps(results, indent=1) + "\n"
    write_atomic(str(out), lambda tmp: Path(tmp).write_text(text))
    if "depth" in results:
        print("| max_iter | implicit ms | unrolled ms | implicit temp MiB | unrolled temp MiB |")
        print("|---|---|---|---|---|")
        for r in results["depth"]:
            print(f"| {r['max_iter']} | {r['implicit_ms']} | {r['unrolled_ms']} | "
                  f"{r['implicit_temp_mb']} | {r['unrolled_temp_mb']} |")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
