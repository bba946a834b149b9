"""Checkpoints of long runs (``optimize`` and ``sample``): written atomically, resumed
to the result an uninterrupted run gives.

A checkpoint is one ``.npz`` file (NumPy's zip of arrays, read without pickling)
holding the run's arrays — positions, optimizer or sampler state, RNG keys, the trace
so far — and a JSON header with the kind of run, the step reached and a fingerprint
of the model, data and settings.  Resuming with a different model, data or settings
is refused (E0408) rather than silently continuing another run.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.io import write_atomic

FORMAT = "fpl-checkpoint"
VERSION = 3  # 2: a sampling run saves all chains together; 3: a digest of the content


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long run, after what was done was kept.

    ``step`` is how far the run got, ``checkpoint`` the file written (or None when
    no checkpoint path was given), ``result`` what the run produced up to there where
    the run can say (an ``OptimizeResult`` for ``optimize``), and
    ``save_checkpoint(path)`` writes the checkpoint afterwards when none was set.
    """

    def __init__(
        self, message: str, *, step: int, checkpoint: str | None, result: Any = None, save=None
    ):
        super().__init__(message)
        self.message = message
        self.step = step
        self.checkpoint = checkpoint
        self.result = result
        self._save = save

    def __str__(self) -> str:
        return self.message

    def save_checkpoint(self, path: str) -> None:
        if self._save is None:
            raise error("E0408", "nothing to checkpoint: the run had not started")
        self._save(path)
        self.checkpoint = path


