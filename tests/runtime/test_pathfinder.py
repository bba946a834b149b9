"""Pathfinder (single path): a Gaussian posterior is recovered, draws start NUTS chains,
and the method is one entry of the methods table (API keywords and CLI flags from one
settings class)."""

import json

import numpy as np
import pytest

# The regression of test_laplace: on the unconstrained scale (Jacobian included) the
# posterior of (alpha, beta, log s) is exactly Gaussian with a closed form.
from test_laplace import REGRESSION, closed_form, regression_data  # this folder is on sys.path

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main
from fpl.runtime.io import load_fit
from fpl.runtime.methods import flag_of, methods
from fpl.runtime.pathfinder import PathfinderSettings

DRAWS = 2000


@pytest.fixture(scope="module")
def model():
    return fpl.compile(REGRESSION, "regression.fpl")


@pytest.fixture(scope="module")
def fit(model):
    return model.pathfinder(regression_data(), draws=DRAWS, seed=3)


def test_recovers_a_gaussian_posterior(fit):
    mean, cov = closed_form(regression_data())
    sd = np.sqrt(np.diag(cov))
    post = fit.posterior
    got = np.r_[post["alpha"].mean(), post["beta"].reshape(-1, 3).mean(0), np.log(post["s"]).mean()]
    got_sd = np.r_[post["alpha"].std(), post["beta"].reshape(-1, 3).std(0), np.log(post["s"]).std()]
    # 2000 (resampled) draws: the mean's Monte Carlo error is <= sd/sqrt(ESS) ~ 0.05 sd
    # with ESS >= 400 (checked below); 0.2 sd is 4 such errors.  The L-BFGS inverse
    # Hessian of a 5-d quadratic after >= 5 accepted pairs is close to exact, and the
    # importance resampling corrects what remains, so sds match to 15%.
    assert fit.attrs["importance_ess"] >= 400
    np.testing.assert_array_less(np.abs(got - mean), 0.2 * sd)
    np.testing.assert_array_less(np.abs(got_sd / sd - 1), 0.15)
    assert fit.posterior["alpha"].shape == (1, DRAWS)
    assert fit.generated["y_rep"].shape == (1, DRAWS, 30)
    assert np.all(np.isfinite(fit.sample_stats["lp"]))


def test_draws_start_nuts_chains(model, fit):
    """``sample(init=fit)`` starts each chain at a different Pathfinder draw."""
    data = regression_data()
    nuts = model.sample(data, chains=2, warmup=150, draws=150, seed=4, init=fit, progress=False)
    mean, _ = closed_form(data)
    assert abs(float(nuts.posterior["alpha"].mean()) - mean[0]) < 0.5
    from fpl.runtime.inits import draws_for_chains as _draws_for_chains

    starts = _draws_for_chains(model.bind(data), fit, 2)
    assert starts[0]["alpha"] != starts[1]["alpha"]


def test_settings_are_validated_once_for_api_and_cli(model, tmp_path, capsys):
    with pytest.raises(FplError, match="E0403.*`draws` must be >= 1"):
        model.pathfinder(regression_data(), draws=0)
    with pytest.raises(FplError, match="E0403.*unknown setting `darws`"):
        model.pathfinder(regression_data(), darws=10)
    with pytest.raises(FplError, match="E0403.*`history` must be an integer"):
        PathfinderSettings(history=2.5)
    src, data = tmp_path / "m.fpl", tmp_path / "d.json"
    src.write_text(REGRESSION)
    data.write_text(json.dumps(regression_data()))
    argv = ["pathfinder", str(src), "--data", str(data)]
    assert main([*argv, "--draws", "0"]) == 2
    assert "E0403" in capsys.readouterr().err  # the same coded message as the API's
    out = tmp_path / "pf.json"
    assert main([*argv, "--draws", "300", "--seed", "1", "-o", str(out)]) == 0
    assert "L-BFGS iterations" in capsys.readouterr().out
    back = load_fit(str(out))
    assert back.posterior["beta"].shape == (1, 300, 3)
    assert back.attrs["method"] == "pathfinder"


def test_every_method_has_flags_for_its_settings(capsys):
    """The CLI is built from the settings fields: each has a flag whose help shows its
    default (a method added to the table gets its command with no CLI code)."""
    import dataclasses

    for name, method in methods().items():
        assert main([name, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for f in dataclasses.fields(method.settings):
            if f.metadata.get("cli", True):
                assert flag_of(f) in text, (name, f.name)
        assert "(default:" in text
