"""Checkpoints whose header lies about their arrays are refused with E0408 (issue 11),
never resumed from: each case doctors one field of a well-formed sampling checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fpl.dsl.diagnostics import FplError
from fpl.runtime.checkpoint import NutsResumed, load, save, saved_seed


def _good():
    header = {"done": 3, "n_stats": 1, "seed": 5}
    arrays = {
        "positions": np.zeros((2, 3, 4)),
        "stat/0": np.zeros((2, 3)),
        "failures": np.zeros((0, 3), np.int64),
    }
    return header, arrays


def test_a_well_formed_checkpoint_is_read():
    header, arrays = _good()
    resumed = NutsResumed(header, arrays, "c.npz")
    assert resumed.done == 3 and resumed.positions.shape == (2, 3, 4) and resumed.failures == {}


@pytest.mark.parametrize(
    "doctor",
    [
        lambda h, a: h.update(done=5),  # more draws than the arrays hold
        lambda h, a: h.update(done=-1),
        lambda h, a: h.update(done="3"),
        lambda h, a: h.update(n_stats=2),  # a stat that is not there
        lambda h, a: h.update(n_stats=0),  # a stat the header does not name
        lambda h, a: a.pop("positions"),
        lambda h, a: a.update(positions=np.zeros((2, 3))),
        lambda h, a: a.update({"stat/0": np.zeros((1, 3))}),
        lambda h, a: a.update(failures=np.zeros((1, 2), np.int64)),
        lambda h, a: a.update(failures=np.asarray([[7, 0, 1]])),  # chain 7 of 2
        lambda h, a: a.update(failures=np.asarray([[0.5, 0, 1]])),
    ],
)
def test_a_header_that_lies_is_e0408(doctor):
    header, arrays = _good()
    doctor(header, arrays)
    with pytest.raises(FplError) as exc:
        NutsResumed(header, arrays, "c.npz")
    assert exc.value.code == "E0408"


def test_a_header_that_is_not_an_object_is_e0408(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, __header__=np.asarray("[1, 2]"))
    with pytest.raises(FplError) as exc:
        load(str(path), "sample", "x")
    assert exc.value.code == "E0408"


def test_a_seed_that_is_not_an_integer_is_ignored(tmp_path):
    path = str(tmp_path / "c.npz")
    save(path, "sample", "x", 0, {"seed": "abc"}, {})
    assert saved_seed(path) is None
    save(path, "sample", "x", 0, {"seed": 42}, {})
    assert saved_seed(path) == 42


# ---- optimize, and doctored content (issue 11) -------------------------------------------


def _optimize_arrays():
    header = {"step": 3, "skipped": 0, "seed": 5}
    arrays = {"theta/0": np.zeros(2), "opt/0": np.zeros(2), "trace": np.zeros(3)}
    return header, arrays


@pytest.mark.parametrize(
    "doctor",
    [
        lambda h, a: h.update(step=7),  # more steps than the trace holds
        lambda h, a: h.update(step="3"),
        lambda h, a: h.update(step=True),
        lambda h, a: h.update(skipped=4),  # more skipped than taken
        lambda h, a: h.update(skipped=-1),
        lambda h, a: a.pop("trace"),
        lambda h, a: a.update(trace=np.zeros((3, 1))),
        lambda h, a: a.update({"theta/0": np.asarray([0.0, np.nan])}),
        lambda h, a: a.update({"theta/0": np.asarray(["a", "b"])}),
    ],
)
def test_an_optimize_header_that_lies_is_e0408(doctor):
    from fpl.runtime.checkpoint import OptimizeResumed

    header, arrays = _optimize_arrays()
    assert OptimizeResumed(dict(header), dict(arrays), "c.npz").step == 3  # as written: fine
    doctor(header, arrays)
    with pytest.raises(FplError) as exc:
        OptimizeResumed(header, arrays, "c.npz")
    assert exc.value.code == "E0408"


@pytest.mark.parametrize("kind", ["optimize", "sample"])
def test_a_checkpoint_edited_after_it_was_written_is_e0408(tmp_path, kind):
    """Well-formed but doctored content (a param moved, a step count changed, the digest
    dropped) would resume silently from a state no run reached: the digest refuses it."""
    path = str(tmp_path / "c.npz")
    header, arrays = _optimize_arrays()
    save(path, kind, "fp", 3, {"skipped": 0}, arrays)
    assert load(path, kind, "fp")[0]["step"] == 3
    with np.load(path) as z:
        stored = {k: z[k] for k in z.files}
    written = json.loads(str(stored.pop("__header__")))
    edits = [
        ({**written, "step": 2}, stored),
        ({k: v for k, v in written.items() if k != "digest"}, stored),
        (written, {**stored, "theta/0": np.asarray([5.0, 0.0])}),
    ]
    for h, a in edits:
        np.savez(path, __header__=np.asarray(json.dumps(h)), **a)
        with pytest.raises(FplError) as exc:
            load(path, kind, "fp")
        assert exc.value.code == "E0408" and "digest" in str(exc.value)
