"""Data-parallel likelihoods (``sample(shard_data=True)``): the observation axis split
over devices (four forced host devices, in a fresh interpreter: XLA's device count is
fixed when JAX starts)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CODE = """
import numpy as np, jax, jax.numpy as jnp, fpl
from fpl.runtime.nuts import shard_observations
assert len(jax.devices()) == 4
src = '''
data N: int
data D: int
data X: real[N, D]
data y: int<lower=0, upper=1>[N]
param alpha ~ normal(0, 2)
param beta: real[D] ~ normal(0, 1)
y ~ bernoulli_logit(alpha + X @ beta)
'''
rng = np.random.default_rng(0)
N, D = 1000, 3
X = rng.normal(size=(N, D))
y = (rng.uniform(size=N) < 1 / (1 + np.exp(-(0.5 + X @ [1.0, -1.0, 0.5])))).astype(int)
data = {"N": N, "D": D, "X": X, "y": y}
model = fpl.compile(src)
with jax.enable_x64(True):
    cm = model.bind(data)
    args = {k: jnp.asarray(v) for k, v in cm.prepare_data().items()}
    _, sharded = shard_observations(args)
    assert len(sharded["X"].sharding.device_set) == 4  # really split
    grad = jax.jit(jax.value_and_grad(lambda t, a: cm.log_density(t, data=a)))
    for seed in range(3):
        theta = jnp.asarray(np.random.default_rng(seed).normal(size=4))
        lp1, g1 = grad(theta, args)
        lp2, g2 = grad(theta, sharded)
        # the same sums in another order: equal to rounding (N = 1000 terms of O(1))
        np.testing.assert_allclose(float(lp2), float(lp1), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(g2), np.asarray(g1), rtol=1e-10, atol=1e-12)
fit = model.sample(data, chains=2, warmup=300, draws=300, seed=1, progress=False,
                   shard_data=True)
plain = model.sample(data, chains=2, warmup=300, draws=300, seed=1, progress=False)
assert fit.attrs["devices"] == 4 and fit.attrs["shard_data"]
for name in ("alpha", "beta"):
    a, b = fit.posterior[name], plain.posterior[name]
    sd = b.std(axis=(0, 1))
    # two independent runs of 600 draws: means agree within 5 MC standard errors
    assert np.all(np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))) < 5 * sd / np.sqrt(150))
print("ok")
"""


def test_sharded_likelihood_equals_the_unsharded_one(tmp_path):
    env = {**os.environ, "FPL_HOST_DEVICES": "4"}
    env.pop("XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CODE)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
