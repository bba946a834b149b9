"""Shared sub-calls are traced once (issue 11, ``fpl.compiler.lower_calls``).

* The doubling program ``f2(x) = f1(f1(x)) ... fN(x) = f(N-1)(f(N-1)(x))``: its
  gradient's jaxpr grows linearly with N (quick); it checks, compiles and samples at
  N = 16 and compiles at N = 30 in a time bounded by a small multiple of the N = 4
  program's in the same test (a ratio: machines are noisy; slow tier).  The inlined
  lowering visits 2^(N-1) bodies (at N = 12 it took 20 s to compile against 1.4 s at
  N = 4; at N = 16 XLA crashed).
* The shared lowering gives the values of the inlined one (``lower_calls.inlined()``,
  the reference) on every example and posteriordb model: log density and gradient at
  random points, to 1e-12 (the same operations in the same order: only the grouping
  into calls and loops changes, which XLA compiles to the same arithmetic; the bound
  leaves room for a last-bit difference in a fused reduction).
* Derivatives through shared calls and chain loops agree with finite differences and
  with the inlined lowering's Hessian; solver results of implicit nodes inside a
  shared function reach the stats; ``reject`` inside one still rejects; draws inside
  one are the inlined draws; ``map``/``scan`` bodies that call functions work.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import fpl
from fpl.compiler import ir, lower_calls

jax = pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
POSTERIORDB = ROOT / "tests" / "posteriordb"

#: Values equal to this relative precision (see the module docstring).
TOLERANCE = 1e-12


def doubling(levels: int) -> str:
    lines = ["data y: real[3]", "param mu ~ normal(0, 1)", "fn f1(x) = 0.5 * x + 0.1"]
    lines += [f"fn f{k}(x) = f{k - 1}(f{k - 1}(x))" for k in range(2, levels + 1)]
    lines.append(f"y ~ normal(f{levels}(mu), 1)")
    return "\n".join(lines) + "\n"


DOUBLING_DATA = {"y": [0.1, 0.2, 0.3]}


def _fixed_point_map(levels: int, mu: float) -> float:
    """f_levels(mu) in closed form: 2^(levels-1) applications of x -> 0.5 x + 0.1,
    whose fixed point is 0.2: f(mu) = 0.2 + (mu - 0.2) 0.5^(2^(levels-1))."""
    return 0.2 + (mu - 0.2) * 0.5 ** (2 ** (levels - 1))


def _compile_seconds(levels: int) -> tuple[float, object]:
    """Check, bind, and compile the gradient (XLA included): seconds, compiled fn."""
    start = time.perf_counter()
    cm = fpl.compile(doubling(levels), f"doubling{levels}.fpl").bind(DOUBLING_DATA)
    compiled = jax.jit(cm.log_density_gradient).lower(np.zeros(1)).compile()
    return time.perf_counter() - start, compiled


def _equations(jaxpr, seen: set[int] | None = None) -> int:
    """Equations of a jaxpr and of its distinct sub-jaxprs (each counted once)."""
    seen = set() if seen is None else seen
    if id(jaxpr) in seen:
        return 0
    seen.add(id(jaxpr))
    total = len(jaxpr.eqns)
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(item, "jaxpr", item)  # a closed jaxpr's, or a jaxpr
                if hasattr(inner, "eqns"):
                    total += _equations(inner, seen)
    return total


def test_the_doubling_program_traces_once_per_function():
    """No timing: the gradient's program grows linearly with the levels (the inlined
    lowering's has 2^(levels-1) copies of f1)."""

    def size(levels: int) -> int:
        cm = fpl.compile(doubling(levels), f"doubling{levels}.fpl").bind(DOUBLING_DATA)
        return _equations(jax.make_jaxpr(cm.log_density_gradient)(np.zeros(1)).jaxpr)

    five, ten, thirty = size(5), size(10), size(30)
    # measured 76, 86, 126 equations: ~2 per level over the fixed density's ~66
    assert ten <= 1.5 * five and thirty <= 2 * five, (five, ten, thirty)
    with lower_calls.inlined():  # the old lowering: 2^9 bodies at 10 levels (1599)
        assert size(10) > 10 * ten


@pytest.mark.slow
def test_the_doubling_program_compiles_and_gives_the_closed_form():
    # linearity is checked without timing above (program size per level); the compile
    # times are benchmark figures (docs/benchmarks.md), not asserted here.  30 levels
    # compile (the inlined lowering crashed XLA at 16); the 30-level gradient is not run:
    # it applies f1 2^29 times, ~20 s
    _, grad16 = _compile_seconds(16)
    _compile_seconds(30)
    mu = 0.37
    lp, g = grad16(np.array([mu]))
    m = _fixed_point_map(16, mu)
    y = np.array(DOUBLING_DATA["y"])
    want = -0.5 * mu**2 + np.sum(-0.5 * (y - m) ** 2) - 2 * np.log(2 * np.pi)
    # 2^15 roundings of an affine map that contracts by 0.5 each time: errors do not
    # grow, so the closed form holds to a few ulps
    np.testing.assert_allclose(float(lp), want, rtol=1e-12)
    np.testing.assert_allclose(float(g[0]), -mu, rtol=1e-12)  # d f16/d mu = 0.5^(2^15) = 0


