"""Checkpoints: ``optimize`` and ``sample`` resumed (after a stop or Ctrl-C) give
exactly the result of an uninterrupted run; mismatched resumes are coded errors."""

import json

import numpy as np
import optax
import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.checkpoint import Interrupted
from fpl.runtime.cli import main
from fpl.runtime.loop import Progress

REG = """
data N: int
data K: int
data X: real[N, K]
data y: real[N]
param beta: real[K] ~ normal(0, 5)
param sigma: real<lower=0> ~ exponential(1)
y ~ normal(X @ beta, sigma)
"""

RNG = np.random.default_rng(5)
X = RNG.normal(size=(20, 2))
DATA = {"X": X, "y": X @ np.array([1.0, -1.0]) + RNG.normal(size=20)}


def _interrupt_at(monkeypatch, when):
    """Ctrl-C once the progress bar has counted ``when`` iterations (between chunks)."""
    real = Progress.update
    state = {"fired": False}

    def update(self, n, extra=""):
        real(self, n, extra)
        if not state["fired"] and self.done >= when(self):
            state["fired"] = True
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "update", update)
    return state


def _opt(model, **kw):
    base = dict(optimizer=optax.adam(0.05), seed=3, batch_size=5, progress=False)
    return model.optimize(DATA, **{**base, **kw})


def test_optimize_resumed_equals_uninterrupted(tmp_path):
    model = fpl.compile(REG)
    straight = _opt(model, steps=300)
    ck = tmp_path / "run.ckpt"
    first = _opt(model, steps=100, checkpoint=ck, every=50)
    assert first.steps == 100 and ck.exists()
    resumed = _opt(model, steps=300, checkpoint=ck, every=50, resume=True)
    # the same compiled steps on the same state and minibatches: bit-identical
    for k in ("beta", "sigma"):
        np.testing.assert_array_equal(resumed.params[k], straight.params[k])
    np.testing.assert_array_equal(resumed.trace, straight.trace)

    # a resume with other data or settings is refused, as is one with no file
    other = {**DATA, "y": DATA["y"] + 1}
    with pytest.raises(FplError) as e:
        model.optimize(
            other,
            optimizer=optax.adam(0.05),
            seed=3,
            batch_size=5,
            steps=300,
            checkpoint=ck,
            resume=True,
            progress=False,
        )
    assert e.value.diagnostics[0].code == "E0408"
    with pytest.raises(FplError) as e:
        _opt(model, steps=300, checkpoint=ck, resume=True, batch_size=4)
    assert e.value.diagnostics[0].code == "E0408"
    with pytest.raises(FplError) as e:
        _opt(model, steps=300, checkpoint=tmp_path / "none.ckpt", resume=True)
    assert e.value.diagnostics[0].code == "E0408"
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(FplError) as e:
        _opt(model, steps=300, checkpoint=tmp_path / "junk.ckpt", resume=True)
    assert e.value.diagnostics[0].code == "E0408"


def test_cli_optimize_ctrl_c_then_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FPL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.fpl").write_text(REG)
    (tmp_path / "d.json").write_text(json.dumps({k: v.tolist() for k, v in DATA.items()}))
    argv = ["optimize", "m.fpl", "--data", "d.json", "--steps", "60", "--seed", "2", "--quiet"]
    assert main([*argv, "-o", "straight.json"]) == 0
    _interrupt_at(monkeypatch, lambda bar: 20)
    monkeypatch.setattr("sys.argv", ["fpl", *argv, "--every", "20", "--checkpoint", "c.ckpt"])
    rc = main([*argv, "--every", "20", "--checkpoint", "c.ckpt"])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted at step 20" in err
    assert "resume with: fpl optimize m.fpl" in err and err.rstrip().endswith("--resume")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--checkpoint", "c.ckpt", "--resume", "-o", "resumed.json"]) == 0
    a = json.loads((tmp_path / "straight.json").read_text())
    b = json.loads((tmp_path / "resumed.json").read_text())
    assert a["params"] == b["params"] and a["trace"] == b["trace"]


NORMAL = """
data N: int
data y: real[N]
param mu ~ normal(0, 5)
param sigma: real<lower=0> ~ exponential(1)
y ~ normal(mu, sigma)
"""


