"""Warmup adaptation of NUTS: the step size and the metric (inverse mass matrix).

The metric is learnt from the warmup draws **and their gradients**, as nutpie does
(Seyboldt, Carlson & Carpenter 2026, "Preconditioning HMC by minimising Fisher
divergence"), in one of three forms, all applied in O(d) or O(dk) per leapfrog step
by BlackJAX's metrics:

``diag``
    ``M⁻¹ = diag(σ²)`` with ``σ²ᵢ = sqrt(Var[xᵢ] / Var[∂ᵢ log p])``.  For a Gaussian
    target this is exact per coordinate (``Var[x] = σ⁴ Var[g]`` when ``g = -Σ⁻¹x``), and
    it minimises the Fisher divergence between the target and the affine-transformed
    standard normal among diagonal preconditioners.  It needs far fewer draws than the
    sample variance because each gradient carries curvature information.
``low_rank`` (default)
    ``M⁻¹ = diag(σ)(I + U(Λ - I)Uᵀ)diag(σ)``: the diagonal above, corrected in the
    ≤ ``max_rank`` directions where the scaled draws and scaled gradients disagree most.
    With ``X`` the centred draws divided by σ and ``G`` the centred gradients times σ,
    ``Q`` an orthonormal basis of the top singular vectors of both, and the projected
    (regularised) covariances ``Cx = QᵀXᵀXQ/γ + I`` and ``Cg = QᵀGᵀGQ/γ + I``, the
    Fisher-optimal SPD matrix in that subspace is the geometric mean
    ``Σ = Cx # Cg⁻¹ = Cg^(-1/2) (Cg^(1/2) Cx Cg^(1/2))^(1/2) Cg^(-1/2)`` (the unique SPD
    ``Σ`` with ``Σ Cg Σ = Cx``; the common 1/n of both covariances cancels in it, which
    is why γ, not γ·n, regularises).  Its eigenpairs ``(λ, v)`` give ``U = Qv`` and
    ``Λ``; eigenvalues within ``[1/cutoff, cutoff]`` are set to 1 (no correction
    there).  Cost O(Bd·k) per metric update, O(dk) per leapfrog step.
``dense``
    ``M⁻¹ = n/(n+5) Cov[x] + 10⁻³·5/(n+5) I`` over the window's draws (Stan's
    regularised dense estimate).  O(d²) per leapfrog step, O(Bd² + d³) per update.

Schedule (nutpie's): the metric adapts from the first transition.  The first
``early_window`` fraction of warmup is cut into windows of ``early_switch``
transitions, then windows start at ``switch`` transitions and grow by ``growth``; the
last ``step_size_window`` fraction adapts the step size only.  At the end of each
window the metric is re-estimated from that window's draws and the previous one's
(the "background"), then the background is forgotten.  The first metric, before any
draw, is ``σ² = 1/|∇ log p|`` at the initial point.  The step size follows Stan's
dual averaging toward ``target_accept``, restarted (at the current step size) when the
first estimate replaces the starting metric and continued through later ones (nutpie);
the sampling step size is its final average.

Everything here is pure JAX over one chain's arrays; the state has static shapes
(the draw buffer is a ring of the largest two consecutive windows), so adaptation runs
inside the compiled sampling loop with no host round trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

METRICS = ("diag", "low_rank", "dense")

#: schedule codes, per warmup iteration
FAST, SLOW, SWITCH = 0, 1, 2

INITIAL_STEP_SIZE = 0.1  # nutpie's; dual averaging moves it within a few transitions
SCALE_RANGE = (1e-30, 1e30)  # σ² outside this is a degenerate estimate: keep the old one


@dataclass(frozen=True)
class Adaptation:
    """How warmup adapts the metric (see the module docstring for the maths)."""

    metric: str = "low_rank"
    max_rank: int = 10
    gamma: float = 1e-5
    cutoff: float = 2.0
    early_window: float = 0.3
    step_size_window: float = 0.15
    early_switch: int = 10
    switch: int = 80
    growth: float = 1.5
    target_accept: float = 0.8
    adapt_metric: bool = True  # False: a given metric is kept, the step size adapts

    def rank(self, d: int) -> int:
        return max(1, min(self.max_rank, d))


def schedule(warmup: int, a: Adaptation) -> np.ndarray:
    """Per warmup iteration: FAST (step size only), SLOW (the draw joins the metric's
    window) or SWITCH (also the window's last: the metric is re-estimated after it)."""
    codes = np.full(warmup, FAST, np.int32)
    if not a.adapt_metric or warmup < 20:
        return codes
    final = max(int(round(a.step_size_window * warmup)), 1)
    end = warmup - final  # iterations [end, warmup) adapt the step size only
    early = min(max(int(round(a.early_window * warmup)), 1), end)
    pos = 0
    while pos < early:
        size = min(a.early_switch, early - pos)
        codes[pos : pos + size] = SLOW
        codes[pos + size - 1] = SWITCH
        pos += size
    size = a.switch
    while pos < end:
        grown = max(size + 1, int(round(size * a.growth)))
        # nutpie's look-ahead: a window whose successor would not fit runs to the end
        if pos + size + grown > end:
            size = end - pos
        codes[pos : pos + size] = SLOW
        codes[pos + size - 1] = SWITCH
        pos += size
        size = grown
    return codes


def buffer_size(codes: np.ndarray) -> int:
    """Rows the draw ring needs: the largest window plus the one before it."""
    ends = np.flatnonzero(codes == SWITCH)
    if len(ends) == 0:
        return 1
    sizes = np.diff(np.concatenate([[-1], ends]))
    pairs = sizes[1:] + sizes[:-1] if len(sizes) > 1 else sizes
    return int(max(sizes.max(), pairs.max()))


class AdaptState(NamedTuple):
    """One chain's adaptation: dual averaging, the current step size and metric, and the
    ring of warmup draws and gradients (``count`` valid rows from ``first``; the oldest
    ``background`` of them belong to the previous window)."""

    averaging: Any  # blackjax DualAveragingAdaptationState
    step_size: Any
    metric: Any  # (d,) diagonal, (d, d) dense, or LowRankInverseMassMatrix
    draws: Any
    grads: Any
    first: Any
    count: Any
    background: Any
    switches: Any  # metric estimates so far


def _dual_averaging(target: float):
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    return dual_averaging_adaptation(target)


def initial_metric(a: Adaptation, grad):
    """``σ² = 1/|∇ log p|`` at the start (nutpie), in the form of ``a.metric``; a zero,
    huge or non-finite gradient component starts at 1."""
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    g = jnp.abs(grad)
    var = jnp.where(jnp.isfinite(g) & (g > 0), 1.0 / g, 1.0)
    var = jnp.where((var > SCALE_RANGE[0]) & (var < SCALE_RANGE[1]), var, 1.0)
    d = grad.shape[0]
    if a.metric == "diag":
        return var
    if a.metric == "dense":
        return jnp.diag(var)
    k = a.rank(d)
    return LowRankInverseMassMatrix(jnp.sqrt(var), jnp.zeros((d, k)), jnp.ones(k))


def init(a: Adaptation, grad, capacity: int, metric=None, step_size=None) -> AdaptState:
    """The state before the first transition (``metric``/``step_size``: a given start)."""
    d = grad.shape[0]
    metric = initial_metric(a, grad) if metric is None else metric
    step = jnp.asarray(INITIAL_STEP_SIZE if step_size is None else step_size, grad.dtype)
    da_init, _, _ = _dual_averaging(a.target_accept)
    zero = jnp.zeros((), jnp.int32)
    return AdaptState(
        da_init(step),
        step,
        metric,
        jnp.zeros((capacity, d), grad.dtype),
        jnp.zeros((capacity, d), grad.dtype),
        zero,
        zero,
        zero,
        zero,
    )


def update(a: Adaptation, s: AdaptState, code, last, position, grad, accept) -> AdaptState:
    """After one warmup transition: record the draw (SLOW/SWITCH), move the step size,
    re-estimate the metric at a SWITCH; at the ``last`` warmup iteration fix the step size
    to dual averaging's average."""
    _, da_update, _ = _dual_averaging(a.target_accept)
    capacity = s.draws.shape[0]
    collect = code != FAST
    row = (s.first + s.count) % capacity
    draws = s.draws.at[row].set(jnp.where(collect, position, s.draws[row]))
    grads = s.grads.at[row].set(jnp.where(collect, grad, s.grads[row]))
    count = jnp.where(collect, jnp.minimum(s.count + 1, capacity), s.count)
    first = jnp.where(collect & (s.count == capacity), (s.first + 1) % capacity, s.first)
    averaging = da_update(s.averaging, jnp.where(jnp.isfinite(accept), accept, 0.0))
    step_size = jnp.exp(averaging.log_step_size)
    s = s._replace(
        averaging=averaging,
        step_size=step_size,
        draws=draws,
        grads=grads,
        count=count,
        first=first,
    )
    s = jax.lax.cond(code == SWITCH, lambda s: _switch(a, s), lambda s: s, s)
    final = jnp.exp(s.averaging.log_step_size_avg)
    return s._replace(step_size=jnp.where(last, final, s.step_size))


def _switch(a: Adaptation, s: AdaptState) -> AdaptState:
    """End of a window: the metric from the buffered draws; forget the background; restart
    dual averaging at the current step size."""
    da_init, _, _ = _dual_averaging(a.target_accept)
    capacity = s.draws.shape[0]
    valid = ((jnp.arange(capacity) - s.first) % capacity) < s.count
    metric = jax.tree_util.tree_map(_single, estimate(a, s.draws, s.grads, valid, s.metric))
    first = (s.first + s.background) % capacity
    count = s.count - s.background
    # dual averaging restarts once, when the first estimate replaces the gradient-based
    # start (nutpie's rule): later estimates refine the metric, and restarting the step
    # size at each (every 10 draws early on) would spend long, divergent exploratory
    # trajectories every time
    averaging = jax.lax.cond(
        s.switches == 0, lambda _: da_init(s.step_size), lambda _: s.averaging, None
    )
    return s._replace(
        metric=metric,
        first=first,
        count=count,
        background=count,
        averaging=averaging,
        switches=s.switches + 1,
    )


def _single(x):
    """``x`` rounded to single precision (kept in its dtype).  The metric is a
    preconditioner: 7 digits are plenty, and rounding makes it the same whichever way XLA
    compiled its factorisations — a program sharded over several devices fuses them
    differently from a one-device program, which changes the last bits (~1e-14), and a
    chain's trajectory would amplify that.  With the metric rounded, the same seed gives
    the same draws on any number of devices (tested)."""
    return x.astype(jnp.float32).astype(x.dtype)


def estimate(a: Adaptation, draws, grads, valid, previous):
    """The metric of ``a.metric`` from the ``valid`` rows of ``draws`` and ``grads``;
    components that cannot be estimated (fewer than 3 draws, a coordinate that did not
    move, non-finite values) keep ``previous``."""
    # Every sum over draws is a matrix product: XLA compiles a fused reduction
    # differently in a program sharded over several devices (its last bit changes), a
    # dot the same way, and the low-rank estimate from few draws amplifies last bits.
    w = valid.astype(draws.dtype)
    n = jnp.sum(w)  # a count: exact
    n_safe = jnp.maximum(n, 1.0)
    mean_x = (w @ draws) / n_safe
    mean_g = (w @ grads) / n_safe
    dx = w[:, None] * (draws - mean_x)
    dg = w[:, None] * (grads - mean_g)
    if a.metric == "dense":
        cov = dx.T @ dx / jnp.maximum(n - 1.0, 1.0)
        d = draws.shape[1]
        reg = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * jnp.eye(d)
        ok = (n >= 3) & jnp.all(jnp.isfinite(reg)) & jnp.all(jnp.diag(cov) > 0)
        return jnp.where(ok, reg, previous)
    var_x = (w @ (dx * dx)) / n_safe
    var_g = (w @ (dg * dg)) / n_safe
    var = jnp.sqrt(var_x / jnp.where(var_g > 0, var_g, 1.0))
    good = (n >= 3) & _moved(draws, valid) & _moved(grads, valid) & jnp.isfinite(var)
    good &= (var > SCALE_RANGE[0]) & (var < SCALE_RANGE[1])
    old_var = previous if a.metric == "diag" else previous.sigma**2
    var = jnp.where(good, var, old_var)
    if a.metric == "diag":
        return var
    return _low_rank(a, dx, dg, jnp.sqrt(var), previous, n)


def _moved(values, valid):
    """Per coordinate: do the valid rows hold more than one value (exactly)?"""
    rows = valid[:, None]
    return jnp.max(jnp.where(rows, values, -jnp.inf), 0) > jnp.min(
        jnp.where(rows, values, jnp.inf), 0
    )


def _low_rank(a: Adaptation, dx, dg, sigma, previous, n):
    """The low-rank correction of the module docstring, in the scaled coordinates."""
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    d = dx.shape[1]
    k = a.rank(d)
    x = dx / sigma  # rows outside the window are zero and stay zero
    g = dg * sigma
    _, _, vx = jnp.linalg.svd(x, full_matrices=False)
    _, _, vg = jnp.linalg.svd(g, full_matrices=False)
    basis = jnp.concatenate([vx[:k].T, vg[:k].T], axis=1)  # (d, ≤ 2k)
    q, _ = jnp.linalg.qr(basis)
    px, pg = x @ q, g @ q  # (B, q)
    eye = jnp.eye(q.shape[1])
    cx = px.T @ px / a.gamma + eye
    cg = pg.T @ pg / a.gamma + eye
    sigma_sub = _geometric_mean_inverse(cx, cg)
    vals, vecs = jnp.linalg.eigh(sigma_sub)
    order = jnp.argsort(-jnp.abs(jnp.log(vals)))[:k]  # the k most informative
    lam, u = vals[order], q @ vecs[:, order]
    lam = jnp.where((lam > 1.0 / a.cutoff) & (lam < a.cutoff), 1.0, lam)
    # a buffer of fewer than k rows spans fewer than k directions: the rest are padded
    # with eigenvalue 1 (no correction), keeping the metric's shapes static
    missing = k - lam.shape[0]
    if missing > 0:
        lam = jnp.concatenate([lam, jnp.ones(missing, lam.dtype)])
        u = jnp.concatenate([u, jnp.zeros((d, missing), u.dtype)], axis=1)
    ok = (n >= 3) & jnp.all(jnp.isfinite(lam)) & jnp.all(lam > 0) & jnp.all(jnp.isfinite(u))
    return LowRankInverseMassMatrix(
        sigma,
        jnp.where(ok, u, previous.U),
        jnp.where(ok, lam, previous.lam),
    )


def _geometric_mean_inverse(cx, cg):
    """``Cx # Cg⁻¹``: with ``Cg = V diag(e) Vᵀ``, ``Cg^(1/2) = V diag(√e) Vᵀ`` and the
    result is ``Cg^(-1/2) (Cg^(1/2) Cx Cg^(1/2))^(1/2) Cg^(-1/2)`` (symmetric square
    roots by eigendecomposition; both inputs are SPD by construction: ``PᵀP/γ + I``)."""

    def power(m, p):
        e, v = jnp.linalg.eigh(m)
        e = jnp.maximum(e, 1e-300)
        return (v * e**p) @ v.T

    half, inv_half = power(cg, 0.5), power(cg, -0.5)
    middle = power(half @ cx @ half, 0.5)
    out = inv_half @ middle @ inv_half
    return (out + out.T) / 2


def dense_form(metric) -> np.ndarray:
    """``M⁻¹`` as a dense (d, d) or diagonal (d,) NumPy array (for the fit and Stan CSV),
    from any of the three forms (with a leading chain axis or not)."""
    from blackjax.mcmc.metrics import LowRankInverseMassMatrix

    if isinstance(metric, LowRankInverseMassMatrix):
        sigma, u, lam = (np.asarray(x) for x in metric)
        inner = np.einsum("...ik,...k,...jk->...ij", u, lam - 1.0, u)
        inner = inner + np.eye(sigma.shape[-1])
        return sigma[..., :, None] * inner * sigma[..., None, :]
    return np.asarray(metric)


__all__ = [
    "METRICS",
    "AdaptState",
    "Adaptation",
    "buffer_size",
    "dense_form",
    "estimate",
    "init",
    "initial_metric",
    "schedule",
    "update",
]