@pytest.mark.slow
def test_the_doubling_program_samples():
    model = fpl.compile(doubling(16), "doubling16.fpl")
    fit = model.sample(DOUBLING_DATA, chains=1, warmup=20, draws=10, seed=1, progress=False)
    draws = fit.draws("mu")
    # f16(mu) is 0.2 whatever mu: the posterior is the prior N(0, 1); 10 draws only
    # show that the sampler ran on finite values
    assert draws.shape == (1, 10) and np.all(np.isfinite(draws))


def test_walk_visits_each_function_instance_once():
    program = fpl.compile(doubling(30), "doubling30.fpl").ir
    visited = [n for s in program.statements for n in ir.walk(s) if isinstance(n, ir.Lambda)]
    assert len(visited) == 30 and len({id(n) for n in visited}) == 30


# ---- shared == inlined, on every model ---------------------------------------------


def _cases() -> list[tuple[str, Path, Path]]:
    cases = []
    for path in sorted(EXAMPLES.glob("*.fpl")):
        data = path.with_suffix(".json")
        if data.exists():
            cases.append((f"examples/{path.stem}", path, data))
    for path in sorted((POSTERIORDB / "models").glob("*.fpl")):
        data = POSTERIORDB / "data" / path.stem / "data.json"
        cases.append((f"posteriordb/{path.stem}", path, data))
    return cases


CASES = _cases()


def _calls_functions(model) -> bool:
    """Whether the lowering of ``model`` differs at all: a direct call of a user
    function (functions only passed to map/scan/fold/ode are traced once either way)."""
    return any(isinstance(n, ir.Apply) for s in model.ir.statements for n in ir.walk(s))


def _split(cases):
    quick, rest = [], []
    for name, path, data in cases:
        model = fpl.load(str(path))
        (quick if _calls_functions(model) else rest).append(pytest.param(path, data, id=name))
    return quick, rest


QUICK, REST = _split(CASES)


def _compare(path: Path, data_path: Path) -> None:
    model = fpl.load(str(path))
    cm = model.bind(json.loads(data_path.read_text()))
    rng = np.random.default_rng(11)
    thetas = 0.5 * rng.standard_normal((3, cm.param_unc_num()))
    shared = jax.jit(jax.vmap(cm.log_density_gradient))(thetas)
    with lower_calls.inlined():
        inlined = jax.jit(jax.vmap(cm.log_density_gradient))(thetas)
    for a, b in zip(shared, inlined):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOLERANCE, atol=TOLERANCE)


def test_the_models_with_calls_are_found():
    # the quick comparison below must cover something: examples with functions called
    # directly (self_tuning_ridge, market_equilibrium, ...) and posteriordb ones
    assert len(QUICK) >= 3 and len(QUICK) + len(REST) == len(CASES)


#: the one comparison in the quick tier (the cheapest model with calls, ~1 s); the
#: others compile an implicit or HMM model twice (10-20 s each): the slow tier
QUICK_MODEL = "examples/self_tuning_ridge"


def test_shared_calls_give_the_inlined_values_quick():
    (case,) = [c for c in QUICK if c.id == QUICK_MODEL]
    _compare(*case.values)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "data"), QUICK)
def test_shared_calls_give_the_inlined_values(path, data):
    _compare(path, data)


#: every sixth model without direct calls: the shared lowering only acts on calls, so a
#: sample of them guards against it touching anything else (all of them cost ~3 min)
REST_SAMPLE = REST[::6]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "data"), REST_SAMPLE)
def test_models_without_calls_are_unchanged(path, data):
    # nothing is shared: the traced program itself is the inlined lowering's (no XLA
    # compile needed to compare them)
    cm = fpl.load(str(path)).bind(json.loads(data.read_text()))
    theta = np.zeros(cm.param_unc_num())
    shared = str(jax.make_jaxpr(cm.log_density_gradient)(theta))
    with lower_calls.inlined():
        inlined = str(jax.make_jaxpr(cm.log_density_gradient)(theta))
    assert shared == inlined


# ---- what travels through a shared body -------------------------------------------

SHARED = """
data y: real[4]
data x: real[4]
param a ~ normal(0, 1)
param b: real<lower=0> ~ normal(0, 1)
fn inv(v) = root z: real of z * (2 + b) - v init 0.0
fn g(v) = inv(v) + a * v
fn h(v) = g(g(g(v)))
fn p(v) = sin(v) * b + a * v
fn q(v) = p(p(p(v)))
fn k(v) = b > 5 ? reject("b too large: ", b) : g(v) + q(2 * v)
y ~ normal(h(a) + k(b) + map(g, x), 1)
gen z = normal_rng(g(a), 1)
"""

SHARED_DATA = {"y": [0.3, -0.2, 0.5, 1.0], "x": [1.0, 2.0, -1.0, 0.5]}


def _bound():
    return fpl.compile(SHARED, "shared.fpl").bind(SHARED_DATA)


