"""The progress display of long runs (``fpl.runtime.loop``): plain periodic lines when
stderr is not a terminal, a tqdm bar when it is; compile time apart from the rate."""

import io

import pytest

from fpl.runtime.loop import Early, Progress, run_chunks


class Clock:
    """A clock the test advances by hand (so rates and ETAs are exact)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_every_tenth_with_compile_time_apart():
    clock, out = Clock(), io.StringIO()
    bar = Progress(True, 1000, "sampling 4 chains", stream=out, clock=clock)
    for i in range(20):
        clock.now += 3.0 if i == 0 else 0.5  # the first chunk carries the compilation
        bar.update(50, "divergent: warmup 3, sampling 0")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # the first chunk, then one line per tenth (100, 200, ... 1000): 11 lines, not 20
    assert len(lines) == 11
    assert lines[0] == (
        "sampling 4 chains: 50/1000 (5%), compiled in 3.0 s, divergent: warmup 3, sampling 0"
    )
    # 50 iterations per 0.5 s after compilation: 100 it/s; 800 left at 200/1000: 8 s
    assert lines[2] == (
        "sampling 4 chains: 200/1000 (20%), 100 it/s, ETA 0:08, divergent: warmup 3, sampling 0"
    )
    assert lines[-1] == (
        "sampling 4 chains: 1000/1000 (100%) in 12.5 s, compiled in 3.0 s, 100 it/s, "
        "divergent: warmup 3, sampling 0"
    )
    assert bar.compile_seconds == 3.0 and bar.rate() == pytest.approx(100.0)


def test_plain_lines_also_every_ten_seconds():
    clock, out = Clock(), io.StringIO()
    bar = Progress(True, 10_000, "optimize", stream=out, clock=clock)
    for _ in range(20):  # 20 chunks of 10 (2% of the run), 3 s each
        clock.now += 3.0
        bar.update(10)
    # a line at the first chunk, then whenever 10 s have passed (no tenth is reached)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "optimize: 10/10000 (0%)",
        "optimize: 50/10000 (0%)",
        "optimize: 90/10000 (1%)",
        "optimize: 130/10000 (1%)",
        "optimize: 170/10000 (2%)",
    ]


def test_terminal_gets_a_bar_that_ends_its_line():
    clock, out = Clock(), Terminal()
    bar = Progress(True, 100, "vi", stream=out, clock=clock)
    assert "compiling" in out.getvalue()
    for i in range(4):
        clock.now += 2.0 if i == 0 else 1.0
        bar.update(25, "elbo -3.5")
    text = out.getvalue()
    assert "\r" in text and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("vi: 100%|") and "100/100" in last
    assert "compiled in 2.0 s" in last and "25 it/s" in last and "elbo -3.5" in last


def test_disabled_progress_writes_nothing_but_counts():
    out = io.StringIO()
    bar = Progress(False, 100, "x", stream=out)
    bar.update(40)
    bar.update(60)
    assert out.getvalue() == "" and bar.done == 100


def test_resumed_iterations_are_counted_but_not_timed():
    clock, out = Clock(), io.StringIO()
    bar = Progress(True, 1000, "optimize", stream=out, clock=clock)
    bar.resume(600)
    bar.update(0)  # an empty update is not the first chunk
    clock.now = 5.0
    bar.update(100)
    clock.now = 6.0
    bar.update(100)
    assert bar.done == 800 and bar.compile_seconds == 5.0
    assert bar.rate() == pytest.approx(100.0)  # 100 iterations in 1 s after the first chunk
    assert bar.eta() == pytest.approx(2.0)
    assert out.getvalue().splitlines()[0].startswith("optimize: 700/1000 (70%), compiled in 5.0 s")


def test_run_chunks_stops_early_and_reports_it():
    clock, out = Clock(), io.StringIO()
    bar = Progress(True, 1000, "optimize", stream=out, clock=clock)
    calls = []

    def advance(done, n):
        calls.append((done, n))
        clock.now += 1.0
        return Early("converged after 230 steps", 30) if done == 200 else "loss 1"

    assert run_chunks(advance, done=0, total=1000, chunk=100, bar=bar) == 230
    assert calls == [(0, 100), (100, 100), (200, 100)]
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("optimize: 230/1000 (23%) in 3.0 s")
    assert last.endswith("converged after 230 steps, stopped early")


def test_run_chunks_closes_the_bar_on_an_error():
    out = Terminal()
    bar = Progress(True, 100, "sampling", stream=out)

    def advance(done, n):
        if done:
            raise ValueError("boom")
        return ""

    with pytest.raises(ValueError):
        run_chunks(advance, done=0, total=100, chunk=50, bar=bar)
    assert out.getvalue().endswith("\n")  # the error is printed on a line of its own
