"""Every construct of LANGUAGE.md sections 1-3 parses, and runs: each program below is
compiled and its log density compared with a hand computation in NumPy/SciPy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

import fpl
from fpl.dsl import ast
from fpl.dsl.diagnostics import FplError
from fpl.dsl.parser import parse

DECLARATIONS = """
data N: int
data K: int
data x: real[N]
data y: int<lower=0>[N]
data X: real[N, K]
param alpha ~ normal(0, 10)
param sigma: real<lower=0> ~ exponential(1)
param beta: real[K]
beta ~ normal(0, 2.5)
param L: cholesky_corr[K] ~ lkj_corr_cholesky(2)
param p: simplex[K] ~ dirichlet(ones(K))
param o: ordered[K]
param po: positive_ordered[K]
param C: corr_matrix[K]
param S: cov_matrix[K]
param LS: cholesky_cov[K]
param alpha1: real<lower=0, upper=1>
param beta1: real<lower=0, upper=1 - alpha1>
param v: real[K - 1]
param tau ~ half_cauchy(5)
weight W: real[3, 3] init normal(0, 0.05)
"""


def test_declarations_parse_to_the_right_nodes():
    prog = parse(DECLARATIONS, "decl.fpl")
    kinds = [type(s).__name__ for s in prog.statements]
    assert kinds.count("DataDecl") == 5 and kinds.count("WeightDecl") == 1
    by_name = {s.name: s for s in prog.statements if hasattr(s, "name")}
    assert by_name["y"].type.base == "int" and len(by_name["y"].type.bounds) == 1
    assert by_name["X"].type.shape and len(by_name["X"].type.shape) == 2
    assert by_name["L"].type.base == "cholesky_corr"
    assert by_name["alpha"].type is None and by_name["alpha"].prior is not None
    upper = by_name["beta1"].type.bounds[1]
    assert upper.name == "upper" and isinstance(upper.value, ast.Binary)


def test_declarations_compile_with_the_declared_types():
    m = fpl.compile(DECLARATIONS)
    ir = {p.name: p for p in m.ir.params}
    assert str(ir["beta"].ty) == "real[K]"
    assert ir["L"].constraint.kind == "cholesky_corr" and str(ir["L"].ty) == "real[K, K]"
    assert ir["tau"].constraint.kind == "lower"  # takes the support of half_cauchy
    assert ir["alpha"].constraint.kind == "real"
    assert ir["beta1"].constraint.kind == "interval"
    assert str(ir["v"].ty) == "real[K - 1]"


def test_declarations_and_priors_evaluate():
    src = """
data N: int
data y: int<lower=0>[N]
param alpha ~ normal(0, 10)
param sigma: real<lower=0> ~ exponential(1)
param beta: real[2]
beta ~ normal(0, 2.5)
param p: simplex[3] ~ dirichlet(ones(3))
param tau ~ half_cauchy(5)
y ~ poisson(sigma)
"""
    m = fpl.compile(src)
    y = np.array([1, 0, 3])
    params = {
        "alpha": 0.4,
        "sigma": 1.3,
        "beta": np.array([0.2, -0.5]),
        "p": np.array([0.2, 0.3, 0.5]),
        "tau": 2.0,
    }
    want = (
        st.norm.logpdf(0.4, 0, 10)
        + st.expon.logpdf(1.3)
        + st.norm.logpdf([0.2, -0.5], 0, 2.5).sum()
        + st.dirichlet.logpdf([0.2, 0.3, 0.5], np.ones(3))
        + st.halfcauchy.logpdf(2.0, scale=5)
        + st.poisson.logpmf(y, 1.3).sum()
    )
    np.testing.assert_allclose(float(m.log_density(params, {"N": 3, "y": y})), want, rtol=1e-10)


def test_statements_evaluate():
    src = """
