"""``CompiledModel.pointwise_log_likelihood``: the log density of each observed value.

Checked against independent routes: the models' own hand-written ``gen log_lik``
(radon, AR(1)), SciPy's densities (indexed, repeated and multivariate observations),
and, on the examples and posteriordb models, the identity "sum of the entries = the
log density minus the same log density with every data ``~`` term scaled by 0"."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import fpl
from fpl.compiler import ir

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[2]
POSTERIORDB = ROOT / "tests" / "posteriordb"

# float64 sums of up to ~1e4 terms of size ~1e1: rounding ~1e-16 * 1e4 * 1e1 = 1e-11
# absolute at most; 1e-9 relative leaves room without hiding a missing term (>= 1e-3).
SUM_RTOL = 1e-9


def _examples():
    cases = []
    for name in ["eight_schools", "radon_hierarchical", "ar1", "market_equilibrium"]:
        path = ROOT / "examples" / f"{name}.fpl"
        cases.append(pytest.param(path, path.with_suffix(".json"), id=name))
    for path in sorted((POSTERIORDB / "models").glob("*.fpl")):
        if path.stem in ODE_BESIDES_ONE:
            continue
        data = POSTERIORDB / "data" / path.stem / "data.json"
        cases.append(pytest.param(path, data, id=path.stem))
    return cases


#: ODE translations other than lotka_volterra: their observations are plain `~` of an ODE
#: solution like lotka_volterra's, and each costs ~40 s of ODE compiles (the whole suite's
#: time); lotka_volterra stands for them
ODE_BESIDES_ONE = frozenset({"sir-sir", "one_comp_mm_elim_abs-one_comp_mm_elim_abs"})


def _theta(cm, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(scale=scale, size=cm.param_unc_num()))


def _data_observes(program: ir.Program) -> list[int]:
    """The ``~`` statements whose left side reads a data field (directly or through
    data-only values): found here from the IR, not from the method's own analysis."""
    derived: set[str] = set()
    out = []
    for i, s in enumerate(program.statements):
        if isinstance(s, (ir.Let, ir.Out)):
            refs = [x for x in ir.walk(s.value) if isinstance(x, ir.Ref)]
            if refs and all(r.kind == "data" or r.name in derived for r in refs):
                derived.add(s.name)
        if isinstance(s, ir.Observe):
            refs = [x for x in ir.walk(s.value) if isinstance(x, ir.Ref)]
            if any(r.kind == "data" or r.name in derived for r in refs):
                out.append(i)
    return out


@pytest.mark.parametrize(("model", "data"), _examples())
def test_entries_sum_to_the_likelihood(model, data):
    cm = fpl.load(model).bind(json.loads(Path(data).read_text()))
    observed = _data_observes(cm.program)
    theta = _theta(cm)
    if not np.isfinite(float(cm.log_density(theta))):
        # sir's ODE gives a negative Poisson rate near the origin: start where NUTS would
        from fpl.runtime.sampling import find_inits

        theta = cm.ravel(find_inits(cm, cm.prepare_data(), 1, 0, None)[0])
    entries = cm.pointwise_log_likelihood(theta)
    if not observed:  # a likelihood written as `target += ...` (Stan's style): no entries
        assert entries == {}
        return
    shapes = {d.name: tuple(np.shape(cm.data.get(d.name, 0))) for d in cm.program.data}
    shapes |= {k: np.shape(v) for k, v in cm.derived.items()}
    for name, value in entries.items():
        # one entry per observation: the field's shape less a multivariate distribution's
        # event dimensions (`y ~ multi_normal(...)` of a vector y is one entry)
        assert value.shape == shapes[name][: value.ndim]
    # the likelihood part: the log density less itself with those terms switched off
    lp = cm.log_density(theta)
    without = cm.evaluate(theta, term_scale={i: 0.0 for i in observed}).log_density
    total = sum(float(jnp.sum(v)) for v in entries.values())
    assert total == pytest.approx(float(lp - without), rel=SUM_RTOL)


