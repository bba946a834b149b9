"""``Model.predict`` / ``fpl predict``: outs and gens of a saved fit's draws with new data."""

import json

import numpy as np
import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main
from fpl.runtime.io import FitData, load_fit, save_fit

MODEL = """
data N: int
data x: real[N]
weight w: real init 0.0
param a ~ normal(0, 1)
param b: real<lower=0> ~ lognormal(0, 1)
out mu = a + b * x + w
gen y_rep ~ normal(mu, 0.1)
"""
NEW = {"N": 4, "x": [0.0, 1.0, 2.0, -3.0]}


def saved_fit(path, *, weights=None, drop=None, a_shape=()):
    rng = np.random.default_rng(0)
    posterior = {"a": rng.normal(size=(2, 5, *a_shape)), "b": rng.lognormal(size=(2, 5))}
    if drop:
        del posterior[drop]
    attrs = {"method": "sample", "seed": 1}
    if weights is not None:
        attrs["weights"] = json.dumps(weights)
    save_fit(str(path), FitData(posterior=posterior, attrs=attrs))
    return posterior


@pytest.fixture(scope="module")
def model():
    return fpl.compile(MODEL, "pred.fpl")


def test_predict_computes_outs_and_gens_per_draw(model, tmp_path):
    posterior = saved_fit(tmp_path / "fit.nc", weights={"w": 1.5})
    pred = model.predict(str(tmp_path / "fit.nc"), NEW, seed=4)
    x = np.asarray(NEW["x"])
    # the weight saved with the fit (as VI saves it) is used: w = 1.5
    expected = posterior["a"][..., None] + posterior["b"][..., None] * x + 1.5
    np.testing.assert_allclose(pred.draws("mu"), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pred.draws("a"), posterior["a"])  # draws pass through
    y_rep = pred.draws("y_rep")
    assert y_rep.shape == (2, 5, 4)
    assert np.all(np.abs(y_rep - expected) < 0.1 * 6)  # normal(mu, 0.1): 6 sds
    assert pred.attrs["method"] == "predict" and pred.attrs["fit_method"] == "sample"
    # given weights win over saved ones
    again = model.predict(str(tmp_path / "fit.nc"), NEW, seed=4, weights={"w": 0.0})
    np.testing.assert_allclose(again.draws("mu"), expected - 1.5, rtol=1e-12, atol=1e-12)


def test_a_fit_missing_a_param_is_a_coded_error(model, tmp_path):
    saved_fit(tmp_path / "fit.json", drop="b")
    with pytest.raises(FplError) as exc:
        model.predict(str(tmp_path / "fit.json"), NEW)
    assert exc.value.code == "E0404"
    assert "`b`" in exc.value.diagnostics[0].message


def test_a_param_of_the_wrong_shape_is_a_coded_error(model, tmp_path):
    saved_fit(tmp_path / "fit.json", a_shape=(3,))
    with pytest.raises(FplError) as exc:
        model.predict(str(tmp_path / "fit.json"), NEW)
    assert exc.value.code == "E0405"


def test_cli_predict(tmp_path, capsys):
    posterior = saved_fit(tmp_path / "fit.nc")
    (tmp_path / "m.fpl").write_text(MODEL)
    (tmp_path / "new.json").write_text(json.dumps(NEW))
    (tmp_path / "w.json").write_text(json.dumps({"w": -2.0}))
    out = tmp_path / "pred.nc"
    base = ["predict", str(tmp_path / "m.fpl"), "--data", str(tmp_path / "new.json")]
    argv = [*base, "--fit", str(tmp_path / "fit.nc"), "--weights", str(tmp_path / "w.json")]
    assert main([*argv, "--seed", "1", "-o", str(out)]) == 0
    back = load_fit(str(out))
    expected = posterior["a"][..., None] + posterior["b"][..., None] * np.asarray(NEW["x"]) - 2
    np.testing.assert_allclose(back.posterior["mu"], expected, rtol=1e-12, atol=1e-12)
    assert back.posterior_predictive["y_rep"].shape == (2, 5, 4)
    saved_fit(tmp_path / "bad.nc", drop="a")
    capsys.readouterr()
    assert main([*base, "--fit", str(tmp_path / "bad.nc")]) == 1
    assert "E0404" in capsys.readouterr().err
    assert main(base) == 2  # --fit is required


REGRESSION = """
data N: int
data x: real[N]
data y: real[N]
param a ~ normal(0, 1)
param b ~ normal(0, 1)
out mu = a + b * x
y ~ normal(mu, 1)
gen y_rep ~ normal(mu, 0.1)
"""


def test_predict_with_new_covariates_and_no_outcome(tmp_path, capsys):
    """The outcome `y` (read only by `~`) may be left out of new data; the fit's
    summary is that of the predictions, and the data land in constant_data."""
    reg = fpl.compile(REGRESSION, "reg.fpl")
    rng = np.random.default_rng(0)
    posterior = {"a": rng.normal(size=(2, 5)), "b": rng.normal(size=(2, 5))}
    save_fit(str(tmp_path / "fit.json"), FitData(posterior=posterior, attrs={"seed": 1}))
    pred = reg.predict(str(tmp_path / "fit.json"), NEW, seed=3)
    expected = posterior["a"][..., None] + posterior["b"][..., None] * np.asarray(NEW["x"])
    np.testing.assert_allclose(pred.draws("mu"), expected, rtol=1e-12, atol=1e-12)
    assert pred.summary().names[:2] == ["mu[1]", "mu[2]"]  # predictions, not a and b
    assert "y_rep[4]" in pred.summary().names and "a" not in pred.summary().names
    assert "y" not in pred.observed and set(pred.constant_data) == {"N", "x"}
    (tmp_path / "reg.fpl").write_text(REGRESSION)
    (tmp_path / "new.json").write_text(json.dumps(NEW))
    argv = ["predict", str(tmp_path / "reg.fpl"), "--data", str(tmp_path / "new.json")]
    capsys.readouterr()
    assert main([*argv, "--fit", str(tmp_path / "fit.json"), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "y_rep[1]" in printed and "mu[4]" in printed
    missing_size = {"x": [1.0]}  # N missing: still E0301, with the field named
    with pytest.raises(FplError) as exc:
        reg.predict(str(tmp_path / "fit.json"), missing_size)
    assert exc.value.code == "E0301" and "`N`" in str(exc.value)
