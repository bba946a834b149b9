"""Fit files: the groups a fit holds, writing them atomically and reading them back.

A fit is a :class:`FitData`; :func:`save_fit` picks the format from the file
extension and :func:`load_fit` reads any of them back:

``.nc``
    ArviZ's groups in netCDF-4 (:mod:`fpl.runtime.netcdf`): ``arviz.from_netcdf``
    reads the file as an ``InferenceData`` on ArviZ 0.x and as an
    ``xarray.DataTree`` on ArviZ 1.x, and :func:`load_fit` reads files written by
    either (with h5py alone: no arviz or xarray import).
``.csv``
    Stan CSV, one file per chain as CmdStan names them (``fit_1.csv``, ...;
    ``fit.csv`` itself for a single chain), readable by ``cmdstanpy.from_csv``
    and ``arviz.from_cmdstan`` (:mod:`fpl.runtime.stancsv`).
``.json``
    ``{group: {name: nested lists}, ..., "attrs": {...}}`` for every group of
    :data:`GROUPS`, non-finite reals written as ``"NaN"``, ``"Inf"``, ``"-Inf"``.

Every file is written to a temporary file in the same folder and renamed over
the target, so a crash never leaves a half-written fit behind (:mod:`fpl.runtime.atomic`;
its :func:`write_atomic` is also importable from here).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import FplError, InternalError, error
from fpl.runtime.atomic import sweep_leftovers, write_atomic, write_text
from fpl.runtime.jsondata import JsonValueError, convert_value, load_json_object, to_json_value

Attr = str | int | float

#: Groups of arrays (chains, draws, ...): they share chains and draws.
DRAW_GROUPS = (
    "posterior",
    "unconstrained_posterior",
    "posterior_predictive",
    "log_likelihood",
    "sample_stats",
)
#: Groups of arrays (chains, ...): the warmup's sampler statistics (chains, warmup) and the
#: adaptation's result per chain (step size, inverse metric, ...).
CHAIN_GROUPS = ("warmup_sample_stats", "adaptation")
#: Data: no chain or draw axes.  ``observed_data`` holds the fields observed by ``~``,
#: ``constant_data`` the others (sizes, covariates).
DATA_GROUPS = ("observed_data", "constant_data")
#: Every group, in ArviZ's order (``adaptation`` is FPL's own, after ArviZ's).
GROUPS = (*DRAW_GROUPS[:4], "sample_stats", "warmup_sample_stats", *DATA_GROUPS, "adaptation")
FORMATS_HELP = "use one of the extensions .nc (ArviZ netCDF), .csv (Stan CSV), .json"

# FitData's sample-statistic names -> Stan CSV columns, in Stan's column order.
STAN_COLUMNS = {
    "lp": "lp__",
    "accept_stat": "accept_stat__",
    "step_size": "stepsize__",
    "tree_depth": "treedepth__",
    "n_leapfrog": "n_leapfrog__",
    "diverging": "divergent__",
    "energy": "energy__",
}
INT_STATS = ("tree_depth", "n_leapfrog")


@dataclass
class FitData:
    """Everything an inference run leaves behind, as plain numpy arrays, by group.

    ``posterior``, ``unconstrained_posterior``, ``posterior_predictive``,
    ``log_likelihood`` and ``sample_stats`` hold arrays (chains, draws, ...);
    ``warmup_sample_stats`` arrays (chains, warmup); ``adaptation`` arrays
    (chains, ...) (``step_size`` (chains,), ``inv_metric`` (chains, d) diagonal or
    (chains, d, d) dense, extra factors); ``observed_data`` / ``constant_data`` the
    data as given; ``attrs`` the run's metadata.  Sample statistics use the keys
    ``lp``, ``accept_stat``, ``step_size``, ``tree_depth``, ``n_leapfrog``,
    ``diverging``, ``energy`` (any may be missing) and any others.
    """

    posterior: dict[str, np.ndarray] = field(default_factory=dict)
    unconstrained_posterior: dict[str, np.ndarray] = field(default_factory=dict)
    posterior_predictive: dict[str, np.ndarray] = field(default_factory=dict)
    log_likelihood: dict[str, np.ndarray] = field(default_factory=dict)
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    warmup_sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    observed_data: dict[str, np.ndarray] = field(default_factory=dict)
    constant_data: dict[str, np.ndarray] = field(default_factory=dict)
    adaptation: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Attr] = field(default_factory=dict)

    def draw_shape(self) -> tuple[int, int] | None:
        """(chains, draws) shared by every per-draw array, or None when there are none.

        Checked: every array of :data:`DRAW_GROUPS` has the same leading (chains,
        draws), every array of :data:`CHAIN_GROUPS` the same chains, and the warmup
        statistics one warmup length.

        Raises:
            InternalError: the arrays disagree.
        """
        shapes = {
            (group, name): np.shape(value)[:2]
            for group in DRAW_GROUPS
            for name, value in getattr(self, group).items()
        }
        distinct = set(shapes.values())
        if any(len(s) < 2 for s in distinct) or len(distinct) > 1:
            raise InternalError(f"fit arrays disagree on (chains, draws): {shapes}")
        shape = distinct.pop() if distinct else None
        chains = {
            (group, name): np.shape(value)[:1]
            for group in CHAIN_GROUPS
            for name, value in getattr(self, group).items()
        }
        if shape is not None:
            chains[("", "draws")] = shape[:1]
        warmup = {np.shape(v)[:2] for v in self.warmup_sample_stats.values()}
        if len(set(chains.values())) > 1 or () in chains.values() or len(warmup) > 1:
            raise InternalError(f"fit arrays disagree on chains: {chains}, warmup {warmup}")
        return shape

    @property
    def data(self) -> dict[str, np.ndarray]:
        """Observed and constant data together (the data the model was bound to)."""
        return {**self.constant_data, **self.observed_data}


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def save_fit(path: str, fit: FitData) -> list[str]:
    """Write ``fit`` to ``path`` in the format its extension names (.nc, .csv, .json);
    returns the files written (several for a multi-chain ``.csv``).

    Raises:
        FplError: E0502 for an unknown extension or a failed write.
    """
    ext = _extension(path)
    if ext not in _FORMATS:
        raise error(
            "E0502",
            f"cannot write `{path}`: unknown fit format `{ext or '(none)'}`",
            help=FORMATS_HELP,
        )
    fit.draw_shape()
    attrs = {str(k): plain_attr(v) for k, v in fit.attrs.items()}
    written = _format(ext)[0](path, dataclasses.replace(fit, attrs=attrs))
    return written or [path]


def load_fit(path: str) -> FitData:
    """Read a fit written by :func:`save_fit`, an ArviZ netCDF file or CmdStan's CSV files.

    Raises:
        FplError: E0501 when the file cannot be read, E0404 when it is not a
            well-formed fit file.
    """
    ext = _extension(path)
    if ext not in _FORMATS:
        raise error(
            "E0404",
            f"cannot read fit `{path}`: unknown format `{ext or '(none)'}`",
            help=FORMATS_HELP,
        )
    if ext != ".csv":  # a .csv fit may be the files fit_1.csv, fit_2.csv, ...
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise error("E0501", f"cannot read fit file `{path}`: {exc.strerror or exc}") from None
    fit = _format(ext)[1](path)
    try:
        shape = fit.draw_shape()
    except InternalError:
        raise bad_file(path, "its arrays disagree on the number of chains and draws") from None
    if shape is not None and 0 in shape:
        raise bad_file(path, f"it holds no draws ({shape[0]} chains of {shape[1]} draws)")
    _check_counts(path, fit.attrs)
    return fit


#: attributes read as counts (the summary's tree-depth limit, the run's sizes)
COUNT_ATTRS = ("chains", "draws", "warmup", "max_tree_depth", "seed", "devices")


def _check_counts(path: str, attrs: dict[str, Any]) -> None:
    """E0404 unless every attribute of :data:`COUNT_ATTRS` present is a whole number
    in ``0 .. 2**63 - 1`` (a doctored file must not reach ``int()`` in the summary)."""
    for key in COUNT_ATTRS:
        value = attrs.get(key)
        if value is None:
            continue
        number = value.item() if isinstance(value, np.generic) else value
        whole = isinstance(number, int) or (
            isinstance(number, float) and math.isfinite(number) and number.is_integer()
        )
        if isinstance(number, bool) or not whole or not 0 <= number < 2**63:
            raise bad_file(path, f"attribute `{key}` is {_shown(value)}, not a count")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bad_file(path: str, reason: str) -> FplError:
    """The E0404 diagnostic of a malformed fit file."""
    return error("E0404", f"bad fit file `{path}`: {reason}")


def read_text(path: str) -> str:
    """A fit file's text (E0404 when it is not UTF-8, E0501 when it cannot be read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise bad_file(path, "it is not UTF-8 text") from None
    except OSError as exc:
        raise error("E0501", f"cannot read fit file `{path}`: {exc.strerror or exc}") from None


