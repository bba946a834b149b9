"""Same results before and after a restructuring: every example (without weights) and
every posteriordb model in tests/posteriordb, sampled with a fixed seed (2 chains x
(200 + 200)), draws and sampler statistics saved; a second call compares two such files
draw for draw.

    python benchmarks/parity.py run before.npz      # on the old code
    python benchmarks/parity.py run after.npz       # on the new code
    python benchmarks/parity.py compare before.npz after.npz

NUTS is deterministic given the seed and the log density's floating-point values, so a
restructuring that keeps the log density's computation gives identical draws; any
difference is reported per model with its size.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def models() -> list[tuple[str, Path, Path]]:
    out = []
    for f in sorted((ROOT / "examples").glob("*.fpl")):
        data = f.with_suffix(".json")
        if data.exists() and "weight" not in f.read_text():
            out.append((f.stem, f, data))
    for f in sorted((ROOT / "tests" / "posteriordb" / "models").glob("*.fpl")):
        out.append(
            ("pdb:" + f.stem, f, ROOT / "tests" / "posteriordb" / "data" / f.stem / "data.json")
        )
    return out


def run(out: str) -> None:
    import fpl

    arrays, seconds = {}, {}
    for name, model, data in models():
        began = time.perf_counter()
        fit = fpl.load(model).sample(
            str(data), chains=2, warmup=200, draws=200, seed=1, progress=False
        )
        seconds[name] = round(time.perf_counter() - began, 2)
        for k, v in fit.posterior.items():
            arrays[f"{name}/{k}"] = np.asarray(v)
        for k in ("lp", "n_leapfrog"):
            arrays[f"{name}/stat/{k}"] = np.asarray(fit.sample_stats[k])
        print(f"{name}: {seconds[name]} s", flush=True)
    np.savez(out, **arrays)
    Path(out + ".json").write_text(json.dumps(seconds, indent=1))


def compare(a: str, b: str) -> int:
    before, after = np.load(a), np.load(b)
    worst: dict[str, float] = {}
    missing = sorted(set(before.files) ^ set(after.files))
    for key in sorted(set(before.files) & set(after.files)):
        x, y = before[key].astype(float), after[key].astype(float)
        diff = float(np.max(np.abs(x - y))) if x.shape == y.shape else float("inf")
        model = key.split("/")[0]
        worst[model] = max(worst.get(model, 0.0), diff)
    for model, diff in worst.items():
        print(f"{model:45s} max |before - after| = {diff:.3g}")
    if missing:
        print("only in one file:", ", ".join(missing))
    identical = sum(d == 0.0 for d in worst.values())
    print(f"{identical} of {len(worst)} models identical draw for draw")
    return 0 if identical == len(worst) and not missing else 1


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
