"""The embedding API: log_density as a JAX function, scales, sampling, generate, ArviZ."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import fpl
from fpl.dsl.diagnostics import FplError

ES = (Path(__file__).parents[2] / "examples" / "eight_schools.fpl").read_text() + (
    "gen y_rep ~ normal(theta, sigma)\ngen log_lik = normal_lpdf(y | theta, sigma)\n"
)
DATA = {"J": 8, "y": [28, 8, -3, 7, -1, 1, 18, 12], "sigma": [15, 10, 16, 11, 9, 11, 10, 18]}
PARAMS = {"mu": 1.5, "tau": 2.0, "theta_tilde": np.linspace(-1, 1, 8)}


def reference_log_density(p):
    y, s = np.array(DATA["y"], float), np.array(DATA["sigma"], float)
    theta = p["mu"] + p["tau"] * p["theta_tilde"]
    return (
        stats.norm(0, 5).logpdf(p["mu"])
        + stats.cauchy(0, 5).logpdf(p["tau"])
        + stats.norm(0, 1).logpdf(p["theta_tilde"]).sum()
        + stats.norm(theta, s).logpdf(y).sum()
    )


@pytest.fixture(scope="module")
def model():
    return fpl.compile(ES, "es.fpl")


def test_log_density_matches_scipy(model):
    got = float(model.log_density(PARAMS, DATA))
    assert got == pytest.approx(reference_log_density(PARAMS), abs=1e-10)


def test_log_density_is_a_jax_function(model):
    f = jax.jit(lambda p: model.log_density(p, DATA))
    p = {k: jnp.asarray(v, float) for k, v in PARAMS.items()}
    assert float(f(p)) == pytest.approx(reference_log_density(PARAMS), abs=1e-10)
    g = jax.grad(f)(p)
    # central differences in float64: step 1e-6, truncation ~1e-12, tolerance 1e-6
    h = 1e-6
    up = {**PARAMS, "mu": PARAMS["mu"] + h}
    dn = {**PARAMS, "mu": PARAMS["mu"] - h}
    fd = (reference_log_density(up) - reference_log_density(dn)) / (2 * h)
    assert float(g["mu"]) == pytest.approx(fd, abs=1e-6)
    batch = {k: jnp.stack([jnp.asarray(v, float)] * 3) for k, v in PARAMS.items()}
    assert jax.vmap(f)(batch).shape == (3,)


def test_outside_support_is_minus_inf(model):
    assert float(model.log_density({**PARAMS, "tau": -1.0}, DATA)) == -np.inf


def test_jacobian_adds_log_jacobian(model):
    # tau = exp(u): log |d tau / d u| = log tau
    a = float(model.log_density(PARAMS, DATA, jacobian=True))
    b = float(model.log_density(PARAMS, DATA))
    assert a - b == pytest.approx(np.log(PARAMS["tau"]), abs=1e-12)


def test_constrain_unconstrain_round_trip(model):
    u = model.unconstrain(PARAMS, DATA)
    assert float(u["tau"]) == pytest.approx(np.log(2.0))
    back = model.constrain(u, DATA)
    assert float(back["tau"]) == pytest.approx(2.0)
    np.testing.assert_allclose(
        back["theta"], PARAMS["mu"] + PARAMS["tau"] * PARAMS["theta_tilde"], atol=1e-12
    )


def test_missing_param_is_coded_error(model):
    with pytest.raises(FplError) as e:
        model.log_density({"mu": 0.0}, DATA)
    assert e.value.code == "E0405"


def test_sample_generate_and_arviz(model):
    fit = model.sample(DATA, chains=2, warmup=300, draws=300, seed=4, progress=False)
    assert fit.draws("theta").shape == (2, 300, 8)
    assert fit.draws("y_rep").shape == (2, 300, 8)
    # theta is recomputed from each draw's params exactly
    np.testing.assert_allclose(
        fit["theta"], fit["mu"][..., None] + fit["tau"][..., None] * fit["theta_tilde"], atol=1e-9
    )
    s = fit.summary()
    assert s["mu"].r_hat < 1.05 and "tau" in str(s)
    idata = fit.to_arviz()
    # ArviZ 1.x: a DataTree (groups are its children); 0.x: InferenceData.groups()
    groups = set(idata.children) if hasattr(idata, "children") else set(idata.groups())
    assert {"posterior", "sample_stats", "log_likelihood", "posterior_predictive"} <= groups
    gen = model.generate(PARAMS, DATA, seed=0)
    np.testing.assert_allclose(
        gen["log_lik"],
        stats.norm(PARAMS["mu"] + PARAMS["tau"] * PARAMS["theta_tilde"], DATA["sigma"]).logpdf(
            DATA["y"]
        ),
        atol=1e-10,
    )


def test_same_seed_same_draws(model):
    a = model.sample(DATA, chains=1, warmup=100, draws=50, seed=11, progress=False)
    b = model.sample(DATA, chains=1, warmup=100, draws=50, seed=11, progress=False)
    np.testing.assert_array_equal(a["mu"], b["mu"])


def test_dependent_bounds_are_recomputed_per_draw():
    """LANGUAGE.md: upper=1 - a must be re-evaluated when mapping draws back.
    The density is flat on the triangle 0 < b < 1 - a, 0 < a < 1, so E[a] = E[b] = 1/3
    and sd = sqrt(1/18) = 0.236; tolerance: 4 of the fit's Monte Carlo standard errors."""
    m = fpl.compile("param a ~ uniform(0, 1)\nparam b: real<lower=0, upper=1 - a>\n")
    fit = m.sample({}, chains=2, warmup=500, draws=1000, seed=2, progress=False)
    a, b = fit["a"], fit["b"]
    assert np.all(b < 1 - a) and np.all(b > 0)
    s = fit.summary()
    assert abs(s["a"].mean - 1 / 3) < 4 * s["a"].mcse
    assert abs(s["b"].mean - 1 / 3) < 4 * s["b"].mcse


