"""The JIT tax: where a cold and a warm ``sample`` of eight schools spend their time, and
what XLA's CPU fusion emitters cost (issue 14, "No JIT tax").

Run:  python benchmarks/compile_time.py [--model examples/eight_schools.fpl]
          [--repeats 3] [--out benchmarks/results/compile_time.json]

Each measurement is a fresh Python process (XLA reads its flags once, when it starts), in
pairs run alternately so that load on the machine hits both sides alike:

* ``new emitters``: ``FPL_XLA_DEFAULTS=off`` (XLA's default MLIR fusion emitters);
* ``old emitters``: FPL's default, ``--xla_cpu_use_fusion_emitters=false``.

Cold runs use an empty compilation cache (``FPL_CACHE_DIR`` a fresh folder); warm runs
reuse the cache the cold run of the same side filled.  Per run it records wall and CPU
seconds of each phase — import, load (parse + check), sample (bind, init search, trace,
compile, sampling, per-draw pass), summary — and, from ``jax.monitoring``, the seconds
spent tracing, lowering to MLIR and in XLA's backend compiler (summed over programs and
threads, so they can exceed the wall time when devices compile in parallel), plus a hash
of the draws so that both sides can be checked to give the same numbers.

CPU seconds are the figure to compare on a loaded machine; wall seconds are what a user
waits on an idle one.

``--methods`` instead measures the first call of ``CompiledModel``'s
``log_density_gradient``, ``log_density_hessian`` and
``log_density_hessian_vector_product`` (BridgeStan-style use from Python), each in a fresh
process with an empty cache: ``eager`` (the function run op by op, as the methods were
before they were compiled: every primitive compiled on its own) against ``compiled`` (the
methods: one program each), on the model and its data (``--data``; default the model's
``.json``), with the value both give (they must agree).
"""

# ruff: noqa: E501 (the child program is kept as one readable block)
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import collections, hashlib, json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
import numpy as np
import fpl
from jax import monitoring
spent = collections.defaultdict(float)
monitoring.register_event_duration_secs_listener(lambda name, secs, **kw: spent.__setitem__(name, spent[name] + secs))
def mark():
    return time.perf_counter(), time.process_time()
w1, c1 = mark()
model = fpl.load(sys.argv[1])
data = json.load(open(sys.argv[2]))
w2, c2 = mark()
fit = model.sample(data, chains=4, warmup=1000, draws=1000, seed=1, progress=False)
w3, c3 = mark()
fit.summary()
w4, c4 = mark()
digest = hashlib.sha1(b"".join(np.ascontiguousarray(v).tobytes() for _, v in sorted(fit.draws().items()))).hexdigest()
short = {"backend_compile": "/jax/core/compile/backend_compile_duration",
         "trace": "/jax/core/compile/jaxpr_trace_duration",
         "to_mlir": "/jax/core/compile/jaxpr_to_mlir_module_duration"}
print(json.dumps({
    "wall": {"import": w1 - w0, "load": w2 - w1, "sample": w3 - w2, "summary": w4 - w3, "total": w4 - w0},
    "cpu": {"import": c1 - c0, "load": c2 - c1, "sample": c3 - c2, "summary": c4 - c3, "total": c4 - c0},
    "jax": {k: spent.get(v, 0.0) for k, v in short.items()},
    "draws_sha1": digest,
}))
"""

METHODS_CHILD = r"""
import json, sys, time
import jax, numpy as np
import fpl
jax.config.update("jax_enable_x64", True)
model_path, data_path, method, mode = sys.argv[1:5]
cm = fpl.load(model_path).bind(json.load(open(data_path)))
theta = np.linspace(-0.5, 0.5, cm.param_unc_num())
f = lambda t: cm.evaluate(t).log_density
eager = {"gradient": lambda: jax.value_and_grad(f)(theta),
         "hessian": lambda: jax.jacfwd(jax.grad(f))(theta),
         "hvp": lambda: jax.jvp(jax.grad(f), (theta,), (theta,))[1]}
