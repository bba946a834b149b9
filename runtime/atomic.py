"""Writing files atomically: a file is whole or absent, never half-written.

:func:`write_atomic` writes into a temporary file ``.<name>.<8 hex>.tmp`` in the
target's folder, flushes it to disk (``fsync``) and renames it over the target; the
rename is atomic on POSIX and Windows, so a reader sees the old file or the new one.
Any failure (``KeyboardInterrupt`` and SIGTERM included) removes the temporary file.
A writer holds an exclusive ``flock`` on its temporary file while it writes, so a
temporary file whose lock can be taken was left by a killed writer (SIGKILL) and is
swept away (:func:`sweep_leftovers`) before the next write of the same target.  Fit
files, checkpoints, optimize results and plots are all written this way.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable

from fpl.dsl.diagnostics import FplError, error


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Create ``path`` by calling ``write(temp_path)`` and renaming the result over it.

    The temporary file ``.<name>.<8 hex>.tmp`` lives in the same folder (so the rename
    is atomic) and is created with the usual permissions (``0o666`` less the umask).
    On any failure, ``KeyboardInterrupt`` and the CLI's SIGTERM included, it is removed
    and ``path`` is left as it was.  A writer holds an exclusive ``flock`` on its
    temporary file until it is done; temporary files of ``path`` whose lock can be
    taken belong to a writer that died (SIGKILL) and are removed first (POSIX only).

    Raises:
        FplError: E0502 when the file cannot be written; an ``FplError`` raised
            by ``write`` itself passes through unchanged.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    sweep_leftovers(folder, base)
    try:
        while True:
            temp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            break
    except OSError as exc:
        raise error("E0502", f"cannot write `{path}`: {exc.strerror or exc}") from None
    try:
        _lock(fd, blocking=True)
        _write_renamed(path, temp, write)
    finally:
        os.close(fd)  # releases the lock


def _lock(fd: int, *, blocking: bool) -> bool:
    """An exclusive ``flock`` on ``fd``; False when another live process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, and no sweeping
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def sweep_leftovers(folder: str, base: str) -> list[str]:
    """Remove the temporary files ``.<base>.<8 hex>.tmp`` in ``folder`` that no live
    writer holds (left by a killed one); returns their paths."""
    pattern = re.compile(rf"\.{re.escape(base)}\.[0-9a-f]{{8}}\.tmp")
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return []
    swept = []
    for name in names:
        temp = os.path.join(folder, name)
        try:
            fd = os.open(temp, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd, blocking=False):
                os.remove(temp)
                swept.append(temp)
        except OSError:
            pass
        finally:
            os.close(fd)
    return swept


def _write_renamed(path: str, temp: str, write: Callable[[str], None]) -> None:
    """``write(temp)``, fsync, rename over ``path``; ``temp`` removed on any failure."""
    try:
        write(temp)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException as exc:
        try:
            os.remove(temp)
        except OSError:
            pass
        if isinstance(exc, FplError) or not isinstance(exc, Exception):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error("E0502", f"cannot write `{path}`: {reason}") from exc


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""

    def write(temp: str) -> None:
        with open(temp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    write_atomic(path, write)


__all__ = ["sweep_leftovers", "write_atomic", "write_text"]
