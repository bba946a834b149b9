"""How FPL sets up JAX in a process: the host's cores as devices, and a persistent
compilation cache.

**Cores as devices.**  XLA presents a CPU as one device; chains run in parallel on
separate devices (``fpl.runtime.nuts``), so FPL asks XLA for one CPU device per core
(``--xla_force_host_platform_device_count``).  XLA reads that flag when its CPU backend
starts, so it must be set before the process first computes anything with JAX:
``import fpl`` does it (when JAX has not started yet), and so does the ``fpl`` command.
``FPL_HOST_DEVICES=N`` chooses N (``1`` turns it off); a flag the user set in
``XLA_FLAGS`` is left alone.  In a process where JAX started before ``import fpl``,
call ``numpyro.set_host_device_count(n)`` or set ``XLA_FLAGS`` yourself first; chains
then run on however many devices there are (results do not depend on it).  Other JAX
code in the process is unaffected: arrays still go to the first device by default.

**Compiler settings.**  XLA's CPU backend compiles elementwise fusions through its new
MLIR emitters by default; its older LLVM emitters compile FPL's programs in about two
thirds of the CPU time (the NUTS chunk of eight schools: 8.3 s -> 4.9 s) and the programs
they make run as fast and give bit-identical draws (benchmarks/compile_time.py measures
both).  ``import fpl`` therefore adds ``--xla_cpu_use_fusion_emitters=false`` to
``XLA_FLAGS`` under the same conditions as the device count (before JAX starts, unless the
user set that flag; ``FPL_XLA_DEFAULTS=off`` keeps XLA's own default), and only with a
jaxlib whose XLA has the flag (0.10: XLA aborts on a flag it does not know, and 0.12
dropped this one).  It is a setting
of the process: other JAX code compiled on the CPU in it is affected in the same way.

**Compilation cache.**  Compiled programs are kept in ``~/.cache/fpl/jax`` (or
``$FPL_CACHE_DIR``; ``FPL_CACHE_DIR=off`` turns it off), so a model compiled once in
any process — the CLI, a script, a notebook — is not compiled again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FLAG = "--xla_force_host_platform_device_count"


def _jax_started() -> bool:
    """Has JAX initialised a backend (after which XLA flags no longer apply)?"""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except (ImportError, AttributeError):  # another JAX layout: assume it started
        return True


def host_device_count() -> int:
    """The CPU devices FPL asks for: ``$FPL_HOST_DEVICES`` or the usable cores."""
    wanted = os.environ.get("FPL_HOST_DEVICES", "").strip()
    if wanted.isdigit() and int(wanted) >= 1:
        return int(wanted)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


def use_host_cores() -> bool:
    """Ask XLA for :func:`host_device_count` CPU devices, if it is not too late and the
    user did not choose; True when the flag was set here."""
    flags = os.environ.get("XLA_FLAGS", "")
    count = host_device_count()
    if FLAG in flags or count <= 1 or _jax_started():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return True


#: XLA flags FPL sets for faster compilation (name, value); see the module docstring
FAST_COMPILE_FLAGS = (("--xla_cpu_use_fusion_emitters", "false"),)


def use_fast_compiler() -> bool:
    """Add :data:`FAST_COMPILE_FLAGS` to ``XLA_FLAGS`` if JAX has not started, the user
    did not set them and ``$FPL_XLA_DEFAULTS`` is not ``off``; True when any was set."""
    if os.environ.get("FPL_XLA_DEFAULTS", "").strip().lower() in ("off", "0", "none"):
        return False
    if _jax_started() or not _known_flags():
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    added = [f"{name}={value}" for name, value in FAST_COMPILE_FLAGS if name not in flags]
    if added:
        os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()
    return bool(added)


#: jaxlib versions whose XLA has the flags above (XLA aborts the process on an unknown
#: flag; jaxlib 0.12 no longer has ``xla_cpu_use_fusion_emitters``)
FAST_COMPILE_JAXLIB = ((0, 10),)


def _known_flags() -> bool:
    """Whether the installed jaxlib is one whose XLA knows :data:`FAST_COMPILE_FLAGS`
    (read from its metadata: JAX is not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        parts = version("jaxlib").split(".")
        return (int(parts[0]), int(parts[1])) in FAST_COMPILE_JAXLIB
    except (PackageNotFoundError, ValueError, IndexError):
        return False


def cache_dir() -> str | None:
    """The persistent compilation cache's folder (None: turned off)."""
    chosen = os.environ.get("FPL_CACHE_DIR")
    if chosen is not None and chosen.strip().lower() in ("", "off", "0", "none"):
        return None
    return chosen or str(Path.home() / ".cache" / "fpl" / "jax")


_CACHE_READY = False


def use_compilation_cache() -> None:
    """Keep compiled programs in :func:`cache_dir` (once per process; an unwritable
    folder only costs speed).  A cache the user configured in JAX is kept."""
    global _CACHE_READY
    if _CACHE_READY:
        return
    _CACHE_READY = True
    folder = cache_dir()
    if folder is None:
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return  # the user's own choice
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except OSError:
        pass


__all__ = [
    "cache_dir",
    "host_device_count",
    "use_compilation_cache",
    "use_fast_compiler",
    "use_host_cores",
]