data N: int
data K: int
data X: real[N, K]
data y: real[N]
param alpha: real
param beta: real[K]
param sigma: real<lower=0>
let mu = alpha + X @ beta
out r = y - mu
y ~ normal(mu, sigma)
target += -0.5 * dot_self(beta)
loss mean(square(r))
gen y_rep ~ normal(mu, sigma)
gen log_lik = normal_lpdf(y | mu, sigma)
"""
    m = fpl.compile(src)
    X = np.array([[1.0, 0.5], [-0.3, 2.0], [0.7, 0.1]])
    y = np.array([0.2, 1.1, -0.4])
    beta = np.array([0.3, -0.2])
    mu = 0.5 + X @ beta
    want = st.norm.logpdf(y, mu, 1.5).sum() - 0.5 * beta @ beta - np.mean((y - mu) ** 2)
    got = m.log_density({"alpha": 0.5, "beta": beta, "sigma": 1.5}, {"X": X, "y": y})
    np.testing.assert_allclose(float(got), want, rtol=1e-10)
    assert m.out_names == ["r"]


EXPRESSIONS = [
    # (expression over data A: real[3, 4], v: real[4], u: real[3], n: int = 3, numpy)
    ("A - v", lambda A, v, u: A - v),  # (N, K) - (K,) broadcasts a row
    ("A @ v", lambda A, v, u: A @ v),
    ("u @ A", lambda A, v, u: u @ A),
    ("A[:, 2:4]", lambda A, v, u: A[:, 1:4]),
    ("A[2, :]", lambda A, v, u: A[1, :]),
    ("A[2]", lambda A, v, u: A[1]),
    ("A[:, 3]", lambda A, v, u: A[:, 2]),
    ("A[2, 3]", lambda A, v, u: A[1, 2]),
    ("v[2:n]", lambda A, v, u: v[1:3]),
    ("v[:2]", lambda A, v, u: v[:2]),
    ("v[3:]", lambda A, v, u: v[2:]),
    ("A'", lambda A, v, u: A.T),
    ("-v + 2 * v - v / 2", lambda A, v, u: -v + 2 * v - v / 2),
    ("v .* v ./ (1 + v ^ 2)", lambda A, v, u: v * v / (1 + v**2)),
    ("2 ^ 3 ^ 2", lambda A, v, u: 2.0 ** (3**2)),  # ^ is right-associative
    ("-2 ^ 2", lambda A, v, u: -(2.0**2)),  # unary minus binds looser than ^
    ("1 + 2 * 3 - 4 / 2", lambda A, v, u: 5.0),
    ("(1 + 2) * 3", lambda A, v, u: 9.0),
    ("7 % 3", lambda A, v, u: 1.0),
    ("u[1] > 0 ? 1.0 : -1.0", lambda A, v, u: 1.0 if u[0] > 0 else -1.0),
    ("v > 0 ? v : -v", lambda A, v, u: np.abs(v)),
    ("(u[1] < 0 || u[3] >= 0) && !(n == 2) ? 1.0 : 0.0", lambda A, v, u: 1.0),
    ("u[1] < 0 || u[2] >= 0 ? 1.0 : 0.0", lambda A, v, u: 0.0),
    ("u[1] <= u[2] ? 1.0 : 0.0", lambda A, v, u: float(u[0] <= u[1])),
    ("n != 3 ? 1.0 : 0.0", lambda A, v, u: 0.0),
    ("[1, 2, 3] * u", lambda A, v, u: np.array([1, 2, 3]) * u),
    ("[[1.0, 2.0], [3.0, 4.0]] @ [1.0, 1.0]", lambda A, v, u: np.array([3.0, 7.0])),
    ("sum(A) + log_sum_exp(v)", lambda A, v, u: A.sum() + np.log(np.exp(v).sum())),
]


@pytest.mark.parametrize("expr, ref", EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_expressions_evaluate(expr, ref):
    A = np.arange(12.0).reshape(3, 4) / 5 - 1
    v = np.array([0.5, -1.0, 2.0, 0.3])
    u = np.array([0.7, -0.2, 1.1])
    src = f"data n: int\ndata A: real[n, 4]\ndata v: real[4]\ndata u: real[n]\nout e = {expr}"
    m = fpl.compile(src)
    b = m.bind({"n": 3, "A": A, "v": v, "u": u})
    from fpl.compiler.lower import from_constrained, run

    res = run(b.program, {**b.static, **b.data}, from_constrained({}))
    np.testing.assert_allclose(np.asarray(res.env["e"]), ref(A, v, u), rtol=1e-12, atol=1e-14)
    checked = next(o for o in b.program.outs if o.name == "e")  # the IR at concrete sizes
    assert np.shape(ref(A, v, u)) == tuple(checked.value.ty.shape)


def test_statement_separators_and_line_joining():
    src = "data x: real; param mu: real\ntarget += normal_lpdf(x |\n    mu,\n    1)  # comment\n\n"
    m = fpl.compile(src)
    np.testing.assert_allclose(
        float(m.log_density({"mu": 0.1}, {"x": 0.4})), st.norm.logpdf(0.4, 0.1)
    )


def test_functions_one_line_and_block():
    src = """
