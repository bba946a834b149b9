"""The chunked loop every long run is driven by (NUTS chains, ``optimize``, ``vi``).

A run of ``total`` iterations advances in compiled chunks (``lax.scan`` over the
iterations of one chunk); between chunks, on the host, the progress line is updated,
the run is checkpointed every ``every`` iterations, and Ctrl-C is turned into the
caller's ``Interrupted`` (after it has saved what was done).  Chunks end on multiples
of ``chunk``, so a run resumed from a checkpoint cuts its iterations exactly where an
uninterrupted one does: the same compiled chunks on the same states give bit-identical
results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class Progress:
    """A one-line progress report on stderr (silent when disabled)."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled = enabled and total > 0
        self.total = total
        self.label = label
        self.done = 0
        self.start = time.perf_counter()

    def update(self, n: int, extra: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
            f" {rate:,.0f} it/s {extra}   "
        )
        sys.stderr.flush()
        if self.done >= self.total:
            sys.stderr.write("\n")


def run_chunks(
    advance: Callable[[int, int], str],
    *,
    done: int,
    total: int,
    chunk: int,
    bar: Progress,
    every: int | None = None,
    save: Callable[[int], None] | None = None,
    interrupted: Callable[[int], BaseException] | None = None,
) -> int:
    """Advance a run from iteration ``done`` to ``total``; returns ``total``.

    ``advance(done, n)`` runs iterations ``done .. done + n - 1`` (one compiled chunk),
    keeps their result and returns the progress line's text.  Chunks end on multiples
    of ``chunk``.  ``save(done)`` checkpoints once ``every`` iterations have passed since
    the last save (not at the end: callers save their finished run themselves).  Ctrl-C
    (between or inside chunks; a chunk's result is kept only once ``advance`` returns)
    raises ``interrupted(done)`` where given, else the ``KeyboardInterrupt`` itself.
    """
    saved = done
    try:
        while done < total:
            n = min(chunk - done % chunk, total - done)
            extra = advance(done, n)
            done += n
            bar.update(n, extra)
            if every and save is not None and done - saved >= every and done < total:
                save(done)
                saved = done
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        raise interrupted(done) from None
    return done


__all__ = ["Progress", "run_chunks"]
