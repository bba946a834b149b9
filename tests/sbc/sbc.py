"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018).

For m = 1..M: draw θ_m from the prior, simulate data y_m from the model given θ_m,
draw L (≈ independent) posterior draws given y_m and record the rank of θ_m among
them, r_m = #{l : θ_m,l < θ_m} ∈ {0, ..., L}.  If the sampler targets the posterior
exactly, each scalar component's ranks are uniform on {0, ..., L} (the prior draw is
one more exchangeable draw from the posterior).  With L + 1 divisible by B, ranks
binned into B equal bins are uniform over the bins, and a Pearson chi-square test
with B - 1 degrees of freedom checks it.

The replications run as one batch: NumPyro's functional NUTS (``hmc``) over the
model's ``CompiledModel.log_density`` with the data as arguments, vmapped over replications, so
one compilation serves all M fits of a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats


def rank_statistics(prior: np.ndarray, posterior: np.ndarray) -> np.ndarray:
    """Ranks of ``prior[m]`` among ``posterior[m, :]``: (M,) and (M, L) -> (M,) ints in
    0..L.  Ties have probability zero for continuous params."""
    return np.sum(posterior < prior[:, None], axis=1)


def chi_square_uniform(ranks: np.ndarray, n_draws: int, bins: int) -> float:
    """p-value of Pearson's chi-square test that ``ranks`` (in 0..n_draws) are
    uniform, after grouping the n_draws + 1 rank values into ``bins`` equal bins."""
    if (n_draws + 1) % bins:
        raise ValueError(f"L + 1 = {n_draws + 1} is not divisible into {bins} bins")
    counts = np.bincount(ranks * bins // (n_draws + 1), minlength=bins)
    return float(scipy.stats.chisquare(counts).pvalue)


@dataclass
class SbcResult:
    p_values: dict[str, float]  # component -> chi-square p-value
    ranks: dict[str, np.ndarray]  # component -> (M,) ranks
    n_draws: int  # L
    divergences: int
    seconds: float


def run_sbc(
    model,
    simulate: Callable[[np.random.Generator], tuple[dict[str, Any], dict[str, np.ndarray]]],
    components: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    replications: int,
    warmup: int,
    n_draws: int,
    thin: int,
    bins: int,
    seed: int,
) -> SbcResult:
    """SBC of ``model``: ``simulate(rng)`` returns (params θ, data y | θ) from the
    prior and the likelihood; ``components(params)`` maps constrained params (arrays,
    possibly batched over leading axes) to the named scalar quantities checked."""
    import time

    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc

    rng = np.random.default_rng(seed)
    sims = [simulate(rng) for _ in range(replications)]
    truths = [s[0] for s in sims]
    datas = [s[1] for s in sims]
    cm = model.bind(datas[0])  # the CompiledModel: its data are replaced per replication
    shapes = cm.param_unc_shapes
    args = {k: jnp.stack([jnp.asarray(model.bind(d).data[k]) for d in datas]) for k in cm.data}

    def gen(data):
        return lambda u: -cm.log_density(cm.ravel(u), data=data)

    init_kernel, sample_kernel = hmc(potential_fn_gen=gen, algo="NUTS")
    total = warmup + n_draws * thin

    def one(key, data, init):
        state = init_kernel(init, num_warmup=warmup, rng_key=key, model_args=(data,))

        def body(s, _):
            s = sample_kernel(s, model_args=(data,))
            return s, (s.z, s.diverging)

        _, (zs, div) = jax.lax.scan(body, state, None, length=total)
        kept = jax.tree.map(lambda z: z[warmup::thin], zs)

        def constrained(u):
            return cm.constrain(cm.ravel(u), data=data)

        params = jax.vmap(constrained)(kept)
        return {p.name: params[p.name] for p in cm.params}, jnp.sum(div[warmup:])

    keys = jax.random.split(jax.random.PRNGKey(seed), replications)
    # inits uniform(-2, 2) on the unconstrained scale, as Stan
    inits = {k: jnp.asarray(rng.uniform(-2, 2, (replications, *s))) for k, s in shapes.items()}
    began = time.perf_counter()
    draws, div = jax.jit(jax.vmap(one))(keys, args, inits)
    draws = {k: np.asarray(v) for k, v in draws.items()}
    seconds = time.perf_counter() - began
    post = components(draws)  # name -> (M, L)
    prior = components({k: np.stack([np.asarray(t[k]) for t in truths]) for k in truths[0]})
    ranks = {k: rank_statistics(np.asarray(prior[k]), np.asarray(post[k])) for k in post}
    p_values = {k: chi_square_uniform(r, n_draws, bins) for k, r in ranks.items()}
    return SbcResult(p_values, ranks, n_draws, int(np.sum(div)), seconds)
