"""Fit files: writing them atomically and reading them back, and the fit as ArviZ data.

A fit is a :class:`FitData`; :func:`save_fit` picks the format from the file
extension and :func:`load_fit` reads any of them back:

``.nc``
    ArviZ's groups in netCDF-4 (HDF5, written with h5netcdf): one netCDF group
    per ArviZ group (``posterior``, ``sample_stats``, ``observed_data``,
    ``log_likelihood``, ``posterior_predictive``, those present), each one
    xarray Dataset; the dimensions of a variable ``v`` beyond chain and draw
    are ``v_dim_0``, ...  Sample statistics take ArviZ's names there
    (``accept_stat`` is ``acceptance_rate``, ``n_leapfrog`` is ``n_steps``).
    ``attrs`` are the posterior group's attributes.  This is the layout both
    ArviZ majors use, so ``arviz.from_netcdf`` reads the file as an
    ``InferenceData`` on ArviZ 0.x and as an ``xarray.DataTree`` on ArviZ 1.x,
    and :func:`load_fit` reads files written by either (checked by tests with
    a committed file from each major).
``.csv``
    A Stan-CSV-like draws table (see :func:`save_csv`).
``.json``
    ``{"posterior": {name: nested lists (chains, draws, ...)}, "sample_stats": ...,
    "observed_data": ..., "log_likelihood": ..., "posterior_predictive": ...,
    "attrs": {...}}``, non-finite reals written as ``"NaN"``, ``"Inf"``, ``"-Inf"``.

Every file is written to a temporary file in the same folder and renamed over
the target, so a crash never leaves a half-written fit behind.

:func:`arviz_datasets` builds the ArviZ groups as xarray Datasets; ``.nc``
files are those Datasets, and :func:`to_arviz` wraps them in the installed
ArviZ's container.  xarray and h5netcdf are imported only when a ``.nc`` file
is written or read, arviz only by :func:`to_arviz`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import FplError, InternalError, error
from fpl.runtime.jsondata import JsonValueError, convert_value, load_json_object, to_json_value

Attr = str | int | float

# Groups whose arrays are (chains, draws, ...); observed_data has no chain or draw axes.
DRAW_GROUPS = ("posterior", "sample_stats", "log_likelihood", "posterior_predictive")
GROUPS = ("posterior", "sample_stats", "observed_data", "log_likelihood", "posterior_predictive")
FORMATS_HELP = "use one of the extensions .nc (ArviZ netCDF), .csv (Stan-like CSV), .json"

# FitData's sample-statistic names -> Stan CSV columns and ArviZ variable names.
STAN_COLUMNS = {
    "lp": "lp__",
    "accept_stat": "accept_stat__",
    "step_size": "stepsize__",
    "tree_depth": "treedepth__",
    "n_leapfrog": "n_leapfrog__",
    "diverging": "divergent__",
    "energy": "energy__",
}
ARVIZ_NAMES = {"accept_stat": "acceptance_rate", "n_leapfrog": "n_steps"}
_INT_STATS = ("tree_depth", "n_leapfrog")


@dataclass
class FitData:
    """Everything a sampling run leaves behind, as plain numpy arrays.

    ``posterior``, ``sample_stats``, ``log_likelihood`` and ``posterior_predictive``
    hold arrays of shape (chains, draws, ...); ``sample_stats`` uses the keys
    ``lp``, ``accept_stat``, ``step_size``, ``tree_depth``, ``n_leapfrog``,
    ``diverging``, ``energy`` (any may be missing).  ``observed_data`` holds the
    data as given; ``attrs`` the run's metadata (model name, fpl version, seed).
    """

    posterior: dict[str, np.ndarray] = field(default_factory=dict)
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    observed_data: dict[str, np.ndarray] = field(default_factory=dict)
    log_likelihood: dict[str, np.ndarray] = field(default_factory=dict)
    posterior_predictive: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Attr] = field(default_factory=dict)

    def draw_shape(self) -> tuple[int, int] | None:
        """(chains, draws) shared by every per-draw array, or None when there are none.

        Raises:
            InternalError: the per-draw arrays disagree on chains and draws.
        """
        shapes = {
            (group, name): np.shape(value)[:2]
            for group in DRAW_GROUPS
            for name, value in getattr(self, group).items()
        }
        distinct = set(shapes.values())
        if any(len(s) < 2 for s in distinct) or len(distinct) > 1:
            raise InternalError(f"fit arrays disagree on (chains, draws): {shapes}")
        return distinct.pop() if distinct else None


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Create ``path`` by calling ``write(temp_path)`` and renaming the result over it.

    The temporary file lives in the same folder (so the rename is atomic) and is
    created with the usual permissions (``0o666`` less the umask).  On any
    failure it is removed and ``path`` is left as it was.

    Raises:
        FplError: E0502 when the file cannot be written; an ``FplError`` raised
            by ``write`` itself passes through unchanged.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    try:
        while True:
            temp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            break
    except OSError as exc:
        raise error("E0502", f"cannot write `{path}`: {exc.strerror or exc}") from None
    try:
        write(temp)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException as exc:
        try:
            os.remove(temp)
        except OSError:
            pass
        if isinstance(exc, FplError) or not isinstance(exc, Exception):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error("E0502", f"cannot write `{path}`: {reason}") from exc


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def save_fit(path: str, fit: FitData) -> None:
    """Write ``fit`` to ``path`` in the format its extension names (.nc, .csv, .json).

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
    attrs = {str(k): _plain_attr(v) for k, v in fit.attrs.items()}
    _FORMATS[ext][0](path, dataclasses.replace(fit, attrs=attrs))


