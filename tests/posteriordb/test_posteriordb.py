"""FPL translations of posteriordb posteriors against their reference posteriors.

Each posterior ``<name>`` has its FPL model in ``models/<name>.fpl`` and its data and
reference summary in ``data/<name>/`` (written by ``benchmarks/posteriordb_import.py`` from
posteriordb: ``data.json`` as CmdStan JSON, ``reference.json`` the mean and sd of every
component over the 10,000 reference draws). Every translation present is tested; only the
few without posteriordb reference draws are listed (``WITHOUT_REFERENCE``). Compiling a
translation against its data is quick; sampling it is the slow tier.

The agreement rule: with 4 chains x 500 draws after 500 warmup, for every reference
component ``|mean - ref.mean| <= 0.1 * ref.sd`` and ``|sd / ref.sd - 1| <= 0.15``, no
divergences (no reference here has any) and max R-hat < 1.01. The run must be long enough
for the rule to mean something, so it is checked rather than assumed: every component's
Monte Carlo standard error of the mean must be at most 0.05 ref sds (an ESS of at least
400), which makes the mean tolerance at least two standard errors; the relative standard
error of an sd estimate is about 1 / sqrt(2 ESS) <= 0.035 for a near-normal marginal, so
the sd tolerance is then over four. A run that falls short fails as too short instead of
passing or failing on noise. These posteriors mix well (docs/posteriordb.md: the smallest
bulk ESS from the 2000 draws is 720 over every component of every matching posterior,
most are 1500-3300), so 500 + 500 is enough and halves the NUTS work of
Stan's 1000 + 1000 (compiling the sampler, most of a small model's time, stays the same).

Where a component's tail is so heavy that its mean and sd cannot be estimated (``LOG_SCALE``,
each with its measurements), the same rule applies to the logs of its draws, against the
reference draws' ``log_mean`` and ``log_sd``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fpl

HERE = Path(__file__).parent
MODELS = HERE / "models"
DATA = HERE / "data"

POSTERIORS = sorted(p.stem for p in MODELS.glob("*.fpl"))

CHAINS = 4
WARMUP = 500
DRAWS = 500
MEAN_TOL = 0.1  # in reference posterior sds
SD_TOL = 0.15  # relative
MCSE_MAX = 0.05  # in reference sds: the mean tolerance is >= 2 Monte Carlo standard errors
RHAT_MAX = 1.01

#: Settings other than the defaults (Stan's: adapt_delta 0.8; FPL's low-rank metric), each
#: for the reason given.
SETTINGS = {
    # the funnel at small tau gives an occasional divergence at 0.8 (1 in 4000 draws seen
    # in CI), which the agreement rule forbids; 0.9 is the usual remedy, as with Stan
    "eight_schools-eight_schools_noncentered": {"target_accept": 0.9},
    # uniform(-2, 2) starts sit outside the mode (log beta, log delta ~ -3.6); from them one
    # chain of four stranded (step size ~1e-4, 1023-step trees) and one settled in a minor
    # mode 43 below the main one (fast oscillations fitted as noise): R-hat 1.6, 117
    # divergences. Stan users start such chains from Pathfinder draws, as here
    "hudson_lynx_hare-lotka_volterra": {"starts": "pathfinder"},
    # 26 strongly correlated coefficients: the largest of their R-hats at 4 x 500 draws is
    # 1.004-1.012 across seeds (2026-11-30: seeds 1-5 gave 1.0043-1.0094, the test's seed
    # 1.0078 at XLA's level 2 and 1.0119 at level 0), at the rule's 1.01; at 1000 draws
    # it is 1.002-1.005 (seeds 1-5), so the rule tests the sampler, not the seed
    "diamonds-diamonds": {"draws": 1000},
    # Stan's own settings for its reference (adapt_delta 0.99, max_treedepth 15): a latent
    # GP whose funnel gave 30 divergences and R-hat 1.036 at the defaults (1 divergence
    # and rho's R-hat 1.018 at 0.95). At 0.99 and depth 15 there are none, but rho mixes
    # slowly (bulk ESS ~400 per 4 x 1000 draws; R-hat 1.006-1.017 over seeds 1-6, 2 of 6
    # passing); at 4 x (1000 + 3000) seeds 1-5 and the test's all pass: min ESS 1227-1623,
    # R-hat <= 1.0034, means within 0.050 sds, sds within 4 % (21-28 s each)
    "gp_pois_regr-gp_pois_regr": {
        "target_accept": 0.99,
        "max_tree_depth": 15,
        "warmup": 1000,
        "draws": 3000,
    },
    # Stan's own settings for its reference (adapt_delta 0.99; posteriordb's info file): at
    # 0.8 the chains make too few excursions along the K_m-V_m ridge (K_m's 99 % quantile
    # 14.6 against the reference's 28 at 4 x 500; at 4 x 3000, 35 divergences out there);
    # at 0.99, 4 x (1000 + 1000): no divergences, the 99 % quantile 31-36, log-scale sd
    # ratios 0.99-1.09 (low-rank and diagonal metrics). 1000 draws: K_m's bulk ESS is
    # ~390 per 4 x 500 draws at 0.99, short of the rule's 400. Pathfinder starts, as in
    # every run measured (random starts at 0.99 untried)
    "one_comp_mm_elim_abs-one_comp_mm_elim_abs": {
        "target_accept": 0.99,
        "draws": 1000,
        "starts": "pathfinder",
    },
}

#: Components compared on the log scale (``log_mean``, ``log_sd`` in reference.json) instead
#: of their own, each for the reason given: a tail so heavy that the mean and sd posteriordb
#: summarizes cannot be estimated from any run a test affords, where the same rule on the
#: log scale (the sampler's, for a positive param) is as sharp as anywhere else.
LOG_SCALE = {
    # K_m's tail is ~K_m^-3 (Hill index ~2 in the reference draws: infinite variance, and
    # V_m ~ K_m along the ridge where only V_m / K_m is identified): the reference's own 10
    # chains of 1000 give K_m sds 4.2-11.1 (V_m 0.34-0.82), so no sd tolerance can hold
    # for them; their log sds are 1.39-1.51 (V_m 0.27-0.32), within 5 % of the pooled one
    "one_comp_mm_elim_abs-one_comp_mm_elim_abs": ("K_m", "V_m"),
}


#: Translations of posteriors for which posteriordb has no reference draws: they must
#: compile against their data (quick tier) but have nothing to match; each listed by name.
WITHOUT_REFERENCE = frozenset({"sir-sir"})

#: The translations checked against a reference in the slow tier.
WITH_REFERENCE = [name for name in POSTERIORS if name not in WITHOUT_REFERENCE]


def load_json(name: str, file: str) -> dict:
    return json.loads((DATA / name / file).read_text())


def test_every_posterior_has_model_data_and_reference():
    folders = sorted(p.name for p in DATA.iterdir() if p.is_dir())
    assert folders == POSTERIORS
    assert POSTERIORS, "no translations found"
    assert set(SETTINGS) <= set(WITH_REFERENCE)
    assert set(LOG_SCALE) <= set(WITH_REFERENCE)
    assert set(KNOWN_MISMATCH) <= set(WITH_REFERENCE)
    assert WITHOUT_REFERENCE <= set(POSTERIORS)
    for name, components in LOG_SCALE.items():
        reference = load_json(name, "reference.json")["components"]
        assert all({"log_mean", "log_sd"} <= set(reference[c]) for c in components), name
    for name in POSTERIORS:
        assert (DATA / name / "data.json").is_file()
        has_reference = (DATA / name / "reference.json").is_file()
        assert has_reference == (name not in WITHOUT_REFERENCE), name
        if has_reference:
            reference = load_json(name, "reference.json")
            assert reference["posterior"] == name
            assert reference["components"], name


def stan_name(flat: str) -> str:
    """``theta.2`` (CompiledModel's flat names) as Stan's ``theta[2]``; ``S.1.2`` as ``S[1,2]``."""
    base, *index = flat.split(".")
    return f"{base}[{','.join(index)}]" if index else base


@pytest.mark.parametrize("name", POSTERIORS)
def test_translation_compiles_and_names_every_reference_component(name):
    model = fpl.load(MODELS / f"{name}.fpl")
    compiled = model.bind(load_json(name, "data.json"))
    names = {stan_name(n) for n in compiled.param_names(include_tp=True, include_gq=True)}
    assert names, f"{name}: no params"
    if name in WITHOUT_REFERENCE:
        return
    missing = sorted(set(load_json(name, "reference.json")["components"]) - names)
    assert not missing, f"{name}: the translation has no {missing}"


def test_stan_name():
    assert stan_name("sigma") == "sigma"
    assert stan_name("theta.2") == "theta[2]"
    assert stan_name("Sigma.1.12") == "Sigma[1,12]"


def compared(name: str, fit, reference: dict) -> dict[str, tuple]:
    """Every component of ``reference`` as the rule compares it: the fit's summary row and
    the reference's mean and sd, both of the logs for the components in ``LOG_SCALE``
    (then named ``log(K_m)``)."""
    from fpl.runtime.summary import summarize

    logged = LOG_SCALE.get(name, ())
    summary = fit.summary()
    logs = summarize({c: np.log(np.asarray(fit.draws(c), dtype=float)) for c in logged})
    log_rows = {row.name: row for row in logs}
    rows = {}
    for comp, ref in reference["components"].items():
        if comp in logged:
            rows[f"log({comp})"] = (log_rows[comp], {"mean": ref["log_mean"], "sd": ref["log_sd"]})
        else:
            rows[comp] = (summary[comp], ref)
    return rows


def agreement_problems(rows: dict[str, tuple]) -> list[str]:
    """Every way the ``rows`` (:func:`compared`) break the agreement rule."""
    problems = []
    for comp, (row, ref) in rows.items():
        dmean = abs(row.mean - ref["mean"]) / ref["sd"]
        sd_ratio = row.sd / ref["sd"]
        if not row.mcse / ref["sd"] <= MCSE_MAX:
            problems.append(
                f"{comp}: Monte Carlo se of the mean {row.mcse / ref['sd']:.3f} ref sds "
                f"(> {MCSE_MAX}; ESS too low for the rule: run longer, don't loosen it)"
            )
        if not dmean <= MEAN_TOL:
            problems.append(
                f"{comp}: mean {row.mean:.6g} vs ref {ref['mean']:.6g} "
                f"({dmean:.3f} ref sds > {MEAN_TOL})"
            )
        if not abs(sd_ratio - 1) <= SD_TOL:
            problems.append(
                f"{comp}: sd {row.sd:.6g} vs ref {ref['sd']:.6g} (ratio {sd_ratio:.3f})"
            )
        if not row.r_hat < RHAT_MAX:
            problems.append(f"{comp}: R-hat {row.r_hat:.4f} (>= {RHAT_MAX})")
    return problems


def sample(name: str):
    """The fit the agreement rule is checked on (also used by benchmarks/posteriordb_coverage)."""
    model = fpl.load(MODELS / f"{name}.fpl")
    settings = {"chains": CHAINS, "warmup": WARMUP, "draws": DRAWS, **SETTINGS.get(name, {})}
    return model.sample(load_json(name, "data.json"), seed=20240501, progress=False, **settings)


def check(name: str) -> list[str]:
    """Sample posterior ``name`` and list its disagreements with the reference."""
    return check_fit(name, sample(name))


def check_fit(name: str, fit) -> list[str]:
    """The disagreements of ``fit`` (of posterior ``name``) with the reference."""
    problems = agreement_problems(compared(name, fit, load_json(name, "reference.json")))
    divergences = int(sum(int(d) for d in fit.divergences))
    if divergences:
        problems.append(f"{divergences} divergent transitions (the reference has none)")
    return problems


#: Translations that do not pass the rule yet, each with what was measured: reported as
#: expected failures (not run: each costs minutes; benchmarks/posteriordb_coverage.py
#: --run measures them and docs/posteriordb.md lists them as not matching).
KNOWN_MISMATCH = {
    "mcycle_gp-accel_gp": "brms's approximate GPs for the mean and log sd; the reference sds "
    "come from posteriordb's mean and mean-square summaries (its draws file is absent from "
    "the mirror). At Stan's settings for it (target_accept 0.999, max_tree_depth 15), "
    "4 x (500 + 500): no divergences, sds within 6 %, means within 0.11 ref sds (sdgp_1 "
    "0.111 > 0.1), but Intercept's ESS is 299 (Monte Carlo se 0.056 sds > 0.05) and R-hat "
    "1.011; 1556 s on 2 loaded cores (tree depth 10.2). At 0.99: 4 divergences, Intercept "
    "ESS 237, R-hat 1.016, its sd 18 % high (523 s); the dense metric is worse",
}


def _marked(name: str):
    if name in KNOWN_MISMATCH:
        return pytest.param(name, marks=pytest.mark.xfail(run=False, reason=KNOWN_MISMATCH[name]))
    return name


@pytest.mark.slow
@pytest.mark.parametrize("name", [_marked(n) for n in WITH_REFERENCE])
def test_posterior_matches_reference(name):
    problems = check(name)
    assert not problems, f"{name} disagrees with posteriordb:\n  " + "\n  ".join(problems)
