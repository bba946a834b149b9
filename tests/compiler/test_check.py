"""The checker's type and shape inference on representative expressions, with sizes
kept symbolic until data arrive (then checked again with numbers)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import fpl
from fpl.compiler import compile_ir, ir
from fpl.dsl.diagnostics import FplError

HEADER = """
data N: int
data K: int
data n: int
data X: real[N, K]
data v: real[K]
data x: real[N]
data y: int[N]
fn sq(a) = a * a
fn acc(c, a) = c + a
fn quad(w: real[K]) -> real = dot_self(w)
"""

CASES = [
    ("X @ v", "real[N]"),
    ("x @ X", "real[K]"),
    ("X' @ x", "real[K]"),
    ("X'", "real[K, N]"),
    ("X - v", "real[N, K]"),  # broadcasting a row
    ("X[1]", "real[K]"),
    ("X[1, :]", "real[K]"),
    ("X[:, 2]", "real[N]"),
    ("X[:, 2:K]", "real[N, K - 2 + 1]"),
    ("x[2:N]", "real[N - 2 + 1]"),
    ("x[:3]", "real[3]"),
    ("X[2, 3]", "real"),
    ("y[1]", "int"),
    ("sum(y)", "int"),
    ("sum(x)", "real"),
    ("1 + 2", "int"),
    ("n / 2", "real"),  # true division
    ("n % 2", "int"),
    ("x > 0", "bool[N]"),
    ("x > 0 ? x : 0.0", "real[N]"),
    ("[[1, 2], [3, 4]]", "int[2, 2]"),
    ("[1.0, n]", "real[2]"),
    ("normal_lpdf(x | 0, 1)", "real[N]"),
    ("normal_lpdf(x | v[1], 1)", "real[N]"),
    ("multi_normal_lpdf(X | v, diag_matrix(v))", "real[N]"),
    ("append_row(x, x)", "real[N + N]"),
    ("append_col(x, x)", "real[N, 2]"),  # a vector is one column (issue 13)
    ("append_row(X, v)", "real[N + 1, K]"),
    # the distribution functions are elementwise over the broadcast of value and
    # arguments, not the value's shape alone (issue 13: every HMM forward pass)
    ("normal_lpdf(x[1] | v, 1)", "real[K]"),
    ("normal_lpdf(1.5 | 0, x)", "real[N]"),
    ("multi_normal_lpdf(v | X, diag_matrix(v))", "real[N]"),
    ("poisson_lpmf(y[1] | v)", "real[K]"),
    ("zeros(N, K)", "real[N, K]"),
    ("rep_vector(0.5, K)", "real[K]"),
    ("diag_matrix(v)", "real[K, K]"),
    ("to_vector(X)", "real[?]"),
    ("map(sq, x)", "real[N]"),
    ("map(sq, X)", "real[N, K]"),
    ("scan(acc, 0.0, x)", "real[N]"),
    ("fold(acc, 0.0, x)", "real"),
    ("fold(acc, v, X)", "real[K]"),
    ("grad(quad)(v)", "real[K]"),
    ("hessian(quad)(v)", "real[K, K]"),
    ("jacobian(sq)(v)", "real[K, K]"),
    ("jvp(sq)(v, v)", "real[K]"),
    ("vjp(sq)(v, v)", "real[K]"),
    ("gp_exp_quad_cov(x, 1.0, 2.0)", "real[N, N]"),
]


@pytest.mark.parametrize("expr, ty", CASES, ids=[c[0] for c in CASES])
def test_inferred_type(expr, ty):
    prog = compile_ir(HEADER + f"out e = {expr}\n")
    out = next(o for o in prog.outs if o.name == "e")
    assert str(out.value.ty) == ty


def test_param_takes_the_support_of_its_prior():
    prog = compile_ir(
        "data K: int\nparam tau ~ half_cauchy(5)\n"
        "param p ~ dirichlet(rep_vector(1.0, K))\nparam u ~ uniform(-1, tau)"
    )
    ps = {p.name: p for p in prog.params}
    assert ps["tau"].constraint.kind == "lower" and str(ps["tau"].ty) == "real"
    assert ps["p"].constraint.kind == "simplex" and str(ps["p"].ty) == "real[K]"
    assert ps["u"].constraint.kind == "interval"
    assert isinstance(ps["u"].constraint.upper, ir.Ref) and ps["u"].constraint.upper.name == "tau"


def test_narrower_declared_support_is_accepted():
    compile_ir("param s: real<lower=0> ~ normal(0, 1)")
    compile_ir("param s: real<lower=1, upper=2> ~ exponential(1)")


def test_symbolic_mismatch_is_caught_when_data_arrive():
    """real[N] + real[M] cannot be decided symbolically; with data it is an E0202 at
    the same location."""
    m = fpl.compile(
        "data N: int\ndata M: int\ndata a: real[N]\ndata b: real[M]\nout c = a + b", "m.fpl"
    )
    with pytest.raises(FplError) as exc:
        m.bind({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]})
    assert exc.value.code == "E0202"
    assert "m.fpl:5:9" in exc.value.render()
    m.bind({"a": [1.0, 2.0], "b": [1.0, 2.0]})  # equal sizes are fine


@pytest.mark.parametrize(
    "src, code",
    [
        ("data x: real[3]\nlet y = x[4]", "E0202"),  # a static index out of range
        ("data x: real[3]\nlet y = x[2:5]", "E0202"),
        ("data N: int\nparam p: real[N]\nlet y = zeros(p[N])", "E020"),  # a real as a size
        ("data N: int\nparam p: real[N]\nlet y = head(p, N)\nlet z = zeros(1 + 1)", None),
        ("param a: int", "E0201"),  # discrete param
        ("data x: real\ntarget += x > 0", "E0201"),
        ("fn f(x) = x\nlet f = 1", "E0105"),
        ("let y = grad(exp)", "E0201"),
        ("fn f(x: real[2]) -> real = sum(x)\nlet y = f(1.0)", "E0201"),
        ("let y = map(exp, 1.0)", "E0202"),
        ("param L: real[3, 3] ~ lkj_corr_cholesky(2)", "E0204"),
        ("data y: real\ny ~ poisson(3)", "E0201"),
        ("let z = root z: real[2] of z with lbfgs()", "E0206"),
        ("let z = fix z: real[2] = z with anderson(memory=0)", "E0206"),
        ("let z = fix z: real[2] = [1.0, 2.0, 3.0]", "E0202"),
        ("let z = argmin z: real[2] of z", "E0202"),
        ("gen y = 1.0\ntarget += y", "E0207"),
        ("let y = normal_rng(0, 1)", "E0207"),
    ],
)
def test_rejected(src, code):
    if code is None:  # a control: accepted
        compile_ir(src, "m.fpl")
        return
    with pytest.raises(FplError) as exc:
        compile_ir(src, "m.fpl")
    assert exc.value.code.startswith(code)
    assert "--> m.fpl:" in exc.value.render()


@pytest.mark.parametrize(
    "src",
    [
        "gen y ~ normal(0, 1)\ntarget += y",  # a generated value used by the model
        "gen y ~ normal(0, 1)\nlet z = normal_rng(0, 1)",  # _rng outside gen
    ],
)
def test_gen_scope_ends_after_a_gen_draw(src):
    """`gen y ~ ...` must not leave the checker in gen mode for later statements
    (check.py sets ``in_gen = True`` for GenTilde and never resets it)."""
    with pytest.raises(FplError) as exc:
        compile_ir(src, "m.fpl")
    assert exc.value.code == "E0207"


# ---- depth: no process-wide recursion limit ---------------------------------------------


def test_check_leaves_the_recursion_limit_alone():
    import sys

    before = sys.getrecursionlimit()
    fpl.compile("param a: real\nlet x = a" + " + a" * 240 + "\ntarget += x\n")
    assert sys.getrecursionlimit() == before


# near the parser's MAX_DEPTH (250; it was 400 until 350 nested unary `-` overflowed the
# stack in hoisting and lowering, issue 11)
@pytest.mark.parametrize(
    "expr",
    [
        "a" + " + a" * 240,
        "-" * 240 + "a",
        "exp(" * 80 + "a" + ")" * 80,
        "a > 0 ? a : " * 118 + "a",
    ],
)
def test_deepest_programs_the_parser_accepts_check_at_the_default_limit(expr):
    import subprocess
    import sys

    src = "param a: real\nlet x = " + expr + "\ntarget += x\n"
    code = (
        "import sys, fpl; assert sys.getrecursionlimit() == 1000; "
        f"fpl.compile({src!r}); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_long_chains_of_calls_are_a_coded_error():
    src = "param a: real\nfn f0(x) = x\n"
    src += "".join(f"fn f{i}(x) = f{i - 1}(x) + 1\n" for i in range(1, 300))
    with pytest.raises(FplError) as exc:
        fpl.compile(src + "let y = f299(a)\n")
    assert exc.value.code == "E0107"
    fpl.compile(src.split("fn f60(")[0] + "let y = f59(a)\n")  # 60 deep is fine


@pytest.mark.parametrize("n", [300])  # 5,000 (the audit's case) costs 15 s to parse
def test_long_chains_of_typed_functions_are_a_coded_error(n):
    """A function with a typed signature is checked once, at its definition; its callers
    must still count its body's levels, or a chain passes `check` and overflows the
    lowering's recursion (exit 3)."""
    src = "param a: real\nfn f0(x: real) -> real = x\n"
    src += "".join(f"fn f{i}(x: real) -> real = f{i - 1}(x) + 1\n" for i in range(1, n))
    with pytest.raises(FplError) as exc:
        fpl.compile(src + f"let y = f{n - 1}(a)\n")
    assert exc.value.code == "E0107"