def load_fit(path: str) -> FitData:
    """Read a fit written by :func:`save_fit` (or an ArviZ netCDF file) from ``path``.

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
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise error("E0501", f"cannot read fit file `{path}`: {exc.strerror or exc}") from None
    fit = _FORMATS[ext][1](path)
    try:
        fit.draw_shape()
    except InternalError:
        raise _bad(path, "its arrays disagree on the number of chains and draws") from None
    return fit


def _bad(path: str, reason: str) -> FplError:
    return error("E0404", f"bad fit file `{path}`: {reason}")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise _bad(path, "it is not UTF-8 text") from None
    except OSError as exc:
        raise error("E0501", f"cannot read fit file `{path}`: {exc.strerror or exc}") from None


def _write_text(path: str, text: str) -> None:
    def write(temp: str) -> None:
        with open(temp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    write_atomic(path, write)


# --- ArviZ and netCDF ------------------------------------------------------------------


def arviz_datasets(fit: FitData) -> dict[str, Any]:
    """The fit's ArviZ groups, ``{group: xarray.Dataset}``, in :data:`GROUPS` order.

    Groups without variables are left out, except that an empty fit still has a
    ``posterior`` (holding only the attributes).  Per-draw groups get ``chain``
    and ``draw`` coordinates counted from 0; sample statistics take ArviZ's names
    (:data:`ARVIZ_NAMES`) and ``diverging`` is boolean.  The attributes, made
    plain (:func:`_plain_attr`), are the posterior's.

    Raises:
        InternalError: the per-draw arrays disagree on chains and draws.
    """
    import xarray as xr

    shape = fit.draw_shape()
    attrs = {str(k): _plain_attr(v) for k, v in fit.attrs.items()}
    groups: dict[str, Any] = {}
    for group in GROUPS:
        variables = getattr(fit, group)
        if not variables:
            continue
        lead = ("chain", "draw") if group in DRAW_GROUPS else ()
        data_vars = {}
        for name, value in variables.items():
            arr = np.asarray(value)
            key = name
            if group == "sample_stats":
                key = ARVIZ_NAMES.get(name, name)
                arr = arr.astype(bool) if name == "diverging" else arr
            extra = tuple(f"{key}_dim_{i}" for i in range(arr.ndim - len(lead)))
            data_vars[key] = (lead + extra, arr)
        coords = {}
        if lead and shape is not None:
            coords = {"chain": np.arange(shape[0]), "draw": np.arange(shape[1])}
        group_attrs = attrs if group == "posterior" else {}
        groups[group] = xr.Dataset(data_vars, coords=coords, attrs=group_attrs)
    if not groups:
        groups["posterior"] = xr.Dataset(attrs=attrs)
    return groups


def to_arviz(fit: FitData) -> Any:
    """The fit in the installed ArviZ's container, built from :func:`arviz_datasets`.

    ArviZ 1.x: an ``xarray.DataTree`` whose children are the groups (the root is
    empty); ArviZ 0.x: an ``arviz.InferenceData``.  Either way ``result.posterior``,
    ``result.sample_stats``, ... hold the same variables, and ``arviz.summary``
    and the plots take it directly.
    """
    import arviz as az

    groups = arviz_datasets(fit)
    if arviz_major(az.__version__) >= 1:
        import xarray as xr

        return xr.DataTree.from_dict(groups)
    return az.InferenceData(**groups)


def arviz_major(version: str) -> int:
    """The major version in an ArviZ version string (``"0.23.4"`` -> 0, ``"1.3.0"`` -> 1)."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def save_netcdf(path: str, fit: FitData) -> None:
    """Write ``fit``'s :func:`arviz_datasets` as netCDF-4 groups (h5netcdf), atomically.

    Numeric variables are zlib-compressed, as ``InferenceData.to_netcdf`` does.
    The file does not depend on the installed ArviZ (arviz is not imported).
    """
    groups = arviz_datasets(fit)

    def write(temp: str) -> None:
        mode = "w"  # the first group creates the file, the others are added to it
        for group, dataset in groups.items():
            encoding = {
                name: {"zlib": True}
                for name, variable in dataset.data_vars.items()
                if variable.dtype.kind in "biuf"
            }
            dataset.to_netcdf(temp, mode=mode, group=group, engine="h5netcdf", encoding=encoding)
            mode = "a"

    write_atomic(path, write)


