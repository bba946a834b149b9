"""CmdStan-style JSON data files: values, shapes, and every refusal with its code."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpl.dsl.diagnostics import FplError
from fpl.runtime.jsondata import parse_json_data, read_json_data, to_json_value


def parse(text: str) -> dict[str, object]:
    return parse_json_data(text, "data.json")


def test_scalars_keep_int_and_real() -> None:
    data = parse('{"N": 3, "sigma": 2.5, "big": 1e3}')
    assert data == {"N": 3, "sigma": 2.5, "big": 1000.0}
    assert type(data["N"]) is int
    assert type(data["sigma"]) is float
    assert type(data["big"]) is float  # exponent notation is a real, as in CmdStan


def test_arrays_types_and_row_major_shape() -> None:
    data = parse('{"k": [1, 2, 3], "x": [1.5, 2], "m": [[1, 2, 3], [4, 5, 6]]}')
    k, x, m = data["k"], data["x"], data["m"]
    assert isinstance(k, np.ndarray) and k.dtype == np.int64
    np.testing.assert_array_equal(k, [1, 2, 3])
    assert isinstance(x, np.ndarray) and x.dtype == np.float64  # mixed ints and reals
    np.testing.assert_array_equal(x, [1.5, 2.0])
    assert isinstance(m, np.ndarray) and m.shape == (2, 3) and m.dtype == np.int64
    assert m[0, 2] == 3 and m[1, 0] == 4  # row-major: the inner lists are rows


def test_three_dimensional_array() -> None:
    nested = [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[7.0, 8.0], [9.0, 10.0], [11.0, 12.0]]]
    data = parse(json.dumps({"a": nested}))
    np.testing.assert_array_equal(data["a"], np.array(nested))
    assert data["a"].shape == (2, 3, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NaN", math.nan),
        ("nan", math.nan),
        ("Inf", math.inf),
        ("+Inf", math.inf),
        ("inf", math.inf),
        ("Infinity", math.inf),
        ("-Inf", -math.inf),
        ("-inf", -math.inf),
    ],
)
def test_special_strings_become_non_finite_reals(text: str, expected: float) -> None:
    data = parse(json.dumps({"s": text, "v": [1, text]}))
    s, v = data["s"], data["v"]
    assert isinstance(s, float)
    assert isinstance(v, np.ndarray) and v.dtype == np.float64
    for got in (s, v[1]):
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert got == expected
    assert v[0] == 1.0


def test_empty_lists() -> None:
    data = parse('{"e": [], "ee": [[], []]}')
    assert data["e"].shape == (0,) and data["e"].dtype == np.float64
    assert data["ee"].shape == (2, 0) and data["ee"].dtype == np.float64


def test_field_order_is_kept() -> None:
    assert list(parse('{"b": 1, "a": 2, "c": 3}')) == ["b", "a", "c"]


def expect_error(text: str, code: str = "E0305") -> FplError:
    with pytest.raises(FplError) as info:
        parse(text)
    assert info.value.code == code
    return info.value


@pytest.mark.parametrize(
    "text",
    [
        '{"y": [[1, 2], [3]]}',
        '{"y": [1, [2]]}',
        '{"y": [[1], 2]}',
        '{"y": [[[1], [2]], [[3], [4, 5]]]}',
    ],
)
def test_ragged_arrays_are_refused_naming_the_field(text: str) -> None:
    err = expect_error(text)
    assert "`y`" in err.render()
    span = err.diagnostics[0].span
    assert span is not None and (span.line, span.col) == (1, 2)  # points at the field's key


def test_ragged_message_names_the_bad_row() -> None:
    err = expect_error('{"y": [[1, 2], [3, 4], [5]]}')
    assert "`y[3]` has 1 entry but `y[1]` has 2 entries" in str(err)


@pytest.mark.parametrize("text", ['{"flag": true}', '{"flags": [1, false]}', '{"f": [true]}'])
def test_booleans_are_refused(text: str) -> None:
    err = expect_error(text)
    assert "boolean" in str(err)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"x": null}', "null"),
        ('{"x": "hello"}', '"hello"'),
        ('{"x": {"a": 1}}', "object"),
        ('{"x": [1, "oops"]}', '"oops"'),
        ('{"x": 99999999999999999999}', "64-bit"),
        ('{"x": [1, 99999999999999999999]}', "64-bit"),
        ('{"x": 1, "x": 2}', "twice"),
    ],
)
def test_other_bad_values_are_refused(text: str, words: str) -> None:
    assert words in str(expect_error(text))


def test_invalid_json_is_located() -> None:
    err = expect_error('{\n  "a": 1,\n  "b": [1, 2,]\n}')
    span = err.diagnostics[0].span
    assert span is not None
    assert (span.line, span.col) == (3, 14)  # the `]` after the trailing comma
    assert "data.json:3:14" in err.render()


@pytest.mark.parametrize("text", ["[1, 2]", '"x"', "3", "  \n  [1]"])
def test_top_level_must_be_an_object(text: str) -> None:
    assert "object" in str(expect_error(text))


def test_empty_text_is_invalid_json() -> None:
    err = expect_error("")
    assert err.diagnostics[0].span is not None


def test_read_file(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"N": 2, "y": [0.5, "-Inf"]}', encoding="utf-8")
    data = read_json_data(str(path))
    assert data["N"] == 2
    np.testing.assert_array_equal(data["y"], [0.5, -math.inf])


def test_read_file_errors_carry_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(FplError) as info:
        read_json_data(str(missing))
    assert info.value.code == "E0501" and str(missing) in str(info.value)

    with pytest.raises(FplError) as info:
        read_json_data(str(tmp_path))  # a directory
    assert info.value.code == "E0501"

    bad = tmp_path / "bad.json"
    bad.write_text('{"a": [1,\n 2', encoding="utf-8")
    with pytest.raises(FplError) as info:
        read_json_data(str(bad))
    assert info.value.code == "E0305" and f"{bad}:2:" in info.value.render()

    binary = tmp_path / "bin.json"
    binary.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(FplError) as info:
        read_json_data(str(binary))
    assert info.value.code == "E0305"


def test_to_json_value_round_trips_non_finite() -> None:
    arr = np.array([[1.0, np.nan], [np.inf, -np.inf]])
    encoded = to_json_value(arr)
    assert encoded == [[1.0, "NaN"], ["Inf", "-Inf"]]
    text = json.dumps({"a": encoded}, allow_nan=False)  # standard JSON, no bare NaN
    np.testing.assert_array_equal(parse(text)["a"], arr)


def test_module_does_not_import_jax() -> None:
    code = "import sys, fpl.runtime.jsondata; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
