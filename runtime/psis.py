"""Pareto-smoothed importance sampling (PSIS): the Pareto k̂ diagnostic of importance
ratios and the smoothed log weights (Vehtari, Simpson, Gelman, Yao and Gabry, "Pareto
Smoothed Importance Sampling", JMLR 2024).

The maths.  Draws ``x_s ~ q`` (s = 1..S) stand in for the target ``p`` with ratios
``r_s = p(x_s) / q(x_s)``, known up to a constant (``log r_s = lp_s − log q_s``).  The
estimate's reliability is set by the right tail of the ratios' distribution: fit a
generalized Pareto distribution (GPD)

    F(y) = 1 − (1 + k y / σ)^(−1/k),   y = r − u > 0,

to the ``M = ⌈min(S / 5, 3 √S)⌉`` largest ratios, above the threshold ``u`` (the largest
ratio below them).  Its shape ``k̂`` says how many moments the ratios have (``1/k``):
with ``k̂ <= 0.7`` (and ``k̂ < 1 − 1/log10 S`` for small S) the estimate is reliable;
above 0.7 the variance is effectively infinite and q is a poor stand-in for p.  The
smoothed weights replace the M tail ratios by the GPD's quantiles at
``(i − ½) / M`` (capped at the largest raw ratio), which lowers the variance.

The fit is Zhang and Stephens' (2009) empirical Bayes estimate: over a grid of
``m = 30 + ⌊√M⌋`` values of ``θ = −k/σ``, each with profile log likelihood
``L(θ) = M (log(θ / −k(θ)) − k(θ) − 1)`` where ``k(θ) = −mean(log(1 − θ y))`` (in the
sign convention below ``k(θ) = mean(log1p(−θ y))`` and ``σ = −k/θ``), θ is averaged
with weights ``∝ exp L(θ)``; ``k`` is then shrunk towards 0.5 by a weak prior
(``(M k + 10 · 0.5) / (M + 10)``), as in the paper and in ``loo``.  Ratios are handled
on the log scale and scaled by their maximum first (k̂ does not depend on that scale).

Checked by the tests: k̂ matches ArviZ's ``psislw`` (an independent implementation of
the same estimator) and recovers the tail index of Pareto and exponential-tailed
ratios.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

#: above this k̂, importance-sampling estimates are unreliable (Vehtari et al. 2024)
K_THRESHOLD = 0.7
#: the fewest tail draws a GPD is fitted to (fewer: k̂ is reported as infinite)
MIN_TAIL = 5
PRIOR_STRENGTH = 10  # the weak prior on k: worth this many tail draws ...
PRIOR_K = 0.5  # ... at this value
GRID_BASE = 30  # grid points of θ: GRID_BASE + ⌊√M⌋
GRID_PRIOR_SCALE = 3.0  # the grid's spread, relative to the tail's first quartile
#: log ratios this close to the largest count as equal to it: when the ``M + 1`` largest
#: are, the ratios have no right tail (an exact approximation, up to rounding: k̂ = −∞)
FLAT = 1e-9


class Smoothed(NamedTuple):
    """The result of :func:`psis`: smoothed log weights (normalised: their exponentials
    sum to 1), k̂, and the tail length the GPD was fitted to."""

    log_weights: np.ndarray
    pareto_k: float
    tail: int


def tail_length(draws: int) -> int:
    """``M = ⌈min(S / 5, 3 √S)⌉``, the number of largest ratios the GPD is fitted to."""
    return int(math.ceil(min(draws / 5.0, 3.0 * math.sqrt(draws))))


def fit_generalized_pareto(exceedances: np.ndarray) -> tuple[float, float]:
    """``(k, σ)`` of a GPD fitted to positive ``exceedances`` by Zhang and Stephens'
    empirical Bayes method, with the weak prior on ``k`` (see the module docstring)."""
    y = np.sort(np.asarray(exceedances, float))
    n = len(y)
    grid = GRID_BASE + int(math.sqrt(n))
    quartile = y[max(int(n / 4 + 0.5) - 1, 0)]
    theta = 1.0 - np.sqrt(grid / (np.arange(1, grid + 1) - 0.5))
    theta = theta / (GRID_PRIOR_SCALE * quartile) + 1.0 / y[-1]
    k_of = np.mean(np.log1p(-theta[:, None] * y[None, :]), axis=1)
    profile = n * (np.log(-theta / k_of) - k_of - 1.0)
    # weights exp(L_j) / Σ exp(L_i), computed as 1 / Σ_i exp(L_i − L_j) (no overflow)
    weights = 1.0 / np.sum(np.exp(profile[None, :] - profile[:, None]), axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, theta = weights[keep] / np.sum(weights[keep]), theta[keep]
    theta_hat = float(np.sum(theta * weights))
    k = float(np.mean(np.log1p(-theta_hat * y)))
    sigma = -k / theta_hat
    k = (n * k + PRIOR_STRENGTH * PRIOR_K) / (n + PRIOR_STRENGTH)
    return k, sigma


def _quantiles(probabilities: np.ndarray, k: float, sigma: float) -> np.ndarray:
    """The GPD's quantile function ``σ ((1 − p)^(−k) − 1) / k`` (``−σ log(1 − p)`` at
    ``k = 0``)."""
    if abs(k) < 1e-12:
        return -sigma * np.log1p(-probabilities)
    return sigma * np.expm1(-k * np.log1p(-probabilities)) / k


def psis(log_ratios) -> Smoothed:
    """Pareto-smoothed log weights and k̂ of ``log_ratios`` (one per draw; NaN counts
    as a zero ratio).  The tail is the ratios above the threshold (ties with it stay
    out, as in ArviZ).  With too few draws for a tail of ``MIN_TAIL``, k̂ is ``inf``;
    when the ``M + 1`` largest ratios agree within ``FLAT`` (q equals p up to rounding
    there), ``-inf``; then the weights are the raw ones, normalised."""
    r = np.asarray(log_ratios, float).reshape(-1)
    r = np.where(np.isnan(r), -np.inf, r)
    if not np.any(np.isfinite(r)):
        return Smoothed(np.full(r.shape, np.nan), math.inf, 0)
    r = r - np.max(r)  # the largest ratio is 1 (k̂ is scale-free)
    n = len(r)
    m = tail_length(n)
    smoothed = r.copy()
    k = math.inf
    if m >= MIN_TAIL and n > m:
        cutoff = max(float(np.sort(r)[-m - 1]), math.log(np.finfo(float).tiny))
        if -cutoff <= FLAT:  # the largest ratios are equal: no tail at all
            k = -math.inf
        else:
            tail_index = np.flatnonzero(r > cutoff)  # ties at the cutoff stay out
            tail_index = tail_index[np.argsort(r[tail_index], kind="stable")]
            if len(tail_index) >= MIN_TAIL:
                exceedances = np.exp(r[tail_index]) - math.exp(cutoff)
                k, sigma = fit_generalized_pareto(exceedances)
                if np.isfinite(k):
                    p = (np.arange(1, len(tail_index) + 1) - 0.5) / len(tail_index)
                    values = math.exp(cutoff) + _quantiles(p, k, sigma)
                    smoothed[tail_index] = np.minimum(np.log(values), 0.0)  # capped at the max
    finite = np.isfinite(smoothed)
    total = np.log(np.sum(np.exp(smoothed[finite])))
    return Smoothed(smoothed - total, float(k), m)


def pareto_k(log_ratios) -> float:
    """k̂ of the importance ratios ``exp(log_ratios)`` (see :func:`psis`)."""
    return psis(log_ratios).pareto_k


def k_threshold(draws: int) -> float:
    """The k̂ above which S draws give unreliable estimates: ``min(1 − 1/log10 S, 0.7)``
    (Vehtari et al. 2024, §3.2.4)."""
    if draws <= 10:
        return 0.0
    return min(1.0 - 1.0 / math.log10(draws), K_THRESHOLD)


__all__ = [
    "K_THRESHOLD",
    "Smoothed",
    "fit_generalized_pareto",
    "k_threshold",
    "pareto_k",
    "psis",
    "tail_length",
]
