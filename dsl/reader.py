"""Reading model source files: regular files only, UTF-8 only, every failure coded.

A FIFO or a device (``/dev/zero``) would block or never end, so only regular files are
read: the file is opened without blocking and checked with ``fstat`` on the open
descriptor (no window between the check and the read).  Bytes that are not UTF-8 are an
E0501 naming the file, the byte offset, and the line and column where decoding failed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fpl.dsl.diagnostics import FplError, error
from fpl.dsl.spans import Source, Span

#: source files larger than this are refused (E0501): the parser holds the whole text
MAX_SOURCE_BYTES = 64 * 1024 * 1024


def read_source(path: str | Path, *, code: str = "E0501", span: Span | None = None) -> str:
    """The text of the model file ``path``.

    Raises E0501 (or ``code``, located at ``span``: an import's own line) when the path
    cannot be opened, is not a regular file, is too large, or is not UTF-8."""
    shown = str(path)
    try:
        data = _read_regular(shown)
    except FplError:
        raise
    except ValueError:  # a NUL in the path
        raise error(
            code, f"cannot read `{_printable(shown)}`: the path holds a NUL", span
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise error(code, f"cannot read `{_printable(shown)}`: {reason}", span) from None
    except _NotRegularError as exc:
        raise error(
            code,
            f"cannot read `{_printable(shown)}`: {exc.args[0]}",
            span,
            help="a model is read from a regular file (not a FIFO, a device or a folder)",
        ) from None
    return decode_source(data, shown)


class _NotRegularError(Exception):
    pass


def _read_regular(path: str) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _NotRegularError("it is a folder")
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegularError("it is not a regular file")
        if info.st_size > MAX_SOURCE_BYTES:
            raise _NotRegularError(f"it is larger than {MAX_SOURCE_BYTES // 2**20} MiB")
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > MAX_SOURCE_BYTES:  # grew while being read
                raise _NotRegularError(f"it is larger than {MAX_SOURCE_BYTES // 2**20} MiB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_source(data: bytes, name: str) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark dropped), or E0501 located at
    the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start
        text = data.decode("utf-8", errors="replace")
        before = data[:offset].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        span = Span(Source(text, _printable(name)), line, col, line, col)
        raise error(
            "E0501",
            f"`{_printable(name)}` is not UTF-8 text: byte {offset} is 0x{data[offset]:02x}",
            span,
            label="not UTF-8",
            help="save the file as UTF-8",
        ) from None


def _printable(text: str) -> str:
    """``text`` with control characters escaped, safe to echo to a terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


__all__ = ["MAX_SOURCE_BYTES", "decode_source", "read_source"]
