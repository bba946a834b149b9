"""Posterior summaries: rank-normalized split-R-hat, bulk and tail ESS, MCSE.

The diagnostics follow Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing
convergence of MCMC", Bayesian Analysis 16(2), as Stan and ArviZ compute them:

* chains are split in half (the middle draw is dropped when the count is odd);
* rank normalization replaces each draw by ``Phi^-1((r - 3/8) / (S + 1/4))``,
  ``r`` its average rank among all ``S`` draws (Blom's offset);
* ESS uses autocovariances from an FFT, combined over chains, truncated by
  Geyer's initial positive sequence and made monotone (initial monotone
  sequence), with the truncation point and final ``tau >= 1/log10(S)`` clip as
  ArviZ has them;
* ``ess_tail`` is the smaller ESS of the indicators ``x <= q05`` and
  ``x <= q95``; ``rhat`` is the larger of the rank-normalized split-R-hat and
  the same for the folded draws ``|x - median(x)|``.

Only numpy is used (no scipy, arviz or jax): summaries run at the end of every
``fpl sample`` and must be quick to import.  Any non-finite draw, or fewer than
four draws per chain, makes a diagnostic ``nan``.  Unlike ArviZ, R-hat is also
computed for a single chain (from its two halves), as Stan does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# Wichura (1988), Algorithm AS241 (PPND16), Applied Statistics 37(3): the
# normal quantile to about 1e-16 relative accuracy.  Coefficients highest power
# first, as np.polyval takes them.
_CENTRAL_NUM = (
    2509.0809287301226727,
    33430.575583588128105,
    67265.770927008700853,
    45921.953931549871457,
    13731.693765509461125,
    1971.5909503065514427,
    133.14166789178437745,
    3.387132872796366608,
)
_CENTRAL_DEN = (
    5226.495278852545561,
    28729.085735721942674,
    39307.89580009271061,
    21213.794301586595867,
    5394.1960214247511077,
    687.1870074920579083,
    42.313330701600911252,
    1.0,
)
_INNER_NUM = (
    7.7454501427834140764e-4,
    0.0227238449892691845833,
    0.24178072517745061177,
    1.27045825245236838258,
    3.64784832476320460504,
    5.7694972214606914055,
    4.6303378461565452959,
    1.42343711074968357734,
)
_INNER_DEN = (
    1.05075007164441684324e-9,
    5.475938084995344946e-4,
    0.0151986665636164571966,
    0.14810397642748007459,
    0.68976733498510000455,
    1.6763848301838038494,
    2.05319162663775882187,
    1.0,
)
_TAIL_NUM = (
    2.01033439929228813265e-7,
    2.71155556874348757815e-5,
    0.0012426609473880784386,
    0.026532189526576123093,
    0.29656057182850489123,
    1.7848265399172913358,
    5.4637849111641143699,
    6.6579046435011037772,
)
_TAIL_DEN = (
    2.04426310338993978564e-15,
    1.4215117583164458887e-7,
    1.8463183175100546818e-5,
    7.868691311456132591e-4,
    0.0148753612908506148525,
    0.13692988092273580531,
    0.59983220655588793769,
    1.0,
)


def norm_ppf(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile function for probabilities strictly in (0, 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.425
    if central.any():
        qc = q[central]
        r = 0.180625 - qc * qc
        out[central] = qc * np.polyval(_CENTRAL_NUM, r) / np.polyval(_CENTRAL_DEN, r)
    tail = ~central
    if tail.any():
        qt = q[tail]
        r = np.sqrt(-np.log(np.where(qt < 0, p[tail], 1.0 - p[tail])))
        inner = r <= 5.0
        ri = np.where(inner, r - 1.6, 0.0)
        ro = np.where(inner, 0.0, r - 5.0)
        x = np.where(
            inner,
            np.polyval(_INNER_NUM, ri) / np.polyval(_INNER_DEN, ri),
            np.polyval(_TAIL_NUM, ro) / np.polyval(_TAIL_DEN, ro),
        )
        out[tail] = np.where(qt < 0, -x, x)
    return out


def _as_draws(x: np.ndarray) -> np.ndarray | None:
    """``x`` as a float (chains, draws) array, or None when no diagnostic is defined."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[np.newaxis, :]
    if a.ndim != 2:
        raise ValueError(f"expected draws of shape (chains, draws), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 4 or not np.all(np.isfinite(a)):
        return None
    return a


def _split(a: np.ndarray) -> np.ndarray:
    """Each chain cut into its first and last halves: (2 * chains, draws // 2)."""
    half = a.shape[1] // 2
    return np.concatenate([a[:, :half], a[:, a.shape[1] - half :]], axis=0)


@functools.lru_cache(maxsize=16)
def _untied_scores(size: int) -> np.ndarray:
    """Normal scores of the ranks 1..size (no ties); the same for every variable."""
    scores = norm_ppf((np.arange(1, size + 1) - 0.375) / (size + 0.25))
    scores.flags.writeable = False
    return scores


def _rank_normalize(a: np.ndarray) -> np.ndarray:
    """Blom-offset normal scores of the average ranks over the whole array."""
    flat = a.reshape(-1)
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    out = np.empty(flat.size)
    if not np.any(ordered[1:] == ordered[:-1]):
        out[order] = _untied_scores(flat.size)
        return out.reshape(a.shape)
    # With ties, a block occupying ranks k+1..k+n gets the average rank k + (n + 1) / 2.
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(np.append(starts, flat.size))
    average_rank = starts + (counts + 1) / 2.0
    scores = norm_ppf((average_rank - 0.375) / (flat.size + 0.25))
    out[order] = np.repeat(scores, counts)
    return out.reshape(a.shape)


def _autocov(a: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each chain at every lag 0..draws-1, by FFT."""
    n = a.shape[1]
    m = 1 << (2 * n - 1).bit_length()  # zero padding to >= 2n avoids wrap-around
    centred = a - a.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=1)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=m, axis=1)[:, :n]
    return acov / n


def _ess_chains(a: np.ndarray) -> float:
    """ESS of (chains, draws) draws taken as they are (no split, no normalization)."""
    chains, n = a.shape
    if np.max(a) - np.min(a) < np.finfo(np.float64).resolution:
        return float(a.size)
    acov = _autocov(a)
    mean_acov = acov.mean(axis=0)
    # W: mean within-chain variance (unbiased); var_plus: the pooled variance estimate.
    within = mean_acov[0] * n / (n - 1.0)
    var_plus = within * (n - 1.0) / n
    if chains > 1:
        var_plus += np.var(a.mean(axis=1), ddof=1)
    rho = (1.0 - (within - mean_acov) / var_plus).tolist()
    rho_hat = [0.0] * n
    rho_hat[0] = even = 1.0
    rho_hat[1] = odd = rho[1]
    # Geyer's initial positive sequence: keep pairs of lags while their sum is positive.
    t = 1
    while t < n - 3 and even + odd > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0.0:
            rho_hat[t + 1], rho_hat[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0.0:
        rho_hat[last + 1] = even
    # Geyer's initial monotone sequence: pair sums may not increase.
    t = 1
    while t <= last - 2:
        if rho_hat[t + 1] + rho_hat[t + 2] > rho_hat[t - 1] + rho_hat[t]:
            rho_hat[t + 1] = rho_hat[t + 2] = (rho_hat[t - 1] + rho_hat[t]) / 2.0
        t += 2
    total = chains * n
    tau = -1.0 + 2.0 * math.fsum(rho_hat[: last + 1]) + math.fsum(rho_hat[last + 1 : last + 2])
    tau = max(tau, 1.0 / math.log10(total))
    return total / tau


def _rhat_chains(a: np.ndarray) -> float:
    """Classic potential scale reduction of (chains, draws) draws taken as they are."""
    n = a.shape[1]
    if np.all(a.max(axis=1) == a.min(axis=1)):  # no within-chain variation (tested exactly)
        return math.inf if a.max() > a.min() else math.nan
    within = float(np.mean(np.var(a, axis=1, ddof=1)))
    between = n * float(np.var(a.mean(axis=1), ddof=1))
    return math.sqrt((between / within + n - 1.0) / n)


def ess_bulk(x: np.ndarray) -> float:
    """Bulk effective sample size: ESS of the rank-normalized split chains of ``x``."""
    a = _as_draws(x)
    if a is None:
        return math.nan
    return _ess_chains(_rank_normalize(_split(a)))


def ess_tail(x: np.ndarray) -> float:
    """Tail effective sample size: the smaller ESS of the 5% and 95% quantile indicators."""
    a = _as_draws(x)
    return math.nan if a is None else _ess_tail_of(a)


def _ess_tail_of(a: np.ndarray) -> float:
    low, high = np.quantile(a, [0.05, 0.95])
    return min(
        _ess_chains(_split((a <= low).astype(np.float64))),
        _ess_chains(_split((a <= high).astype(np.float64))),
    )


def ess_mean(x: np.ndarray) -> float:
    """ESS for the mean: the ESS of the split chains, without rank normalization."""
    a = _as_draws(x)
    if a is None:
        return math.nan
    return _ess_chains(_split(a))


def rhat(x: np.ndarray) -> float:
    """Rank-normalized split-R-hat: the larger of the bulk and the folded (tail) R-hat."""
    a = _as_draws(x)
    if a is None:
        return math.nan
    split = _split(a)
    return _rhat_of(split, _rank_normalize(split))


def _rhat_of(split: np.ndarray, z: np.ndarray) -> float:
    """R-hat from the split draws and their normal scores ``z``."""
    bulk = _rhat_chains(z)
    folded = _rhat_chains(_rank_normalize(np.abs(split - np.median(split))))
    # Folded draws can be constant (two-valued draws) where the bulk is not.
    return bulk if math.isnan(folded) else max(bulk, folded)


def mcse_mean(x: np.ndarray) -> float:
    """Monte Carlo standard error of the mean: ``sd / sqrt(ess_mean)``."""
    a = _as_draws(x)
    if a is None:
        return math.nan
    return float(np.std(a, ddof=1)) / math.sqrt(_ess_chains(_split(a)))


@dataclass(frozen=True)
class Row:
    """One line of a posterior summary: one scalar component of one variable."""

    name: str
    mean: float
    mcse: float
    sd: float
    q5: float
    q50: float
    q95: float
    ess_bulk: float
    ess_tail: float
    r_hat: float


def scalar_names(name: str, shape: tuple[int, ...]) -> list[str]:
    """Stan-style names of the components of a variable, row-major and 1-based.

    ``scalar_names("Sigma", (2, 2))`` is ``["Sigma[1,1]", "Sigma[1,2]", ...]``.
    """
    if not shape:
        return [name]
    return [f"{name}[{','.join(str(i + 1) for i in index)}]" for index in np.ndindex(*shape)]


def summarize(posterior: Mapping[str, np.ndarray]) -> list[Row]:
    """Summarize every scalar component of every variable of shape (chains, draws, ...)."""
    rows: list[Row] = []
    for name, draws in posterior.items():
        arr = np.asarray(draws, dtype=np.float64)
        if arr.ndim < 2:
            raise ValueError(f"`{name}` must have shape (chains, draws, ...), got {arr.shape}")
        chains, n = arr.shape[:2]
        flat = arr.reshape(chains, n, -1)
        for k, label in enumerate(scalar_names(name, arr.shape[2:])):
            rows.append(_row(label, flat[:, :, k]))
    return rows


def _row(label: str, x: np.ndarray) -> Row:
    """One summary row, sharing the split and rank-normalized draws among diagnostics."""
    if x.size == 0 or not np.all(np.isfinite(x)):
        return Row(label, *([math.nan] * 9))
    q5, q50, q95 = (float(v) for v in np.quantile(x, [0.05, 0.5, 0.95]))
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    a = _as_draws(x)
    if a is None:  # too few draws for the diagnostics
        return Row(label, mean, math.nan, sd, q5, q50, q95, math.nan, math.nan, math.nan)
    split = _split(a)
    z = _rank_normalize(split)
    mcse = sd / math.sqrt(_ess_chains(split))
    return Row(
        label, mean, mcse, sd, q5, q50, q95, _ess_chains(z), _ess_tail_of(a), _rhat_of(split, z)
    )


_HEADERS = ("Mean", "MCSE", "StdDev", "5%", "50%", "95%", "ESS_bulk", "ESS_tail", "R_hat")


def _fmt(value: float) -> str:
    """Four significant digits, keeping trailing zeros so columns read evenly."""
    return "nan" if math.isnan(value) else f"{value:#.4g}"


def _fmt_ess(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.0f}"


def format_summary(
    rows: list[Row],
    sample_stats: Mapping[str, np.ndarray] | None = None,
    max_tree_depth: int = 10,
) -> str:
    """An aligned text table of ``rows`` (like CmdStan's ``stansummary``).

    With ``sample_stats`` (arrays of shape (chains, draws)), one line per chain
    follows with its divergent transitions and its draws whose tree depth
    reached ``max_tree_depth``, then a warning line when any draw diverged.
    """
    cells = [
        [
            row.name,
            *(_fmt(v) for v in (row.mean, row.mcse, row.sd, row.q5, row.q50, row.q95)),
            _fmt_ess(row.ess_bulk),
            _fmt_ess(row.ess_tail),
            _fmt(row.r_hat),
        ]
        for row in rows
    ]
    table = [["", *_HEADERS], *cells]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(
            [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
        ).rstrip()
        for line in table
    ]
    if sample_stats is not None:
        lines.extend(_sampler_lines(sample_stats, max_tree_depth))
    return "\n".join(lines)


def _sampler_lines(stats: Mapping[str, np.ndarray], max_tree_depth: int) -> list[str]:
    """Per-chain divergences and tree-depth saturations, and a divergence warning."""
    diverging = stats.get("diverging")
    depth = stats.get("tree_depth")
    if diverging is None and depth is None:
        return []
    shape = np.shape(diverging if diverging is not None else depth)
    chains = shape[0] if shape else 1
    div_counts = (
        np.asarray(diverging).reshape(chains, -1).astype(bool).sum(axis=1)
        if diverging is not None
        else None
    )
    depth_counts = (
        (np.asarray(depth).reshape(chains, -1) >= max_tree_depth).sum(axis=1)
        if depth is not None
        else None
    )
    out = [""]
    for c in range(chains):
        parts = []
        if div_counts is not None:
            n = int(div_counts[c])
            parts.append(f"{n} divergent transition{'' if n == 1 else 's'}")
        if depth_counts is not None:
            parts.append(f"{int(depth_counts[c])} at max tree depth {max_tree_depth}")
        out.append(f"Chain {c + 1}: " + ", ".join(parts))
    if div_counts is not None and int(div_counts.sum()) > 0:
        total = int(div_counts.sum())
        draws = int(np.size(diverging))
        out.append(
            f"Warning: {total} of {draws} draws ({100.0 * total / draws:.2g}%) ended with a "
            "divergence; the posterior may be biased. Reparameterize the model or raise "
            "the target acceptance rate."
        )
    return out


__all__ = [
    "Row",
    "ess_bulk",
    "ess_mean",
    "ess_tail",
    "format_summary",
    "mcse_mean",
    "norm_ppf",
    "rhat",
    "scalar_names",
    "summarize",
]
