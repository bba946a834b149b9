"""``Model.predict`` (``fpl predict``): outs and gens for every draw of a fit, with new
data."""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error
from fpl.runtime.fit import Fit, split_data
from fpl.runtime.methods import Input, Method, Settings, option
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")


@dataclass(frozen=True)
class PredictSettings(Settings):
    seed: int | None = option(None, "random seed (of the gens)", min=0)
    weights: Any = option(None, "weight values (none: the fit's, else their init)", file=True)


def run(model, data, s: PredictSettings, *, fit) -> Fit:
    return predict(model, fit, data, seed=s.seed, weights=s.weights)


def predict(model, fit, data, *, seed, weights) -> Fit:
    """Outs and gens for every draw of ``fit`` (a :class:`Fit`, a ``FitData`` or a fit
    file) with ``data`` (typically new data); a :class:`Fit` of the same draws, whose
    summary is that of the predictions (outs and gens).  Outcome fields (data only
    ``~`` reads) may be left out of ``data``: predictions never depend on them."""
    from fpl.compiler.analyses import outcome_fields
    from fpl.runtime.draws import draws_fit, per_draw
    from fpl.runtime.io import FitData, load_fit
    from fpl.runtime.sampling import _float64

    source = str(fit) if not isinstance(fit, (Fit, FitData)) else "the fit"
    if not isinstance(fit, (Fit, FitData)):
        fit = load_fit(source)
    if weights is None and isinstance(fit, Fit) and fit.weights:
        weights = fit.weights  # the weights a VI fit was computed with
    elif weights is None and "weights" in fit.attrs:  # ... as saved with it
        weights = json.loads(str(fit.attrs["weights"]))
    posterior = fit.posterior
    missing = [p for p in model.param_names if p not in posterior]
    if missing:
        raise error(
            "E0404",
            f"{source} has no draws of param `{missing[0]}`",
            help="predict needs a fit of this model: it has " + (", ".join(posterior) or "none"),
        )
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    given = _read(data)
    outcomes = [f for f in outcome_fields(model.ir) if f not in given]
    with _float64():
        cm = model.bind({**given, **placeholders(model, given, outcomes)}, weights)
        for p in cm.params:
            got = tuple(np.shape(posterior[p.name])[2:])
            if got != tuple(p.shape):
                raise error(
                    "E0405",
                    f"param `{p.name}` has shape {got} in {source}, the model with this data "
                    f"needs {tuple(p.shape)}",
                    p.span,
                    help="sizes that params depend on must be the same as in the fitted data",
                )
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        params = {p: np.asarray(posterior[p], float) for p in model.param_names}
        values = per_draw(cm, args, params, jax.random.PRNGKey(seed), unconstrained=False)
    attrs = {**fit.attrs, "fit_method": fit.attrs.get("method", "sample"), "predict_seed": seed}
    predicted = [*cm.out_names, *cm.gen_names]
    result = draws_fit(
        cm,
        values,
        sample_stats={},
        attrs={**attrs, "method": "predict", "predicted": ",".join(predicted)},
        weights={k: np.asarray(v) for k, v in cm.weights.items()},
    )
    data_given = {k: v for k, v in {**result.constant_data, **result.observed}.items()}
    data_given = {k: v for k, v in data_given.items() if k not in outcomes}  # no placeholders
    observed, constant = split_data(data_given, outcome_fields(model.ir))
    return dataclasses.replace(result, observed=observed, constant_data=constant)


def _read(data) -> dict[str, Any]:
    from fpl.runtime.data import read_data

    if data is None:
        return {}
    return dict(read_data(data)) if isinstance(data, (str, Path)) else dict(data)


def placeholders(model, given: dict[str, Any], fields: list[str]) -> dict[str, np.ndarray]:
    """Zeros standing for outcome fields left out of new data (``outcome_fields``: only
    ``~`` statements read them, so no prediction depends on their values), with their
    declared shapes at the given sizes.

    Raises:
        FplError: E0301 where a size of such a field is itself missing.
    """
    out = {}
    for decl in model.ir.data:
        if decl.name not in fields or None in decl.ty.shape:
            continue  # an unknown size: binding reports the field missing
        shape = []
        for dim in decl.ty.shape:
            if isinstance(dim, str) and dim not in given:
                raise error(
                    "E0301",
                    f"data field `{dim}` is missing (the size of `{decl.name}`)",
                    decl.span,
                    help=f'add `"{dim}": ...` to the data',
                )
            shape.append(int(np.asarray(given[dim])) if isinstance(dim, str) else int(dim))
        dtype = np.int64 if decl.ty.base == "int" else np.float64
        out[decl.name] = np.zeros(shape, dtype=dtype)
    return out


METHOD = Method(
    name="predict",
    help="outs and gens for every draw of a saved fit, new data",
    settings=PredictSettings,
    run="fpl.runtime.predict:run",
    inputs=(Input("fit", "a saved fit (.nc, .csv, .json)", required=True),),
)

__all__ = ["METHOD", "PredictSettings", "predict", "run"]