def plain_attr(value: Any) -> Attr:
    """An attribute as a Python str, int or float (booleans as 0/1, others as text)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, bool) else int(value)
    return str(value)


# --- JSON -------------------------------------------------------------------------------


def save_json(path: str, fit: FitData) -> None:
    """Write ``fit`` as one JSON object (standard JSON: no bare NaN), atomically."""
    document: dict[str, Any] = {
        group: {name: to_json_value(value) for name, value in getattr(fit, group).items()}
        for group in GROUPS
    }
    document["attrs"] = dict(fit.attrs)
    write_text(path, json.dumps(document, allow_nan=False, separators=(",", ":")) + "\n")


def json_group(path: str, group: str, value: Any, *, lead: int) -> dict[str, np.ndarray]:
    """Convert one group's decoded JSON (or its JSON text) to arrays of at least ``lead``
    dimensions (2 for per-draw groups, 1 for per-chain ones, 0 for data)."""
    if isinstance(value, str):
        value = load_json_object(value, path, code="E0404", what="fit file")
    if not isinstance(value, dict):
        raise bad_file(path, f"`{group}` is not a JSON object")
    out: dict[str, np.ndarray] = {}
    for name, item in value.items():
        try:
            arr = np.asarray(convert_value(item, f"{group}.{name}", allow_bool=True))
        except JsonValueError as exc:
            raise bad_file(path, str(exc)) from None
        if arr.ndim < lead:
            axes = "(chains, draws, ...)" if lead == 2 else "(chains, ...)"
            raise bad_file(path, f"`{group}.{name}` is not an array of shape {axes}")
        out[name] = arr
    return out


def group_lead(group: str) -> int:
    """The leading axes every array of ``group`` has: 2 (chain, draw), 1 (chain) or 0."""
    if group in DRAW_GROUPS or group == "warmup_sample_stats":
        return 2
    return 1 if group in CHAIN_GROUPS else 0


def load_json(path: str) -> FitData:
    """Read a fit written by :func:`save_json`."""
    document = load_json_object(read_text(path), path, code="E0404", what="fit file")
    fit = FitData()
    for group in GROUPS:
        if group in document:
            converted = json_group(path, group, document[group], lead=group_lead(group))
            setattr(fit, group, converted)
    attrs = document.get("attrs", {})
    if not isinstance(attrs, dict) or not all(
        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in attrs.values()
    ):
        raise bad_file(path, "`attrs` must be an object of strings and numbers")
    fit.attrs = dict(attrs)
    return fit


Writer = Callable[[str, FitData], list[str] | None]
Reader = Callable[[str], FitData]


def _format(ext: str) -> tuple[Writer, Reader]:
    """The writer and reader of a format (imported on use: netCDF needs h5py)."""
    if ext == ".nc":
        from fpl.runtime import netcdf

        return netcdf.save_netcdf, netcdf.load_netcdf
    if ext == ".csv":
        from fpl.runtime import stancsv

        return stancsv.save_csv, stancsv.load_csv
    return save_json, load_json


_FORMATS = (".nc", ".csv", ".json")


# --- weights from a result ----------------------------------------------------------------


def read_weights(path: str) -> dict[str, Any]:
    """The weights a ``--weights`` file gives, by name: an ``optimize`` result (``.json``
    or ``.nc``: its fitted weights), a fit whose attributes hold the weights it was
    computed with (``vi``'s, any format), or else a JSON data file of weights by name.

    Raises:
        FplError: E0404 for a fit that holds no weights or a malformed result, and the
            errors of :func:`fpl.runtime.data.read_data` for a data file.
    """
    from fpl.runtime.optimize_result import FORMAT, from_document

    if _extension(path) in (".nc", ".csv"):
        return _fitted_weights(path, load_fit(path).attrs)
    document = _json_document(path)
    if isinstance(document, dict) and document.get("format") == FORMAT:
        return from_document(document, path).weights
    if isinstance(document, dict) and "attrs" in document and set(document) <= {*GROUPS, "attrs"}:
        return _fitted_weights(path, load_json(path).attrs)
    from fpl.runtime.data import read_data

    return read_data(path)


def _json_document(path: str) -> Any:
    """The decoded JSON of a regular file, or None (a file that cannot be read or
    decoded is left to the data reader, which reports it)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):  # (a UnicodeDecodeError is a ValueError)
        return None


