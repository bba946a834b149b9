"""Stan parity audit (issue 5): every distribution, distribution-function form,
function and structured type the issue names exists in the registry, and every
registry entry is documented.  The names are written out here, from the issue text,
so a removed or renamed entry fails this test.  Values and gradients are checked by
the table tests (test_functions_table.py, test_distributions_table.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from fpl.stdlib.registry import registry

DISTRIBUTIONS = """
normal std_normal student_t cauchy half_normal half_cauchy lognormal exponential gamma
inv_gamma weibull beta uniform logistic double_exponential bernoulli bernoulli_logit
binomial binomial_logit poisson poisson_log neg_binomial_2 neg_binomial_2_log categorical
categorical_logit ordered_logistic multi_normal multi_normal_cholesky multi_student_t
dirichlet lkj_corr_cholesky
""".split()

# Stan's univariate distributions with a CDF (so `_cdf`, `_lcdf` and `_lccdf` forms)
WITH_CDF = """
normal std_normal student_t cauchy lognormal exponential gamma inv_gamma weibull beta
uniform logistic double_exponential bernoulli binomial poisson neg_binomial_2
""".split()

FUNCTIONS = """
log_sum_exp log_mix inv_logit logit log1p_exp softmax log_softmax dot_product dot_self
rows_dot_product quad_form cholesky_decompose diag_matrix diag_pre_multiply rep_vector
rep_matrix append_row append_col cumulative_sum gp_exp_quad_cov mean sd variance sum prod
min max sqrt square exp log pow fabs tanh lgamma zeros ones eye
""".split()

# further functions a porter from Stan meets often
FURTHER_FUNCTIONS = """
linspaced_vector linspaced_array linspaced_int_array one_hot_vector reverse sort_asc
sort_desc rank head tail segment to_vector to_matrix to_array_1d num_elements size rows
cols col row block sub_col sub_row trace determinant log_determinant inverse mdivide_left
mdivide_right mdivide_left_tri_low crossprod tcrossprod add_diag quad_form_diag
log_inv_logit log1m_inv_logit log1m log1m_exp log_diff_exp inv inv_sqrt inv_square Phi
Phi_approx inv_Phi fmin fmax fdim hypot erf erfc binary_log_loss choose lchoose lbeta
digamma trigamma lmgamma beta step int_step is_inf is_nan
""".split()

FURTHER_DISTRIBUTIONS = """
chi_square inv_chi_square scaled_inv_chi_square rayleigh frechet gumbel pareto von_mises
beta_binomial wishart inv_wishart lkj_corr multi_normal_prec
""".split()

# issue 13: the built-ins ported posteriordb models were missing
ISSUE_13_FUNCTIONS = """
eigenvectors_sym pi e sqrt2 negative_infinity positive_infinity not_a_number
machine_precision argmax sort_indices_asc sort_indices_desc rank to_int
""".split()

ISSUE_13_DISTRIBUTIONS = """
bernoulli_logit_glm poisson_log_glm normal_id_glm neg_binomial_2_log_glm
ordered_logistic_glm categorical_logit_glm
""".split()

STRUCTURED_TYPES = """
simplex ordered positive_ordered cholesky_corr corr_matrix cov_matrix cholesky_cov
""".split()


def test_every_named_distribution_exists():
    named = DISTRIBUTIONS + FURTHER_DISTRIBUTIONS + ISSUE_13_DISTRIBUTIONS
    missing = sorted(set(named) - set(registry().distributions))
    assert not missing, f"distributions missing from the registry: {missing}"


def test_every_named_function_exists():
    named = FUNCTIONS + FURTHER_FUNCTIONS + ISSUE_13_FUNCTIONS
    missing = sorted(set(named) - set(registry().functions))
    assert not missing, f"functions missing from the registry: {missing}"


def test_every_stan_cdf_has_a_checked_cdf():
    """The `_cdf`/`_lcdf`/`_lccdf` forms need the distribution's CDF; each one Stan has
    is compared with SciPy (values and gradients) in the distributions table."""
    spec = importlib.util.spec_from_file_location(
        "distributions_table", Path(__file__).with_name("test_distributions_table.py")
    )
    table = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = table  # its dataclasses look their module up
    spec.loader.exec_module(table)
    missing = sorted(set(WITH_CDF) - set(table.CDFS))
    assert not missing, f"Stan CDFs without a checked implementation: {missing}"


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_distribution_forms_resolve(name):
    """Every form (`_lpdf`/`_lpmf`, `_lupdf`, `_rng`, and for CDF distributions `_cdf`,
    `_lcdf`, `_lccdf`) type-checks in a program (no JAX needed)."""
    from fpl.compiler import compile_ir

    entry = registry().distributions[name]
    discrete = entry.support.discrete
    value = _VALUES.get(name, ("int" if discrete else "real", "1" if discrete else "0.5"))
    args = _ARGS[name]
    lp = "_lpmf" if discrete else "_lpdf"
    forms = [lp, "_lupmf" if discrete else "_lupdf"]
    if name in WITH_CDF:
        forms += ["_cdf", "_lcdf", "_lccdf"]
    lines = [f"data y: {value[0]}"]
    for k, form in enumerate(forms):
        lines.append(
            f"out t{k} = {name}{form}(y | {args})" if args else f"out t{k} = {name}{form}(y)"
        )
    lines.append(f"gen draw = {name}_rng({args})")
    compile_ir("\n".join(lines))


_VALUES = {
    "categorical": ("int", "1"),
    "multi_normal": ("real[2]", ""),
    "multi_normal_cholesky": ("real[2]", ""),
    "multi_student_t": ("real[2]", ""),
    "dirichlet": ("real[2]", ""),
    "lkj_corr_cholesky": ("real[2, 2]", ""),
}
_ARGS = {
    "normal": "0, 1",
    "std_normal": "",
    "student_t": "3, 0, 1",
    "cauchy": "0, 1",
    "half_normal": "1",
    "half_cauchy": "1",
    "lognormal": "0, 1",
    "exponential": "1",
    "gamma": "2, 1",
    "inv_gamma": "2, 1",
    "weibull": "2, 1",
    "beta": "2, 2",
    "uniform": "0, 1",
    "logistic": "0, 1",
    "double_exponential": "0, 1",
    "bernoulli": "0.5",
    "bernoulli_logit": "0",
    "binomial": "3, 0.5",
    "binomial_logit": "3, 0",
    "poisson": "2",
    "poisson_log": "0",
    "neg_binomial_2": "2, 1",
    "neg_binomial_2_log": "0, 1",
    "categorical": "[0.5, 0.5]",
    "categorical_logit": "[0, 0]",
    "ordered_logistic": "0, [-1, 1]",
    "multi_normal": "zeros(2), eye(2)",
    "multi_normal_cholesky": "zeros(2), eye(2)",
    "multi_student_t": "4, zeros(2), eye(2)",
    "dirichlet": "ones(2)",
    "lkj_corr_cholesky": "2",
}


@pytest.mark.parametrize("kind", STRUCTURED_TYPES)
def test_structured_type_is_a_param_type(kind):
    """Each structured type declares a param (checked, with its constraint)."""
    from fpl.compiler import compile_ir

    program = compile_ir(f"param x: {kind}[3]")
    assert program.params[0].constraint.kind == kind


def test_every_entry_is_documented():
    """The reference (docs/reference.md) is rendered from these docstrings."""
    reg = registry()
    undocumented = [f"function {n}" for n, e in reg.functions.items() if not e.doc]
    undocumented += [f"distribution {n}" for n, e in reg.distributions.items() if not e.doc]
    undocumented += [f"solver {n}" for n, e in reg.solvers.items() if not e.doc]
    assert not undocumented, f"registry entries without a docstring: {undocumented}"
