"""FPL translations of the posteriordb development set against the reference posteriors.

Each posterior ``<name>`` has its FPL model in ``models/<name>.fpl`` and its data and
reference summary (copied from ``shared/posteriordb/<name>/``) in ``data/<name>/``.
The agreement rule is the one in ``shared/posteriordb/README.md``: with 4 chains x 1000
draws after 1000 warmup, for every reference component
``|mean - ref.mean| <= 0.1 * ref.sd`` and ``|sd / ref.sd - 1| <= 0.15``, no divergences
(none of these references has any) and max R-hat < 1.01.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fpl

HERE = Path(__file__).parent
MODELS = HERE / "models"
DATA = HERE / "data"

POSTERIORS = sorted(p.stem for p in MODELS.glob("*.fpl"))

MEAN_TOL = 0.1  # in reference posterior sds
SD_TOL = 0.15  # relative
RHAT_MAX = 1.01


def test_every_posterior_has_model_data_and_reference():
    folders = sorted(p.name for p in DATA.iterdir() if p.is_dir())
    assert folders == POSTERIORS
    assert len(POSTERIORS) == 10
    for name in POSTERIORS:
        assert (DATA / name / "data.json").is_file()
        assert (DATA / name / "reference.json").is_file()


@pytest.mark.parametrize("name", POSTERIORS)
def test_translation_compiles(name):
    fpl.load(MODELS / f"{name}.fpl")


def agreement_problems(summary, reference: dict) -> list[str]:
    problems = []
    for comp, ref in reference["components"].items():
        row = summary[comp]
        dmean = abs(row.mean - ref["mean"]) / ref["sd"]
        sd_ratio = row.sd / ref["sd"]
        if not dmean <= MEAN_TOL:
            problems.append(
                f"{comp}: mean {row.mean:.6g} vs ref {ref['mean']:.6g} "
                f"({dmean:.3f} ref sds > {MEAN_TOL})"
            )
        if not abs(sd_ratio - 1) <= SD_TOL:
            problems.append(
                f"{comp}: sd {row.sd:.6g} vs ref {ref['sd']:.6g} (ratio {sd_ratio:.3f})"
            )
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("name", POSTERIORS)
def test_posterior_matches_reference(name):
    model = fpl.load(MODELS / f"{name}.fpl")
    data = json.loads((DATA / name / "data.json").read_text())
    reference = json.loads((DATA / name / "reference.json").read_text())
    # Stan's default adapt_delta 0.8, except the non-centered eight schools: its funnel at
    # small tau gives an occasional divergence at 0.8 (1 in 4000 draws seen in CI), which
    # the agreement rule forbids; 0.9 is the usual remedy, as with Stan.
    accept = 0.9 if name.startswith("eight_schools") else 0.8
    fit = model.sample(
        data,
        chains=4,
        warmup=1000,
        draws=1000,
        seed=20240501,
        target_accept=accept,
        progress=False,
    )
    summary = fit.summary()

    problems = agreement_problems(summary, reference)
    divergences = int(sum(int(d) for d in fit.divergences))
    if divergences:
        problems.append(f"{divergences} divergent transitions (the reference has none)")
    rhats = {r.name: r.r_hat for r in summary.rows if r.name in reference["components"]}
    worst = max(rhats, key=rhats.get)
    if not rhats[worst] < RHAT_MAX:
        problems.append(f"max R-hat {rhats[worst]:.4f} at {worst} (>= {RHAT_MAX})")
    assert not problems, f"{name} disagrees with posteriordb:\n  " + "\n  ".join(problems)
