"""Stan habits (issue 13): Stan constructs get a coded error whose help shows the FPL
form, and the Stan habits FPL accepts (``;``, continued lines, statement words used
as names) parse to the same program as their plain FPL spelling."""

from __future__ import annotations

import pytest

import fpl
from fpl.dsl.diagnostics import FplError
from fpl.dsl.parser import parse
from fpl.dsl.stan_habits import fpl_type

HEAD = "data N: int\ndata K: int\ndata y: real[N]\nparam mu: real\n"

# (Stan snippet after HEAD, the code, words the message or help must contain)
REFUSED: list[tuple[str, str, tuple[str, ...]]] = [
    ("for (n in 1:N) {\n  y[n] ~ normal(mu, 1);\n}", "E0108", ("no loops", "map", "scan")),
    ("while (K > 0) {\n}", "E0108", ("no `while` loops", "fold")),
    ("if (K > 2) {\n  mu ~ normal(0, 1);\n}", "E0108", ("`test ? a : b`",)),
    ("vector[N] z;", "E0108", ("`data z: real[N]`",)),
    ("row_vector[K] r;", "E0108", ("`data r: real[K]`",)),
    ("matrix[N, K] X;", "E0108", ("`data X: real[N, K]`",)),
    ("array[N] real w;", "E0108", ("`data w: real[N]`",)),
    ("array[N] int<lower=0> c;", "E0108", ("`data c: int<lower=0>[N]`",)),
    ("real<lower=0> sigma;", "E0108", ("`data sigma: real<lower=0>`",)),
    ("cholesky_factor_corr[K] L;", "E0108", ("`data L: cholesky_corr[K]`",)),
    ("data X: matrix[N, K]", "E0108", ("`data X: real[N, K]`",)),
    ("data v: vector<lower=0>[N]", "E0108", ("`data v: real<lower=0>[N]`",)),
    ("param z: array[N] vector[K]", "E0108", ("`param z: real[N, K]`",)),
    ("data x: array[N] real", "E0108", ("`data x: real[N]`",)),
    # Stan's type names after a declaration's colon, in every position a type stands
    ("data L: cholesky_factor_corr[K]", "E0108", ("`data L: cholesky_corr[K]`",)),
    (
        "param L: cholesky_factor_corr[K] ~ lkj_corr_cholesky(2)",
        "E0108",
        ("`param L: cholesky_corr[K]`",),
    ),
    ("param S: cholesky_factor_cov[K]", "E0108", ("`param S: cholesky_cov[K]`",)),
    ("data v: vector[N]", "E0108", ("`data v: real[N]`",)),
    ("gen r: row_vector[K]", "E0108", ("`gen r: real[K]`",)),
    ("weight W: matrix[N, K] init 0.0", "E0108", ("`weight W: real[N, K]`",)),
    ("data Ls: array[N] cholesky_factor_corr[K]", "E0108", ("`data Ls: cholesky_corr[N, K]`",)),
    ("param u: unit_vector[K]", "E0108", ("`unit_vector[K]` is Stan's type", "`param u: <type>`")),
    ("fix z: vector[2] = 0.5 * z", "E0108", ("`fix z: real[2]`",)),
    ("fn f(t, z: vector[2]) = z", "E0108", ("`z: real[2]`",)),
    ("model {\n  y ~ normal(mu, 1);\n}", "E0108", ("no `model` block", "`y ~ ...`")),
    ("transformed parameters {", "E0108", ("no `transformed parameters` block",)),
    ("generated quantities {", "E0108", ("no `generated quantities` block", "`gen`")),
    ("target += normal_lpdf(y[1] | mu, 1)\n  - normal_lpdf(y[2] | mu, 1)", "E0108", ("`... -`",)),
    ("mu += 1", "E0108", ("`target += expr`", "`let`")),
    ("print(mu)", "E0108", ("`out name = expr`",)),
    ("param theta: simplex[K][N]", "E0108", ("`simplex[N, K]`",)),
    ("array[N] simplex[K] theta;", "E0108", ("`data theta: simplex[N, K]`",)),
    # an unknown function is reported as unknown, not through its arguments
    ("fn g(x) = -x\nout z = integrate_1d(g, 0.0, 1.0)", "E0104", ("`integrate_1d`",)),
]


