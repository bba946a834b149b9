"""Where the test suite's time goes: totals per group, per file and per test from a JUnit
XML report (``pytest --junitxml=report.xml``).

Usage::

    pytest -m "slow or not slow" --junitxml=/tmp/full.xml           # the whole suite
    python benchmarks/suite_time.py /tmp/full.xml                    # groups, files, tests
    python benchmarks/suite_time.py /tmp/full.xml --quick            # also the quick/slow split
    python benchmarks/suite_time.py /tmp/full.xml --files 40 --tests 60 --workers 2

The report may also be pytest's text output with ``--durations=N`` (``.ci/run`` writes
one: ``--durations=60``): then only the listed phases are counted (setup, call and
teardown of the N slowest), outcomes unknown.

A test's time is pytest's JUnit ``time``: setup + call + teardown (the default
``junit_duration_report = total``), so a module-scoped fixture's cost lands on the first
test that uses it.  Groups are the folder under ``tests/`` (``posteriordb``, ``examples``,
``sbc``, ``runtime``, ...; ``tests/docs`` is shown as ``guide``: it runs the guide's
pages), with the top-level test files as ``top``.

``--quick`` asks pytest which tests plain ``pytest`` (the quick suite: ``-m "not slow"``)
collects (``pytest --collect-only -q -m "not slow"``, imports every test module: ~30 s)
and splits every total into quick and slow.  ``--workers N`` (default 2, CI's) adds the
ideal wall time, the sum over N; xdist's real wall is a little higher (the last worker
finishes alone, and every worker pays its own JAX import and compiles).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

GROUP_NAMES = {"docs": "guide"}


@dataclass(frozen=True)
class Case:
    """One test from the report: its pytest node id, seconds and outcome."""

    node_id: str
    seconds: float
    outcome: str  # passed, failed, error, skipped

    @property
    def file(self) -> str:
        return self.node_id.split("::", 1)[0]

    @property
    def group(self) -> str:
        parts = Path(self.file).parts
        if len(parts) <= 2:  # tests/test_x.py
            return "top"
        return GROUP_NAMES.get(parts[1], parts[1])


def node_id(classname: str, name: str, file: str | None, root: Path) -> str:
    """The pytest node id of a JUnit test case.  ``classname`` is the dotted module path
    plus any test class (``tests.runtime.test_model`` or ``tests.x.test_y.TestZ``); the
    ``file`` attribute, when pytest wrote it, settles where the module ends."""
    parts = classname.split(".")
    if file:
        module = Path(file).with_suffix("").parts
        rest = parts[len(module) :]
        return "::".join([file, *rest, name])
    for cut in range(len(parts), 0, -1):  # the longest prefix that is a file here
        candidate = "/".join(parts[:cut]) + ".py"
        if (root / candidate).is_file():
            return "::".join([candidate, *parts[cut:], name])
    return "/".join(parts) + ".py::" + name


def read_cases(report: Path, root: Path) -> list[Case]:
    """Every test case of a JUnit XML report (``root``: the repository it ran in)."""
    cases = []
    for element in ElementTree.parse(report).getroot().iter("testcase"):
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            if element.find(kind) is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
        cases.append(
            Case(
                node_id(
                    element.get("classname", ""),
                    element.get("name", ""),
                    element.get("file"),
                    root,
                ),
                float(element.get("time", 0.0)),
                outcome,
            )
        )
    return cases


DURATION = re.compile(r"^\s*([0-9.]+)s\s+(setup|call|teardown)\s+(\S.*?)\s*$")


def read_durations(log: Path) -> list[Case]:
    """The tests of a ``pytest --durations=N`` listing, each phase added to its test."""
    seconds: dict[str, float] = defaultdict(float)
    for line in log.read_text(errors="replace").splitlines():
        match = DURATION.match(line)
        if match:
            seconds[match.group(3)] += float(match.group(1))
    return [Case(node, total, "listed") for node, total in seconds.items()]


def read_report(report: Path, root: Path) -> list[Case]:
    """The cases of a JUnit XML report, or of a ``--durations`` text listing."""
    if report.read_text(errors="replace").lstrip().startswith("<"):
        return read_cases(report, root)
    return read_durations(report)


def quick_ids(root: Path) -> set[str]:
    """The node ids plain ``pytest`` (the quick suite) collects."""
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "not slow",
            "-n",
            "0",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {line.strip() for line in listing.splitlines() if "::" in line}


def totals(cases: list[Case], key, quick: set[str] | None) -> list[tuple[str, float, float, int]]:
    """``(name, seconds, quick seconds, tests)`` per ``key(case)``, largest first."""
    seconds: dict[str, float] = defaultdict(float)
    fast: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for case in cases:
        name = key(case)
        seconds[name] += case.seconds
        count[name] += 1
        if quick is not None and case.node_id in quick:
            fast[name] += case.seconds
    rows = [(name, seconds[name], fast[name], count[name]) for name in seconds]
    return sorted(rows, key=lambda row: -row[1])


def table(title: str, rows, quick: bool, limit: int | None, total: float) -> str:
    lines = [f"\n{title}", "-" * len(title)]
    header = f"{'seconds':>9} {'share':>6} {'tests':>6}"
    header += f" {'quick s':>8}" if quick else ""
    lines.append(f"{header}  name")
    for name, seconds, fast, count in rows[:limit]:
        line = f"{seconds:9.1f} {100 * seconds / total:5.1f}% {count:6d}"
        line += f" {fast:8.1f}" if quick else ""
        lines.append(f"{line}  {name}")
    if limit is not None and len(rows) > limit:
        rest = sum(row[1] for row in rows[limit:])
        lines.append(f"{rest:9.1f} {100 * rest / total:5.1f}%  ... {len(rows) - limit} more")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "report", type=Path, help="a JUnit XML report (pytest --junitxml) or --durations output"
    )
    parser.add_argument("--files", type=int, default=30, help="files to list (default 30)")
    parser.add_argument("--tests", type=int, default=40, help="tests to list (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="xdist workers (default 2)")
    parser.add_argument(
        "--quick", action="store_true", help="split into the quick suite and the slow tier"
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository root")
    options = parser.parse_args(argv)
    cases = read_report(options.report, options.root)
    if not cases:
        print(f"{options.report}: no test cases", file=sys.stderr)
        return 1
    quick = quick_ids(options.root) if options.quick else None
    total = sum(case.seconds for case in cases) or 1.0
    outcomes: dict[str, int] = defaultdict(int)
    for case in cases:
        outcomes[case.outcome] += 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    print(f"{len(cases)} tests ({summary}): {total:.0f} s in all, ", end="")
    print(f"{total / options.workers / 60:.1f} min over {options.workers} workers (ideal)")
    if quick is not None:
        fast = sum(case.seconds for case in cases if case.node_id in quick)
        print(
            f"quick suite (-m 'not slow'): {fast:.0f} s, {fast / options.workers / 60:.1f} min "
            f"over {options.workers} workers; slow tier {total - fast:.0f} s"
        )
    show_quick = quick is not None
    print(table("per group", totals(cases, lambda c: c.group, quick), show_quick, None, total))
    print(
        table("per file", totals(cases, lambda c: c.file, quick), show_quick, options.files, total)
    )
    by_test = [
        (c.node_id, c.seconds, c.seconds if quick and c.node_id in quick else 0.0, 1) for c in cases
    ]
    by_test.sort(key=lambda row: -row[1])
    print(table("per test", by_test, show_quick, options.tests, total))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