def test_truncated_prior_is_half_normal():
    """real<lower=0> ~ normal(0, 1) is a half-normal: mean sqrt(2/pi) = 0.798, sd 0.603.
    The mode at the boundary makes ESS per draw low (~0.2), so the tolerance is 4 of the
    fit's own Monte Carlo standard errors of the mean."""
    m = fpl.compile("param s: real<lower=0> ~ normal(0, 1)\n")
    fit = m.sample({}, chains=2, warmup=500, draws=1000, seed=5, progress=False)
    row = fit.summary()["s"]
    assert abs(row.mean - np.sqrt(2 / np.pi)) < 4 * row.mcse
    assert abs(row.sd - np.sqrt(1 - 2 / np.pi)) < 0.1  # sd of the sd estimate at ESS ~400
    assert fit["s"].min() > 0


def test_support_inferred_from_prior():
    m = fpl.compile("param tau ~ half_cauchy(5)\nparam p ~ beta(2, 2)\n")
    kinds = {p.name: p.constraint.kind for p in m.ir.params}
    assert kinds == {"tau": "lower", "p": "interval"}
    assert float(m.log_density({"tau": -1.0, "p": 0.5})) == -np.inf


CALIB_FAILING = """
data n: int
data A: real[n, n]
data u: real[n]
data y: real[n]
param a: real<lower=0> ~ lognormal(0, 0.5)
param b ~ normal(0, 1)
let x = fix x: real[n] = tanh(a * (A @ x) + b * u) with iterate(max_iter=8, tol=1e-10)
y ~ normal(x, 0.1)
"""


def test_nonconverged_solves_are_counted_in_nuts():
    """8 Picard steps cannot reach 1e-10: NUTS meets failures; they are counted per chain
    with the node's location and shown in the summary, never silently used."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    A = 0.5 * A / np.linalg.norm(A, 2)
    data = {"n": 4, "A": A, "u": rng.normal(size=4), "y": rng.normal(size=4) * 0.3}
    m = fpl.compile(CALIB_FAILING, "calib.fpl")
    fit = m.sample(data, chains=2, warmup=50, draws=30, seed=1, progress=False)
    ((node, counts),) = fit.solver_failures.items()
    assert node == "fix#1 at calib.fpl:8:9"
    assert len(counts) == 2 and sum(counts) > 0
    assert "non-converged solves" in str(fit.summary())
    # why they failed: 8 Picard steps are a budget, so every failure is max_iter_reached
    assert fit.solver_failure_reasons == {node: {"max_iter_reached": sum(counts)}}
    assert f"max_iter_reached: {sum(counts)}" in str(fit.summary())
    reasons = fit.sample_stats["reason:fix#1@calib.fpl:8:9"]  # per draw (accepted: 0)
    assert reasons.shape == (2, 30) and not reasons.any()


def test_eager_log_density_with_failed_solve_is_minus_inf_not_an_exception():
    # Outside jit NumPyro validates distribution arguments eagerly; the NaN of a failed
    # solve must still give FPL's -inf (as under jit), not a ValueError from NumPyro.
    model = fpl.compile(
        "data y: real[3]\n"
        "param a: real<lower=0> ~ lognormal(0, 0.5)\n"
        "let x = fix x: real[3] = tanh(a * x + 1.0) with iterate(max_iter=2)\n"
        "y ~ normal(x, 1)\n"
    )
    lp = model.log_density({"a": 0.9}, {"y": [0.5, 0.6, 0.7]})
    assert float(lp) == -np.inf
    ok = fpl.compile(
        "data y: real[3]\n"
        "param a: real<lower=0> ~ lognormal(0, 0.5)\n"
        "let x = fix x: real[3] = tanh(a * x + 1.0)\n"
        "y ~ normal(x, 1)\n"
    )
    assert np.isfinite(float(ok.log_density({"a": 0.9}, {"y": [0.5, 0.6, 0.7]})))


def test_weight_init_distribution_draws_every_element():
    # `init normal(0, s)` on a matrix is one independent draw per element (identical
    # entries would start every hidden unit the same, and they would stay the same)
    model = fpl.compile(
        "data n: int\nweight W: real[n, 4] init normal(0, 1)\n"
        "weight b: real[n] init normal([0, 10, 20], 0.1)\nweight c: real init 2\ntarget += 0\n"
    )
    w = model.bind({"n": 3}).weights
    assert w["W"].shape == (3, 4) and len(np.unique(w["W"])) == 12
    # 12 standard normal draws: their sd is within [0.3, 2] with probability > 1 - 1e-6
    assert 0.3 < np.std(w["W"]) < 2
    assert np.all(np.abs(w["b"] - [0, 10, 20]) < 1)  # 10 sds of the init
    assert float(w["c"]) == 2.0
    # the default is deterministic (samplers hold weights fixed); a seed changes the draw
    np.testing.assert_array_equal(model.bind({"n": 3}).weights["W"], w["W"])
    assert not np.array_equal(model.bind({"n": 3}, weight_seed=1).weights["W"], w["W"])