def test_recursive_functions_are_a_coded_error():
    with pytest.raises(FplError) as exc:
        fpl.compile("param a: real\nfn f(x) = g(x) + 1\nfn g(x) = f(x)\nlet y = f(a)\n")
    assert exc.value.code == "E0201"
    assert "`f` -> `g` -> `f`" in str(exc.value)


def test_hmm_forward_pass_with_an_elementwise_lpdf():
    """The forward algorithm of a K-state HMM with emissions ``normal(mu, sigma)``: the
    carry is real[K] and ``normal_lpdf(y_t | mu, sigma)`` is real[K] (issue 13)."""
    model = fpl.compile(
        "data T: int\ndata K: int\ndata y: real[T]\ndata Gamma: real[K, K]\n"
        "param mu: real[K] ~ normal(0, 3)\n"
        "fn step(alpha: real[K], yt: real) = "
        "log(exp(alpha) @ Gamma) + normal_lpdf(yt | mu, 1)\n"
        "let alpha = fold(step, normal_lpdf(y[1] | mu, 1) - log(K), y[2:T])\n"
        "target += log_sum_exp(alpha)\n"
    )
    y = np.array([0.3, -1.2, 2.1, 0.4])
    gamma = np.array([[0.9, 0.1], [0.2, 0.8]])
    mu = np.array([-1.0, 1.5])
    got = model.log_density({"mu": mu}, {"T": 4, "K": 2, "y": y, "Gamma": gamma})
    # the same forward pass in NumPy (probabilities, no logs: 4 steps cannot underflow)
    alpha = stats.norm.pdf(y[0], mu, 1) / 2
    for yt in y[1:]:
        alpha = (alpha @ gamma) * stats.norm.pdf(yt, mu, 1)
    want = np.log(alpha.sum()) + stats.norm.logpdf(mu, 0, 3).sum()
    np.testing.assert_allclose(float(got), want, rtol=1e-6)  # float32 evaluation


