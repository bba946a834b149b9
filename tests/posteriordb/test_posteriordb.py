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
    assert set(KNOWN_MISMATCH) <= set(WITH_REFERENCE)
    assert WITHOUT_REFERENCE <= set(POSTERIORS)
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


def agreement_problems(summary, reference: dict) -> list[str]:
    """Every way ``summary`` (a fit's summary) breaks the agreement rule with ``reference``."""
    problems = []
    for comp, ref in reference["components"].items():
        row = summary[comp]
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
    fit = sample(name)
    problems = agreement_problems(fit.summary(), load_json(name, "reference.json"))
    divergences = int(sum(int(d) for d in fit.divergences))
    if divergences:
        problems.append(f"{divergences} divergent transitions (the reference has none)")
    return problems


#: Translations that do not pass the rule yet, each with what was measured: reported as
#: expected failures (not run: each costs minutes; benchmarks/posteriordb_coverage.py
#: --run measures them and docs/posteriordb.md lists them as not matching).
KNOWN_MISMATCH = {
    "gp_pois_regr-gp_pois_regr": "a latent GP with a funnel: 30 divergences and R-hat 1.036 "
    "at the defaults; at target_accept 0.95 and 4 x (1000 + 1000) every mean and sd agree "
    "but 1 divergence remains and rho's R-hat is 1.018",
    "one_comp_mm_elim_abs-one_comp_mm_elim_abs": "K_m's tail is ~K_m^-3 (Hill index ~2 in "
    "the reference draws: infinite variance; V_m ~ K_m along it), so its sd is noise: the "
    "reference's own 10 chains give K_m sds 4.2-11.1, and 2000 of its draws picked at random "
    "meet the sd rule 38 % of the time (V_m 40 %). 4 x (500 + 500) with Pathfinder starts "
    "(881 s wall at load ~7): k_a and sigma agree (sd ratios 1.03, 1.01), every R-hat < 1.01, "
    "every MCSE <= 0.027 ref sds, no divergences, and K_m's and V_m's 5/25/50/75/95 % "
    "quantiles agree with the reference's within Monte Carlo error (the reference CDF at "
    "FPL's quantiles is within 1.8 standard errors of p, from the indicators' ESS), but the "
    "far tail is short: FPL's 99 % quantile of K_m (14.6) is the reference's 97.4 % (V_m: "
    "97.1 %), ~3 standard errors, every chain's largest K_m is 18-22 against the "
    "reference's 1 % above 28, and the sd ratios 0.40 and 0.42 are below the 1 % quantile "
    "of a reference subsample of FPL's tail ESS. Not the solver: no failed solve in any "
    "chain, and FPL's log density at the 40 largest-K_m reference draws (K_m up to 296) "
    "equals an independent LSODA solve (rtol 1e-12) to 3e-6; the log density's own "
    "quantiles agree (FPL's 1 % -49.1, the reference draws' -49.8), so the chains reach "
    "the same density levels but make too few excursions along the K_m-V_m ridge in 500 "
    "draws. So the rule stays (no quantile rule until the far tail agrees). Longer, 4 x "
    "(1000 + 3000) with Pathfinder starts (459 s, 2 quiet cores): the sd ratios rise to "
    "0.70 (K_m) and 0.69 (V_m), K_m's 99 % quantile to 21.4 and its largest draw to 97 (the "
    "tail fills in as an infinite-variance tail does with more draws: slow mixing along "
    "the ridge), but 35 divergences appear there: the ridge's far end is hard geometry for "
    "the adapted metric; next: a metric or reparameterisation that reaches it cleanly",
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
