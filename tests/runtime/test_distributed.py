"""Multi-process sampling (``jax.distributed``): two processes on this machine, joined over
loopback, share the chains (chain c on process c mod 2) and each gets the whole fit — the
same draws as one process with the same seed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

MODEL = """
data N: int
data y: real[N]
param mu ~ normal(0, 5)
param sigma: real<lower=0> ~ exponential(1)
y ~ normal(mu, sigma)
"""

WORKER = """
import sys, numpy as np, jax
procs, pid, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if procs > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address="127.0.0.1:" + port,
                               num_processes=procs, process_id=pid)
import fpl
fit = fpl.load("m.fpl").sample("d.json", chains=4, warmup=150, draws=80, seed=7,
                              progress=False)
assert jax.process_count() == procs
np.savez(f"out_{procs}_{pid}.npz", mu=fit.posterior["mu"], sigma=fit.posterior["sigma"],
         lp=fit.warmup_sample_stats["lp"], step=fit.adaptation["step_size"])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_one_process_draws(tmp_path):
    (tmp_path / "m.fpl").write_text(MODEL)
    y = np.random.default_rng(0).normal(1.0, 2.0, size=10)
    (tmp_path / "d.json").write_text(json.dumps({"N": 10, "y": y.tolist()}))
    (tmp_path / "w.py").write_text(textwrap.dedent(WORKER))
    env = {**os.environ, "FPL_HOST_DEVICES": "1"}
    env.pop("XLA_FLAGS", None)
    port = str(_free_port())

    def launch(procs, pid):
        return subprocess.Popen(
            [sys.executable, "w.py", str(procs), str(pid), port],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    workers = [launch(2, 0), launch(2, 1)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    single = launch(1, 0)
    _, err = single.communicate(timeout=600)
    assert single.returncode == 0, err[-3000:]
    one = np.load(tmp_path / "out_1_0.npz")
    for pid in (0, 1):
        two = np.load(tmp_path / f"out_2_{pid}.npz")
        for key in ("mu", "sigma", "lp", "step"):
            np.testing.assert_array_equal(two[key], one[key])
