"""The long fuzzing run, on demand::

    python -m tests.fuzz.run --cases 5000 [--seed 1] [--time-limit 10] [--keep DIR]

Prints the count of mutants run and every failure (exit 3, unlocated error, hang); the
failing mutants are kept in ``--keep`` (default ``fuzz-failures/``).  Exit status 1 when
any failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .mutate import fuzz


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    p.add_argument("--cases", type=int, default=5000, help="mutants to run (default: 5000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per case")
    p.add_argument("--keep", default="fuzz-failures", help="folder for failing mutants")
    args = p.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        count, failures = fuzz(args.cases, args.seed, Path(tmp), args.time_limit)
    keep = Path(args.keep)
    for n, data, bad in failures:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"case{n}.fpl").write_bytes(data)
        print(f"case {n}: " + "; ".join(bad))
    exits = sum(any(b.startswith("exit") for b in bad) for _, _, bad in failures)
    hangs = sum(any(b.startswith("hang") for b in bad) for _, _, bad in failures)
    print(
        f"{count} mutants in {time.monotonic() - start:.0f} s: {len(failures)} failures "
        f"({exits} internal errors, {hangs} hangs)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
