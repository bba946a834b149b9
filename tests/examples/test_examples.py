"""Run every example model in examples/ and check its posterior against known answers.

Every ``examples/*.fpl`` without ``weight`` declarations is collected (so a new example
is picked up automatically). An example needs a data file ``<name>.json`` beside it and
a known answer:

* simulated examples (data written by ``examples/make_data.py``) are checked against the
  data-generating parameters in ``truths.json``: every component must satisfy
  ``|posterior mean - truth| < 4 posterior sds``. For a well-specified model the truth
  is a draw from (approximately) the posterior, so this fails by chance with probability
  about 6e-5 per component;
* eight_schools is checked against the posteriordb reference posterior of the same model
  (``tests/posteriordb/data/eight_schools-eight_schools_noncentered/reference.json``), with
  tolerances sized for the short runs used here (2 x 300 draws): mean within 0.3 reference
  sds (>= 4 Monte Carlo standard errors at the effective sample sizes these runs reach) and
  sd within 25%.

All runs must have max R-hat < 1.05 and no divergent transitions.
An example that cannot be run must be listed in SKIP with the reason.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import fpl

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HERE = Path(__file__).parent
TRUTHS = json.loads((HERE / "truths.json").read_text())
REFERENCES = {
    "eight_schools": ROOT
    / "tests/posteriordb/data/eight_schools-eight_schools_noncentered/reference.json",
}

# name -> reason. Examples listed here are collected but skipped.
SKIP: dict[str, str] = {}

# target acceptance 0.9 (Stan's advice for hierarchical models): with warmups this short
# (300), the adapted step size of the non-centred radon model sits near its stability edge
# at 0.8 and one draw in 600 diverged
SETTINGS = dict(chains=2, warmup=300, draws=300, seed=7, progress=False, target_accept=0.9)
RHAT_MAX = 1.05
#: Longer runs where 300 + 300 draws are too few for the R-hat rule, with the reason:
#: radon's group scale sigma_a mixes slowly (bulk ESS 55 of 600 draws, R-hat 1.059 with the
#: session-5 kernel; 141+ and 1.017 at 500 + 500)
LONGER = {"radon_hierarchical": dict(warmup=500, draws=500)}
TRUTH_SDS = 4.0
REF_MEAN_SDS = 0.3
REF_SD_REL = 0.25



def _is_learning(path: Path) -> bool:
    """Examples with ``weight`` declarations are trained, not sampled: they are checked by
    ``test_learning_examples.py``."""
    return re.search(r"^\s*weight\s", path.read_text(), flags=re.M) is not None


MODELS = sorted(p.stem for p in EXAMPLES.glob("*.fpl") if not _is_learning(p))


def components(name: str, value) -> dict[str, float]:
    """Flatten a truth value into Stan-style 1-based component names."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return {name: float(arr)}
    return {
        f"{name}[{','.join(str(i + 1) for i in idx)}]": float(arr[idx])
        for idx in np.ndindex(arr.shape)
    }


def gen_names(source: str) -> list[str]:
    return re.findall(r"^\s*gen\s+([A-Za-z_]\w*)", source, flags=re.M)


def test_examples_found():
    assert "eight_schools" in MODELS
    assert len(MODELS) >= 5


def test_every_example_has_data_and_known_answer():
    for name in MODELS:
        if name in SKIP:
            continue
        assert (EXAMPLES / f"{name}.json").is_file(), f"examples/{name}.fpl has no data file"
        assert name in TRUTHS or name in REFERENCES, f"examples/{name}.fpl has no known answer"


def test_eight_schools_is_the_language_reference_program():
    body = [
        line
        for line in (EXAMPLES / "eight_schools.fpl").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert body == [
        "data J: int",
        "data y: real[J]",
        "data sigma: real<lower=0>[J]",
        "param mu ~ normal(0, 5)",
        "param tau: real<lower=0> ~ cauchy(0, 5)",
        "param theta_tilde: real[J] ~ normal(0, 1)",
        "out theta = mu + tau * theta_tilde",
        "y ~ normal(theta, sigma)",
    ]
    data = json.loads((EXAMPLES / "eight_schools.json").read_text())
    assert data == {
        "J": 8,
        "y": [28, 8, -3, 7, -1, 1, 18, 12],
        "sigma": [15, 10, 16, 11, 9, 11, 10, 18],
    }


def test_equilibrium_calibration_is_the_language_reference_program():
    body = [
        line
        for line in (EXAMPLES / "equilibrium_calibration.fpl").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert body == [
        "data n: int",
        "data A: real[n, n]            # spectral norm < 1",
        "data u: real[n]",
        "data y: real[n]",
        "param a: real<lower=0> ~ lognormal(0, 0.5)",
        "param b ~ normal(0, 1)",
        "let x = fix x: real[n] = tanh(a * (A @ x) + b * u)",
        "y ~ normal(x, 0.1)",
    ]
    data = json.loads((EXAMPLES / "equilibrium_calibration.json").read_text())
    assert np.linalg.norm(np.asarray(data["A"]), 2) < 1


@pytest.mark.parametrize("name", MODELS)
def test_example_posterior(name):
    if name in SKIP:
        pytest.skip(SKIP[name])
    source = (EXAMPLES / f"{name}.fpl").read_text()
    assert source.startswith("#"), "an example starts with a comment saying what it is"
    model = fpl.load(EXAMPLES / f"{name}.fpl")
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    settings = {**SETTINGS, **LONGER.get(name, {})}
    fit = model.sample(data, **settings)
    summary = fit.summary()

    problems = []
    if name in TRUTHS:
        for param, value in TRUTHS[name].items():
            for comp, truth in components(param, value).items():
                row = summary[comp]
                if not abs(row.mean - truth) < TRUTH_SDS * row.sd:
                    problems.append(
                        f"{comp}: mean {row.mean:.4g} sd {row.sd:.3g}, truth {truth:.4g}"
                    )
    if name in REFERENCES:
        reference = json.loads(REFERENCES[name].read_text())["components"]
        for comp, ref in reference.items():
            row = summary[comp]
            if not abs(row.mean - ref["mean"]) < REF_MEAN_SDS * ref["sd"]:
                problems.append(f"{comp}: mean {row.mean:.4g}, reference {ref['mean']:.4g}")
            if not abs(row.sd / ref["sd"] - 1) < REF_SD_REL:
                problems.append(f"{comp}: sd {row.sd:.4g}, reference {ref['sd']:.4g}")

    rhat = max(r.r_hat for r in summary.rows if math.isfinite(r.r_hat))
    if not rhat < RHAT_MAX:
        problems.append(f"max R-hat {rhat:.3f}")
    divergences = int(np.sum(fit.divergences))
    if divergences:
        problems.append(f"{divergences} divergent transitions")

    for g in gen_names(source):
        values = np.asarray(fit.draws(g))
        if values.shape[:2] != (settings["chains"], settings["draws"]):
            problems.append(f"gen {g}: draws of shape {values.shape}")
        elif not np.all(np.isfinite(values)):
            problems.append(f"gen {g}: non-finite values")

    assert not problems, f"examples/{name}.fpl:\n  " + "\n  ".join(problems)
