"""The warmup metric estimators and schedule (fpl.runtime.adaptation), against closed
forms: for a Gaussian target N(m, Σ) the score is g = -Σ⁻¹(x - m), so Cov[g] = Σ⁻¹ and
the Fisher-optimal inverse metric is Σ itself (the unique SPD A with A Cov[g] A =
Cov[x]), in every form the estimator can represent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fpl.runtime import adaptation as ad

jax.config.update("jax_enable_x64", True)


def _gaussian(cov, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal(np.zeros(len(cov)), cov, size=n)
    g = -np.linalg.solve(cov, x.T).T
    return jnp.asarray(x), jnp.asarray(g)


def _estimate(kind, x, g, valid=None, **kw):
    a = ad.Adaptation(metric=kind, **kw)
    valid = jnp.ones(len(x), bool) if valid is None else valid
    previous = ad.initial_metric(a, g[0])
    return ad.estimate(a, x, g, valid, previous)


def test_fisher_diagonal_is_exact_for_independent_gaussians():
    """Var[x_i] = s_i² and Var[g_i] = 1/s_i², so sqrt(Var x / Var g) = s_i² exactly up
    to sampling error in the two variances (200 draws: ~10% each, ~10% for the ratio's
    square root), and far better than the draws' variance alone would give."""
    scales = np.array([1e-3, 0.1, 1.0, 10.0, 1e3])
    x, g = _gaussian(np.diag(scales**2), 200)
    est = np.asarray(_estimate("diag", x, g))
    np.testing.assert_allclose(est, scales**2, rtol=0.15)
    # for a Gaussian with diagonal covariance g_i = -x_i / s_i² exactly: the ratio is
    # exact whatever the draws, to rounding
    np.testing.assert_allclose(est, scales**2, rtol=1e-12)


def test_low_rank_recovers_a_correlated_gaussian():
    """A 20-dimensional Gaussian whose covariance is a diagonal plus 3 strong directions.
    With the rank at d and no masking the estimate is Σ itself (exact once the draws
    exceed d + 1: the gradients pin it down); with the defaults (rank 10, eigenvalues
    within [1/2, 2] not corrected) Σ is matched within that factor of 2 in every
    direction, where the diagonal metric alone is off by far more."""
    rng = np.random.default_rng(1)
    d = 20
    basis, _ = np.linalg.qr(rng.normal(size=(d, 3)))
    diag = np.exp(rng.normal(size=d))
    cov = np.diag(diag) + basis @ np.diag([50.0, 20.0, 0.05]) @ basis.T
    x, g = _gaussian(cov, 400, seed=2)
    w, v = np.linalg.eigh(cov)
    inv_half = (v / np.sqrt(w)) @ v.T

    def spectrum(metric):  # eigenvalues of Σ^{-1/2} M⁻¹ Σ^{-1/2}: all 1 when M⁻¹ = Σ
        return np.linalg.eigvalsh(inv_half @ ad.dense_form(metric) @ inv_half)

    full = spectrum(_estimate("low_rank", x, g, max_rank=d, cutoff=1.0))
    # regularisation γ = 1e-5 against 400 unit-scale draws: below 1e-6 relative
    np.testing.assert_allclose(full, 1.0, atol=1e-5)
    default = _estimate("low_rank", x, g)
    s = spectrum(default)
    assert s.min() > 0.5 - 1e-6 and s.max() < 2.0 + 1e-6
    diag_only = spectrum(jnp.diag(_estimate("diag", x, g)))
    assert diag_only.max() / diag_only.min() > 20
    # U has orthonormal columns; eigenvalues within [1/2, 2] are masked to 1
    u, lam = np.asarray(default.U), np.asarray(default.lam)
    np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-6)
    assert np.all((lam == 1.0) | (lam > 2.0) | (lam < 0.5))


def test_geometric_mean_solves_the_riccati_equation():
    """Σ = Cx # Cg⁻¹ is the SPD solution of Σ Cg Σ = Cx."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    cx, cg = a @ a.T + np.eye(6), b @ b.T + np.eye(6)
    s = np.asarray(ad._geometric_mean_inverse(jnp.asarray(cx), jnp.asarray(cg)))
    np.testing.assert_allclose(s @ cg @ s, cx, rtol=1e-9, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(s) > 0)


def test_dense_is_stans_regularised_covariance():
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(50, 3)) @ np.diag([1.0, 2.0, 3.0]))
    est = np.asarray(_estimate("dense", x, -x))
    n = 50
    want = n / (n + 5) * np.cov(np.asarray(x).T) + 1e-3 * 5 / (n + 5) * np.eye(3)
    np.testing.assert_allclose(est, want, rtol=1e-12)


def test_only_valid_rows_count():
    """The ring buffer's invalid rows (any values) do not change the estimate."""
    scales = np.array([0.5, 2.0, 4.0])
    x, g = _gaussian(np.diag(scales**2), 60)
    valid = jnp.arange(60) < 40
    junk_x = x.at[40:].set(1e6)
    junk_g = g.at[40:].set(-1e6)
    for kind in ad.METRICS:
        a = _estimate(kind, x[:40], g[:40])
        b = _estimate(kind, junk_x, junk_g, valid)
        for p, q in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-10, atol=1e-12)


