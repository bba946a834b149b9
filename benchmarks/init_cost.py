"""The cost of ``sample``'s Pathfinder starts (``fpl.runtime.inits.pathfinder_starts``):
seconds of ``find_inits`` with and without them, and of a whole short ``sample``, per model.

    python benchmarks/init_cost.py [posteriordb names...]

Run at low priority on a quiet machine; the figures are wall-clock seconds in this process
(the first call of each kind includes its compile, the second shows the run alone)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import fpl
from fpl.runtime.inits import find_inits

HERE = Path(__file__).resolve().parents[1] / "tests" / "posteriordb"
DEFAULT = ("eight_schools-eight_schools_noncentered", "kidiq-kidscore_momiq", "arK-arK")


def measure(name: str) -> dict[str, float]:
    model = fpl.load(HERE / "models" / f"{name}.fpl")
    data = json.loads((HERE / "data" / name / "data.json").read_text())
    times: dict[str, float] = {}
    with jax.enable_x64(True):
        cm = model.bind(data)
        args = {k: jnp.asarray(v) for k, v in cm.prepare_data().items()}
        for label, pathfinder in (("random", False), ("pathfinder", True)):
            for attempt in ("first", "again"):
                began = time.perf_counter()
                find_inits(cm, args, 4, 1, None, pathfinder=pathfinder)
                times[f"{label} {attempt}"] = time.perf_counter() - began
    began = time.perf_counter()
    model.sample(data, chains=4, warmup=200, draws=200, seed=1, progress=False)
    times["sample 4 x (200 + 200)"] = time.perf_counter() - began
    return times


def main(names: list[str]) -> None:
    for name in names or DEFAULT:
        shown = ", ".join(f"{k} {v:.2f} s" for k, v in measure(name).items())
        print(f"{name}: {shown}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