def test_matches_the_hand_written_log_lik():
    """radon_hierarchical writes ``gen log_lik = normal_lpdf(log_radon | mu, sigma_y)``;
    AR(1) writes it for ``y[2:T]`` (its ``y[1]`` is not observed: 0)."""
    for name, field in [("radon_hierarchical", "log_radon"), ("ar1", "y")]:
        path = ROOT / "examples" / f"{name}.fpl"
        cm = fpl.load(path).bind(json.loads(path.with_suffix(".json").read_text()))
        theta = _theta(cm, 1)
        entry = cm.pointwise_log_likelihood(theta)[field]
        hand = cm.generate(theta, jax.random.PRNGKey(0))["log_lik"]
        if name == "ar1":
            assert float(entry[0]) == 0.0
            entry = entry[1:]
        np.testing.assert_allclose(entry, hand, rtol=1e-12, atol=0)


INDEXED = """
data N: int
data y: real[N]
data idx: int[3]
param mu ~ normal(0, 1)
let k = N - 3
y[1:k] ~ normal(mu, 1)
y[idx] ~ normal(2 * mu, 3)
y[N] ~ normal(mu, 2)
"""


def test_slices_indices_and_repeats_add_at_their_positions():
    y = np.array([0.5, -1.0, 2.0, 0.3, 1.1])
    idx = np.array([2, 4, 4])  # position 2 observed twice (with the slice), 4 twice
    cm = fpl.compile(INDEXED).bind({"N": 5, "y": y, "idx": idx})
    mu = 0.7
    entry = cm.pointwise_log_likelihood(jnp.asarray([mu]))["y"]
    want = np.zeros(5)
    want[:2] += stats.norm.logpdf(y[:2], mu, 1)
    np.add.at(want, idx - 1, stats.norm.logpdf(y[idx - 1], 2 * mu, 3))
    want[4] += stats.norm.logpdf(y[4], mu, 2)
    np.testing.assert_allclose(entry, want, rtol=1e-12)
    assert want[2] == 0.0  # never observed


MULTI = """
data N: int
data Y: real[N, 2]
data x: real[N]
param m: real[2] ~ normal(0, 1)
let S = [[1.0, 0.3], [0.3, 2.0]]
Y ~ multi_normal(m, S)
log(x) ~ normal(m[1], 1)
target += normal_lpdf(x | m[2], 1)
"""


def test_one_term_per_event_and_skipped_kinds():
    """``multi_normal`` gives one term per row; ``log(x) ~`` and ``target +=`` are not
    observations of a field, so there is no entry for ``x``."""
    rng = np.random.default_rng(3)
    Y, x = rng.normal(size=(4, 2)), rng.uniform(0.5, 2, 4)
    cm = fpl.compile(MULTI).bind({"N": 4, "Y": Y, "x": x})
    m = np.array([0.2, -0.4])
    entries = cm.pointwise_log_likelihood(jnp.asarray(m))
    assert set(entries) == {"Y"}
    S = np.array([[1.0, 0.3], [0.3, 2.0]])
    want = stats.multivariate_normal(m, S).logpdf(Y)
    np.testing.assert_allclose(entries["Y"], want, rtol=1e-12)


def test_jit_vmap_and_other_data():
    path = ROOT / "examples" / "radon_hierarchical.fpl"
    data = json.loads(path.with_suffix(".json").read_text())
    model = fpl.load(path)
    cm = model.bind(data)
    thetas = jnp.stack([_theta(cm, s) for s in range(3)])
    eager = [cm.pointwise_log_likelihood(t)["log_radon"] for t in thetas]
    batched = jax.jit(jax.vmap(cm.pointwise_log_likelihood))(thetas)["log_radon"]
    np.testing.assert_allclose(batched, np.stack(eager), rtol=1e-12)
    # other data as operands: the same as binding them
    other = {**data, "log_radon": (np.asarray(data["log_radon"]) + 0.5).tolist()}
    args = {k: jnp.asarray(v) for k, v in model.bind(other).data.items()}
    got = jax.jit(lambda t, d: cm.pointwise_log_likelihood(t, data=d))(thetas[0], args)
    want = model.bind(other).pointwise_log_likelihood(thetas[0])
    np.testing.assert_allclose(got["log_radon"], want["log_radon"], rtol=1e-12)