data q: real[3]
fn energy(q: real[3]) -> real {
  let r = norm2(q)
  return 1 / r - exp(-r)
}
fn twice(z) = 2 * z
target += energy(q) + twice(1.5)
"""
    q = np.array([0.3, -0.4, 1.2])
    r = np.linalg.norm(q)
    got = fpl.compile(src).log_density({}, {"q": q})
    np.testing.assert_allclose(float(got), 1 / r - np.exp(-r) + 3.0, rtol=1e-12)


def test_differentiation_forms():
    src = """
data q: real[3]
data z: real[2]
data x: real[2]
fn energy(q: real[3]) -> real {
  let r = norm2(q)
  return 1 / r - exp(-r)
}
fn cell(z, x) = tanh(z * x + 1)
out F = -grad(energy)(q)
out J = jacobian(cell, 0)(z, x)
out H = hessian(energy)(q)
out t = jvp(cell)(z, x, [1.0, 0.0])
out c = vjp(cell)(z, x, [1.0, 0.0])
"""
    q, z, x = np.array([0.3, -0.4, 1.2]), np.array([0.5, -0.1]), np.array([1.5, 2.0])
    m = fpl.compile(src)
    res = m.constrain({}, {"q": q, "z": z, "x": x})
    r = np.linalg.norm(q)
    dE_dr = -1 / r**2 + np.exp(-r)
    np.testing.assert_allclose(res["F"], -dE_dr * q / r, rtol=1e-10)
    d = x * (1 - np.tanh(z * x + 1) ** 2)  # d cell_i / d z_i
    np.testing.assert_allclose(res["J"], np.diag(d), rtol=1e-10)
    np.testing.assert_allclose(res["t"], d * [1.0, 0.0], rtol=1e-10)
    np.testing.assert_allclose(res["c"], d * [1.0, 0.0], rtol=1e-10)
    # the Hessian is symmetric and its trace is the Laplacian E'' + 2 E' / r
    d2E = 2 / r**3 - np.exp(-r)
    np.testing.assert_allclose(res["H"], res["H"].T, atol=1e-12)
    np.testing.assert_allclose(np.trace(res["H"]), d2E + 2 * dE_dr / r, rtol=1e-10)


def test_map_scan_fold_and_garch_recursion():
    src = """
