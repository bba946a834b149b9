"""``--weights`` takes an ``optimize`` result (issue 13/12): ``fpl optimize m.fpl -o
fit.json`` (or ``fit.nc``) then ``fpl sample m.fpl --weights fit.json`` samples with the
fitted weights, read by ``fpl.runtime.io.read_weights`` (which also reads a VI fit's
weights, and a plain JSON of weights by name as before); ``weights=`` in Python takes a
loaded result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main
from fpl.runtime.io import FitData, load_fit, read_weights, save_fit
from fpl.runtime.optimize_result import load_result

# y = b x + noise of sd 0.2: the fitted noise scale exp(log_s) is far from its init (1),
# and the out `s` records, at every draw, the weight the sampler was given
MODEL = """data N: int
data x: real[N]
data y: real[N]
weight log_s: real init 0.0
param b ~ normal(0, 10)
y ~ normal(b * x, exp(log_s))
out s = exp(log_s)
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(1)
    x = rng.normal(size=20)
    y = 0.5 * x + 0.2 * rng.normal(size=20)
    (folder / "m.fpl").write_text(MODEL)
    (folder / "d.json").write_text(json.dumps({"N": 20, "x": x.tolist(), "y": y.tolist()}))
    return folder


def _cli(folder: Path, *args: str) -> None:
    assert main([args[0], str(folder / "m.fpl"), "--data", str(folder / "d.json"), *args[1:]]) == 0


def test_sample_with_the_weights_of_an_optimize_result(files: Path, capsys):
    result = files / "fit.json"
    _cli(files, "optimize", "-o", str(result), "--steps", "300", "--seed", "1", "--quiet")
    fitted = load_result(result).weights["log_s"]
    # the maximum-likelihood noise scale is near 0.2, nowhere near the init exp(0) = 1
    assert abs(float(np.exp(fitted)) - 0.2) < 0.1
    draws = files / "draws.json"
    args = ["--chains", "1", "--warmup", "10", "--draws", "10", "--seed", "1", "--quiet"]
    _cli(files, "sample", "--weights", str(result), *args, "-o", str(draws))
    s = load_fit(str(draws)).posterior["s"]
    np.testing.assert_allclose(s, np.exp(fitted), rtol=1e-12)  # the same float, every draw
    capsys.readouterr()


def test_an_optimize_result_as_netcdf(files: Path, capsys):
    # `-o fit.nc`: a one-draw fit (ArviZ reads its posterior) carrying the weights and the
    # whole result; `--weights` reads it like the JSON (the flag's path is the same)
    result = files / "fit.nc"
    _cli(files, "optimize", "-o", str(result), "--steps", "300", "--seed", "1", "--quiet")
    loaded = load_result(result)
    assert loaded.steps == 300 and loaded.weights["log_s"] < -1.0
    assert read_weights(str(result)) == loaded.weights
    fit = fpl.load_fit(str(result))
    assert fit.attrs["method"] == "optimize" and fit.model == "m"
    np.testing.assert_array_equal(fit.posterior["b"], [[loaded.param_values["b"]]])
    capsys.readouterr()


def test_python_weights_take_a_loaded_result(files: Path):
    result = files / "fit.json"
    if not result.exists():
        _cli(files, "optimize", "-o", str(result), "--steps", "300", "--seed", "1", "--quiet")
    loaded = load_result(result)
    data = json.loads((files / "d.json").read_text())
    cm = fpl.compile(MODEL).bind(data, weights=loaded)
    assert float(cm.weights["log_s"]) == float(loaded.weights["log_s"]) != 0.0


def test_python_weights_take_a_result_file_or_a_loaded_fit(files: Path):
    result = files / "fit.nc"
    if not result.exists():
        _cli(files, "optimize", "-o", str(result), "--steps", "300", "--seed", "1", "--quiet")
    fitted = float(load_result(result).weights["log_s"])
    data = json.loads((files / "d.json").read_text())
    model = fpl.compile(MODEL)
    for given in (str(result), result, fpl.load_fit(str(result))):
        assert float(model.bind(data, weights=given).weights["log_s"]) == fitted != 0.0


def test_a_fit_with_weights_in_its_attributes(tmp_path: Path):
    # what `vi` saves: the weights it fitted, as JSON in the attributes
    weights = {"W": [[0.5, -1.0], [2.0, 0.25]], "c": 3.0}
    fit = FitData(posterior={"b": np.zeros((1, 4))}, attrs={"weights": json.dumps(weights)})
    for suffix in (".json", ".nc"):
        path = str(tmp_path / f"vi{suffix}")
        save_fit(path, fit)
        got = read_weights(path)
        assert set(got) == {"W", "c"}
        np.testing.assert_array_equal(got["W"], weights["W"])
        assert float(got["c"]) == 3.0


def test_plain_weights_and_fits_without_weights(tmp_path: Path, capsys):
    plain = tmp_path / "w.json"
    plain.write_text('{"log_s": -1.5}')
    assert read_weights(str(plain)) == {"log_s": -1.5}
    nuts = tmp_path / "nuts.json"
    save_fit(str(nuts), FitData(posterior={"b": np.zeros((1, 4))}, attrs={"method": "sample"}))
    with pytest.raises(FplError) as info:
        read_weights(str(nuts))
    assert info.value.diagnostics[0].code == "E0404"
    assert "holds no weights" in info.value.diagnostics[0].message
    model = tmp_path / "m.fpl"
    model.write_text(MODEL)
    data = tmp_path / "d.json"
    data.write_text('{"N": 1, "x": [1.0], "y": [0.5]}')
    code = main(["sample", str(model), "--data", str(data), "--weights", str(nuts)])
    assert code == 1 and "error[E0404]" in capsys.readouterr().err