DERIVATIVES = """
data y: real[4]
param a ~ normal(0, 1)
param b: real<lower=0> ~ normal(0, 1)
fn inv(v) = root z: real of z * (2 + b) - v init 0.0
fn p(v) = sin(v) * b + a * v
fn q(v) = p(p(p(v)))
y ~ normal(q(a) + inv(q(b)) + inv(b), 1)
"""


@pytest.mark.slow  # compiles the Hessian through a root twice, ~20 s on a loaded machine
def test_derivatives_through_shared_bodies_and_loops():
    # a chain loop (q), a shared body with an implicit node called twice (inv)
    cm = fpl.compile(DERIVATIVES, "derivatives.fpl").bind({"y": SHARED_DATA["y"]})
    theta = np.array([0.3, -0.4])
    f = jax.jit(cm.log_density)
    lp, grad, hess = jax.jit(cm.log_density_hessian)(theta)
    with lower_calls.inlined():
        lp0, grad0, hess0 = jax.jit(cm.log_density_hessian)(theta)
    np.testing.assert_allclose(lp, lp0, rtol=TOLERANCE)
    np.testing.assert_allclose(grad, grad0, rtol=TOLERANCE)
    # forward over reverse through the loop and the implicit node's IFT rule: the same
    # arithmetic as the inlined lowering's, to a few ulps
    np.testing.assert_allclose(hess, hess0, rtol=1e-10)
    # central differences, step 1e-6: error ~ h^2 f''' + eps/h ~ 1e-9 relative to the
    # scale of the values (~10 here), so 1e-6 relative leaves a wide margin; the same for
    # the Hessian from differences of the gradient
    gradient = jax.jit(lambda t: cm.log_density_gradient(t)[1])
    step = 1e-6
    for i in range(2):
        e = np.zeros(2)
        e[i] = step
        fd = (f(theta + e) - f(theta - e)) / (2 * step)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-6)
        fd_row = (gradient(theta + e) - gradient(theta - e)) / (2 * step)
        np.testing.assert_allclose(hess[i], fd_row, rtol=1e-6, atol=1e-6)


def test_solver_results_and_rejects_leave_shared_bodies():
    cm = _bound()
    theta = np.array([0.3, -0.4])
    lp, stats = jax.jit(lambda t: cm.log_density(t, stats=True))(theta)
    with lower_calls.inlined():
        lp0, stats0 = jax.jit(lambda t: cm.log_density(t, stats=True))(theta)
    assert stats.keys() == stats0.keys() and len(stats) == 1
    for node in stats:
        for key in stats[node]:
            np.testing.assert_array_equal(stats[node][key], stats0[node][key])
    # the root is solved once per call of `inv`: g is called 3 (h) + 1 (k) + 4 (map) times
    assert int(stats[next(iter(stats))]["solves"]) == 8
    # b = exp(2) > 5: the reject inside k's shared body makes the density -inf
    assert np.isneginf(jax.jit(cm.log_density)(np.array([0.3, 2.0])))


def test_draws_and_pointwise_log_likelihood_through_shared_bodies():
    cm = _bound()
    theta = np.array([0.3, -0.4])
    key = jax.random.key(3)
    gen = jax.jit(cm.generate)(theta, key)
    pointwise = jax.jit(cm.pointwise_log_likelihood)(theta)
    with lower_calls.inlined():
        gen0 = jax.jit(cm.generate)(theta, key)
        pointwise0 = jax.jit(cm.pointwise_log_likelihood)(theta)
    np.testing.assert_array_equal(gen["z"], gen0["z"])
    for name in pointwise0:
        np.testing.assert_allclose(pointwise[name], pointwise0[name], rtol=TOLERANCE)


KNOWN = """
data y: real[3]
data n: int
param a ~ normal(0, 1)
fn c(v) = 2.0
fn less(m) = m - 2
fn head(v, m) = v[1:m]
y ~ normal(c(c(a)) + a, 1)
y[1:less(n)] ~ normal(head(y, less(n)) * a, 1)
"""


def test_known_values_stay_known_and_unloopable_chains_unroll():
    # `less(n)` of data only is a slice bound: a call with nothing traced is inlined,
    # so it stays a number; `c(c(a))` returns a weakly typed constant for a float
    # argument: no loop can carry it, and the calls run one by one
    cm = fpl.compile(KNOWN, "known.fpl").bind({"y": [0.1, 0.2, 0.3], "n": 4})
    theta = np.array([0.3])
    lp, grad = jax.jit(cm.log_density_gradient)(theta)
    with lower_calls.inlined():
        lp0, grad0 = jax.jit(cm.log_density_gradient)(theta)
    np.testing.assert_array_equal([lp, grad[0]], [lp0, grad0[0]])
    y, a = np.array([0.1, 0.2, 0.3]), 0.3
    normal = lambda x, m: -0.5 * (x - m) ** 2 - 0.5 * np.log(2 * np.pi)  # noqa: E731
    want = normal(a, 0) + normal(y, 2 + a).sum() + normal(y[:2], y[:2] * a).sum()
    np.testing.assert_allclose(lp, want, rtol=1e-14)
