"""The standard library reference, rendered from the registries (pure Python, no JAX).

``python -m fpl.stdlib.docs`` prints it as Markdown; ``--write`` writes
``docs/reference.md``.  A test regenerates it and fails if the file differs, so the
reference never drifts from the code.
"""

from __future__ import annotations

import inspect
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fpl.stdlib.registry import Bound, DistributionEntry, FunctionEntry, registry

if TYPE_CHECKING:
    from fpl.stdlib.solvers import Solver

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"

CATEGORIES = {
    "math": "Elementwise maths",
    "reduction": "Reductions",
    "array": "Arrays: shapes, slicing, reshaping",
    "matrix": "Vectors and matrices",
    "constructor": "Constructors",
    "constant": "Constants (called with no arguments: `pi()`)",
    "operator": "Operators (the functions behind `+`, `@`, `==`, ...)",
}


def summary(doc: str) -> str:
    """The docstring as one line (its first paragraph, whitespace collapsed)."""
    return " ".join(doc.strip().split("\n\n")[0].split())


def function_signature(e: FunctionEntry) -> str:
    """``name(x, y)`` from the implementation's parameter names; size arguments (which
    must be known before the model runs) are marked ``n: size``."""
    try:
        params = list(inspect.signature(e.impl).parameters.values())
    except (TypeError, ValueError):
        params = []
    parts = []
    for i, p in enumerate(params):
        name = p.name.rstrip("_")
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"{name}...")
            continue
        if i in e.static_args:
            name += ": size"
        if p.default is not p.empty:
            name = f"[{name}]"
        parts.append(name)
    return f"{e.name}({', '.join(parts)})"


def distribution_signature(e: DistributionEntry) -> str:
    return f"{e.name}({', '.join(e.params)})"


def _bound_text(b: Bound | None, params: tuple[str, ...]) -> str:
    if b is None:
        return "?"
    if b.arg is not None:
        return params[b.arg]
    v = b.value
    return str(int(v)) if v is not None and float(v).is_integer() else f"{v:.6g}"


def support_text(e: DistributionEntry) -> str:
    s, p = e.support, e.params
    if s.kind in ("real",):
        return "real"
    if s.kind == "lower":
        return f"real > {_bound_text(s.lower, p)}"
    if s.kind == "upper":
        return f"real < {_bound_text(s.upper, p)}"
    if s.kind == "interval":
        return f"real in ({_bound_text(s.lower, p)}, {_bound_text(s.upper, p)})"
    if s.kind == "binary":
        return "int in {0, 1}"
    if s.kind == "int_lower":
        return f"int >= {_bound_text(s.lower, p)}"
    if s.kind == "int_interval":
        hi = _bound_text(s.upper, p) if s.upper is not None else "K"
        return f"int in {_bound_text(s.lower, p)}..{hi}"
    return s.kind


def solver_options(solver: type[Solver]) -> str:
    """A solver class's options with their defaults: ``tol=1e-08, max_iter=500``."""
    from fpl.stdlib.solvers import defaults_text

    return defaults_text(solver)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    reg = registry()
    out = [
        "# FPL standard library reference",
        "",
        "<!-- Generated from the registries' docstrings by `python -m fpl.stdlib.docs --write`;",
        "     do not edit by hand (a test fails if this file is out of date). -->",
        "",
        f"{len(reg.distributions)} distributions, {len(reg.functions)} functions "
        f"(aliases included), {len(reg.solvers)} solvers. Names, argument orders and "
        "meanings follow Stan's unless noted. Every distribution `d` also gives the "
        "elementwise functions listed under *forms*: `d_lpdf(y | ...)` (`d_lpmf` for "
        "integers), `d_cdf`, `d_lcdf`, `d_lccdf` where a CDF exists, and `d_rng(...)` "
        "(in `gen` statements only).",
        "",
        "## Distributions",
        "",
        "| distribution | support | forms | description |",
        "|---|---|---|---|",
    ]
    for name in sorted(reg.distributions):
        dist = reg.distributions[name]
        forms = " ".join(f"`{f}`" for f in dist.forms)
        out.append(
            f"| `{distribution_signature(dist)}` | {_cell(support_text(dist))} | {forms} "
            f"| {_cell(summary(dist.doc))} |"
        )
    out += ["", "## Functions", ""]
    for cat, title in CATEGORIES.items():
        entries = sorted(
            (e for e in reg.functions.values() if e.category == cat), key=lambda e: e.name
        )
        if not entries:
            continue
        out += [f"### {title}", "", "| function | description |", "|---|---|"]
        for fn in entries:
            out.append(f"| `{_cell(function_signature(fn))}` | {_cell(summary(fn.doc))} |")
        out.append("")
    others = sorted({e.category for e in reg.functions.values()} - set(CATEGORIES))
    if others:
        raise ValueError(f"function categories without a docs title: {others}")
    out += [
        "## Solvers for `fix`, `root`, `argmin`",
        "",
        "A node names its solver with `with name(option=value, ...)`; options without a "
        "default must be given. `grad=unrolled` needs a solver marked *unrollable*.",
        "",
        "| solver | solves | options (defaults) | unrollable | description |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(reg.solvers):
        solver = reg.solvers[name]
        kinds = ", ".join(solver.kinds) + (" (one unknown)" if solver.scalar else "")
        out.append(
            f"| `{name}` | {kinds} | {_cell(solver_options(solver))} "
            f"| {'yes' if solver.unrollable else 'no'} | {_cell(summary(solver.doc))} |"
        )
    return "\n".join(out) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    """Write beside ``path`` and rename over it, so readers never see half a file
    (``fpl.runtime.io.write_atomic`` is out of reach: stdlib may not import runtime)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--write" in argv:
        _write_atomic(REFERENCE, text)
        print(f"wrote {REFERENCE}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
