"""``Model.optimize`` and ``fpl optimize``: MAP and MLE against closed forms, weights,
minibatching, any optax optimizer, implicit-solve failures, results and the CLI."""

import json

import numpy as np
import optax
import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.runtime.cli import main
from fpl.runtime.optimize import OptimizeResult, likelihood_terms, load_result, minibatch_objective

# mu: normal-normal (known sd 1); lam: gamma-poisson.  Independent, both conjugate.
CONJ = """
data N: int
data y: real[N]
data k: int<lower=0>[N]
param mu ~ normal(0, 2)
param lam: real<lower=0> ~ gamma(3, 2)
y ~ normal(mu, 1)
k ~ poisson(lam)
out twice = 2 * mu
"""

RNG = np.random.default_rng(7)
Y = RNG.normal(1.3, 1.0, size=12)
K = RNG.poisson(2.5, size=12)
CONJ_DATA = {"y": Y, "k": K}


def _closed_form():
    n = len(Y)
    mu = Y.sum() / (n + 1 / 4)  # posterior precision n + 1/2^2, mean sum(y) / that
    a, b = 3 + K.sum(), 2 + n  # gamma(a, b) posterior of lam
    return mu, (a - 1) / b, a / b  # mode on lam's scale; mode of log(lam) mapped back


def test_map_of_conjugate_model_and_the_jacobian_shift():
    model = fpl.compile(CONJ)
    mu, mode, mode_log = _closed_form()
    opt = optax.adam(0.05)
    # tol=0: every one of the 1500 steps is taken (no stop at convergence)
    res = model.optimize(CONJ_DATA, optimizer=opt, steps=1500, seed=1, progress=False, tol=0)
    jac = model.optimize(
        CONJ_DATA, optimizer=opt, steps=1500, seed=1, progress=False, jacobian=True, tol=0
    )
    # both runs end at a stationary point (full-data gradient ~ 0 on the unconstrained
    # scale), so 1e-8 on the values is far above the remaining optimisation error
    assert res.converged and jac.converged, (res.message, jac.message)
    assert res.params["mu"] == pytest.approx(mu, abs=1e-8)
    assert res.params["lam"] == pytest.approx(mode, abs=1e-8)
    assert jac.params["lam"] == pytest.approx(mode_log, abs=1e-8)
    # the analytic shift of the mode between the two scales: 1 / (2 + N)
    assert jac.params["lam"] - res.params["lam"] == pytest.approx(1 / (2 + len(Y)), abs=1e-8)
    assert res.outputs["twice"] == pytest.approx(2 * mu, abs=1e-8)
    # the loss is -log density at the optimum (no Jacobian), as Model.log_density says
    lp = model.log_density(res.params, CONJ_DATA)
    assert res.loss == pytest.approx(-float(lp), rel=1e-12)  # the same function, evaluated twice
    assert res.trace.shape == (1500,) and res.trace[-1] < res.trace[0]


REG = """
data N: int
data K: int
data X: real[N, K]
data y: real[N]
param beta: real[K]
y ~ normal(X @ beta, 1)
"""


def _regression(n=30, k=3, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n)
    return X, y


def test_mle_of_linear_regression_is_least_squares_with_lbfgs():
    X, y = _regression()
    res = fpl.compile(REG).optimize(
        {"X": X, "y": y}, optimizer=optax.lbfgs(), steps=30, seed=2, progress=False
    )
    ls = np.linalg.lstsq(X, y, rcond=None)[0]
    # L-BFGS on a quadratic reaches the minimum to rounding in a few steps
    np.testing.assert_allclose(res.params["beta"], ls, atol=1e-8)
    assert res.converged