def load_netcdf(path: str) -> FitData:
    """Read the groups of an ArviZ netCDF file (written by either ArviZ major) into a fit.

    Groups other than :data:`GROUPS` (``warmup_posterior``, ``prior``, ...) are
    ignored; a file without any gives an empty fit.
    """
    import h5netcdf
    import xarray as xr

    groups: dict[str, Any] = {}
    try:
        with h5netcdf.File(path, "r") as handle:
            present = set(handle.groups)
        for group in GROUPS:
            if group in present:
                with xr.open_dataset(path, group=group, engine="h5netcdf") as dataset:
                    groups[group] = dataset.load()
    except Exception as exc:  # h5py, h5netcdf and xarray raise many kinds here
        raise _bad(path, f"it is not an ArviZ netCDF file ({type(exc).__name__}: {exc})") from None
    fit = FitData()
    from_arviz = {v: k for k, v in ARVIZ_NAMES.items()}
    for group, dataset in groups.items():
        out: dict[str, np.ndarray] = getattr(fit, group)
        for name in dataset.data_vars:
            var = dataset[name]
            if group in DRAW_GROUPS:
                if "chain" not in var.dims or "draw" not in var.dims:
                    raise _bad(path, f"`{group}.{name}` has no chain and draw dimensions")
                var = var.transpose("chain", "draw", ...)
            key = from_arviz.get(str(name), str(name)) if group == "sample_stats" else str(name)
            out[key] = np.asarray(var.values)
        if group == "posterior":
            fit.attrs = {str(k): _plain_attr(v) for k, v in dataset.attrs.items()}
    return fit


def _plain_attr(value: Any) -> Attr:
    """An attribute as a Python str, int or float (booleans as 0/1, others as text)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, bool) else int(value)
    return str(value)


# --- CSV --------------------------------------------------------------------------------


def _column_names(label: str, shape: tuple[int, ...]) -> list[str]:
    """Stan CSV names of a variable's components: ``theta.1``, ``Sigma.1.2`` (row-major)."""
    if not shape:
        return [label]
    return [label + "".join(f".{i + 1}" for i in index) for index in np.ndindex(*shape)]


