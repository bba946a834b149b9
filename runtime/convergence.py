"""Convergence diagnostics: rank-normalized split-R-hat, bulk and tail ESS, MCSE.

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

import numpy as np

from fpl.runtime.normal import norm_ppf


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


def component_diagnostics(x: np.ndarray, sd: float) -> tuple[float, float, float, float]:
    """MCSE of the mean (from ``sd``, the draws' standard deviation), bulk ESS, tail ESS
    and R-hat of one scalar's finite draws ``x`` (chains, draws), sharing the split and
    rank-normalized draws among them; all ``nan`` with too few draws."""
    a = _as_draws(x)
    if a is None:
        return math.nan, math.nan, math.nan, math.nan
    split = _split(a)
    z = _rank_normalize(split)
    mcse = sd / math.sqrt(_ess_chains(split))
    return mcse, _ess_chains(z), _ess_tail_of(a), _rhat_of(split, z)


__all__ = ["component_diagnostics", "ess_bulk", "ess_mean", "ess_tail", "mcse_mean", "rhat"]