def test_lbfgs_stops_at_convergence_and_says_so(tmp_path):
    X, y = _regression()
    model = fpl.compile(REG)
    kw = dict(optimizer=optax.lbfgs(), seed=2, progress=False)
    res = model.optimize({"X": X, "y": y}, steps=200, **kw)
    # L-BFGS solves this 3-parameter quadratic in a handful of steps; without the stop
    # it would take all 200 (the issue: 200/200 steps at gradient norm 4e-14)
    assert res.steps < 20 and res.attrs["stopped"] == "converged"
    assert f"converged after {res.steps} of 200 steps" in res.message
    assert res.trace.shape == (res.steps,)
    # the stop rule: gradient norm <= tol * max(1, |loss|) with the default tol 1e-8
    assert res.grad_norm <= 1e-8 * max(1.0, abs(res.loss))
    np.testing.assert_allclose(res.params["beta"], np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-8)
    every = model.optimize({"X": X, "y": y}, steps=200, tol=0, **kw)
    assert every.steps == 200 and every.attrs["stopped"] == "steps"
    # resuming a run part-way gives the uninterrupted run bit for bit, stop included
    # (same chunk boundaries: every=2 in both)
    whole = model.optimize(
        {"X": X, "y": y}, steps=200, checkpoint=tmp_path / "a.ckpt", every=2, **kw
    )
    path = tmp_path / "b.ckpt"
    model.optimize({"X": X, "y": y}, steps=4, checkpoint=path, every=2, **kw)
    resumed = model.optimize(
        {"X": X, "y": y}, steps=200, checkpoint=path, every=2, resume=True, **kw
    )
    assert resumed.steps == whole.steps == res.steps
    np.testing.assert_array_equal(resumed.params["beta"], whole.params["beta"])
    np.testing.assert_array_equal(resumed.trace, whole.trace)
    # a converged run resumed takes no further step
    again = model.optimize({"X": X, "y": y}, steps=300, checkpoint=path, every=2, resume=True, **kw)
    assert again.steps == whole.steps


WEIGHTS = """
data N: int
data K: int
data X: real[N, K]
data y: real[N]
weight w: real[K] init 0.0
loss mean(square(X @ w - y))
"""


def test_weights_only_model_trains_with_any_optax_transformation():
    X, y = _regression()
    model = fpl.compile(WEIGHTS)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05))
    res = model.optimize({"X": X, "y": y}, optimizer=opt, steps=1500, seed=0, progress=False)
    ls = np.linalg.lstsq(X, y, rcond=None)[0]
    # adam with a constant rate settles within ~lr * (grad noise) of the minimum; 1e-5
    # is far below the distance from the initial point (|ls| ~ 2)
    np.testing.assert_allclose(res.weights["w"], ls, atol=1e-5)
    assert res.params["w"] is res.weights["w"] or np.array_equal(res.params["w"], res.weights["w"])
    assert res.loss == pytest.approx(np.mean((X @ ls - y) ** 2), rel=1e-9)
    assert res.trace[0] > res.trace[-1] + 5 and res.trace[-1] == pytest.approx(res.loss, rel=1e-6)


MINI = """
data N: int
data x: real[N]
data y: real[N]
param a ~ normal(0, 1)
param s: real<lower=0> ~ exponential(1)
let mu = a * x
y ~ normal(mu, s)
target += -0.1 * sum(square(x - a))
"""


def test_minibatch_objective_is_unbiased_over_a_partition():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=12), rng.normal(size=12)
    data = {"x": x, "y": y}
    model = fpl.compile(MINI)
    params = {"a": 0.4, "s": 1.7}
    full = -float(model.log_density(params, data))
    batches = [
        minibatch_objective(model, data, rows, params) for rows in np.split(np.arange(12), 3)
    ]
    # the mean over a partition equals the full objective up to rounding of 3 sums
    assert np.mean(batches) == pytest.approx(full, rel=1e-13)
    # a single batch alone is not the full objective: the scaling is doing the work
    assert abs(batches[0] - full) > 1e-3
    # the prior statements (param priors) are not scaled; both data statements are
    cm = model.bind(data)
    scaled = [type(cm.program.statements[i]).__name__ for i in likelihood_terms(cm, ["x", "y"])]
    assert scaled == ["Observe", "Factor"]