def _fitted_weights(path: str, attrs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The ``weights`` attribute of a fit file, as arrays (E0404 where it has none)."""
    if not isinstance(attrs.get("weights"), str):
        raise bad_file(path, "it holds no weights (an `optimize` result or a `vi` fit does)")
    try:
        return weights_attr(attrs)
    except ValueError:
        raise bad_file(path, "its `weights` attribute is not weights by name") from None


def weights_attr(attrs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The weights a fit's ``weights`` attribute holds (JSON: name -> nested lists, as
    ``vi`` and ``optimize`` write it), as arrays; none where there is no such attribute.

    Raises:
        ValueError: the attribute is not weights by name.
    """
    text = attrs.get("weights")
    if not isinstance(text, str):
        return {}
    try:
        decoded = json.loads(text)
        return {str(k): np.asarray(convert_value(v, str(k)), float) for k, v in decoded.items()}
    except (ValueError, TypeError, AttributeError, JsonValueError) as exc:
        raise ValueError(f"bad `weights` attribute: {exc}") from None


def to_arviz(fit: FitData) -> Any:
    """The fit in the installed ArviZ's container (see :func:`fpl.runtime.netcdf.to_arviz`)."""
    from fpl.runtime.netcdf import to_arviz as convert

    return convert(fit)


__all__ = [
    "CHAIN_GROUPS",
    "DATA_GROUPS",
    "DRAW_GROUPS",
    "GROUPS",
    "FitData",
    "bad_file",
    "load_fit",
    "plain_attr",
    "read_weights",
    "save_fit",
    "sweep_leftovers",
    "to_arviz",
    "weights_attr",
    "write_atomic",
    "write_text",
]
