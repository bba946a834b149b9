"""Reading data files.  Checking data against a model (presence, types, sizes and
every declared constraint) happens once, in the compiler
(``fpl.compiler.binding``), when a model is bound to its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_data(path: str | Path) -> dict[str, Any]:
    """Read a CmdStan-style JSON data file."""
    from fpl.runtime.jsondata import read_json_data

    return read_json_data(str(path))


__all__ = ["read_data"]
