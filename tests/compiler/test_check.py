"""The checker's type and shape inference on representative expressions, with sizes
kept symbolic until data arrive (then checked again with numbers)."""

from __future__ import annotations

import pytest

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
    fpl.compile("param a: real\nlet x = a" + " + a" * 390 + "\ntarget += x\n")
    assert sys.getrecursionlimit() == before


@pytest.mark.parametrize(
    "expr",
    [
        "a" + " + a" * 390,
        "-" * 390 + "a",
        "exp(" * 130 + "a" + ")" * 130,
        "a > 0 ? a : " * 190 + "a",
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


def test_recursive_functions_are_a_coded_error():
    with pytest.raises(FplError) as exc:
        fpl.compile("param a: real\nfn f(x) = g(x) + 1\nfn g(x) = f(x)\nlet y = f(a)\n")
    assert exc.value.code == "E0201"
    assert "`f` -> `g` -> `f`" in str(exc.value)
