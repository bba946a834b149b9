"""Checkpoints whose header lies about their arrays are refused with E0408 (issue 11),
never resumed from: each case doctors one field of a well-formed sampling checkpoint."""

from __future__ import annotations

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