def save_csv(path: str, fit: FitData) -> None:
    """Write ``fit`` as a Stan-CSV-like draws table, atomically.

    ``#`` comment lines carry each attribute (``# model = name``), the numbers
    of chains and draws, and the observed data as one JSON object.  One header
    row follows: ``chain__``, ``draw__`` (both 1-based), the sample statistics
    under Stan's names (``lp__``, ``accept_stat__``, ``stepsize__``,
    ``treedepth__``, ``n_leapfrog__``, ``divergent__``, ``energy__``, those
    present), then every posterior variable flattened with Stan's column names
    (``theta.1``, ``Sigma.1.2``, 1-based).  Unlike Stan, which lists matrix
    entries column-major, components are listed in row-major (C) order.
    Per-draw ``log_likelihood`` and ``posterior_predictive`` variables follow,
    their columns prefixed with the group (``log_likelihood:y.1``).  One row per
    draw, chain by chain; reals are written so they read back exactly.
    """
    shape = fit.draw_shape() or (0, 0)
    chains, draws = shape
    lines = [f"# {_one_line(k)} = {_one_line(str(v))}" for k, v in fit.attrs.items()]
    lines += [f"# chains = {chains}", f"# draws = {draws}"]
    if fit.observed_data:
        observed = {k: to_json_value(v) for k, v in fit.observed_data.items()}
        lines.append("# observed_data = " + json.dumps(observed, allow_nan=False))
    chain_ids = np.repeat(np.arange(1, chains + 1), draws)
    draw_ids = np.tile(np.arange(1, draws + 1), chains)
    names = ["chain__", "draw__"]
    columns: list[np.ndarray] = [chain_ids, draw_ids]
    stats = dict(fit.sample_stats)
    ordered = [k for k in STAN_COLUMNS if k in stats] + [k for k in stats if k not in STAN_COLUMNS]
    for key in ordered:
        names.append(STAN_COLUMNS.get(key, f"{key}__"))
        columns.append(np.asarray(stats[key]).reshape(-1))
    for group, prefix in (
        ("posterior", ""),
        ("log_likelihood", "log_likelihood:"),
        ("posterior_predictive", "posterior_predictive:"),
    ):
        for name, value in getattr(fit, group).items():
            arr = np.asarray(value)
            names += _column_names(prefix + name, arr.shape[2:])
            columns += list(arr.reshape(chains * draws, int(np.prod(arr.shape[2:]))).T)
    is_int = [c.dtype.kind in "biu" for c in columns]
    table = np.stack([c.astype(np.float64) for c in columns], axis=1)
    lines.append(",".join(names))
    for row in table.tolist():
        lines.append(",".join(str(int(v)) if i else repr(v) for v, i in zip(row, is_int)))
    _write_text(path, "\n".join(lines) + "\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _csv_attr(text: str) -> Attr:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def load_csv(path: str) -> FitData:
    """Read a draws table written by :func:`save_csv` back into a :class:`FitData`.

    Shapes are rebuilt from the column names; reals come back as ``float64``,
    ``treedepth__`` and ``n_leapfrog__`` as ``int64``, ``divergent__`` as ``bool``.
    """
    fit = FitData()
    header: list[str] | None = None
    rows: list[str] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.startswith("#"):
            key, eq, value = line[1:].partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key in ("chains", "draws"):
                continue
            if key == "observed_data":
                where = f"{path} (observed_data on line {number})"
                fit.observed_data = _json_group(where, "observed_data", value, draws=False)
            else:
                fit.attrs[key] = _csv_attr(value)
        elif not line.strip():
            continue
        elif header is None:
            header = [name.strip() for name in line.split(",")]
        else:
            rows.append(line)
    if header is None or "chain__" not in header or "draw__" not in header:
        raise _bad(path, "it has no header row with `chain__` and `draw__` columns")
    if not rows:
        raise _bad(path, "it holds no draws")
    try:
        table = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise _bad(path, f"a draw row is not numbers: {exc}") from None
    if table.shape[1] != len(header):
        raise _bad(path, f"rows have {table.shape[1]} values but the header {len(header)}")
    chain_col, draw_col = table[:, header.index("chain__")], table[:, header.index("draw__")]
    table = table[np.lexsort((draw_col, chain_col))]
    chain_ids, per_chain = np.unique(chain_col, return_counts=True)
    if np.any(per_chain != per_chain[0]):
        raise _bad(path, f"its chains have different numbers of draws ({per_chain.tolist()})")
    chains, draws = len(chain_ids), int(per_chain[0])
    _fill_from_columns(path, fit, header, table.reshape(chains, draws, -1))
    return fit


def _fill_from_columns(path: str, fit: FitData, header: list[str], cube: np.ndarray) -> None:
    """Group the columns of ``cube`` (chains, draws, columns) into ``fit``'s variables."""
    from_stan = {v: k for k, v in STAN_COLUMNS.items()}
    found: dict[tuple[str, str], list[tuple[tuple[int, ...], int]]] = {}
    for col, name in enumerate(header):
        if name in ("chain__", "draw__"):
            continue
        if name.endswith("__"):
            group, label, index = "sample_stats", from_stan.get(name, name[:-2]), ()
        else:
            group, _, rest = name.rpartition(":") if ":" in name else ("posterior", "", name)
            label, *parts = rest.split(".")
            if group not in DRAW_GROUPS or not label or not all(p.isdigit() for p in parts):
                raise _bad(path, f"cannot read the column name `{name}`")
            index = tuple(int(p) - 1 for p in parts)
            if any(i < 0 for i in index):
                raise _bad(path, f"column `{name}` has an index below 1")
        found.setdefault((group, label), []).append((index, col))
    chains, draws = cube.shape[:2]
    for (group, label), entries in found.items():
        ranks = {len(index) for index, _ in entries}
        if len(ranks) != 1:
            raise _bad(path, f"the columns of `{label}` do not agree on its number of indices")
        shape = tuple(max(index[d] for index, _ in entries) + 1 for d in range(ranks.pop()))
        indices = {index for index, _ in entries}
        if len(indices) != len(entries) or len(indices) != int(np.prod(shape)):
            raise _bad(path, f"the columns of `{label}` do not form a complete array")
        flat = np.empty((chains, draws, int(np.prod(shape))))
        positions = [np.ravel_multi_index(index, shape) if shape else 0 for index, _ in entries]
        flat[:, :, positions] = cube[:, :, [col for _, col in entries]]
        arr = flat.reshape((chains, draws, *shape))
        if group == "sample_stats" and label in _INT_STATS:
            arr = arr.astype(np.int64)
        elif group == "sample_stats" and label == "diverging":
            arr = arr != 0
        getattr(fit, group)[label] = arr


# --- JSON -------------------------------------------------------------------------------


def save_json(path: str, fit: FitData) -> None:
    """Write ``fit`` as one JSON object (standard JSON: no bare NaN), atomically."""
    document: dict[str, Any] = {
        group: {name: to_json_value(value) for name, value in getattr(fit, group).items()}
        for group in GROUPS
    }
    document["attrs"] = dict(fit.attrs)
    _write_text(path, json.dumps(document, allow_nan=False, separators=(",", ":")) + "\n")


def _json_group(path: str, group: str, value: Any, *, draws: bool) -> dict[str, np.ndarray]:
    """Convert one group's decoded JSON (or its JSON text, from a CSV comment)."""
    if isinstance(value, str):
        value = load_json_object(value, path, code="E0404", what="fit file")
    if not isinstance(value, dict):
        raise _bad(path, f"`{group}` is not a JSON object")
    out: dict[str, np.ndarray] = {}
    for name, item in value.items():
        try:
            arr = np.asarray(convert_value(item, f"{group}.{name}", allow_bool=True))
        except JsonValueError as exc:
            raise _bad(path, str(exc)) from None
        if draws and arr.ndim < 2:
            raise _bad(path, f"`{group}.{name}` is not an array of shape (chains, draws, ...)")
        out[name] = arr
    return out


def load_json(path: str) -> FitData:
    """Read a fit written by :func:`save_json`."""
    document = load_json_object(_read_text(path), path, code="E0404", what="fit file")
    fit = FitData()
    for group in GROUPS:
        if group in document:
            converted = _json_group(path, group, document[group], draws=group in DRAW_GROUPS)
            setattr(fit, group, converted)
    attrs = document.get("attrs", {})
    if not isinstance(attrs, dict) or not all(
        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in attrs.values()
    ):
        raise _bad(path, "`attrs` must be an object of strings and numbers")
    fit.attrs = dict(attrs)
    return fit


_FORMATS: dict[str, tuple[Callable[[str, FitData], None], Callable[[str], FitData]]] = {
    ".nc": (save_netcdf, load_netcdf),
    ".csv": (save_csv, load_csv),
    ".json": (save_json, load_json),
}

__all__ = [
    "FitData",
    "arviz_datasets",
    "load_fit",
    "save_fit",
    "to_arviz",
    "write_atomic",
]
