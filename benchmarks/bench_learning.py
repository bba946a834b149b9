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
    2*S-step and an S-step run, which compile the same chunk; a persistent compilation
    cache in a temporary folder makes the second compile a cache load) vs a hand-written
    loop of the same model: ``jax.jit`` of ``value_and_grad(-model.log_density(weights=
    ...))`` and the same optax update, called from Python.  Both time the *same* steps,
    S+1..2S from the same start: the fixed point needs more Anderson iterations as the
    weights train (19 at the start, ~45 after 200 steps), so steps are not all equal
    work.  Wall-clock and process CPU time (all threads; less sensitive to other jobs on
    a loaded machine) are both reported.  Ratio = FPL time / peer time.  A second FPL
    estimate, free of compile time: the time between the ends of the first and second
    chunks of the 2S-step run (a progress-bar subclass records when each chunk ends).

Runs alternate (A B A B ...) in one process; medians are reported.  Writes
benchmarks/results/learning.json (with ``--only``, replaces that part of it) and prints
a markdown table.
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
    import tempfile

    import fpl.runtime.nuts as nuts

    load_before = os.getloadavg()[0]
    model = fpl.load(EXAMPLE)
    init = {k: np.asarray(v) for k, v in weights().items()}
    optimizer = optax.sgd(LR)
    stamps: list[tuple[float, float]] = []  # (wall, cpu) at the end of every chunk
    last_loss = [0.0, 0.0]  # of the last FPL and peer runs: the same steps, the same work

    class Clock(nuts.Progress):
        def update(self, n, extra=""):
            stamps.append((time.perf_counter(), time.process_time()))
            super().update(n, extra)

    def fpl_run(n):
        c = time.process_time()
        stamps.clear()
        plain, nuts.Progress = nuts.Progress, Clock  # optimize imports it at call time
        try:
            res = model.optimize(
                DATA, optimizer=optimizer, steps=n, init=init, seed=0, progress=False
            )
        finally:
            nuts.Progress = plain
        last_loss[0] = float(res.trace[-1])
        return res.attrs["seconds"], time.process_time() - c

    step = step_fn(model, optimizer)

    def peer_run(n):
        """Steps n+1..2n (the ones the FPL difference times), after n untimed steps."""
        w = {k: jnp.asarray(v) for k, v in init.items()}
        state = optimizer.init(w)
        for _ in range(n):  # compiled on the first call, outside the timing
            w, state, value = step(w, state)
        jax.block_until_ready(value)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            w, state, value = step(w, state)
        jax.block_until_ready(value)
        last_loss[1] = float(value)
        return time.perf_counter() - t, time.process_time() - c

    fpl_times, peer_times, fpl_cpu, peer_cpu, chunk_times, chunk_cpu = [], [], [], [], [], []
    # (JAX decides once per process whether to use the cache: after part (a) has compiled,
    # it may not be; that only adds compile noise to the difference, not to the chunk time)
    with tempfile.TemporaryDirectory() as cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        fpl_run(steps)  # warm: traces, and fills the persistent compilation cache
        for _ in range(reps):  # interleaved
            w2, c2 = fpl_run(2 * steps)
            fpl_loss = last_loss[0]
            (a, ac), (b, bc) = stamps[-2:]  # the second chunk alone: steps S+1..2S
            chunk_times.append((b - a) / steps)
            chunk_cpu.append((bc - ac) / steps)
            w1, c1 = fpl_run(steps)
            fpl_times.append((w2 - w1) / steps)
            fpl_cpu.append((c2 - c1) / steps)
            wp, cp = peer_run(steps)
            peer_times.append(wp / steps)
            peer_cpu.append(cp / steps)
            print(
                f"  FPL {1e3 * fpl_times[-1]:.2f} ms (cpu {1e3 * fpl_cpu[-1]:.2f}), "
                f"chunk {1e3 * chunk_times[-1]:.2f} ms (cpu {1e3 * chunk_cpu[-1]:.2f}), "
                f"peer {1e3 * peer_times[-1]:.2f} ms (cpu {1e3 * peer_cpu[-1]:.2f})",
                flush=True,
            )
        jax.config.update("jax_compilation_cache_dir", None)
    f, p = statistics.median(fpl_times), statistics.median(peer_times)
    fc, pc = statistics.median(fpl_cpu), statistics.median(peer_cpu)
    out = {
        "steps": steps,
        # the loss at step 2S: FPL's and the peer's runs follow the same path
        "loss_at_2S": {"fpl": fpl_loss, "peer": last_loss[1]},
        "timed_steps": f"{steps + 1}..{2 * steps}",
        "fpl_ms_per_step": round(1e3 * f, 3),
        "peer_ms_per_step": round(1e3 * p, 3),
        "fpl_steps_per_s": round(1 / f, 2),
        "peer_steps_per_s": round(1 / p, 2),
        "ratio": round(f / p, 3),
        "fpl_cpu_ms_per_step": round(1e3 * fc, 3),
        "peer_cpu_ms_per_step": round(1e3 * pc, 3),
        "ratio_cpu": round(fc / pc, 3),
        # the same FPL steps timed inside the 2S-step run (between its chunk ends)
        "chunk_ratio": round(statistics.median(chunk_times) / p, 3),
        "chunk_ratio_cpu": round(statistics.median(chunk_cpu) / pc, 3),
        "chunk_ms_per_step": round(1e3 * statistics.median(chunk_times), 3),
        "chunk_cpu_ms_per_step": round(1e3 * statistics.median(chunk_cpu), 3),
        "ratio_per_repeat": [round(a / b, 3) for a, b in zip(fpl_times, peer_times)],
        "chunk_ratio_per_repeat": [round(a / b, 3) for a, b in zip(chunk_times, peer_times)],
        "chunk_ratio_cpu_per_repeat": [round(a / b, 3) for a, b in zip(chunk_cpu, peer_cpu)],
        "ratio_cpu_per_repeat": [round(a / b, 3) for a, b in zip(fpl_cpu, peer_cpu)],
        "fpl_all_ms": [round(1e3 * x, 3) for x in fpl_times],
        "peer_all_ms": [round(1e3 * x, 3) for x in peer_times],
        "fpl_all_cpu_ms": [round(1e3 * x, 3) for x in fpl_cpu],
        "peer_all_cpu_ms": [round(1e3 * x, 3) for x in peer_cpu],
        # other jobs on the machine: the 1-minute load average before and after
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
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
    out = HERE / "results" / "learning.json"
    if args.only is not None and out.exists():  # one part re-run: keep the other's numbers
        results = {**json.loads(out.read_text()), **results}
    from fpl.runtime.io import write_atomic

    text = json.dumps(results, indent=1) + "\n"
    write_atomic(str(out), lambda tmp: Path(tmp).write_text(text))
    if "depth" in results:
        print("| max_iter | implicit ms | unrolled ms | implicit temp MiB | unrolled temp MiB |")
        print("|---|---|---|---|---|")
        for r in results["depth"]:
            print(
                f"| {r['max_iter']} | {r['implicit_ms']} | {r['unrolled_ms']} | "
                f"{r['implicit_temp_mb']} | {r['unrolled_temp_mb']} |"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
