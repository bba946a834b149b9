"""Hostile faults while writing results (issue 11): a full disk is E0502 for every
format (never a signal), temporary files never outlive their writer, and the leftovers
of a killed writer are swept on the next write to the same target."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fpl.dsl.diagnostics import FplError
from fpl.runtime import cli, netcdf
from fpl.runtime import io as fit_io
from fpl.runtime.io import FitData, load_fit, save_fit


def _fit() -> FitData:
    rng = np.random.default_rng(0)
    return FitData(posterior={"mu": rng.normal(size=(2, 5))}, attrs={"model": "m"})


class _FullDisk:
    """A file opened for writing on a full disk: every write fails with ENOSPC."""

    def __init__(self, path, mode="r", *args, **kwargs):
        self.path = path

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_full_disk_writing_netcdf_is_e0502_and_leaves_nothing(tmp_path, monkeypatch):
    """The .nc is built in memory and its bytes written with Python's ``open``: on the
    old code h5py wrote the file itself, so this fake full disk was never consulted
    (and a real one crashed the process in HDF5)."""
    monkeypatch.setattr(netcdf, "open", _FullDisk, raising=False)
    with pytest.raises(FplError) as exc:
        save_fit(str(tmp_path / "fit.nc"), _fit())
    assert exc.value.code == "E0502" and "No space left" in str(exc.value)
    assert os.listdir(tmp_path) == []  # neither the target nor a temporary file


def test_netcdf_built_in_memory_reads_back(tmp_path):
    fit = _fit()
    save_fit(str(tmp_path / "fit.nc"), fit)
    np.testing.assert_array_equal(
        load_fit(str(tmp_path / "fit.nc")).posterior["mu"], fit.posterior["mu"]
    )
    assert os.listdir(tmp_path) == ["fit.nc"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock is POSIX")
def test_leftovers_of_a_killed_writer_are_swept_and_a_live_writers_are_not(tmp_path):
    dead = tmp_path / ".fit.json.deadbeef.tmp"  # as a SIGKILL in the write window leaves
    dead.write_text("partial")
    live = tmp_path / ".fit.json.0badcafe.tmp"  # another writer, still writing
    live.write_text("in progress")
    other = tmp_path / ".other.json.deadbeef.tmp"  # another target's: not this write's
    other.write_text("partial")
    import fcntl

    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        save_fit(str(tmp_path / "fit.json"), _fit())
        assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "fit.json"])
    finally:
        os.close(fd)
    assert fit_io.sweep_leftovers(str(tmp_path), "fit.json") == [str(live)]  # now unheld


def test_an_interrupted_write_removes_its_temporary_file(tmp_path):
    def write(temp: str) -> None:
        with open(temp, "w") as handle:
            handle.write("half")
        raise KeyboardInterrupt  # Ctrl-C, or the CLI's SIGTERM (raised the same way)

    with pytest.raises(KeyboardInterrupt):
        fit_io.write_atomic(str(tmp_path / "fit.json"), write)
    assert os.listdir(tmp_path) == []


# ---- Ctrl-C and SIGTERM ------------------------------------------------------------------


def _command_signalled(number: int, swallow: bool):
    def command(args) -> int:
        try:
            os.kill(os.getpid(), number)
            time.sleep(10)  # the handler interrupts this at once
        except KeyboardInterrupt:
            if not swallow:
                raise
        return 0  # as a run does whose Ctrl-C was swallowed in a callback

    return command


@pytest.mark.parametrize(
    ("number", "swallow", "expected"),
    [
        (signal.SIGTERM, False, 143),
        (signal.SIGINT, False, 130),
        (signal.SIGINT, True, 130),  # swallowed on its way: still ends the command with 130
        (signal.SIGTERM, True, 143),
    ],
)
def test_signals_end_the_command_with_130_or_143(monkeypatch, capsys, number, swallow, expected):
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(cli.COMMANDS, "check", _command_signalled(number, swallow))
    start = time.monotonic()
    assert cli.main(["check", "m.fpl"]) == expected
    assert time.monotonic() - start < 5  # not after the sleep
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # restored: main also runs in-process


@pytest.mark.slow  # a real sampling run, terminated in its sampling loop (~10 s)
def test_sigterm_during_sampling_checkpoints_and_prints_the_resume_command(tmp_path):
    model = tmp_path / "m.fpl"
    model.write_text("param mu ~ normal(0, 1)\n")
    ckpt = tmp_path / "run.ckpt"
    argv = [sys.executable, "-m", "fpl.runtime.cli", "sample", str(model), "--seed", "1"]
    argv += ["--draws", "10000000", "--checkpoint", str(ckpt), "-o", str(tmp_path / "f.nc")]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, cwd=tmp_path) as proc:
        err = ""
        for line in proc.stderr:  # wait for the sampling loop's progress
            err += line
            if "sampling" in line:
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        err += proc.stderr.read()
        assert proc.wait(timeout=60) == 143, err[-2000:]
    assert "--resume" in err and ckpt.exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_reader_that_leaves_the_pipe_is_not_an_internal_error(monkeypatch, capsys):
    def command(args) -> int:  # `fpl summary fit.nc | head`: head exits early
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "check", command)
    assert cli.main(["check", "m.fpl"]) == 141
    assert "internal error" not in capsys.readouterr().err
