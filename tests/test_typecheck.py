"""mypy over ``fpl.dsl``, ``fpl.compiler`` and ``fpl.stdlib`` (settings: ``[tool.mypy]`` in
pyproject.toml).  The repo root is the ``fpl`` package through ``package-dir``, which an
editable install exposes by an import hook mypy cannot follow, so the check runs over a
folder holding one link ``fpl -> <repo root>`` on ``MYPYPATH``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mypy  # noqa: F401  (in the `test` extra: a missing type checker fails, never skips)

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean(tmp_path):
    (tmp_path / "fpl").symlink_to(ROOT, target_is_directory=True)
    cache = Path(os.environ.get("FPL_CACHE_DIR", tmp_path)) / "mypy"
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    cmd += ["--cache-dir", str(cache), "-p", "fpl.dsl", "-p", "fpl.compiler", "-p", "fpl.stdlib"]
    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