compiled = {"gradient": lambda: cm.log_density_gradient(theta)[1],
            "hessian": lambda: cm.log_density_hessian(theta)[2],
            "hvp": lambda: cm.log_density_hessian_vector_product(theta, theta)[1]}
call = (eager if mode == "eager" else compiled)[method]
w0, c0 = time.perf_counter(), time.process_time()
value = jax.block_until_ready(call())
w1, c1 = time.perf_counter(), time.process_time()
jax.block_until_ready(call())
w2, c2 = time.perf_counter(), time.process_time()
value = np.asarray(value[1] if method == "gradient" and mode == "eager" else value)
print(json.dumps({"first_wall": w1 - w0, "first_cpu": c1 - c0, "second_wall": w2 - w1,
                  "second_cpu": c2 - c1, "sum": float(np.sum(value)), "n": int(theta.size)}))
"""


def methods(model: Path, data: Path, repeats: int) -> dict:
    """First-call seconds of the gradient, Hessian and HVP, eager and compiled."""
    out: dict[str, dict[str, list]] = {}
    for method in ("gradient", "hessian", "hvp"):
        for mode in ("eager", "compiled"):
            for _ in range(repeats):
                with tempfile.TemporaryDirectory() as cache:
                    env = {**os.environ, "FPL_CACHE_DIR": cache}
                    done = subprocess.run(
                        [sys.executable, "-c", METHODS_CHILD, str(model), str(data), method, mode],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                row = json.loads(done.stdout.strip().splitlines()[-1])
                out.setdefault(method, {}).setdefault(mode, []).append(row)
                print(
                    f"{model.stem:30s} {method:9s} {mode:9s} first call cpu {row['first_cpu']:6.2f}s "
                    f"wall {row['first_wall']:6.2f}s | second {row['second_wall'] * 1e3:7.2f} ms "
                    f"(sum {row['sum']:.12g}, n {row['n']})",
                    flush=True,
                )
    return out


SIDES = {"new emitters": {"FPL_XLA_DEFAULTS": "off"}, "old emitters": {}}


def run_once(model: Path, data: Path, env: dict[str, str]) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FPL_XLA_DEFAULTS")}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(data)],
        env=full,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "examples" / "eight_schools.fpl"))
    parser.add_argument("--data", default=None, help="the data (default: the model's .json)")
    parser.add_argument("--methods", action="store_true", help="time the compiled methods")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compile_time.json"))
    a = parser.parse_args(argv)
    model = Path(a.model)
    data = Path(a.data) if a.data else model.with_suffix(".json")
    if a.methods:
        result = {
            "machine": platform.platform(),
            "load_before": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "model": model.name,
            "methods": methods(model, data, a.repeats),
        }
        if a.out != parser.get_default("out"):
            Path(a.out).write_text(json.dumps(result, indent=1))
        return
    runs: dict[str, list] = {side: [] for side in SIDES}
    for r in range(a.repeats):
        for side, env in SIDES.items():
            with tempfile.TemporaryDirectory() as cache:
                env = {**env, "FPL_CACHE_DIR": cache}
                cold = run_once(model, data, env)
                warm = run_once(model, data, env)
            runs[side].append({"cold": cold, "warm": warm})
            print(
                f"[{r}] {side:13s} cold wall {cold['wall']['total']:6.2f}s cpu "
                f"{cold['cpu']['total']:6.2f}s (backend compile {cold['jax']['backend_compile']:5.2f}s)"
                f" | warm wall {warm['wall']['total']:6.2f}s cpu {warm['cpu']['total']:6.2f}s",
                flush=True,
            )
    hashes = {run[kind]["draws_sha1"] for side in runs.values() for run in side for kind in run}
    result = {
        "machine": platform.platform(),
        "cores": os.cpu_count(),
        "load_before": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": model.name,
        "same_draws_everywhere": len(hashes) == 1,
        "runs": runs,
    }
    Path(a.out).write_text(json.dumps(result, indent=1))
    print("same draws on both sides, cold and warm:", len(hashes) == 1)


if __name__ == "__main__":
    main()
