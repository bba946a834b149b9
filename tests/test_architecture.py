"""Architecture invariants: dependency direction, one namespace, JAX-free checking."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["dsl", "stdlib", "compiler", "runtime"]  # each may import only those before it
IMPORT = re.compile(r"^\s*(?:from|import)\s+fpl\.(\w+)", re.M)


def test_dependencies_point_one_way():
    bad = []
    for i, layer in enumerate(LAYERS):
        allowed = set(LAYERS[: i + 1])
        for path in (ROOT / layer).rglob("*.py"):
            for target in IMPORT.findall(path.read_text()):
                if target in LAYERS and target not in allowed:
                    bad.append(f"{path.relative_to(ROOT)} imports fpl.{target}")
    assert not bad, "\n".join(bad)


def test_installed_under_one_namespace():
    import fpl.compiler
    import fpl.dsl

    assert Path(fpl.dsl.__file__).parent == ROOT / "dsl"
    assert Path(fpl.compiler.__file__).parent == ROOT / "compiler"
    for bare in ("dsl", "compiler", "runtime", "stdlib"):
        code = (
            "import importlib.util, sys; "
            f"sys.path = [p for p in sys.path if p not in ('', {str(ROOT)!r})]; "
            f"print(importlib.util.find_spec({bare!r}))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
        assert out.stdout.strip() == "None", f"bare package {bare} is importable: {out.stdout}"


def test_check_does_not_import_jax(tmp_path):
    model = ROOT / "examples" / "eight_schools.fpl"
    code = (
        "import sys; from fpl.runtime.cli import main; "
        f"rc = main(['check', {str(model)!r}]); "
        "print('JAX' if 'jax' in sys.modules else 'NOJAX', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "NOJAX 0", out.stdout + out.stderr


# The runtime builds every inference method on `fpl.compiler.compiled.CompiledModel`;
# the lowering, its evaluator, the checker's passes, the transforms and the implicit
# machinery are the compiler's own business.
COMPILER_INTERNALS = re.compile(
    r"^\s*(from|import)\s+fpl\.compiler\."
    r"(lower|lower_calls|passes|transforms|implicit|implicit_derivatives|implicit_stats|binding)\b"
    r"|^\s*from\s+fpl\.compiler\s+import\s+.*"
    r"\b(lower|lower_calls|transforms|implicit|implicit_derivatives|implicit_stats|binding)\b"
    r"|\bEvaluator\("
)


def test_runtime_does_not_reach_compiler_internals():
    bad = []
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if COMPILER_INTERNALS.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "the runtime reaches into the compiler:\n" + "\n".join(bad)


def test_the_internals_rule_catches_a_violation():
    """The pattern above is live: each forbidden form matches, allowed ones do not."""
    for line in (
        "from fpl.compiler.lower import run",
        "from fpl.compiler.passes.check import x",
        "import fpl.compiler.transforms",
        "ev = Evaluator(reg, env)",
        "from fpl.compiler import lower",
        "from fpl.compiler.implicit import warm_state",
        "from fpl.compiler.implicit_derivatives import make_attach",
        "from fpl.compiler.implicit_stats import reduce_stats",
        "from fpl.compiler.passes.expressions import op",
        "from fpl.compiler.lower_calls import inlined",
    ):
        assert COMPILER_INTERNALS.search(line), line
    for line in (
        "from fpl.compiler.compiled import CompiledModel",
        "from fpl.compiler import ir",
        "from fpl.compiler.reporting import collecting",
        "data are checked in ``fpl.compiler.binding`` (a docstring)",
    ):
        assert not COMPILER_INTERNALS.search(line), line
