"""Data-only computations are evaluated once per bind (``fpl.compiler.passes.hoist``).

The hoisted program must give the log density and gradient of the program as checked
(``hoist_data=False``) on every route: the bound data, data passed as operands (raw:
the data-only values recomputed from them; prepared: read as given), and other data.
The pass itself is checked on what it lifts and what it must leave in place."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.compiler import ir
from fpl.compiler.compiled import compile_model
from fpl.compiler.passes.hoist import hoist
from fpl.compiler.printer import expr_text

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[2]
POSTERIORDB = ROOT / "tests" / "posteriordb"

# The hoisted and the checked program do the same float64 operations; only XLA's
# fusion of them may differ, which moves results by a few ulps (~1e-15 relative).
RTOL = 1e-12

IMPLICIT = """
data n: int
data A: real[n, n]
data u: real[n]
data y: real[n]
param a: real<lower=0> ~ lognormal(0, 0.5)
param b ~ normal(0, 1)
let scaled = A / (1.0 + sum(abs(A)))
let lu = log1p(square(u))
let x = fix x: real[n] = tanh(a * (scaled @ x) + b * lu)
y ~ normal(x, 0.1 + 0.01 * exp(-u))
"""


def _implicit_data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"n": n, "A": rng.normal(size=(n, n)), "u": rng.normal(size=n), "y": rng.normal(size=n)}


def _cases():
    cases = []
    for name in ["ar1", "garch11"]:
        path = ROOT / "examples" / f"{name}.fpl"
        cases.append(
            pytest.param(
                path.read_text(), json.loads(path.with_suffix(".json").read_text()), id=name
            )
        )
    for name in ["nes1972-nes", "mesquite-logmesquite", "kidiq-kidscore_interaction"]:
        source = (POSTERIORDB / "models" / f"{name}.fpl").read_text()
        data = json.loads((POSTERIORDB / "data" / name / "data.json").read_text())
        cases.append(pytest.param(source, data, id=name))
    cases.append(pytest.param(IMPLICIT, _implicit_data(), id="implicit"))
    return cases


def _pair(source, data):
    model = fpl.compile(source)
    return model.bind(data), compile_model(model.ast, model.ir, data, hoist_data=False)


@pytest.mark.parametrize(("source", "data"), _cases())
def test_same_density_and_gradient_on_every_route(source, data):
    hoisted, checked = _pair(source, data)
    assert hoisted.hoisted.derivations, "each case has something to hoist"
    assert not checked.hoisted.derivations
    theta = jnp.asarray(np.random.default_rng(1).normal(scale=0.3, size=checked.param_unc_num()))
    lp, grad = checked.log_density_gradient(theta)
    raw = {k: jnp.asarray(v) for k, v in hoisted.data.items()}
    prepared = {k: jnp.asarray(v) for k, v in hoisted.prepare_data().items()}
    jitted = jax.jit(lambda t, d: hoisted.log_density_gradient(t, data=d))
    for got_lp, got_grad in [
        hoisted.log_density_gradient(theta),
        jitted(theta, raw),  # the data-only values computed inside, from the operands
        jitted(theta, prepared),  # read as given
    ]:
        np.testing.assert_allclose(got_lp, lp, rtol=RTOL)
        np.testing.assert_allclose(got_grad, grad, rtol=RTOL, atol=1e-12 * np.abs(grad).max())
    # the pointwise log-likelihood too (data-only lets observed: the same entries)
    want = checked.pointwise_log_likelihood(theta)
    got = hoisted.pointwise_log_likelihood(theta)
    assert set(got) == set(want) and want
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=RTOL)


def test_other_data_as_operands_recompute_the_data_only_values():
    """A model bound to one data set, evaluated on another through ``data=`` (as
    minibatching does), gives the log density of a model bound to the other."""
    model = fpl.compile(IMPLICIT)
    cm = model.bind(_implicit_data(seed=0))
    other = _implicit_data(seed=5)
    theta = jnp.asarray([0.2, -0.3])
    want = model.bind(other).log_density(theta)
    args = {k: jnp.asarray(v) for k, v in model.bind(other).data.items()}
    got = jax.jit(lambda t, d: cm.log_density(t, data=d))(theta, args)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    # the prepared form of the other data: the same
    got = cm.log_density(theta, data=cm.prepare_data(args))
    np.testing.assert_allclose(got, want, rtol=RTOL)


LGAMMA = """
data N: int
data x: real<lower=0>[N]
data y: real[N]
param a ~ normal(0, 1)
param s: real<lower=0> ~ exponential(1)
let gx = lgamma(x)
y ~ normal(a * gx, s)
"""


def _primitives(cm, data):
    theta = jnp.asarray([0.1, 0.2])
    jaxpr = jax.make_jaxpr(lambda t, d: cm.log_density_gradient(t, data=d))(theta, data)
    return str(jaxpr)


def test_prepared_operands_leave_the_computation_out_of_the_density():
    """With the prepared data the compiled gradient does no ``lgamma`` (it is computed
    once, outside); with raw operands it must compute it (from those operands)."""
    cm = fpl.compile(LGAMMA).bind({"N": 3, "x": [0.5, 1.5, 3.0], "y": [0.1, 0.2, 0.3]})
    assert [name for name, _ in cm.hoisted.derivations] == ["gx"]
    np.testing.assert_allclose(cm.derived["gx"], jax.scipy.special.gammaln(cm.data["x"]))
    prepared = {k: jnp.asarray(v) for k, v in cm.prepare_data().items()}
    raw = {k: jnp.asarray(v) for k, v in cm.data.items()}
    assert "lgamma" not in _primitives(cm, prepared)
    assert "lgamma" in _primitives(cm, raw)


PASS = """
data N: int
data x: real[N]
data y: real[N]
param mu ~ normal(0, 1)
param s: real<lower=min(x) - max(x)>
fn f(v) = exp(v) + mu
fn g(v) = v * 2
let d = log1p(square(x))
let m = mu * x
let k = N - 1
let p = f(x)
let q = g(x)
y ~ normal(mu + exp(x) + m + p + q, s + 3)
y[1:k] ~ normal(d[1:k] * mu, 1)
gen z = normal_rng(x[1], 1)
gen w = x[2] + z
"""


def test_what_the_pass_lifts():
    cm, checked = _pair(PASS, {"N": 4, "x": [0.1, 0.2, 0.3, 0.4], "y": [1.0, 2.0, 3.0, 4.0]})
    result = hoist(cm.program, cm.data)
    lifted = {name: expr_text(e) for name, e in result.derivations}
    # whole data-only lets keep their names; f reads the param mu, g does not; k is a
    # size (a Python number, read by the derivations but not one of them)
    assert {"d", "q"} <= set(lifted) and not {"m", "k", "p"} & set(lifted)
    assert [name for name, _ in result.constants] == ["k"]
    # maximal data-only parts of other statements (the param's bound, the observe's
    # arguments and left side, a gen's); not `mu * x`, `f(x)`, `normal_rng(x[1], 1)`
    anonymous = sorted(text for name, text in lifted.items() if name.startswith("$"))
    want = ["(min(x) - max(x))", "d[1:k]", "exp(x)", "x[1]", "x[2]", "y[1:k]"]
    assert anonymous == want
    # the statements stay where they were (term_scale and likelihood_terms index them)
    assert [type(s) for s in result.program.statements] == [type(s) for s in cm.program.statements]
    let_d = next(s for s in result.program.statements if isinstance(s, ir.Let) and s.name == "d")
    assert let_d.value == ir.Ref("d", "data", let_d.value.ty, let_d.span)
    # and it evaluates to the checked program's log density
    theta = jnp.asarray([0.3, -0.2])
    np.testing.assert_allclose(cm.log_density(theta), checked.log_density(theta), rtol=RTOL)
