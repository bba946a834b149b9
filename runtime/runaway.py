"""Runaway chains: the sign of an improper posterior, reported as a located warning.

A posterior that does not integrate (``param mu: real`` and nothing else, or a scale
whose density stays flat out to infinity) has no typical set: NUTS's step-size
adaptation keeps growing the step, and the draws diffuse ever further out.  The summary
of such a run is not a result (a mean of 6.6e27), so it must not read as one.

Criterion (checked per chain and per scalar component of every param):

    runaway  <=>  max_t |u_t| > RUNAWAY  or  max_t |x_t| > RUNAWAY  or  any x_t not finite

where ``u`` is the unconstrained draw the sampler moves and ``x`` the constrained value
the model sees.  ``RUNAWAY = 1e15`` is where float64 stops resolving units (2**53 is
about 9e15), far beyond any sensibly scaled param: a ``normal(0, 1e9)`` prior reaches
about 4e9.  A flat direction reaches it within a few hundred warmup iterations (the
step size grows geometrically: measured 1e30 after 100 warmup draws of ``param mu:
real``), a flat log-scale direction in ``exp`` of a few hundred (``s`` reached 1e307 for
``y ~ normal(0, s)`` with one observation).  What is checked is only this magnitude
rule; a slowly drifting proper chain is left to R-hat and ESS.

The warning (W0406) points at the param's declaration: the fix is a proper prior or a
constraint there.  ``attrs`` keeps the rendered warnings in the fit's ``warnings``
attribute, which the summary prints (and a saved fit keeps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import Diagnostic

#: a draw beyond this magnitude (unconstrained or constrained) has run away
RUNAWAY = 1e15


@dataclass(frozen=True)
class Runaway:
    """A param whose draws ran away in ``chains`` (0-based), reaching ``peak``."""

    param: str
    chains: tuple[int, ...]
    peak: float


def _peaks(draws: np.ndarray, chains: int) -> np.ndarray:
    """Per chain, the largest magnitude of ``draws`` (chains, draws, ...); inf where a
    draw is not finite."""
    a = np.abs(np.asarray(draws, dtype=np.float64).reshape(chains, -1))
    if a.shape[1] == 0:
        return np.zeros(chains)
    return np.where(np.all(np.isfinite(a), axis=1), np.max(a, axis=1, initial=0.0), np.inf)


def find(
    sizes: Mapping[str, int], positions: np.ndarray, params: Mapping[str, np.ndarray]
) -> list[Runaway]:
    """The params that ran away.  ``sizes``: each param's unconstrained size, in the
    order of the columns of ``positions`` (chains, draws, d); ``params``: the
    constrained draws by name (chains, draws, ...)."""
    positions = np.asarray(positions, dtype=np.float64)
    chains = positions.shape[0]
    found, start = [], 0
    for name, size in sizes.items():
        peaks = _peaks(positions[:, :, start : start + size], chains)
        start += size
        if name in params:
            peaks = np.maximum(peaks, _peaks(params[name], chains))
        bad = tuple(int(c) for c in np.flatnonzero(peaks > RUNAWAY))
        if bad:
            found.append(Runaway(name, bad, float(np.max(peaks))))
    return found


def warning(r: Runaway, span: Any, chains: int) -> Diagnostic:
    """The located W0406 of one runaway param."""
    which = "every chain" if len(r.chains) == chains else _chains(r.chains)
    reached = "non-finite values" if np.isinf(r.peak) else f"|value| {r.peak:.2g}"
    return Diagnostic(
        "W0406",
        f"the draws of `{r.param}` ran away in {which} (they reached {reached}): the "
        "posterior is probably improper, and these draws are not a result",
        span,
        label="nothing keeps this param bounded",
        help=f"give `{r.param}` a proper prior (e.g. `~ normal(0, 10)`) or bounds, or "
        "add the data that should inform it",
        severity="warning",
    )


def _chains(chains: tuple[int, ...]) -> str:
    shown = ", ".join(str(c + 1) for c in chains)
    return f"chain{'s' if len(chains) > 1 else ''} {shown}"


def attrs(cm: Any, positions: np.ndarray, values: Mapping[str, np.ndarray]) -> dict[str, str]:
    """``{"warnings": text}`` holding the rendered W0406 of every runaway param of a
    sampling run (``cm`` its ``CompiledModel``), or ``{}`` when none ran away."""
    sizes = {p.name: int(p.unc_size) for p in cm.params}
    found = find(sizes, positions, {k: v for k, v in values.items() if k in sizes})
    if not found:
        return {}
    spans = {p.name: p.span for p in cm.program.params}
    chains = np.shape(positions)[0]
    text = "\n\n".join(warning(r, spans.get(r.param), chains).render() for r in found)
    return {"warnings": text}


__all__ = ["RUNAWAY", "Runaway", "attrs", "find", "warning"]
