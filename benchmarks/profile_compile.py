"""Where the time goes: tracing/lowering/XLA-compile vs the rest, FPL vs NumPyro.

Run:  python benchmarks/profile_compile.py [eight_schools|logistic]

Counts backend compilations and sums JAX's own compile-phase durations (jax.monitoring
events) during one FPL ``model.sample`` and one NumPyro ``MCMC.run`` (sequential chains),
each preceded by a warm-up run of a different tiny model so imports are not counted.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import numpyro

numpyro.enable_x64()
import jax  # noqa: E402
import jax.monitoring  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import bench_core as bc  # noqa: E402

EVENTS: dict[str, list[float]] = defaultdict(list)


def _listener(event, duration, **kw):
    if "compile" in event or "trace" in event or "lower" in event or "mlir" in event:
        EVENTS[event].append(duration)


jax.monitoring.register_event_duration_secs_listener(_listener)


def report(label, seconds, r):
    comp = sum(sum(ds) for ds in EVENTS.values())
    print(
        f"\n== {label}: total {seconds:.2f} s; JAX trace+lower+compile {comp:.2f} s; "
        f"rest {seconds - comp:.2f} s; leapfrog steps (sampling phase) {r['leapfrog_sampling']}"
    )
    for ev, ds in sorted(EVENTS.items()):
        print(f"  {ev}: n={len(ds)} sum={sum(ds):.2f}s max={max(ds):.2f}s")
    EVENTS.clear()


def main():
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument(
        "model", nargs="?", default="eight_schools", choices=["eight_schools", "logistic"]
    )
    name = ap.parse_args().model
    if name == "eight_schools":
        src, data, params = bc.eight_schools_source(), bc.EIGHT_SCHOOLS_DATA, ["mu"]
    else:
        src, data, params = bc.LOGISTIC_FPL, bc.logistic_data(), ["alpha"]
    # warm imports on a trivial model
    bc.fpl.compile("param m ~ normal(0, 1)").sample(
        {}, chains=1, warmup=10, draws=10, seed=0, progress=False
    )
    EVENTS.clear()
    t = time.perf_counter()
    r = bc.run_fpl(src, data)
    report(f"FPL {name} (sampling_s={r['sampling_s']:.2f})", time.perf_counter() - t, r)
    t = time.perf_counter()
    r = bc.run_numpyro(name, data, params)
    report(f"NumPyro {name}", time.perf_counter() - t, r)


if __name__ == "__main__":
    main()