def test_sample_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    """All chains advance together: Ctrl-C after 60 of 100 iterations (chunks of 20, in
    warmup, after the metric's first windows) saves every chain's HMC and adaptation
    state; the resumed run's draws and stats are the uninterrupted run's, bit for bit."""
    model = fpl.compile(NORMAL)
    data = {"y": RNG.normal(1.0, 2.0, size=15)}
    kw = dict(chains=2, warmup=60, draws=40, seed=11, progress=False)
    straight = model.sample(data, **kw)
    ck = tmp_path / "s.ckpt"
    _interrupt_at(monkeypatch, lambda bar: 40)
    with pytest.raises(Interrupted) as e:
        model.sample(data, checkpoint=ck, every=20, **kw)
    assert "interrupted at iteration 40" in str(e.value) and e.value.step == 40
    monkeypatch.undo()
    resumed = model.sample(data, checkpoint=ck, every=20, resume=True, **kw)
    for k in ("mu", "sigma"):
        np.testing.assert_array_equal(resumed.posterior[k], straight.posterior[k])
    for k in ("lp", "step_size", "n_leapfrog"):
        np.testing.assert_array_equal(resumed.sample_stats[k], straight.sample_stats[k])
        np.testing.assert_array_equal(
            resumed.warmup_sample_stats[k], straight.warmup_sample_stats[k]
        )
    for k, v in straight.adaptation.items():
        np.testing.assert_array_equal(resumed.adaptation[k], v)
    # a different number of draws is another run: refused
    with pytest.raises(FplError) as e:
        model.sample(data, checkpoint=ck, resume=True, **{**kw, "draws": 50})
    assert e.value.diagnostics[0].code == "E0408"


def test_a_short_last_chunk_idles_in_the_one_chunk_program(tmp_path, monkeypatch):
    """A run's chunks share one compiled program of ``chunk`` iterations: a shorter chunk
    (the run's last) idles through the rest, leaving its state (RNG key included) as a
    program of its own length would.  150 iterations in chunks of 100 (100, then 50 run
    and 50 idle) give the draws of chunks of 50 (no idling), bit for bit."""
    from fpl.runtime import nuts

    lengths = []
    programs = nuts._programs

    def spy(*args, **kwargs):
        start, step = programs(*args, **kwargs)

        def recorded(*a):
            lengths.append(a[-1])  # the static length: one compile per distinct value
            return step(*a)

        recorded.lower = step.lower
        return start, recorded

    monkeypatch.setattr(nuts, "_programs", spy)
    model = fpl.compile(NORMAL)
    data = {"y": RNG.normal(1.0, 2.0, size=15)}
    kw = dict(chains=2, warmup=90, draws=60, seed=4, progress=False)
    straight = model.sample(data, **kw)
    assert lengths == [100] * 4  # 2 chunks x 2 chains, one program
    lengths.clear()
    chunked = model.sample(data, checkpoint=tmp_path / "c.ckpt", every=50, **kw)
    assert lengths == [50] * 6
    for k in ("mu", "sigma"):
        np.testing.assert_array_equal(chunked.posterior[k], straight.posterior[k])
    for k in ("lp", "step_size", "n_leapfrog"):
        np.testing.assert_array_equal(chunked.sample_stats[k], straight.sample_stats[k])
        np.testing.assert_array_equal(
            chunked.warmup_sample_stats[k], straight.warmup_sample_stats[k]
        )
    for k, v in straight.adaptation.items():
        np.testing.assert_array_equal(chunked.adaptation[k], v)


def test_cli_sample_ctrl_c_prints_the_resume_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.fpl").write_text(NORMAL)
    (tmp_path / "d.json").write_text(json.dumps({"N": 8, "y": RNG.normal(size=8).tolist()}))
    argv = [
        "sample",
        "m.fpl",
        "--data",
        "d.json",
        "--chains",
        "1",
        "--warmup",
        "20",
        "--draws",
        "20",
        "--seed",
        "1",
        "--quiet",
        "--checkpoint",
        "s.ckpt",
        "--every",
        "10",
    ]
    _interrupt_at(monkeypatch, lambda bar: 20)
    monkeypatch.setattr("sys.argv", ["fpl", *argv])
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted at iteration 20; checkpoint written to s.ckpt" in err
    assert "resume with: fpl sample m.fpl" in err and err.rstrip().endswith("--resume")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--resume"]) == 0


def test_a_changed_function_body_is_another_model(tmp_path):
    """The fingerprint hashes the IR itself, function bodies included: a checkpoint of a
    model with ``fn f(x) = 2 * x`` does not resume into ``fn f(x) = 3 * x`` (E0408)."""
    src = (
        "data N: int\ndata y: real[N]\nparam mu ~ normal(0, 5)\n"
        "fn f(x) = {k} * x\ny ~ normal(f(mu), 1)\n"
    )
    data = {"y": RNG.normal(1.0, 1.0, size=8)}
    kw = dict(chains=1, warmup=20, draws=10, seed=1, progress=False)
    ck = tmp_path / "f.ckpt"
    fpl.compile(src.format(k=2)).sample(data, checkpoint=ck, **kw)
    with pytest.raises(FplError) as e:
        fpl.compile(src.format(k=3)).sample(data, checkpoint=ck, resume=True, **kw)
    assert e.value.diagnostics[0].code == "E0408"
    # the same model resumes (the check is not simply refusing everything)
    fpl.compile(src.format(k=2)).sample(data, checkpoint=ck, resume=True, **kw)
