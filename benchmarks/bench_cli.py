"""CLI benchmark: cold ``fpl check`` and ``fpl sample`` wall times, process start to exit.

Run:  python benchmarks/bench_cli.py [--reps 3]

* ``fpl check examples/eight_schools.fpl``: target < 1 s; also verifies that the check
  path never imports jax (``'jax' in sys.modules`` after ``main(['check', path])``).
* ``fpl sample examples/eight_schools.fpl --data examples/eight_schools.json``:
  first run against an empty JAX persistent compilation cache (FPL_CACHE_DIR pointed at a
  fresh temp dir; target <= 12 s), then repeated runs with the same cache (target <= 5 s).
Writes benchmarks/results/cli.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL = ROOT / "examples" / "eight_schools.fpl"
DATA = ROOT / "examples" / "eight_schools.json"


def fpl_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "fpl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "fpl"]


def timed(cmd, env=None, cwd=None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, p


def cache_files(d: Path) -> int:
    return sum(1 for p in d.rglob("*") if p.is_file()) if d.exists() else 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default=str(MODEL))
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(HERE / "results" / "cli.json"))
    ap.add_argument("--sample-args", default="", help="extra args for fpl sample, e.g. '--seed 1'")
    a = ap.parse_args(argv)
    model, data = a.model, a.data
    res: dict = {"model": model, "data": data, "cmd": fpl_cmd()}

    # ---- fpl check ----
    checks = []
    for _ in range(a.reps):
        t, p = timed([*fpl_cmd(), "check", model])
        checks.append({"s": t, "rc": p.returncode, "stderr_tail": p.stderr[-300:]})
    res["check"] = checks
    probe = (
        "import sys; from fpl.runtime.cli import main\n"
        "try:\n    main(['check', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "print('JAX_IMPORTED=' + str(any(m == 'jax' or m.startswith('jax.') for m in sys.modules)))"
    )
    p = subprocess.run([sys.executable, "-c", probe, model], capture_output=True, text=True)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("JAX_IMPORTED=")]
    res["check_imports_jax"] = (line[0].split("=")[1] == "True") if line else None
    res["check_probe_stderr"] = p.stderr[-500:]
    # import time of the check path (python -X importtime), top cumulative entries
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fpl", "check", model],
        capture_output=True,
        text=True,
    )
    rows = []
    for ln in p.stderr.splitlines():
        if ln.startswith("import time:") and "|" in ln:
            parts = [x.strip() for x in ln[len("import time:") :].split("|")]
            if parts[1].isdigit():
                rows.append((int(parts[1]), parts[2]))
    res["check_importtime_top_us"] = sorted(rows, reverse=True)[:8]

    # ---- fpl sample: cold cache, then warm cache ----
    extra = a.sample_args.split()
    first, repeated = [], []
    for rep in range(a.reps):
        cache = Path(tempfile.mkdtemp(prefix="fpl-bench-cache-"))
        env = {**os.environ, "FPL_CACHE_DIR": str(cache)}
        with tempfile.TemporaryDirectory() as outdir:
            cmd = [*fpl_cmd(), "sample", model, "--data", data, *extra]
            t, p = timed(cmd, env=env, cwd=outdir)
            first.append(
                {
                    "s": t,
                    "rc": p.returncode,
                    "cache_files": cache_files(cache),
                    "stderr_tail": p.stderr[-300:],
                }
            )
            t2, p2 = timed(cmd, env=env, cwd=outdir)
            repeated.append(
                {
                    "s": t2,
                    "rc": p2.returncode,
                    "cache_files": cache_files(cache),
                    "stderr_tail": p2.stderr[-300:],
                }
            )
        shutil.rmtree(cache, ignore_errors=True)
        print(
            f"rep {rep + 1}: first {t:.2f}s (rc {p.returncode}), repeated {t2:.2f}s "
            f"(rc {p2.returncode})",
            flush=True,
        )
    res["sample_first"] = first
    res["sample_repeated"] = repeated
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(table(res))


def table(res) -> str:
    def row(name, runs, target):
        ts = [r["s"] for r in runs]
        rcs = ",".join(str(r["rc"]) for r in runs)
        return (
            f"| {name} | {' / '.join(f'{t:.2f}' for t in ts)} | {statistics.median(ts):.2f} "
            f"| {target} | {rcs} |"
        )

    lines = [
        "| command | runs (s) | median (s) | target | exit codes |",
        "|---|---|---|---|---|",
        row("fpl check", res["check"], "< 1 s"),
        row("fpl sample, empty cache", res["sample_first"], "<= 12 s"),
        row("fpl sample, warm cache", res["sample_repeated"], "<= 5 s"),
        "",
        f"`fpl check` imports jax: {res['check_imports_jax']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