def test_degenerate_estimates_keep_the_previous_metric():
    """Fewer than 3 draws, or a coordinate that did not move: the old metric stays."""
    x, g = _gaussian(np.eye(3), 10)
    a = ad.Adaptation(metric="diag")
    previous = jnp.asarray([2.0, 3.0, 4.0])
    two = jnp.arange(10) < 2
    np.testing.assert_array_equal(ad.estimate(a, x, g, two, previous), previous)
    frozen = x.at[:, 1].set(0.7)
    est = np.asarray(ad.estimate(a, frozen, g, jnp.ones(10, bool), previous))
    assert est[1] == 3.0 and est[0] != 2.0


@pytest.mark.parametrize("warmup", [20, 100, 1000, 5000])
def test_schedule_windows(warmup):
    """nutpie's schedule: metric windows from the start (10 draws during the first 30%),
    the last 15% step size only, every window ends in a SWITCH; the ring holds the
    largest two consecutive windows."""
    a = ad.Adaptation()
    codes = ad.schedule(warmup, a)
    final = int(round(0.15 * warmup))
    assert np.all(codes[warmup - final :] == ad.FAST)
    assert np.all(codes[: warmup - final] != ad.FAST)
    assert codes[warmup - final - 1] == ad.SWITCH
    early = int(round(0.3 * warmup))
    ends = np.flatnonzero(codes == ad.SWITCH)
    sizes = np.diff(np.concatenate([[-1], ends]))
    assert np.all(sizes[ends < early][:-1] == 10)
    pairs = sizes[1:] + sizes[:-1]
    assert ad.buffer_size(codes) == max(sizes.max(), pairs.max() if len(pairs) else 0)


def test_short_warmups_adapt_the_step_size_only():
    assert np.all(ad.schedule(19, ad.Adaptation()) == ad.FAST)
    assert np.all(ad.schedule(500, ad.Adaptation(adapt_metric=False)) == ad.FAST)


def test_update_fills_the_ring_and_switches():
    """Draws join the ring in SLOW/SWITCH iterations; at a SWITCH the metric changes and
    the previous window (background) is forgotten; the last warmup iteration fixes the
    step size to dual averaging's average."""
    a = ad.Adaptation(metric="diag")
    rng = np.random.default_rng(5)
    state = ad.init(a, jnp.asarray([1.0, 2.0]), capacity=8)
    codes = [ad.SLOW] * 3 + [ad.SWITCH] + [ad.SLOW] * 3 + [ad.SWITCH]
    for i, code in enumerate(codes):
        x = jnp.asarray(rng.normal(size=2) * [1.0, 3.0])
        state = ad.update(a, state, code, False, x, -x / jnp.asarray([1.0, 9.0]), 0.8)
        if i == 3:  # first switch: 4 rows, all become background
            assert int(state.count) == 4 and int(state.background) == 4
            np.testing.assert_allclose(np.asarray(state.metric), [1.0, 9.0], rtol=1e-6)
    # second switch: the first window's 4 rows dropped, the second's 4 kept
    assert int(state.count) == 4 and int(state.first) == 4
    last = ad.update(a, state, ad.FAST, True, jnp.zeros(2), jnp.zeros(2), 0.9)
    assert float(last.step_size) == pytest.approx(float(jnp.exp(last.averaging.log_step_size_avg)))


def test_a_buffer_shorter_than_the_rank_keeps_the_metric_shape():
    """A short warmup gives a buffer of fewer rows than the rank (here 3 rows, rank 10 of
    12): the draws span only 3 directions, and the rest are padded with eigenvalue 1 (no
    correction) instead of the metric changing shape (a crash inside the compiled warmup
    with `warmup=10`). The estimate is a valid SPD metric."""
    d = 12
    cov = np.diag(np.linspace(0.5, 4.0, d))
    x, g = _gaussian(cov, 3)
    est = _estimate("low_rank", x, g)
    assert est.U.shape == (d, 10) and est.lam.shape == (10,)
    lam = np.asarray(est.lam)
    assert np.all(lam > 0) and np.sum(lam != 1.0) <= 2 * 3
    u = np.asarray(est.U)
    s = np.asarray(est.sigma)
    metric = np.diag(s) @ (np.eye(d) + u @ np.diag(lam - 1) @ u.T) @ np.diag(s)
    assert np.all(np.linalg.eigvalsh(metric) > 0)
