"""Golden tests for error messages: ``cases/<name>.fpl`` is a small bad program (with
``cases/<name>.json`` beside it when the error is in the data) and ``cases/<name>.txt``
the exact rendered diagnostic.  The file is compiled under the name ``cases/<name>.fpl``
so the location line is stable.

Regenerate the expected files after an intended wording change with

    FPL_UPDATE_GOLDEN=1 pytest tests/golden

and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import fpl
from fpl.dsl.diagnostics import CODES, FplError

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("*.fpl"))
UPDATE = os.environ.get("FPL_UPDATE_GOLDEN") == "1"

# The code each case must raise: the golden text pins the wording, this pins the intent.
EXPECTED_CODES = {
    "syntax_missing_colon": "E0101",
    "syntax_unclosed_paren": "E0101",
    "syntax_bad_character": "E0101",
    "syntax_reserved_word": "E0101",
    "unknown_name": "E0102",
    "unknown_distribution": "E0103",
    "unknown_distribution_no_hint": "E0103",
    "unknown_function": "E0104",
    "declared_twice": "E0105",
    "wrong_arg_count": "E0203",
    "shape_mismatch": "E0202",
    "matmul_inner_size": "E0202",
    "index_not_int": "E0201",
    "too_many_indices": "E0202",
    "discrete_param": "E0201",
    "param_wider_than_prior": "E0204",
    "bad_solver_option": "E0206",
    "rng_outside_gen": "E0207",
    "too_deep": "E0107",
    # Stan habits (issue 13): the FPL form in `help:`
    "stan_for_loop": "E0108",
    "stan_if_statement": "E0108",
    "stan_declaration": "E0108",
    "stan_type_in_declaration": "E0108",
    "stan_block": "E0108",
    "stan_leading_operator": "E0108",
    "stan_array_of_simplex": "E0108",
    "unknown_function_masked": "E0104",  # not hidden by the function-valued argument
    "append_col_rows": "E0202",
    "append_row_scalar": "E0201",
    "data_missing_field": "E0301",
    "data_wrong_length": "E0302",
    "data_wrong_rank": "E0302",
    "data_real_for_int": "E0303",
    "data_constraint": "E0304",
    "data_nan": "E0306",
    "data_infinite": "E0306",
    # hostile input (issue 11)
    "integer_literal_too_large": "E0109",
    "integer_mod_zero": "E0208",
    "inverted_bounds": "E0204",
    "ragged_array": "E0202",
    "data_int_out_of_range": "E0303",
    "data_index_out_of_range": "E0307",
    "data_reject": "E0413",  # a `reject` reached in data-only code (issue 13/12)
}


def _render(case: Path) -> FplError:
    name = f"cases/{case.name}"
    data_file = case.with_suffix(".json")
    with pytest.raises(FplError) as exc:
        model = fpl.compile(case.read_text(), name)
        if data_file.exists():
            model.bind(json.loads(data_file.read_text()))  # json accepts NaN/Infinity
    return exc.value


def test_every_case_has_an_expected_code():
    assert sorted(c.stem for c in CASES) == sorted(EXPECTED_CODES)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden(case: Path):
    err = _render(case)
    text = err.render() + "\n"
    expected_file = case.with_suffix(".txt")
    if UPDATE:
        expected_file.write_text(text)
    assert expected_file.exists(), (
        f"no {expected_file.name}: run with FPL_UPDATE_GOLDEN=1 and review it"
    )
    assert err.code == EXPECTED_CODES[case.stem]
    assert err.code in CODES
    assert "Traceback" not in text and 'File "' not in text
    # every diagnostic is located: file:line:col of the case itself
    assert re.search(rf"--> cases/{re.escape(case.name)}:\d+:\d+\n", text), text
    assert text == expected_file.read_text()


def test_data_constraint_names_field_and_index():
    err = _render(HERE / "cases" / "data_constraint.fpl")
    assert "sigma[3]" in err.render() and "-0.5" in err.render()


def test_unknown_distribution_suggests_normal():
    err = _render(HERE / "cases" / "unknown_distribution.fpl")
    assert "did you mean `normal`" in err.render()
