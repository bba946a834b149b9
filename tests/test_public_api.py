"""``dir(fpl)`` is the public API: the names it lists, each resolving to its module's
object (imported lazily), and ``fpl.load_result`` reading back a saved optimize result."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import fpl

#: The public API and where each name lives (a name added to or dropped from
#: ``fpl.__all__`` must be added here too: the test below compares the two).
PUBLIC = {
    "__version__": None,
    "load": "fpl.runtime.model",
    "compile": "fpl.runtime.model",
    "Model": "fpl.runtime.model",
    "Fit": "fpl.runtime.fit",
    "load_fit": "fpl.runtime.fit",
    "load_result": "fpl.runtime.optimize_result",
    "Summary": "fpl.runtime.summary",
    "read_data": "fpl.runtime.data",
    "FplError": "fpl.dsl.diagnostics",
    "parse": "fpl.dsl.parser",
}


def test_dir_is_the_public_api():
    assert dir(fpl) == sorted(PUBLIC)


@pytest.mark.parametrize("name", [n for n, m in PUBLIC.items() if m is not None])
def test_each_public_name_is_its_modules_object(name):
    assert getattr(fpl, name) is getattr(importlib.import_module(PUBLIC[name]), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'load_results'"):
        fpl.load_results  # noqa: B018


@pytest.mark.parametrize("suffix", [".json", ".nc"])
def test_load_result_reads_a_saved_result_back(tmp_path, suffix):
    from fpl.runtime.optimize_result import OptimizeResult

    saved = OptimizeResult(
        model="ridge",
        param_values={"beta": np.array([0.25, -1.5])},
        weights={"log_lam": np.array(0.75)},
        outputs={},
        trace=np.array([3.0, 2.0, 1.5]),
        loss=1.5,
        grad_norm=1e-3,
        steps=3,
    )
    path = tmp_path / f"res{suffix}"
    saved.save(path)
    back = fpl.load_result(str(path))
    assert isinstance(back, OptimizeResult)
    # the values are written as decimal text or float64 netCDF: they round-trip exactly
    np.testing.assert_array_equal(back.params["beta"], saved.params["beta"])
    np.testing.assert_array_equal(back.weights["log_lam"], saved.weights["log_lam"])
    np.testing.assert_array_equal(back.trace, saved.trace)
    assert (back.model, back.loss, back.steps) == ("ridge", 1.5, 3)