data T: int
data y: real[T]
data sigma1: real<lower=0>
param mu: real
param alpha0: real<lower=0>
param alpha1: real<lower=0, upper=1>
param beta1: real<lower=0, upper=1 - alpha1>
fn step(s, r) = sqrt(alpha0 + alpha1 * square(r - mu) + beta1 * square(s))
let sigma = append_row(sigma1, scan(step, sigma1, y[1:T-1]))
fn add(c, a) = c + a
fn sq(a) = a * a
out total = fold(add, 0.0, y)
out squares = map(sq, y)
y ~ normal(mu, sigma)
"""
    y = np.array([0.3, -0.5, 1.2, 0.1, -0.8])
    mu, a0, a1, b1, s1 = 0.1, 0.2, 0.3, 0.4, 0.9
    sig = [s1]
    for t in range(1, len(y)):
        sig.append(np.sqrt(a0 + a1 * (y[t - 1] - mu) ** 2 + b1 * sig[-1] ** 2))
    m = fpl.compile(src)
    params = {"mu": mu, "alpha0": a0, "alpha1": a1, "beta1": b1}
    data = {"y": y, "sigma1": s1}
    got = m.log_density(params, data)
    np.testing.assert_allclose(float(got), st.norm.logpdf(y, mu, sig).sum(), rtol=1e-10)
    res = m.constrain(m.unconstrain(params, data), data)
    np.testing.assert_allclose(res["total"], y.sum(), rtol=1e-12)
    np.testing.assert_allclose(res["squares"], y**2, rtol=1e-12)


def test_weight_with_init():
    m = fpl.compile(
        "weight w: real[2] init 0.5\nweight V: real[2, 2] init normal(0, 0.05)\nloss sum(w)"
    )
    b = m.bind({})
    np.testing.assert_allclose(b.weights["w"], [0.5, 0.5])
    assert b.weights["V"].shape == (2, 2)
    assert float(m.log_density({}, {})) == pytest.approx(-1.0)


# ---- imports ----------------------------------------------------------------------------


def test_import_brings_functions_and_weights(tmp_path):
    (tmp_path / "layers.fpl").write_text("weight b: real init 0.25\nfn affine(x) = 2 * x + b\n")
    (tmp_path / "model.fpl").write_text(
        'import "layers.fpl"\ndata x: real\nparam mu: real\nx ~ normal(affine(mu), 1)\n'
    )
    m = fpl.load(tmp_path / "model.fpl")
    got = m.log_density({"mu": 0.3}, {"x": 1.0})
    np.testing.assert_allclose(float(got), st.norm.logpdf(1.0, 2 * 0.3 + 0.25, 1), rtol=1e-12)


def test_import_from_a_subfolder(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "f.fpl").write_text("fn sq(x) = x * x\n")
    (tmp_path / "m.fpl").write_text('import "lib/f.fpl"\ntarget += sq(3.0)\n')
    assert float(fpl.load(tmp_path / "m.fpl").log_density({}, {})) == 9.0


@pytest.mark.parametrize("path", ["../x.fpl", "lib/../../x.fpl", "/tmp/x.fpl", "x.txt"])
def test_import_escaping_its_folder_is_rejected(tmp_path, path):
    (tmp_path / "x.fpl").write_text("fn f(x) = x\n")
    sub = tmp_path / "sub"
    (sub / "lib").mkdir(parents=True)
    (sub / "m.fpl").write_text(f'import "{path}"\n')
    with pytest.raises(FplError) as exc:
        fpl.load(sub / "m.fpl")
    assert exc.value.code == "E0106"
    assert f"{sub / 'm.fpl'}:1:1" in exc.value.render()


def test_import_cycle_and_missing_file(tmp_path):
    (tmp_path / "a.fpl").write_text('import "b.fpl"\n')
    (tmp_path / "b.fpl").write_text('import "a.fpl"\n')
    (tmp_path / "c.fpl").write_text('import "nothere.fpl"\n')
    for name in ("a.fpl", "c.fpl"):
        with pytest.raises(FplError) as exc:
            fpl.load(tmp_path / name)
        assert exc.value.code == "E0106"


def test_import_needs_a_file():
    with pytest.raises(FplError) as exc:
        fpl.compile('import "layers.fpl"\n')
    assert exc.value.code == "E0106"


# ---- reserved words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src", ["let fix = 1", "data real: real", "param of: real", "let init = 2"]
)
def test_reserved_word_is_not_a_name(src):
    """Words that are keywords inside expressions cannot be names."""
    with pytest.raises(FplError) as exc:
        parse(src, "m.fpl")
    assert exc.value.code == "E0101"


def test_statement_words_are_soft_keywords():
    """Data files use names like `weight` (posteriordb's mesquite): statement-opening
    words may be declared and used inside expressions."""
    import fpl

    m = fpl.compile("data weight: real[2]\nparam mu: real\ntarget += -sum(square(weight - mu))\n")
    lp = float(m.log_density({"mu": 1.0}, {"weight": [1.0, 3.0]}))
    assert lp == -4.0
