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
from typing import Any, NamedTuple, TextIO

#: plain (non-terminal) progress: a line each time another tenth of the run is done, or
#: after this many seconds without one, whichever comes first
PLAIN_FRACTION = 0.1
PLAIN_SECONDS = 10.0


class Progress:
    """The progress of one run on stderr: a ``tqdm`` bar where stderr is a terminal,
    else a plain line every tenth of the run or every ``PLAIN_SECONDS`` (no ``\\r`` in
    logs); silent when disabled.

    Timing.  The first :meth:`update` comes after the first compiled chunk, so the time
    from construction to it is shown apart ("compiled in 3.1 s": compilation plus that
    one chunk); the rate (it/s) and the ETA are computed from the chunks after it only,
    ``rate = (done - done₁) / (t - t₁)`` and ``ETA = (total - done) / rate``, and shown
    once a second chunk is done.  Iterations done before the run started (resumed from a
    checkpoint) are counted with :meth:`resume`, never timed.  ``extra`` (e.g.
    "divergent: warmup 3, sampling 0") is shown as given.
    """

    def __init__(
        self,
        enabled: bool,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.enabled = enabled and total > 0
        self.total = total
        self.label = label
        self.done = 0
        self.clock = clock
        self.start = clock()
        self.compile_seconds: float | None = None  # set by the first update
        self._first: tuple[float, int] | None = None  # (time, done) after the first chunk
        self._stream = sys.stderr if stream is None else stream
        self._last_line: tuple[float, int] = (self.start, 0)  # plain mode: last printed
        self._extra = ""
        self._bar: Any = None
        self._closed = False
        if self.enabled and _is_terminal(self._stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=label,
                file=self._stream,
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}",
                mininterval=0.0,
            )
            self._bar.set_postfix_str("compiling", refresh=True)

    # ---- what the loops call ------------------------------------------------------------
    def resume(self, n: int) -> None:
        """Count ``n`` iterations done before this run (from a checkpoint): not timed."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def update(self, n: int, extra: str = "") -> None:
        """``n`` more iterations done (one chunk); ``extra`` is shown beside the counts."""
        if n <= 0:  # nothing ran (e.g. a fresh run's "resumed" count of 0): not a chunk
            return
        now = self.clock()
        self.done += n
        self._extra = extra
        if self._first is None:
            self.compile_seconds = now - self.start
            self._first = (now, self.done)
        if not self.enabled or self._closed:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._status(now), refresh=False)
            self._bar.update(n)
            if self.done >= self.total:
                self.close()
            return
        last_time, last_done = self._last_line
        finished = self.done >= self.total
        step = max(1, int(PLAIN_FRACTION * self.total))
        due = self.done // step > last_done // step or now - last_time >= PLAIN_SECONDS
        if finished or due or last_done == 0:
            self._stream.write(self.line(now) + "\n")
            self._stream.flush()
            self._last_line = (now, self.done)
        if finished:
            self._closed = True

    def finish(self) -> None:
        """The run ended before ``total`` (an optimizer converged): the last line says
        where, and the display ends."""
        if not self.enabled or self._closed:
            return
        if self._bar is None:
            now = self.clock()
            self._stream.write(f"{self.line(now, ended=True)}, stopped early\n")
            self._stream.flush()
            self._last_line = (now, self.done)
        self.close()

    def close(self) -> None:
        """End the display (at the end, or when the run stops early: Ctrl-C, an error)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()

    # ---- the text ---------------------------------------------------------------------------
    def rate(self, now: float | None = None) -> float | None:
        """Iterations per second after the first chunk (None before a second chunk)."""
        if self._first is None:
            return None
        now = self.clock() if now is None else now
        t1, done1 = self._first
        if self.done <= done1 or now <= t1:
            return None
        return (self.done - done1) / (now - t1)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate (None while there is no rate)."""
        rate = self.rate(now)
        return None if rate is None else (self.total - self.done) / rate

    def _status(self, now: float, compiled: bool = True) -> str:
        parts = []
        if compiled and self.compile_seconds is not None:
            parts.append(f"compiled in {self.compile_seconds:.1f} s")
        rate = self.rate(now)
        if rate is not None:
            parts.append(f"{rate:,.0f} it/s")
            if self.done < self.total:
                parts.append(f"ETA {_clock_text(self.eta(now) or 0.0)}")
        if self._extra:
            parts.append(self._extra)
        return ", ".join(parts)

    def line(self, now: float | None = None, ended: bool = False) -> str:
        """The plain progress line: label, counts, percentage, then the status (the
        compile time on the first line and the last; the total time on the last)."""
        now = self.clock() if now is None else now
        percent = 100.0 * self.done / self.total
        head = f"{self.label}: {self.done}/{self.total} ({percent:.0f}%)"
        finished = ended or self.done >= self.total
        if finished:
            head += f" in {now - self.start:.1f} s"
        status = self._status(now, compiled=finished or self._last_line[1] == 0)
        return f"{head}, {status}" if status else head


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _clock_text(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:03``."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Early(NamedTuple):
    """What ``advance`` returns when the run ends inside its chunk (e.g. an optimizer
    has converged): the progress text and how many of the chunk's iterations ran."""

    text: str
    ran: int


def run_chunks(
    advance: Callable[[int, int], str | Early],
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
    keeps their result and returns the progress line's text, or :class:`Early` when the
    run ended after ``ran`` of them (then ``done + ran`` is returned at once).  Chunks end
    on multiples of ``chunk``.  ``save(done)`` checkpoints once ``every`` iterations have
    passed since the last save (not at the end: callers save their finished run
    themselves).  Ctrl-C
    (between or inside chunks; a chunk's result is kept only once ``advance`` returns)
    raises ``interrupted(done)`` where given, else the ``KeyboardInterrupt`` itself.
    """
    saved = done
    try:
        while done < total:
            n = min(chunk - done % chunk, total - done)
            extra = advance(done, n)
            if isinstance(extra, Early):
                done += extra.ran
                bar.update(extra.ran, extra.text)
                bar.finish()
                return done
            done += n
            bar.update(n, extra)
            if every and save is not None and done - saved >= every and done < total:
                save(done)
                saved = done
    except KeyboardInterrupt:
        bar.close()
        if interrupted is None:
            raise
        raise interrupted(done) from None
    except BaseException:
        bar.close()  # end the bar's line before the error is printed
        raise
    return done


__all__ = ["Early", "Progress", "run_chunks"]
