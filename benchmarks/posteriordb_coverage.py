"""posteriordb coverage: which posteriors FPL translates, and which of those match.

    python benchmarks/posteriordb_coverage.py                 # table from the last results
    python benchmarks/posteriordb_coverage.py --run           # sample every translation
    python benchmarks/posteriordb_coverage.py --run NAME ...  # sample these, keep the rest

Lists every posterior of posteriordb (``posterior_database/posteriors/*.json`` in the local
mirror, ``--mirror``), whether it has reference draws, whether ``tests/posteriordb`` has
an FPL translation, and, for translations with a reference, whether the translation matches
it by the agreement rule of ``tests/posteriordb/test_posteriordb.py`` (the same function
does the sampling and the checking: 4 chains x (500 + 500) unless its ``SETTINGS`` say
otherwise, means within 0.1 reference sds, sds within 15 %, Monte Carlo se <= 0.05 sds,
R-hat < 1.01, no divergences; the components in its ``LOG_SCALE`` compared by their logs).

Writes ``benchmarks/results/posteriordb_coverage.json`` (per posterior: the listing, and
for those sampled the verdict, the problems, the seconds taken, the worst mean deviation
and Monte Carlo se in reference sds, the smallest bulk ESS; the machine and the date of
each run) and ``docs/posteriordb.md`` (the table). Results of earlier runs are kept for
posteriors not sampled this time, so the table can be refreshed one model at a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "posteriordb"
RESULTS = ROOT / "benchmarks" / "results" / "posteriordb_coverage.json"
TABLE = ROOT / "docs" / "posteriordb.md"
MIRROR = Path("/work/.mirror/stan-dev+posteriordb/repo")
DATABASE = "posterior_database"
DRAWS = f"{DATABASE}/reference_posteriors/draws/draws"

#: Why a posterior with reference draws has no translation here (or no reference file).
NOTES = {
    "mcycle_gp-accel_gp": (
        "reference sds from posteriordb's mean and mean-square summaries (the draws file "
        "is absent from the mirror); not matching yet (`KNOWN_MISMATCH`): at Stan's "
        "adapt_delta 0.999 and max_treedepth 15 no divergences and sds within 6 %, but "
        "Intercept's ESS 299 and R-hat 1.011, sdgp_1's mean 0.111 sds off (1556 s)"
    ),
}


def git(mirror: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(mirror), *args], capture_output=True, text=True, check=False
    )


def translated(name: str) -> bool:
    """Is there a translation of this posterior: ``models/<posterior>.fpl``, or
    ``unreferenced/<posterior>.fpl`` (no reference draws: test_unreferenced.py)."""
    return any((TESTS / folder / f"{name}.fpl").is_file() for folder in ("models", "unreferenced"))


def model_only(model: str) -> bool:
    """Is the Stan model translated (``unreferenced/<model>.fpl``, on simulated data) though
    not this posterior's data."""
    return (TESTS / "unreferenced" / f"{model}.fpl").is_file()


def listing(mirror: Path) -> list[dict]:
    """Every posterior of posteriordb with its model, data, keywords and reference state."""
    tree = git(mirror, "ls-tree", "HEAD", f"{DATABASE}/posteriors/", f"{DRAWS}/")
    posteriors, draws = [], {}
    for line in tree.stdout.splitlines():
        meta, path = line.split("\t")
        file = path.rsplit("/", 1)[-1]
        if path.startswith(f"{DATABASE}/posteriors/") and file.endswith(".json"):
            posteriors.append(file.removesuffix(".json"))
        elif file.endswith(".json.zip"):
            draws[file.removesuffix(".json.zip")] = meta.split()[2]
    rows = []
    for name in sorted(posteriors):
        info = json.loads(git(mirror, "show", f"HEAD:{DATABASE}/posteriors/{name}.json").stdout)
        blob = draws.get(name)
        stored = blob is not None and git(mirror, "cat-file", "-e", blob).returncode == 0
        rows.append(
            {
                "posterior": name,
                "model": info["model_name"],
                "data": info["data_name"],
                "keywords": info.get("keywords", []),
                "reference_draws": blob is not None,
                "reference_draws_in_mirror": stored,
                "translated": translated(name),
                "model_translated": model_only(info["model_name"]),
                "reference_file": (TESTS / "data" / name / "reference.json").is_file(),
            }
        )
    return rows