@pytest.mark.parametrize("snippet, code, words", REFUSED, ids=[r[0][:30] for r in REFUSED])
def test_stan_construct_gets_the_fpl_form(snippet, code, words):
    with pytest.raises(FplError) as exc:
        fpl.compile(HEAD + snippet + "\n")
    text = exc.value.render()
    assert exc.value.code == code, text
    for w in words:
        assert w in text, text


# (Stan-flavoured FPL, the same program in plain FPL): both must parse to one AST
ACCEPTED: list[tuple[str, str]] = [
    ("data M: int;\nparam s: real;", "data M: int\nparam s: real"),
    (
        "target += normal_lpdf(y[1] | mu, 1) -\n    normal_lpdf(y[2] | mu, 1)",
        "target += normal_lpdf(y[1] | mu, 1) - normal_lpdf(y[2] | mu, 1)",
    ),
    ("let a = mu *\n  2 +\n  1", "let a = mu * 2 + 1"),
    ("let b = mu >=\n  0 &&\n  mu <= 1", "let b = mu >= 0 && mu <= 1"),
    ("let c = mu > 0 ?\n  mu :\n  0.0", "let c = mu > 0 ? mu : 0.0"),
]


def _strip_spans(node):
    """The AST without source positions (two spellings of one program compare equal)."""
    from dataclasses import fields, is_dataclass

    from fpl.dsl.spans import Span

    if isinstance(node, tuple):
        return tuple(_strip_spans(n) for n in node)
    if is_dataclass(node) and not isinstance(node, Span):
        return (type(node).__name__,) + tuple(
            _strip_spans(getattr(node, f.name)) for f in fields(node) if f.name != "span"
        )
    return node


@pytest.mark.parametrize("habit, plain", ACCEPTED, ids=[a[1][:30] for a in ACCEPTED])
def test_accepted_habit_means_the_plain_program(habit, plain):
    assert _strip_spans(parse(HEAD + habit)) == _strip_spans(parse(HEAD + plain))


def test_statement_words_are_names_at_the_start_of_a_statement():
    """posteriordb's mesquite has a data field `weight`; `target` and `data` work too."""
    model = fpl.compile(
        "data N: int\ndata weight: real[N]\ndata target: real\nparam mu: real\n"
        "weight ~ normal(mu, 1)\ntarget ~ normal(mu, 1)\ntarget += -0.5 * mu * mu\n"
        "out data2 = weight[1] + target\n"
    )
    from scipy import stats

    data = {"N": 2, "weight": [0.5, 1.5], "target": 0.7}
    got = float(model.log_density({"mu": 0.2}, data))
    want = stats.norm.logpdf([0.5, 1.5, 0.7], 0.2, 1).sum() - 0.5 * 0.04
    assert abs(got - want) < 1e-5  # float32 evaluation


@pytest.mark.parametrize(
    "stan, fpl_form",
    [
        ("vector[N]", "real[N]"),
        ("vector<lower=0, upper=1>[N]", "real<lower=0,upper=1>[N]"),
        ("matrix[N, K]", "real[N, K]"),
        ("array[J] vector[K]", "real[J, K]"),
        ("array[N, M] int", "int[N, M]"),
        ("simplex[K]", "simplex[K]"),
        ("cholesky_factor_cov[K]", "cholesky_cov[K]"),
        ("array[M] simplex[K]", "simplex[M, K]"),
        ("array[M] cholesky_factor_corr[K]", "cholesky_corr[M, K]"),
        ("unit_vector[K]", None),
    ],
)
def test_stan_types_in_fpl(stan, fpl_form):
    assert fpl_type(stan) == fpl_form
