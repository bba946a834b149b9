"""Compile time of a `map` over implicit nodes against the number of elements (issue 12).

A node inside `map` is solved once per element; its results leave the vmapped trace as
data and are reduced to one report per evaluation, and the host callbacks for failed
solves (forward and backward) are `custom_vmap` functions whose batching rule sends the
whole batch in one callback.  So the compiled program, and its compile time, should not
depend on the number of elements (before, JAX's batching rule of `jax.debug.callback`
unrolled one callback per element: 10 probes 13 s, 400 probes 61 s).

The program: per element i a scalar fixed point z_i = 0.5 tanh(z_i) + a x_i (with the
default Anderson solver); the log density's value and gradient are compiled inside a
collecting scope (`fpl.compiler.reporting.collecting`, as `sample` and `optimize` do, so
the callbacks are compiled in) for N elements, data passed as operands.  Reported: the
time of `jit(...).lower(...).compile()` (trace + lower + XLA compile), the median of
``--repeats`` fresh compiles, and one run's time.

Run:  python benchmarks/bench_map_compile.py [--sizes 10 100 1000 10000] [--repeats 3]
Writes benchmarks/results/map_compile.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

SRC = """
data n: int
data x: real[n]
param a ~ normal(0, 1)
fn solve(xi) = fix z: real = 0.5 * tanh(z) + a * xi
let y = map(solve, x)
target += -0.5 * sum(square(y))
"""


def measure(n: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import fpl
    from fpl.compiler import reporting

    cm = fpl.compile(SRC).bind({"n": n, "x": np.linspace(-1.0, 1.0, n)})
    args = {k: jnp.asarray(v) for k, v in cm.data.items()}
    theta = jnp.asarray([0.3])
    times = []
    with jax.enable_x64(True), reporting.collecting() as events:
        for _ in range(repeats):
            # a fresh function each time: nothing is reused from JAX's caches
            fn = jax.jit(lambda t, a: jax.value_and_grad(lambda u: cm.log_density(u, data=a))(t))
            start = time.perf_counter()
            compiled = fn.lower(theta, args).compile()
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        lp, grad = jax.block_until_ready(compiled(theta, args))
        run = time.perf_counter() - start
        jax.effects_barrier()
    assert np.isfinite(float(lp)) and np.isfinite(float(grad[0]))
    assert not events.counts  # every solve converged: nothing reported
    return {"n": n, "compile_s": statistics.median(times), "compiles": times, "run_s": run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args()
    rows = [measure(n, ns.repeats) for n in ns.sizes]
    print("| elements | compile (s, median) | run (s) |")
    print("|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']} | {r['compile_s']:.2f} | {r['run_s']:.4f} |")
    out = Path(__file__).parent / "results" / "map_compile.json"
    out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
