"""``optimize`` and ``vi`` compile one chunk program per run: a short last chunk runs
through the same program with its spare steps idling (state, key included, passed
through unchanged), so chunks of 100 and of 50 steps give bit-identical runs of 150."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer.autoguide import AutoNormal

import fpl
from fpl.runtime import optimize as optimize_module
from fpl.runtime.loop import Progress, run_chunks
from fpl.runtime.vi import VISettings, _decaying_adam
from fpl.runtime.vi_run import SVIRun

jax.config.update("jax_enable_x64", True)

MODEL = """
data N: int
data y: real[N]
param mu ~ normal(0, 10)
param sigma: real<lower=0> ~ lognormal(0, 1)
y ~ normal(mu, sigma)
"""
DATA = {"N": 5, "y": [0.3, -1.2, 0.8, 2.0, 0.1]}


def _optimize(monkeypatch, chunk: int):
    programs = []
    original = optimize_module.chunk_function

    def recorded(step, chunk_len):
        programs.append(original(step, chunk_len))
        return programs[-1]

    monkeypatch.setattr(optimize_module, "CHUNK", chunk)
    monkeypatch.setattr(optimize_module, "chunk_function", recorded)
    fit = fpl.compile(MODEL).optimize(
        DATA, steps=150, tol=0.0, seed=3, progress=False, optimizer=optax.adam(0.05)
    )
    (program,) = programs
    return fit, program._cache_size()


def test_optimize_short_last_chunk_is_the_same_program(monkeypatch):
    fit_100, compiled_100 = _optimize(monkeypatch, 100)  # chunks of 100 and 50
    fit_50, compiled_50 = _optimize(monkeypatch, 50)  # chunks of 50, 50 and 50
    assert compiled_100 == compiled_50 == 1
    assert fit_100.steps == fit_50.steps == 150
    assert fit_100.trace.shape == (150,)
    np.testing.assert_array_equal(fit_100.trace, fit_50.trace)
    for name, value in fit_100.param_values.items():
        np.testing.assert_array_equal(value, fit_50.param_values[name])
    assert fit_100.trace[-1] < fit_100.trace[0]  # it moved: the steps were taken


def _numpyro_model(args):
    numpyro.sample("x", dist.Normal(args["m"], 1.0).expand([2]).to_event(1))


def _svi(eval_elbo: int, optim=None, adapt: bool = False):
    settings = VISettings(steps=150, eval_elbo=eval_elbo, tol_rel_obj=0.0, elbo_draws=5)
    args = {"m": jnp.asarray(1.5)}
    optim = numpyro.optim.Adam(0.05) if optim is None else optim
    runner = SVIRun(_numpyro_model, AutoNormal(_numpyro_model), optim, settings, args, 7)
    if adapt:
        runner.adapt(None)
    done = run_chunks(
        runner.advance, done=0, total=150, chunk=eval_elbo, bar=Progress(False, 150, "vi")
    )
    assert done == 150
    return runner


def test_vi_short_last_chunk_is_the_same_program():
    r100, r50 = _svi(100), _svi(50)  # chunks of 100 and 50 / three of 50
    assert r100._chunk._cache_size() == r50._chunk._cache_size() == 1
    assert r100.trace().shape == (150,)
    np.testing.assert_array_equal(r100.trace(), r50.trace())
    p100, p50 = r100.svi.get_params(r100.state), r50.svi.get_params(r50.state)
    assert set(p100) == set(p50) and p100
    for name in p100:
        np.testing.assert_array_equal(p100[name], p50[name])
    # it moved: the mean of x (truly 1.5) left its start near 0
    assert abs(float(p100["x_auto_loc"][0])) > 0.5


def test_vi_adaptation_shares_the_program():
    """The step-size trials (``eval_elbo`` steps each) and a run of 150 steps with
    chunks of 100: one compiled chunk program."""
    runner = _svi(100, _decaying_adam(100), adapt=True)
    assert runner._chunk._cache_size() == 1
    assert runner.trace().shape == (150,)
