"""A fit as ArviZ data: xarray Datasets by group, the installed ArviZ's container, and
``.nc`` files (netCDF-4 groups) written with xarray and read back with h5py alone.

The groups follow ArviZ's schema:

========================== ===================================================
``posterior``              params and outs, (chain, draw, ...); the run's attrs
``unconstrained_posterior`` the params' unconstrained values, where kept
``posterior_predictive``   gens; a gen ``y_rep`` (``_rep``, ``_pred``, ``_new``,
                           ``_sim``) of an observed field ``y`` is named ``y``
                           (its FPL name is the variable's ``fpl_name`` attribute),
                           so ``az.plot_ppc`` pairs it with ``observed_data.y``
``log_likelihood``         pointwise log-likelihood per observed field (``az.loo``)
``sample_stats``           NUTS statistics under ArviZ's names (``accept_stat`` is
                           ``acceptance_rate``, ``n_leapfrog`` is ``n_steps``),
                           ``diverging`` boolean
``warmup_sample_stats``    the same for the warmup iterations, (chain, draw)
``observed_data``          the data fields observed by ``~``
``constant_data``          the other data (sizes, covariates)
``adaptation``             FPL's own: step size and inverse metric per chain
========================== ===================================================

The dimensions of a variable ``v`` beyond chain and draw are ``v_dim_0``, ...  This
is the layout both ArviZ majors write, so ``arviz.from_netcdf`` reads the file as an
``InferenceData`` on ArviZ 0.x and as an ``xarray.DataTree`` on ArviZ 1.x, and
:func:`load_netcdf` reads files written by either.  Reading uses h5py directly (no
arviz, xarray or pandas import), so ``fpl summary fit.nc`` starts quickly.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from fpl.runtime.io import (
    CHAIN_GROUPS,
    DRAW_GROUPS,
    GROUPS,
    FitData,
    bad_file,
    group_lead,
    plain_attr,
    write_atomic,
)

#: FitData's sample-statistic names -> ArviZ's.
ARVIZ_NAMES = {"accept_stat": "acceptance_rate", "n_leapfrog": "n_steps"}
#: Suffixes of a gen that replicates an observed field (``y_rep`` for ``y``).
REPLICATE_SUFFIXES = ("_rep", "_pred", "_new", "_sim")
_STAT_GROUPS = ("sample_stats", "warmup_sample_stats")


def arviz_names(fit: FitData, group: str) -> dict[str, str]:
    """FPL name -> ArviZ name of every variable of ``group`` (the identity but for
    sample statistics and replicated observations)."""
    names = {name: name for name in getattr(fit, group)}
    if group in _STAT_GROUPS:
        return {name: ARVIZ_NAMES.get(name, name) for name in names}
    if group == "posterior_predictive":
        taken = set(names)
        for name in names:
            for suffix in REPLICATE_SUFFIXES:
                field = name.removesuffix(suffix)
                if name.endswith(suffix) and field in fit.observed_data and field not in taken:
                    names[name] = field
                    taken.add(field)
                    break
    return names


def arviz_datasets(fit: FitData) -> dict[str, Any]:
    """The fit's ArviZ groups, ``{group: xarray.Dataset}``, in :data:`GROUPS` order.

    Groups without variables are left out, except that an empty fit still has a
    ``posterior`` (holding only the attributes).  Per-draw groups get ``chain``
    and ``draw`` coordinates counted from 0, per-chain groups ``chain``.  The
    attributes, made plain, are the posterior's.

    Raises:
        InternalError: the arrays disagree on chains and draws.
    """
    import xarray as xr

    fit.draw_shape()
    attrs = {str(k): plain_attr(v) for k, v in fit.attrs.items()}
    groups: dict[str, Any] = {}
    for group in GROUPS:
        variables = getattr(fit, group)
        if not variables:
            continue
        lead = ("chain", "draw")[: group_lead(group)]
        names = arviz_names(fit, group)
        data_vars = {}
        for name, value in variables.items():
            arr = np.asarray(value)
            key = names[name]
            if group in _STAT_GROUPS and name == "diverging":
                arr = arr.astype(bool)
            extra = tuple(f"{key}_dim_{i}" for i in range(arr.ndim - len(lead)))
            var_attrs = {"fpl_name": name} if key != name and group not in _STAT_GROUPS else {}
            data_vars[key] = xr.Variable(lead + extra, arr, attrs=var_attrs)
        shape = np.shape(next(iter(variables.values())))
        coords = {dim: np.arange(size) for dim, size in zip(lead, shape)}
        group_attrs = attrs if group == "posterior" else {}
        groups[group] = xr.Dataset(data_vars, coords=coords, attrs=group_attrs)
    if "posterior" not in groups:
        groups = {"posterior": xr.Dataset(attrs=attrs), **groups}
    return groups


def to_arviz(fit: FitData) -> Any:
    """The fit in the installed ArviZ's container, built from :func:`arviz_datasets`.

    ArviZ 1.x: an ``xarray.DataTree`` whose children are the groups (the root is
    empty); ArviZ 0.x: an ``arviz.InferenceData``.  Either way ``result.posterior``,
    ``result.sample_stats``, ... hold the same variables, and ``arviz.summary``,
    ``loo``, ``compare`` and the plots take it directly.
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

    The file is built in memory and only its bytes are written to disk (through
    :func:`write_atomic`): HDF5 writing straight to a full disk crashes the process
    (SIGSEGV), while a failed plain write is an ``OSError`` and so E0502.
    """
    groups = arviz_datasets(fit)
    buffer = io.BytesIO()
    mode = "w"  # the first group creates the file, the others are added to it
    for group, dataset in groups.items():
        encoding = {
            name: {"zlib": True}
            for name, variable in dataset.data_vars.items()
            if variable.dtype.kind in "biuf"
        }
        dataset.to_netcdf(buffer, mode=mode, group=group, engine="h5netcdf", encoding=encoding)
        mode = "a"
    content = buffer.getvalue()

    def write(temp: str) -> None:
        with open(temp, "wb") as handle:
            handle.write(content)

    write_atomic(path, write)


def load_netcdf(path: str) -> FitData:
    """Read the groups of an ArviZ netCDF file (written by either ArviZ major) into a fit,
    with h5py.

    Groups other than :data:`GROUPS` (``prior``, ...) are ignored; a file without any
    gives an empty fit.  Decoding is the part of CF conventions xarray applies to such
    files: booleans (stored as int8 with ``dtype = "bool"``) and a real ``_FillValue``.
    """
    import h5py

    fit = FitData()
    try:
        with h5py.File(path, "r") as handle:
            for group in GROUPS:
                node = handle.get(group)
                if isinstance(node, h5py.Group):
                    _read_group(path, fit, group, node, h5py)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # h5py's failures
        reason = f"it is not an ArviZ netCDF file ({type(exc).__name__}: {exc})"
        raise bad_file(path, reason) from None
    return fit


def _read_group(path: str, fit: FitData, group: str, node: Any, h5py: Any) -> None:
    out: dict[str, np.ndarray] = getattr(fit, group)
    from_arviz = {v: k for k, v in ARVIZ_NAMES.items()}
    lead = ("chain", "draw")[: group_lead(group)]
    for name, dataset in node.items():
        if not isinstance(dataset, h5py.Dataset) or dataset.is_scale:
            continue  # subgroups, coordinates and netCDF dimensions
        if dataset.dtype.kind not in "biuf":
            continue  # text variables: not part of a fit
        dims = [_dim_name(dataset, i) for i in range(dataset.ndim)]
        arr = np.asarray(dataset[()])
        if any(dim not in dims for dim in lead):
            raise bad_file(path, f"`{group}.{name}` has no {' and '.join(lead)} dimensions")
        order = [dims.index(d) for d in lead] + [i for i, d in enumerate(dims) if d not in lead]
        arr = np.transpose(arr, order)
        attrs = {k: _text(v) for k, v in dataset.attrs.items()}
        fill = attrs.get("_FillValue")
        if arr.dtype.kind == "f" and fill is not None and not np.isnan(fill):
            arr = np.where(arr == fill, np.nan, arr)
        if attrs.get("dtype") == "bool":
            arr = arr.astype(bool)
        key = str(attrs.get("fpl_name", name))
        if group in ("sample_stats", "warmup_sample_stats"):
            key = from_arviz.get(key, key)
        out[key] = arr
    if group == "posterior":
        fit.attrs = {
            str(k): plain_attr(_text(v)) for k, v in node.attrs.items() if not k.startswith("_")
        }


def _dim_name(dataset: Any, axis: int) -> str | None:
    scales = dataset.dims[axis]
    return scales[0].name.rsplit("/", 1)[-1] if len(scales) else None


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO" and value.size == 1:
        return _text(value.reshape(()).item())
    return value


__all__ = [
    "ARVIZ_NAMES",
    "CHAIN_GROUPS",
    "DRAW_GROUPS",
    "arviz_datasets",
    "arviz_major",
    "load_netcdf",
    "save_netcdf",
    "to_arviz",
]