def test_minibatch_mean_loss_is_not_rescaled():
    # `loss mean(...)`: a batch mean already estimates the full mean without bias, so the
    # batch objective averaged over a partition is the full objective with no N / B factor
    rng = np.random.default_rng(2)
    data = {"x": rng.normal(size=12), "y": rng.normal(size=12)}
    model = fpl.compile(
        "data N: int\ndata x: real[N]\ndata y: real[N]\nweight a: real init 0.3\n"
        "loss mean(square(y - a * x))\n"
    )
    full = -float(model.log_density({}, data))
    batches = [
        minibatch_objective(model, data, rows, {"a": 0.3}) for rows in np.split(np.arange(12), 4)
    ]
    assert np.mean(batches) == pytest.approx(full, rel=1e-13)  # rounding of 4 short means
    assert likelihood_terms(model.bind(data), ["x", "y"]) == []


def test_minibatch_optimize_reaches_the_full_data_optimum():
    X, y = _regression(n=40)
    model = fpl.compile(REG)
    res = model.optimize(
        {"X": X, "y": y},
        optimizer=optax.adam(optax.exponential_decay(0.05, 3000, 1e-3)),
        steps=3000,
        batch_size=10,
        seed=4,
        progress=False,
    )
    ls = np.linalg.lstsq(X, y, rcond=None)[0]
    # SGD noise with a learning rate decayed 1000-fold leaves ~1e-3 of error; 2e-2 is a
    # safe margin yet far below the distance from the start (|ls| ~ 2)
    np.testing.assert_allclose(res.params["beta"], ls, atol=2e-2)
    assert res.attrs["batch_size"] == 10


def test_bad_minibatch_options_are_coded_errors():
    model = fpl.compile(REG)
    X, y = _regression()
    with pytest.raises(FplError) as e:
        model.optimize({"X": X, "y": y}, batch_size=0, steps=5, progress=False)
    assert e.value.diagnostics[0].code == "E0403"
    with pytest.raises(FplError) as e:
        model.optimize({"X": X, "y": y}, batch_size=5, batch_fields=["X"], steps=5)
    assert e.value.diagnostics[0].code == "E0403" and "`y`" in str(e.value.diagnostics[0].message)
    with pytest.raises(FplError) as e:
        model.optimize({"X": X, "y": y}, optimizer="adam", steps=5)
    assert e.value.diagnostics[0].code == "E0403"


# x = a x + 1 converges under `iterate` only slowly as a -> 1; the data pull a there
IMPLICIT = """
data y: real
param a: real<lower=0, upper=2> ~ uniform(0, 2)
let x = fix x: real = a * x + 1 with iterate(max_iter=60, tol=1e-10)
y ~ normal(x, 0.1)
"""


def test_non_converged_implicit_solve_in_optimize_is_a_located_error():
    model = fpl.compile(IMPLICIT, "calib.fpl")
    kw = dict(optimizer=optax.adam(0.1), steps=200, seed=0, init={"a": 0.2}, progress=False)
    with pytest.raises(FplError) as e:
        model.optimize({"y": 50.0}, on_failure="error", **kw)
    d = e.value.diagnostics[0]
    assert d.code == "E0406"
    assert d.span is not None and d.span.line == 4 and "calib.fpl:4:" in d.span.location
    step = int(d.message.split("step ")[1].split()[0])
    assert 1 < step <= 200
    # why: 60 Picard steps of a slow contraction run out (or the iterates blow up, a > 1)
    assert "(max_iter_reached:" in d.message or "(nonfinite:" in d.message
    # skipping leaves `a` where its solve fails: every later step is skipped, and the
    # final loss is not finite, an error whatever the policy, naming the step and node
    with pytest.raises(FplError) as e:
        model.optimize({"y": 50.0}, on_failure="skip", **kw)
    d = e.value.diagnostics[0]
    assert d.code == "E0410" and "after optimization step 200" in d.message
    assert "fix#1 at calib.fpl:4:9" in d.message


