"""How ``import fpl`` sets up XLA: device count and fast-compile flags (in subprocesses,
since XLA reads its flags once, when the backend starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SHOW = (
    "import json, os, sys\n{pre}\nimport fpl\nprint(json.dumps(os.environ.get('XLA_FLAGS', '')))\n"
)


def flags_after_import(env: dict[str, str], pre: str = "") -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FPL_XLA_DEFAULTS")}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", SHOW.format(pre=pre)],
        env=full,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _flag_known() -> bool:
    from fpl.runtime.platform import _known_flags

    return _known_flags()


def test_import_sets_the_fast_compile_flag_where_xla_has_it():
    # XLA aborts the process on a flag it does not know (jaxlib 0.12 dropped this one)
    flags = flags_after_import({})
    assert ("--xla_cpu_use_fusion_emitters=false" in flags) == _flag_known()


def test_the_flag_is_known_to_the_installed_jaxlib_or_not_set():
    # a fresh interpreter that computes something must not abort with "Unknown flag"
    out = subprocess.run(
        [sys.executable, "-c", "import fpl, jax; print(float(jax.numpy.ones(2).sum()))"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)},
    )
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip().endswith("2.0")


def test_the_users_own_setting_is_kept():
    flags = flags_after_import({"XLA_FLAGS": "--xla_cpu_use_fusion_emitters=true"})
    assert flags.count("xla_cpu_use_fusion_emitters") == 1
    assert "--xla_cpu_use_fusion_emitters=true" in flags


def test_opt_out():
    assert "fusion_emitters" not in flags_after_import({"FPL_XLA_DEFAULTS": "off"})


def test_too_late_once_jax_has_started():
    pre = "import jax; jax.numpy.zeros(1).block_until_ready()"
    assert "fusion_emitters" not in flags_after_import({}, pre)