def fingerprint(model, arrays: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """A hash of the model (its checked IR itself, function bodies included: ``ir.digest``),
    the data and the settings that decide the result.  Array contents are hashed exactly
    (dtype, shape, bytes)."""
    from fpl.compiler import ir

    h = hashlib.sha256()
    h.update(ir.digest(model.ir).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(np.asarray(arrays[name]))
        h.update(f"\0{name}:{a.dtype.str}:{a.shape}\0".encode())
        h.update(a.tobytes())
    h.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    return h.hexdigest()


def save(
    path: str, kind: str, print_: str, step: int, meta: Mapping[str, Any], arrays: Mapping[str, Any]
) -> None:
    """Write a checkpoint atomically (a crash leaves the previous one intact)."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "fingerprint": print_,
        "step": int(step),
        **dict(meta),
    }
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    header["digest"] = digest(header, arrays)
    buf = io.BytesIO()
    np.savez(buf, __header__=np.asarray(json.dumps(header)), **arrays)
    data = buf.getvalue()
    write_atomic(str(path), lambda tmp: Path(tmp).write_bytes(data))


def load(path: str, kind: str, print_: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint of ``kind``; refuse one from another model, data or settings."""
    p = Path(path)
    if not p.exists():
        raise error(
            "E0408",
            f"no checkpoint at `{path}` to resume from",
            help="run once with a checkpoint file (and `every`) first",
        )
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
        header = json.loads(str(arrays.pop("__header__")))
    except Exception as exc:  # a truncated or foreign file
        raise error("E0408", f"`{path}` is not an FPL checkpoint ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise error("E0408", f"`{path}` is not an FPL checkpoint (its header is not an object)")
    if header.get("format") != FORMAT or header.get("kind") != kind:
        raise error(
            "E0408",
            f"`{path}` is not a checkpoint of `{kind}` "
            f"(it holds {header.get('kind', 'something else')!r})",
        )
    if header.get("version") != VERSION:
        raise error(
            "E0408",
            f"`{path}` is a checkpoint of version {header.get('version')}, "
            f"this FPL reads version {VERSION}",
        )
    if header.get("digest") != digest({k: v for k, v in header.items() if k != "digest"}, arrays):
        raise error(
            "E0408",
            f"`{path}` was changed after it was written (its content does not match its digest)",
            help="the checkpoint is damaged or was edited; start afresh without resume",
        )
    if header.get("fingerprint") != print_:
        raise error(
            "E0408",
            f"`{path}` was written by a run with another model, data or settings",
            help="resume with exactly the model, data, seed and options of the first run "
            "(only the number of steps or draws may grow), or start afresh without resume",
        )
    return header, arrays


def digest(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of a checkpoint's header (without its digest) and of every array's name,
    dtype, shape and bytes: a file damaged or edited after it was written (a doctored
    state that would resume silently) no longer matches it.  Checked by :func:`load`."""
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class OptimizeResumed:
    """A saved ``optimize`` run: its step, skipped steps and loss trace, checked against
    each other (E0408) before use; the params and optimizer state are checked leaf by
    leaf against the run's own by :func:`tree_from`."""

    def __init__(self, header: dict, arrays: dict[str, np.ndarray], path: str = "checkpoint"):
        self.step = _count(header, "step", path)
        self.skipped = _count(header, "skipped", path) if "skipped" in header else 0
        if self.skipped > self.step:
            _lie(path, f"{self.skipped} steps skipped of {self.step}")
        trace = _array(arrays, "trace", path)
        if trace.ndim != 1 or trace.dtype.kind != "f" or trace.shape[0] != self.step:
            _lie(path, f"the trace is {trace.dtype}{list(trace.shape)}, not float[{self.step}]")
        for name, a in arrays.items():
            if name.startswith("theta/") and not (a.dtype.kind == "f" and np.all(np.isfinite(a))):
                _lie(path, f"{name} holds values that are not finite numbers")
        self.trace = trace.astype(float)


def tree_arrays(prefix: str, tree) -> dict[str, np.ndarray]:
    """The leaves of a pytree as named arrays (``prefix/0``, ``prefix/1``, ...)."""
    import jax

    leaves = jax.tree_util.tree_leaves(tree)
    return {f"{prefix}/{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def tree_from(prefix: str, arrays: Mapping[str, np.ndarray], like, path: str):
    """Rebuild a pytree shaped like ``like`` from :func:`tree_arrays` output, checking
    every leaf's shape and dtype."""
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree_util.tree_flatten(like)
    found = sorted(
        (k for k in arrays if k.startswith(prefix + "/")), key=lambda k: int(k.rsplit("/", 1)[1])
    )
    if len(found) != len(leaves):
        raise error(
            "E0408", f"`{path}` holds {len(found)} arrays of {prefix}, this run has {len(leaves)}"
        )
    out = []
    for k, leaf in zip(found, leaves):
        a, want = arrays[k], np.asarray(leaf)
        if a.shape != want.shape or a.dtype != want.dtype:
            raise error(
                "E0408",
                f"`{path}`: {k} is {a.dtype}{list(a.shape)}, "
                f"this run needs {want.dtype}{list(want.shape)}",
            )
        out.append(jnp.asarray(a))
    return jax.tree_util.tree_unflatten(treedef, out)


# ---- NUTS ------------------------------------------------------------------------------


class NutsResumed:
    """A saved sampling run: every chain's state, draws and sampler stats so far."""

    def __init__(self, header: dict, arrays: dict[str, np.ndarray], path: str = "checkpoint"):
        """Every array is checked against the header before use (E0408): a header that
        lies about the run is refused, never resumed from."""
        done = _count(header, "done", path)
        n_stats = _count(header, "n_stats", path)
        positions = _array(arrays, "positions", path)
        if positions.ndim != 3 or positions.dtype.kind != "f" or positions.shape[1] != done:
            _lie(
                path,
                f"positions are {positions.dtype}{list(positions.shape)}, not "
                f"float[chains, {done}, d]",
            )
        stats = []
        for i in range(n_stats):
            stat = _array(arrays, f"stat/{i}", path)
            if stat.ndim < 2 or stat.shape[:2] != positions.shape[:2]:
                _lie(
                    path, f"stat/{i} is {list(stat.shape)}, not [{positions.shape[0]}, {done}, ...]"
                )
            stats.append(stat)
        if f"stat/{n_stats}" in arrays:
            _lie(path, f"it holds more sampler stats than the {n_stats} its header names")
        failures = _array(arrays, "failures", path)
        if failures.ndim != 2 or failures.shape[1] != 3 or failures.dtype.kind not in "iu":
            _lie(path, f"failures are {failures.dtype}{list(failures.shape)}, not int[k, 3]")
        if failures.size and (failures.min() < 0 or failures[:, 0].max() >= positions.shape[0]):
            _lie(path, "failure counts name chains or nodes that do not exist")
        self.arrays = arrays
        self.done = done
        self.positions = positions  # (chains, done, d)
        self.stats = stats
        self.failures = {(int(c), int(n)): int(k) for c, n, k in failures}


def _lie(path: str, what: str):
    raise error(
        "E0408",
        f"`{path}` does not hold what its header says: {what}",
        help="the checkpoint is damaged or was edited; start afresh without resume",
    )


def _count(header: Mapping[str, Any], key: str, path: str) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _lie(path, f"`{key}` is {value!r}, not a count")
    return int(value)


def _array(arrays: Mapping[str, np.ndarray], key: str, path: str) -> np.ndarray:
    if key not in arrays:
        _lie(path, f"it has no `{key}`")
    return arrays[key]


class NutsCheckpoint:
    """What ``run_nuts`` needs to checkpoint a sampling run (all chains advance
    together) and resume it."""

    def __init__(self, path, print_: str, every: int | None, resume: bool, seed: int):
        self.path, self.print_, self.every, self.resume = str(path), print_, every, resume
        self.seed = seed

    def load(self) -> NutsResumed | None:
        if not self.resume:
            return None
        header, arrays = load(self.path, "sample", self.print_)
        return NutsResumed(header, arrays, self.path)

    def state_like(self, like, resumed: NutsResumed):
        state = tree_from("state", resumed.arrays, like, self.path)
        position = getattr(like, "position", None)  # (chains, d) for the run's model
        if position is not None and resumed.done:
            want = tuple(np.shape(position))
            if resumed.positions.shape[::2] != want:
                _lie(
                    self.path,
                    f"draws of shape {list(resumed.positions.shape)}, this run's chains and "
                    f"parameters are {list(want)}",
                )
        return state

    def save(self, states, pos_parts, stat_parts, done, counts, path: str | None = None) -> None:
        arrays: dict[str, Any] = dict(tree_arrays("state", states))
        n_chains = len(np.asarray(states.chain))
        if pos_parts:
            arrays["positions"] = np.concatenate(pos_parts, axis=1)
            for i in range(len(stat_parts[0])):
                arrays[f"stat/{i}"] = np.concatenate([s[i] for s in stat_parts], axis=1)
            n_stats = len(stat_parts[0])
        else:
            arrays["positions"] = np.zeros((n_chains, 0, 0))
            n_stats = 0
        arrays["failures"] = np.asarray(
            [[c, n, k] for (c, n), k in counts.items()], np.int64
        ).reshape(-1, 3)
        meta = {"done": int(done), "n_stats": n_stats, "seed": self.seed}
        save(path or self.path, "sample", self.print_, int(done), meta, arrays)

    def interrupted(self, states, pos_parts, stat_parts, done, counts) -> Interrupted:
        self.save(states, pos_parts, stat_parts, done, counts)
        return Interrupted(
            f"interrupted at iteration {done}; checkpoint written to {self.path}; resume "
            f"with: model.sample(..., checkpoint={self.path!r}, resume=True)",
            step=done,
            checkpoint=self.path,
        )


def resume_hint(command: str, model: str, path: str) -> str:
    """The command line that resumes an interrupted ``fpl <command>`` run."""
    import shlex
    import sys

    argv = sys.argv[1:]
    if command in argv:  # the user's own command line, as typed
        argv = [a for a in argv[argv.index(command) :] if a != "--resume"]
    else:
        argv = [command, model]
    if not any(a == "--checkpoint" or a.startswith("--checkpoint=") for a in argv):
        argv += ["--checkpoint", path]
    return f"resume with: fpl {shlex.join(argv)} --resume"


def saved_seed(path) -> int | None:
    """The seed a checkpoint was written with (so that ``resume`` needs no seed)."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            seed = json.loads(str(z["__header__"])).get("seed")
    except Exception:
        return None  # `load` reports what is wrong with the file
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        return None  # not a seed: `load` and the header checks refuse the file
    return seed