def test_result_save_load_and_sample_with_its_weights(tmp_path, monkeypatch):
    X, y = _regression()
    model = fpl.compile(WEIGHTS)
    res = model.optimize({"X": X, "y": y}, steps=20, seed=0, progress=False)
    path = tmp_path / "fit.json"
    res.save(path)
    back = load_result(path)
    assert isinstance(back, OptimizeResult)
    np.testing.assert_array_equal(back.weights["w"], res.weights["w"])
    np.testing.assert_array_equal(back.trace, res.trace)
    assert back.loss == res.loss and back.steps == 20
    with pytest.raises(FplError) as e:
        res.save(tmp_path / "fit.csv")
    assert e.value.diagnostics[0].code == "E0502"
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(FplError) as e:
        load_result(tmp_path / "bad.json")
    assert e.value.diagnostics[0].code == "E0404"
    # Model.sample takes the result itself as the weights to hold fixed
    import fpl.runtime.sampling as sampling

    seen = {}
    monkeypatch.setattr(sampling, "sample", lambda *a, **kw: seen.update(weights=a[-1]))
    model.sample({"X": X, "y": y}, weights=back)
    assert seen["weights"] is back.weights


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FPL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.fpl").write_text(CONJ)
    (tmp_path / "d.json").write_text(json.dumps({"y": Y.tolist(), "k": K.tolist()}))
    return tmp_path


def test_cli_optimize_writes_result_and_plot(cli_env, capsys):
    rc = main(
        [
            "optimize",
            "m.fpl",
            "--data",
            "d.json",
            "--lr",
            "0.05",
            "--steps",
            "300",
            "--schedule",
            "cosine",
            "--seed",
            "1",
            "-o",
            "r.json",
            "--plot",
            "loss.png",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "loss" in out and "mu =" in out and "lam =" in out and "twice =" in out
    res = load_result(cli_env / "r.json")
    assert res.steps == 300 and res.attrs["seed"] == 1
    assert (cli_env / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_optimize_bad_options(cli_env, capsys):
    assert main(["optimize", "m.fpl", "--optimizer", "nope"]) == 2
    assert main(["optimize", "m.fpl", "--data", "d.json", "--steps", "0"]) == 2
    assert main(["optimize", "m.fpl", "--resume"]) == 2
    rc = main(["optimize", "m.fpl", "--data", "d.json", "--batch-size", "100", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "E0403" in err and "Traceback" not in err
    rc = main(
        ["optimize", "m.fpl", "--data", "d.json", "--optimizer", "lbfgs", "--schedule", "cosine"]
    )
    assert rc == 2 and "E0403" in capsys.readouterr().err  # a bad flag value: usage


WARM = """
data n: int
data A: real[n, n]
data u: real[n]
param c ~ normal(0, 1)
let z = fix z: real[n] = tanh(A @ z + c * u) with iterate(tol=1e-12) WARM
target += sum(u * z)
"""


def test_warm_started_implicit_nodes_are_carried_through_the_steps(tmp_path):
    rng = np.random.default_rng(5)
    A = rng.normal(size=(4, 4))
    data = {"A": 0.9 * A / np.linalg.norm(A, 2), "u": rng.normal(size=4)}
    kw = dict(optimizer=optax.adam(0.05), steps=30, seed=0, init={"c": 0.3}, progress=False)
    cold = fpl.compile(WARM.replace("WARM", "")).optimize(data, **kw)
    ck = tmp_path / "w.ckpt"
    warm = fpl.compile(WARM.replace("WARM", "warm=true")).optimize(data, checkpoint=ck, **kw)
    # warm starts change where the iteration starts, not the solution (tol 1e-12): the
    # two runs agree to far below the distance moved (|c - 0.3| > 0.1 after 30 steps)
    assert abs(cold.params["c"] - 0.3) > 0.1
    assert warm.params["c"] == pytest.approx(cold.params["c"], abs=1e-9)
    np.testing.assert_allclose(warm.trace, cold.trace, rtol=1e-9)
    # the carried state (saved with the optimizer's) holds the last solution z, not NaN
    with np.load(ck) as saved:
        last = saved[
            f"opt/{max(int(k.split('/')[1]) for k in saved.files if k.startswith('opt/'))}"
        ]
    assert last.shape == (4,) and np.all(np.isfinite(last)) and np.any(last != 0)