# ---- arrays of constrained types (issue 13): `simplex[M, K]` is M simplexes of K ----

ARRAY_OF_SIMPLEX = """
data M: int
data K: int
data N: int
data z: int[N]
data g: int[N]
param theta: simplex[M, K] ~ dirichlet(rep_vector(1.5, K))
z ~ categorical(theta[g])
"""


@pytest.mark.parametrize(
    "decl, ty",
    [
        ("simplex[M, K]", "real[M, K] as simplex"),
        ("ordered[N, M, K]", "real[N, M, K] as ordered"),
        ("cholesky_corr[M, K]", "real[M, K, K] as cholesky_corr"),
        ("cov_matrix[M, K]", "real[M, K, K] as cov_matrix"),
        ("simplex[K]", "real[K] as simplex"),
    ],
)
def test_arrays_of_structured_types(decl, ty):
    prog = compile_ir(f"data M: int\ndata K: int\ndata N: int\nparam p: {decl}\n")
    p = prog.params[0]
    assert f"{p.ty} as {p.constraint.kind}" == ty


def test_array_of_simplex_log_density_and_round_trip():
    from scipy import special

    model = fpl.compile(ARRAY_OF_SIMPLEX)
    data = {"M": 3, "K": 5, "N": 6, "z": [1, 5, 2, 2, 4, 3], "g": [1, 1, 2, 3, 3, 3]}
    cm = model.bind(data)
    assert cm.param_unc_num() == 3 * 4  # each simplex of 5 has 4 free coordinates
    theta_u = np.random.default_rng(1).normal(size=12)
    theta = np.asarray(cm.constrain(theta_u)["theta"])
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-6)  # float32 evaluation
    assert (theta > 0).all()
    back = np.asarray(cm.unconstrain({"theta": theta}))
    np.testing.assert_allclose(back, theta_u, atol=1e-4)  # float32 round trip of exp/log
    got = float(model.log_density({"theta": theta}, data))
    alpha = np.full(5, 1.5)
    lbeta = special.gammaln(alpha).sum() - special.gammaln(alpha.sum())
    want = sum(((alpha - 1) * np.log(t)).sum() - lbeta for t in theta)
    want += sum(np.log(theta[g - 1, z - 1]) for z, g in zip(data["z"], data["g"], strict=True))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_array_of_simplex_data_is_checked_row_by_row():
    model = fpl.compile("data M: int\ndata p: simplex[M, 3]\n")
    model.bind({"M": 2, "p": [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]})
    with pytest.raises(FplError) as exc:
        model.bind({"M": 2, "p": [[0.2, 0.3, 0.5], [0.1, 0.1, 0.7]]})
    assert exc.value.code == "E0304"


@pytest.mark.slow  # NUTS on 8 unconstrained coordinates: ~20 s with compilation
def test_array_of_simplex_posterior_is_dirichlet():
    """Conjugacy: with a dirichlet(1.5) prior and categorical counts n_mk, row m of theta
    has the posterior dirichlet(1.5 + n_m), whose mean is (1.5 + n_m) / sum."""
    model = fpl.compile(ARRAY_OF_SIMPLEX)
    z = [1, 1, 1, 2, 3, 5, 5, 4, 4, 4, 4, 2]
    g = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    data = {"M": 2, "K": 5, "N": 12, "z": z, "g": g}
    fit = model.sample(data, chains=2, warmup=500, draws=1000, seed=3, progress=False)
    draws = np.asarray(fit.draws("theta")).reshape(-1, 2, 5)
    counts = np.zeros((2, 5))
    for zi, gi in zip(z, g, strict=True):
        counts[gi - 1, zi - 1] += 1
    post = 1.5 + counts
    mean = post / post.sum(axis=1, keepdims=True)
    # posterior sds are ~0.1; 2000 draws with ESS >= ~500 give a Monte Carlo error of
    # ~0.005; 0.03 is six of those and still far below any wrong-posterior error
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.03)