def machine() -> dict:
    """Where and when: CPU, cores, load, Python and library versions, UTC date."""
    import jax
    import numpyro

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
    }


def run(names: list[str]) -> dict:
    """Sample each posterior by the test's rule; its verdict and measurements."""
    os.environ.setdefault("FPL_HOST_DEVICES", "1")  # as the test suite (tests/conftest.py)
    import jax

    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, str(TESTS))
    import test_posteriordb as rule

    from fpl.dsl.diagnostics import FplError

    out = {}
    for name in names:
        start = time.perf_counter()
        try:
            fit = rule.sample(name)
        except FplError as failure:  # a coded error (e.g. E0412, a stuck chain)
            first_line = str(failure).splitlines()[0]
            seconds = time.perf_counter() - start
            out[name] = {"matches": False, "problems": [first_line], "seconds": round(seconds, 1)}
            print(f"{name}: FAILED ({first_line})")
            continue
        seconds = time.perf_counter() - start
        problems = rule.check_fit(name, fit)
        # each component on the scale the rule compares it (rule.LOG_SCALE: its logs)
        rows = rule.compared(name, fit, rule.load_json(name, "reference.json")).values()
        out[name] = {
            "matches": not problems,
            "problems": problems,
            "seconds": round(seconds, 1),
            "worst_mean_deviation_sds": max(abs(row.mean - r["mean"]) / r["sd"] for row, r in rows),
            "worst_sd_ratio_deviation": max(abs(row.sd / r["sd"] - 1) for row, r in rows),
            "worst_mcse_sds": max(row.mcse / r["sd"] for row, r in rows),
            "min_ess_bulk": min(row.ess_bulk for row, _ in rows),
            "max_r_hat": max(row.r_hat for row, _ in rows),
            "divergences": int(sum(int(d) for d in fit.divergences)),
        }
        print(f"{name}: {'matches' if not problems else 'DIFFERS'} ({seconds:.0f} s)")
        for problem in problems:
            print(f"    {problem}")
    return out


def verdict(row: dict, result: dict | None) -> str:
    if not row["translated"]:
        return ""
    if not row["reference_file"]:
        return "no reference"
    if result is None:
        return "not run"
    return "yes" if result["matches"] else "**no**"


