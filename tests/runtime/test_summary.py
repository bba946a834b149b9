"""Posterior summaries: agreement with ArviZ, known cases, and the text table."""

from __future__ import annotations

import math
import subprocess
import sys

import arviz as az
import numpy as np
import pytest
from scipy import special

from fpl.runtime.summary import (
    EBFMI_THRESHOLD,
    Row,
    ebfmi,
    ess_bulk,
    ess_mean,
    ess_tail,
    format_summary,
    mcse_mean,
    norm_ppf,
    rhat,
    scalar_names,
    summarize,
    summary_rows,
)


def ar1(seed: int, chains: int, draws: int, phi: float, offsets: float | np.ndarray = 0.0):
    """AR(1) chains x_t = phi x_{t-1} + e_t started at stationarity."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(chains, draws))
    x = np.empty((chains, draws))
    x[:, 0] = noise[:, 0] / math.sqrt(1.0 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x + np.reshape(offsets, (-1, 1))


def test_norm_ppf_matches_an_independent_implementation() -> None:
    p = np.concatenate(
        [
            np.logspace(-300, -1, 400),
            np.linspace(0.01, 0.99, 2001),
            1.0 - np.logspace(-16, -1, 200),
        ]
    )
    # AS241 is accurate to ~1e-16 relative; cephes' ndtri likewise, so 1e-13 leaves
    # room for rounding in 1 - p and the polynomial evaluations but catches any bad digit
    # of a coefficient (those show up at 1e-10 or worse).
    np.testing.assert_allclose(norm_ppf(p), special.ndtri(p), rtol=1e-13, atol=1e-15)


# Same definitions as ArviZ, so only floating-point rounding separates the results
# (FFT length and summation order); 1e-6 relative is far above that and far below any
# difference in the method (a change of one lag in the truncation moves ESS by > 1e-3).
RTOL = 1e-6
# Tail ESS is the smaller ESS of the 5% and 95% quantiles; ArviZ 0.x assumes these
# probabilities when none are given, ArviZ 1.x's array functions need them passed.
TAIL = (0.05, 0.95)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(
    ("chains", "draws", "phi"),
    [
        (4, 1000, 0.9),
        (4, 501, 0.5),
        (2, 200, -0.4),
        (3, 64, 0.97),
        (8, 100, 0.0),
        # Short, sticky chains whose positive sequence runs to the last lags (11 draws per
        # split chain): this pins the truncation point of Geyer's sequence.
        (4, 22, 0.95),
    ],
)
def test_agrees_with_arviz_on_ar1_chains(seed: int, chains: int, draws: int, phi: float) -> None:
    x = ar1(seed, chains, draws, phi)
    assert ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=RTOL)
    assert ess_tail(x) == pytest.approx(float(az.ess(x, method="tail", prob=TAIL)), rel=RTOL)
    assert ess_mean(x) == pytest.approx(float(az.ess(x, method="mean")), rel=RTOL)
    assert rhat(x) == pytest.approx(float(az.rhat(x, method="rank")), rel=RTOL)
    assert mcse_mean(x) == pytest.approx(float(az.mcse(x, method="mean")), rel=RTOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_arviz_with_ties_and_a_single_chain(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(3.0, size=(4, 400)).astype(float)  # many tied ranks
    assert ess_bulk(counts) == pytest.approx(float(az.ess(counts, method="bulk")), rel=RTOL)
    assert ess_tail(counts) == pytest.approx(
        float(az.ess(counts, method="tail", prob=TAIL)), rel=RTOL
    )
    assert rhat(counts) == pytest.approx(float(az.rhat(counts)), rel=RTOL)
    one = ar1(seed, 1, 500, 0.7)
    assert ess_bulk(one) == pytest.approx(float(az.ess(one, method="bulk")), rel=RTOL)
    assert ess_tail(one) == pytest.approx(float(az.ess(one, method="tail", prob=TAIL)), rel=RTOL)


def test_iid_draws_have_ess_near_the_draw_count() -> None:
    # Over 200 seeds, bulk ESS / 4000 for iid normals had mean 0.99 and sd 0.04 and tail
    # ESS mean 0.96, sd 0.04; averaging 4 seeds halves the sd, so these bounds sit > 4 sd out.
    bulk, tail = [], []
    for seed in range(4):
        x = np.random.default_rng(seed).normal(size=(4, 1000))
        bulk.append(ess_bulk(x) / 4000)
        tail.append(ess_tail(x) / 4000)
        assert rhat(x) < 1.01
        # For iid draws the MCSE is sd / sqrt(N) up to the ESS's own ~10% scatter.
        assert mcse_mean(x) == pytest.approx(np.std(x, ddof=1) / math.sqrt(4000), rel=0.15)
    assert 0.9 < np.mean(bulk) < 1.1
    assert 0.85 < np.mean(tail) < 1.05


def test_autocorrelated_chains_have_the_ar1_ess() -> None:
    # For AR(1) the ESS is N (1 - phi) / (1 + phi).  The estimate scattered with sd 9%
    # around it over 50 seeds; the mean of 4 seeds has sd ~5%, the bound is 4 sd.
    phi, n = 0.9, 4000
    expected = 4 * n * (1 - phi) / (1 + phi)
    ratios = [ess_bulk(ar1(seed, 4, n, phi)) / expected for seed in range(4)]
    assert 0.8 < np.mean(ratios) < 1.2


def test_shifted_chains_have_large_rhat() -> None:
    x = ar1(0, 4, 1000, 0.3, offsets=np.array([0.0, 0.0, 0.0, 2.0]))
    assert rhat(x) > 1.1
    # Same location but one chain with 3x the scale: only the folded R-hat sees it.
    rng = np.random.default_rng(1)
    scaled = rng.normal(size=(4, 1000)) * np.array([[1.0], [1.0], [1.0], [3.0]])
    assert rhat(scaled) > 1.1


def test_trend_within_chains_raises_split_rhat() -> None:
    # Every chain drifts the same way: chain means agree, but split halves do not.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 1000)) + np.linspace(0.0, 3.0, 1000)
    assert rhat(x) > 1.1


def test_undefined_cases_give_nan_or_the_arviz_convention() -> None:
    x = np.random.default_rng(0).normal(size=(4, 100))
    x[2, 50] = np.nan
    assert all(math.isnan(f(x)) for f in (ess_bulk, ess_tail, rhat, mcse_mean))
    short = np.ones((4, 3))
    assert all(math.isnan(f(short)) for f in (ess_bulk, ess_tail, rhat, mcse_mean))
    constant = np.full((4, 100), 2.5)
    assert math.isnan(rhat(constant))
    assert ess_bulk(constant) == 400.0  # ArviZ's convention: the split-chain draw count
    stuck = np.repeat([[0.0], [1.0]], 100, axis=1)  # each chain constant, chains differ
    assert rhat(stuck) == math.inf
    with pytest.raises(ValueError):
        rhat(np.zeros((2, 3, 4)))


def test_scalar_names_are_stan_style() -> None:
    assert scalar_names("mu", ()) == ["mu"]
    assert scalar_names("theta", (3,)) == ["theta[1]", "theta[2]", "theta[3]"]
    assert scalar_names("Sigma", (2, 2)) == ["Sigma[1,1]", "Sigma[1,2]", "Sigma[2,1]", "Sigma[2,2]"]


def test_summarize_rows_match_the_functions() -> None:
    rng = np.random.default_rng(5)
    posterior = {"mu": rng.normal(size=(4, 200)), "Sigma": rng.normal(size=(4, 200, 2, 3))}
    rows = summarize(posterior)
    assert [r.name for r in rows][:3] == ["mu", "Sigma[1,1]", "Sigma[1,2]"]
    assert len(rows) == 7
    row = rows[2]
    x = posterior["Sigma"][:, :, 0, 1]  # row-major: Sigma[1,2] is index (0, 1)
    assert row.mean == pytest.approx(np.mean(x), rel=1e-12)
    assert row.sd == pytest.approx(np.std(x, ddof=1), rel=1e-12)
    q5, q50, q95 = np.quantile(x, [0.05, 0.5, 0.95])
    assert (row.q5, row.q50, row.q95) == pytest.approx((q5, q50, q95), rel=1e-12)
    assert row.ess_bulk == ess_bulk(x) and row.ess_tail == ess_tail(x)
    assert row.r_hat == rhat(x) and row.mcse == mcse_mean(x)


def make_row(name: str, mean: float) -> Row:
    return Row(name, mean, 0.012345, 1.0, -1.5, 0.0, 1.5, 3912.4, 3500.6, 1.00049)


def test_format_summary_table() -> None:
    text = format_summary([make_row("mu", 1.23456789), make_row("theta[10]", -123456.7)])
    lines = text.splitlines()
    assert lines[0].split() == [
        "Mean",
        "MCSE",
        "StdDev",
        "5%",
        "50%",
        "95%",
        "ESS_bulk",
        "ESS_tail",
        "R_hat",
    ]
    assert lines[1].split() == [
        "mu",
        "1.235",
        "0.01235",
        "1.000",
        "-1.500",
        "0.000",
        "1.500",
        "3912",
        "3501",
        "1.000",
    ]
    assert lines[2].split()[:2] == ["theta[10]", "-1.235e+05"]
    # Right-aligned columns: every line ends at the same width.
    assert len({len(line) for line in lines}) == 1
    assert "Chain" not in text and "Warning" not in text


def test_format_summary_sampler_lines() -> None:
    diverging = np.zeros((3, 100), dtype=bool)
    diverging[1, [4, 9]] = True
    depth = np.full((3, 100), 5)
    depth[0, :7] = 10
    depth[2, :1] = 12
    text = format_summary(
        [make_row("mu", 0.0)], {"diverging": diverging, "tree_depth": depth}, max_tree_depth=10
    )
    lines = text.splitlines()
    assert "Chain 1: 0 divergent transitions, 7 at max tree depth 10" in lines
    assert "Chain 2: 2 divergent transitions, 0 at max tree depth 10" in lines
    assert "Chain 3: 0 divergent transitions, 1 at max tree depth 10" in lines
    warning = [line for line in lines if line.startswith("Warning")]
    assert len(warning) == 1 and "2 of 300" in warning[0]

    calm = format_summary([make_row("mu", 0.0)], {"diverging": np.zeros((2, 10))})
    assert "Chain 2: 0 divergent transitions" in calm and "Warning" not in calm


def test_module_imports_only_numpy() -> None:
    code = (
        "import sys, fpl.runtime.summary; "
        "print(sorted(m for m in ('jax', 'arviz', 'scipy', 'xarray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ebfmi_matches_arviz_and_warns_below_0_3() -> None:
    rng = np.random.default_rng(5)
    healthy = rng.normal(size=(2, 500))  # independent energies: E-BFMI near 2
    sticky = np.cumsum(rng.normal(size=(1, 500)) * 0.05, axis=1)  # a random walk: near 0
    energy = np.concatenate([healthy, sticky])
    got = ebfmi(energy)
    np.testing.assert_allclose(got, az.bfmi(energy), rtol=1e-12)  # the same formula
    assert got[0] > 1 and got[2] < EBFMI_THRESHOLD
    text = format_summary([make_row("mu", 0.0)], {"energy": energy})
    assert f"Chain 3: E-BFMI {got[2]:#.4g}" in text
    warnings = [line for line in text.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1 and "chain 3 has E-BFMI" in warnings[0]


def test_lp_row_leads_the_table_and_times_end_it() -> None:
    rng = np.random.default_rng(6)
    lp = rng.normal(size=(2, 50))
    rows = summary_rows({"mu": rng.normal(size=(2, 50))}, {"lp": lp})
    assert [r.name for r in rows] == ["lp__", "mu"]
    assert rows[0].mean == pytest.approx(float(np.mean(lp)), rel=1e-12)
    # format_summary adds the row itself when given the stats (``fpl summary``'s path)
    text = format_summary(rows[1:], {"lp": lp}, attrs={"seconds": 2.5, "warmup_seconds": 2})
    assert text.splitlines()[1].split()[0] == "lp__"
    assert text.splitlines()[-1] == "Elapsed: 2.5 s (warmup 2 s)"


def test_summary_shows_as_its_table_and_converts_to_pandas() -> None:
    from fpl.runtime.fit import Fit

    rng = np.random.default_rng(7)
    fit = Fit(
        model="demo",
        posterior={"mu": rng.normal(size=(2, 30)), "theta": rng.normal(size=(2, 30, 2))},
        generated={},
        sample_stats={"lp": rng.normal(size=(2, 30)), "diverging": np.zeros((2, 30), bool)},
        observed={},
        attrs={"seconds": 1.0},
    )
    summary = fit.summary()
    assert repr(summary) == str(summary) == summary.text
    assert summary.names == ["lp__", "mu", "theta[1]", "theta[2]"]
    assert len(repr(summary)) < 1000  # the table, not a dataclass dump
    html = summary._repr_html_()
    assert html.count("<tr>") == 5 and "theta[2]" in html and "Elapsed" in html
    frame = summary.to_pandas()
    assert list(frame.index) == summary.names
    assert frame.loc["mu", "mean"] == summary["mu"].mean
    assert repr(fit).startswith("<fpl.Fit of demo (sample): 2 chains x 30 draws>\n")
    assert summary.text in repr(fit) and "array(" not in repr(fit)
    assert "<table>" in fit._repr_html_()


def test_fpl_summary_of_a_netcdf_fit_imports_no_arviz(tmp_path) -> None:
    from fpl.runtime.io import FitData, save_fit

    path = tmp_path / "fit.nc"
    stats = {"lp": np.zeros((2, 10)), "energy": np.arange(20.0).reshape(2, 10)}
    save_fit(str(path), FitData(posterior={"mu": np.ones((2, 10))}, sample_stats=stats))
    code = (
        "import sys; from fpl.runtime.cli import main; main(['summary', sys.argv[1]]); "
        "print(sorted(m for m in ('arviz', 'xarray', 'pandas', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "[]"
    assert "lp__" in out.stdout and "mu" in out.stdout


def test_warmup_divergences_are_shown_beside_the_sampling_ones():
    """The progress line counts warmup divergences; the summary says them apart."""
    rng = np.random.default_rng(0)
    stats = {
        "diverging": np.zeros((2, 50)),
        "tree_depth": np.ones((2, 50)),
        "energy": rng.normal(size=(2, 50)),
    }
    text = format_summary(
        summarize({"x": rng.normal(size=(2, 50))}), stats, warmup_divergences=np.array([3, 0])
    )
    assert "Chain 1: 0 divergent transitions (and 3 in warmup)" in text
    assert "Chain 2: 0 divergent transitions (and 0 in warmup)" in text
