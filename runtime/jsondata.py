"""Reading CmdStan-style JSON data files into Python scalars and numpy arrays.

The format is the one CmdStan reads: a single JSON object whose fields are the
data variables.  A field is a number, one of the special strings for the
non-finite reals (``"NaN"``, ``"Inf"``, ``"-Inf"``, ...), or a rectangular
nested list of those, read as a row-major array.

This module is on the start-up path of the command line, so it imports numpy
but never jax.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.dsl.spans import Source, Span

# The strings CmdStan accepts for the non-finite reals.
SPECIAL_REALS: dict[str, float] = {
    "NaN": math.nan,
    "nan": math.nan,
    "Inf": math.inf,
    "+Inf": math.inf,
    "inf": math.inf,
    "+inf": math.inf,
    "Infinity": math.inf,
    "+Infinity": math.inf,
    "-Inf": -math.inf,
    "-inf": -math.inf,
    "-Infinity": -math.inf,
}

#: arrays of more dimensions are refused (NumPy's own limit is 32 or 64, by version)
MAX_RANK = 32

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class JsonValueError(ValueError):
    """Why one JSON value is not a number or a rectangular array of numbers.

    Raised by :func:`convert_value`; callers turn it into the diagnostic that
    fits their file kind (a data file, a fit file).
    """


def convert_value(value: Any, name: str, *, allow_bool: bool = False) -> int | float | np.ndarray:
    """Convert one decoded JSON value into a Python scalar or a numpy array.

    Integers stay ``int`` (``int64`` arrays), reals become ``float`` (``float64``
    arrays), a list mixing the two is real, an empty list is a ``float64`` array
    of shape ``(0,)``, nested lists must be rectangular and are read row-major.
    Booleans are refused unless ``allow_bool`` (then an all-boolean array is a
    ``bool`` array).  ``name`` is only used in the messages.

    Raises:
        JsonValueError: the value cannot be read as a number or an array.
    """
    if isinstance(value, list):
        return _convert_list(value, name, allow_bool)
    return _convert_scalar(value, name, allow_bool)


def _convert_scalar(value: Any, name: str, allow_bool: bool) -> int | float | bool:
    if isinstance(value, bool):
        if allow_bool:
            return value
        raise JsonValueError(
            f"field `{name}` holds the boolean `{str(value).lower()}`; "
            "use 1 or 0 for an integer flag"
        )
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise JsonValueError(
                f"field `{name}` holds the integer {value}, outside the 64-bit range"
            )
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        if value in SPECIAL_REALS:
            return SPECIAL_REALS[value]
        raise JsonValueError(
            f"field `{name}` holds the string {json.dumps(value)}; only numbers and the "
            'non-finite markers "NaN", "Inf", "-Inf" are allowed'
        )
    if value is None:
        raise JsonValueError(f"field `{name}` is null; write the value or leave the field out")
    if isinstance(value, dict):
        raise JsonValueError(f"field `{name}` is a JSON object; only numbers and arrays work")
    raise JsonValueError(f"field `{name}` has an unsupported value")  # pragma: no cover


def _ragged(name: str, shape: list[int], lengths: list[int]) -> JsonValueError:
    """The message for a non-rectangular nested list, naming the first bad row."""
    first = lengths[0]
    bad = next(i for i, n in enumerate(lengths) if n != first)

    def where(flat: int) -> str:
        if not shape:
            return name
        index = np.unravel_index(flat, shape)
        return f"{name}[{','.join(str(int(i) + 1) for i in index)}]"

    return JsonValueError(
        f"field `{name}` is ragged: `{where(bad)}` has {_entries(lengths[bad])} but "
        f"`{where(0)}` has {_entries(first)} (indices are 1-based); arrays must be rectangular"
    )


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _convert_list(value: list[Any], name: str, allow_bool: bool) -> np.ndarray:
    # Walk the nesting one level at a time; each level, concatenated, is the
    # next level's entries in row-major order.
    shape: list[int] = []
    level: list[Any] = [value]
    while level and isinstance(level[0], list):
        if not all(isinstance(item, list) for item in level):
            raise JsonValueError(
                f"field `{name}` mixes numbers and lists at depth {len(shape) + 1}; "
                "arrays must be rectangular"
            )
        lengths = [len(item) for item in level]
        if any(n != lengths[0] for n in lengths):
            raise _ragged(name, shape, lengths)
        shape.append(lengths[0])
        if len(shape) > MAX_RANK:
            raise JsonValueError(
                f"field `{name}` is nested more than {MAX_RANK} levels deep; "
                "no array of a model has that many dimensions"
            )
        level = [entry for item in level for entry in item]
    if any(isinstance(item, list) for item in level):
        raise JsonValueError(
            f"field `{name}` mixes numbers and lists at depth {len(shape) + 1}; "
            "arrays must be rectangular"
        )
    if not level:
        return np.zeros(shape, dtype=np.float64)
    # Fast path: plain numbers only (``bool`` is a subclass of ``int``, so test types exactly).
    kinds = {type(item) for item in level}
    if not kinds <= {int, float}:
        level = [_convert_scalar(item, name, allow_bool) for item in level]
        kinds = {type(item) for item in level}
    if kinds == {bool}:
        return np.array(level, dtype=np.bool_).reshape(shape)
    if bool in kinds:
        raise JsonValueError(f"field `{name}` mixes booleans and numbers")
    if float in kinds:
        return np.array(level, dtype=np.float64).reshape(shape)
    try:
        return np.array(level, dtype=np.int64).reshape(shape)
    except OverflowError:
        raise JsonValueError(f"field `{name}` holds an integer outside the 64-bit range") from None


def to_json_value(value: Any) -> Any:
    """``value`` as nested lists for JSON, non-finite reals as ``"NaN"``, ``"Inf"``, ``"-Inf"``."""
    arr = np.asarray(value)
    out = arr.tolist()
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        out = _replace_nonfinite(out)
    return out


def _replace_nonfinite(value: Any) -> Any:
    if isinstance(value, list):
        return [_replace_nonfinite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    return value


def _field_span(source: Source, field: str) -> Span | None:
    """Where ``"field":`` first appears in the text, if it can be found."""
    match = re.search(re.escape(json.dumps(field)) + r"\s*:", source.text)
    if match is None:
        match = re.search(re.escape(json.dumps(field, ensure_ascii=False)) + r"\s*:", source.text)
    if match is None:
        return None
    return _span_at(source, match.start(), match.start() + len(json.dumps(field)) - 1)


def _span_at(source: Source, start: int, end: int) -> Span:
    """A one-line span from character offset ``start`` to ``end`` (inclusive)."""
    line = source.text.count("\n", 0, start) + 1
    col = start - (source.text.rfind("\n", 0, start) + 1) + 1
    return Span(source, line, col, line, col + max(0, end - start))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonValueError(f"field `{key}` appears twice")
        out[key] = value
    return out


def load_json_object(text: str, name: str, *, code: str, what: str) -> dict[str, Any]:
    """Decode ``text`` as JSON whose top level is an object, or raise ``code``.

    Syntax errors carry the ``file:line:col`` of the problem; duplicate keys are
    refused.  ``what`` names the kind of file in messages ("data file").
    """
    source = Source(text, name)
    try:
        decoded = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        span = Span(source, exc.lineno, exc.colno, exc.lineno, exc.colno)
        raise error(
            code,
            f"{what} `{name}` is not valid JSON: {exc.msg}",
            span,
            label="here",
        ) from None
    except JsonValueError as exc:
        raise error(code, f"{what} `{name}`: {exc}") from None
    except RecursionError:
        raise error(code, f"{what} `{name}` is nested too deeply") from None
    if not isinstance(decoded, dict):
        stripped = len(text) - len(text.lstrip())
        raise error(
            code,
            f"{what} `{name}` must hold a JSON object at the top level, not {_json_kind(decoded)}",
            _span_at(source, stripped, stripped),
            help='write the data as {"name": value, ...}',
        )
    return decoded


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return "a literal"
    return "a number"


def parse_json_data(text: str, name: str) -> dict[str, object]:
    """Read CmdStan-style JSON data from ``text``; ``name`` is the file name for messages.

    Returns a dict from field name to ``int``, ``float`` or numpy array
    (``int64`` or ``float64``), in the order of the file.

    Raises:
        FplError: E0305 for invalid JSON (located), a top level that is not an
            object, or a field that is not a number or rectangular array.
    """
    decoded = load_json_object(text, name, code="E0305", what="data file")
    source = Source(text, name)
    out: dict[str, object] = {}
    for field, value in decoded.items():
        try:
            out[field] = convert_value(value, field)
        except JsonValueError as exc:
            raise error(
                "E0305",
                f"bad data file `{name}`: {exc}",
                _field_span(source, field),
            ) from None
    return out


def read_json_data(path: str) -> dict[str, object]:
    """Read a CmdStan-style JSON data file (see :func:`parse_json_data`).

    Raises:
        FplError: E0501 when the file cannot be read, E0305 when it is not
            valid data.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block
            raise error("E0501", f"cannot read data file `{path}`: it is not a regular file")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise error("E0305", f"data file `{path}` is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise error("E0501", f"cannot read data file `{path}`: {reason}") from None
    except ValueError:  # a NUL in the path
        raise error("E0501", f"cannot read data file {path!r}: the path holds a NUL") from None
    return parse_json_data(text, path)


__all__ = [
    "SPECIAL_REALS",
    "JsonValueError",
    "convert_value",
    "load_json_object",
    "parse_json_data",
    "read_json_data",
    "to_json_value",
]