def table(rows: list[dict], results: dict, runs: list[dict]) -> str:
    """docs/posteriordb.md: the counts, the machine and dates, one line per posterior."""
    with_reference = [r for r in rows if r["reference_draws"]]
    translated = [r for r in rows if r["translated"]]
    translated_ref = [r for r in translated if r["reference_draws"]]
    matching = [r for r in translated_ref if results.get(r["posterior"], {}).get("matches")]
    sampled = [results[r["posterior"]] for r in translated_ref if r["posterior"] in results]
    seconds = sum(result["seconds"] for result in sampled)
    lines = [
        "# posteriordb coverage",
        "",
        "<!-- Generated by `python benchmarks/posteriordb_coverage.py --run`; raw results in "
        "benchmarks/results/posteriordb_coverage.json. -->",
        "",
        "[posteriordb](https://github.com/stan-dev/posteriordb) is the Stan project's database "
        "of models, data and reference posteriors. FPL's translations live in "
        "`tests/posteriordb/models/` (ported line by line from the Stan code), their data and "
        "reference summaries in `tests/posteriordb/data/` "
        "(`benchmarks/posteriordb_import.py`). A translation *matches* when, sampled with "
        "4 chains x (500 warmup + 500 draws) (or the settings the test gives it, each with "
        "its reason, e.g. Stan's own adapt_delta for its reference), every reference "
        "component's mean is within 0.1 reference sds, its sd within 15 %, its Monte Carlo "
        "standard error at most 0.05 sds, its R-hat below 1.01, with no divergent "
        "transitions: the rule of `tests/posteriordb/test_posteriordb.py`, which checks "
        "every translation in the whole suite's slow tier. A component whose tail is too "
        "heavy for a mean and sd to be estimated (one_comp_mm_elim_abs's K_m and V_m: "
        "infinite variance) is compared by the mean and sd of its logs.",
        "",
        "| | posteriors |",
        "|---|---|",
        f"| in posteriordb | {len(rows)} |",
        f"| with reference draws | {len(with_reference)} |",
        f"| translated to FPL | {len(translated)} |",
        f"| translated, with reference draws | {len(translated_ref)} |",
        f"| translated and matching the reference | {len(matching)} |",
        "",
        f"Sampling the {len(sampled)} translations checked took {seconds:.0f} s in all, "
        "compilation included (one process, one CPU device as in the test suite: the "
        "chains run one after the other).",
        "",
        "Runs (machine, date):",
        "",
    ]
    for entry in runs:
        lines.append(
            f"- {entry['date']}: {entry['cpu']}, {entry['cores']} cores (load average "
            f"{entry['load_average'][0]:.1f}), Python {entry['python']}, jax {entry['jax']}, "
            f"numpyro {entry['numpyro']}; {len(entry['posteriors'])} posteriors sampled"
        )
    lines += [
        "",
        "## Posteriors with reference draws",
        "",
        "| posterior | translated | matches | seconds | worst mean dev. (sds) | min ESS | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in with_reference:
        name = row["posterior"]
        result = results.get(name) if row["translated"] else None
        note = NOTES.get(name, "")
        if result and result["problems"]:
            note = "; ".join(result["problems"][:3]) + (f"; {note}" if note else "")
        lines.append(
            f"| {name} | {'yes' if row['translated'] else 'no'} | {verdict(row, result)} | "
            + (
                f"{result['seconds']:.0f} | {result['worst_mean_deviation_sds']:.3f} | "
                f"{result['min_ess_bulk']:.0f}"
                if result and "min_ess_bulk" in result
                else " | | "
            )
            + f" | {note} |"
        )
    lines += [
        "",
        "## Posteriors without reference draws",
        "",
        "| posterior | model | data | translated |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if not row["reference_draws"]:
            translated_mark = (
                "yes"
                if row["translated"]
                else "the model (simulated data)"
                if row.get("model_translated")
                else ""
            )
            lines.append(
                f"| {row['posterior']} | {row['model']} | {row['data']} | {translated_mark} |"
            )
    return "\n".join(lines) + "\n"


def write(rows: list[dict], results: dict, runs: list[dict]) -> None:
    RESULTS.write_text(
        json.dumps({"posteriors": rows, "results": results, "runs": runs}, indent=1) + "\n"
    )
    TABLE.write_text(table(rows, results, runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs="*", metavar="NAME", help="sample these (none: all)")
    parser.add_argument("--mirror", type=Path, default=MIRROR)
    args = parser.parse_args(argv)
    rows = listing(args.mirror)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results = previous.get("results", {})
    runs = previous.get("runs", [])
    if args.run is not None:
        runnable = [r["posterior"] for r in rows if r["translated"] and r["reference_file"]]
        names = args.run or runnable
        unknown = sorted(set(names) - set(runnable))
        if unknown:
            parser.error(f"no translation with a reference for {', '.join(unknown)}")
        runs.append({**machine(), "posteriors": []})
        for name in names:  # written after each, so an interrupted run keeps what it did
            results.update(run([name]))
            runs[-1]["posteriors"].append(name)
            write(rows, results, runs)
    write(rows, results, runs)
    translated = sum(r["translated"] for r in rows)
    matching = sum(
        bool(results.get(r["posterior"], {}).get("matches")) for r in rows if r["translated"]
    )
    print(f"{len(rows)} posteriors, {translated} translated, {matching} matching")
    print(f"wrote {RESULTS.relative_to(ROOT)} and {TABLE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
