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
