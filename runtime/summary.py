"""Posterior summaries: the table of a fit (one row per scalar component: mean, MCSE,
sd, quantiles, bulk and tail ESS, R-hat), its sampler lines (divergences, tree depth,
E-BFMI, timing) and the :class:`Summary` object behind ``fit.summary()``.

The diagnostics (ESS, R-hat, MCSE) are computed in :mod:`fpl.runtime.convergence`,
their maths in its docstring; they are importable from here too.  Only numpy is used:
summaries run at the end of every ``fpl sample`` and must be quick to import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fpl.runtime.convergence import (
    component_diagnostics,
    ess_bulk,
    ess_mean,
    ess_tail,
    mcse_mean,
    rhat,
)
from fpl.runtime.normal import norm_ppf


@dataclass(frozen=True)
class Row:
    """One line of a posterior summary: one scalar component of one variable."""

    name: str
    mean: float
    mcse: float
    sd: float
    q5: float
    q50: float
    q95: float
    ess_bulk: float
    ess_tail: float
    r_hat: float


def scalar_names(name: str, shape: tuple[int, ...]) -> list[str]:
    """Stan-style names of the components of a variable, row-major and 1-based.

    ``scalar_names("Sigma", (2, 2))`` is ``["Sigma[1,1]", "Sigma[1,2]", ...]``.
    """
    if not shape:
        return [name]
    return [f"{name}[{','.join(str(i + 1) for i in index)}]" for index in np.ndindex(*shape)]


def summarize(posterior: Mapping[str, np.ndarray]) -> list[Row]:
    """Summarize every scalar component of every variable of shape (chains, draws, ...)."""
    rows: list[Row] = []
    for name, draws in posterior.items():
        arr = np.asarray(draws, dtype=np.float64)
        if arr.ndim < 2:
            raise ValueError(f"`{name}` must have shape (chains, draws, ...), got {arr.shape}")
        chains, n = arr.shape[:2]
        flat = arr.reshape(chains, n, math.prod(arr.shape[2:]))  # -1 fails for 0 draws
        for k, label in enumerate(scalar_names(name, arr.shape[2:])):
            rows.append(_row(label, flat[:, :, k]))
    return rows


def _row(label: str, x: np.ndarray) -> Row:
    """One summary row, sharing the split and rank-normalized draws among diagnostics."""
    if x.size == 0 or not np.all(np.isfinite(x)):
        return Row(label, *([math.nan] * 9))
    q5, q50, q95 = (float(v) for v in np.quantile(x, [0.05, 0.5, 0.95]))
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    mcse, bulk, tail, r_hat = component_diagnostics(x, sd)
    return Row(label, mean, mcse, sd, q5, q50, q95, bulk, tail, r_hat)


_HEADERS = ("Mean", "MCSE", "StdDev", "5%", "50%", "95%", "ESS_bulk", "ESS_tail", "R_hat")


def _fmt(value: float) -> str:
    """Four significant digits, keeping trailing zeros so columns read evenly."""
    return "nan" if math.isnan(value) else f"{value:#.4g}"


def _fmt_ess(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.0f}"


def ebfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain of ``energy`` (chains, draws):
    ``sum_n (E_n - E_{n-1})^2 / sum_n (E_n - mean(E))^2``, the squared changes of the
    Hamiltonian energy between draws against its spread (Betancourt 2016; Stan's and
    ArviZ's ``bfmi``).  Below 0.3 the momentum resampling explores
    the energy distribution poorly.  ``nan`` for a chain with fewer than two draws or
    constant energy."""
    e = np.asarray(energy, dtype=np.float64)
    e = e.reshape(1, -1) if e.ndim == 1 else e.reshape(e.shape[0], -1)
    if e.shape[1] < 2:
        return np.full(e.shape[0], math.nan)
    spread = np.sum((e - e.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sum(np.diff(e, axis=1) ** 2, axis=1) / spread
    return np.where(spread > 0, out, math.nan)


#: E-BFMI below this warns (Stan's and ArviZ's threshold)
EBFMI_THRESHOLD = 0.3


def summary_rows(
    posterior: Mapping[str, np.ndarray], sample_stats: Mapping[str, np.ndarray] | None = None
) -> list[Row]:
    """The rows of a fit's summary: ``lp__`` first (where the sampler recorded ``lp``),
    as ``stansummary`` has it, then every scalar of ``posterior``."""
    lp = (sample_stats or {}).get("lp")
    head = summarize({"lp__": lp}) if lp is not None and np.ndim(lp) == 2 else []
    return head + summarize(posterior)


def format_summary(
    rows: list[Row],
    sample_stats: Mapping[str, np.ndarray] | None = None,
    max_tree_depth: int = 10,
    attrs: Mapping[str, object] | None = None,
    warmup_divergences: np.ndarray | None = None,
) -> str:
    """An aligned text table of ``rows`` (like CmdStan's ``stansummary``).
    ``warmup_divergences`` (per chain) are shown beside the sampling ones.

    With ``sample_stats`` (arrays of shape (chains, draws)), an ``lp__`` row leads
    the table (unless ``rows`` have one), and one line per chain follows with its
    divergent transitions, its draws whose tree depth reached ``max_tree_depth``
    and its E-BFMI, then a warning line when any draw diverged and one per chain
    whose E-BFMI is below 0.3.  With ``attrs`` holding the run's times (``seconds``,
    ``warmup_seconds``, ``sampling_seconds``, ``seconds_chain_<k>``), a line of
    elapsed times follows; the run's rendered warnings (``attrs["warnings"]``, e.g.
    W0406 from :mod:`fpl.runtime.runaway`) end it.
    """
    lp = (sample_stats or {}).get("lp")
    if lp is not None and np.ndim(lp) == 2 and not any(r.name == "lp__" for r in rows):
        rows = summarize({"lp__": lp}) + list(rows)
    cells = [
        [
            row.name,
            *(_fmt(v) for v in (row.mean, row.mcse, row.sd, row.q5, row.q50, row.q95)),
            _fmt_ess(row.ess_bulk),
            _fmt_ess(row.ess_tail),
            _fmt(row.r_hat),
        ]
        for row in rows
    ]
    table = [["", *_HEADERS], *cells]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(
            [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
        ).rstrip()
        for line in table
    ]
    if sample_stats is not None:
        lines.extend(_sampler_lines(sample_stats, max_tree_depth, warmup_divergences))
    lines.extend(timing_lines(attrs or {}))
    warnings = (attrs or {}).get("warnings")
    if isinstance(warnings, str) and warnings:  # e.g. W0406, runaway draws (runaway.py)
        lines.extend(["", warnings])
    return "\n".join(lines)


def timing_lines(attrs: Mapping[str, object]) -> list[str]:
    """``Elapsed: 3.2 s (warmup 2.1 s, sampling 1.1 s); per chain: 1.6 s, ...`` where
    the attributes hold the times (none otherwise)."""
    total = attrs.get("seconds")
    if not isinstance(total, (int, float)):
        return []
    phases = [
        f"{label} {float(value):.3g} s"
        for label, key in (("warmup", "warmup_seconds"), ("sampling", "sampling_seconds"))
        if isinstance(value := attrs.get(key), (int, float))
    ]
    line = f"Elapsed: {float(total):.3g} s" + (f" ({', '.join(phases)})" if phases else "")
    chains = []
    while isinstance(value := attrs.get(f"seconds_chain_{len(chains) + 1}"), (int, float)):
        chains.append(f"{float(value):.3g} s")
    if chains:
        line += "; per chain: " + ", ".join(chains)
    return ["", line]


def _sampler_lines(
    stats: Mapping[str, np.ndarray], max_tree_depth: int, warmup_divergences=None
) -> list[str]:
    """Per-chain divergences (warmup's beside), tree-depth saturations and E-BFMI, and
    the warnings."""
    diverging = stats.get("diverging")
    depth = stats.get("tree_depth")
    energy = stats.get("energy")
    present = [s for s in (diverging, depth, energy) if s is not None]
    if not present:
        return []
    shape = np.shape(present[0])
    chains = shape[0] if shape else 1
    div_counts = (
        np.asarray(diverging).reshape(chains, -1).astype(bool).sum(axis=1)
        if diverging is not None
        else None
    )
    depth_counts = (
        (np.asarray(depth).reshape(chains, -1) >= max_tree_depth).sum(axis=1)
        if depth is not None
        else None
    )
    bfmi = ebfmi(energy) if energy is not None else None
    out = [""]
    for c in range(chains):
        parts = []
        if div_counts is not None:
            n = int(div_counts[c])
            warm = ""
            if warmup_divergences is not None and len(warmup_divergences) == chains:
                warm = f" (and {int(warmup_divergences[c])} in warmup)"
            parts.append(f"{n} divergent transition{'' if n == 1 else 's'}{warm}")
        if depth_counts is not None:
            parts.append(f"{int(depth_counts[c])} at max tree depth {max_tree_depth}")
        if bfmi is not None:
            parts.append(f"E-BFMI {_fmt(float(bfmi[c]))}")
        out.append(f"Chain {c + 1}: " + ", ".join(parts))
    if div_counts is not None and int(div_counts.sum()) > 0:
        total = int(div_counts.sum())
        draws = int(np.size(diverging))
        out.append(
            f"Warning: {total} of {draws} draws ({100.0 * total / draws:.2g}%) ended with a "
            "divergence; the posterior may be biased. Reparameterize the model or raise "
            "the target acceptance rate."
        )
    for c in range(chains if bfmi is not None else 0):
        if bfmi is not None and bfmi[c] < EBFMI_THRESHOLD:
            out.append(
                f"Warning: chain {c + 1} has E-BFMI {float(bfmi[c]):.2g} (below "
                f"{EBFMI_THRESHOLD}): the sampler explored the energy distribution poorly; "
                "the posterior may have heavy tails. Reparameterize the model."
            )
    return out


_COLUMNS = ("mean", "mcse", "sd", "q5", "q50", "q95", "ess_bulk", "ess_tail", "r_hat")
_LABELS = ("mean", "mcse", "sd", "5%", "50%", "95%", "ess_bulk", "ess_tail", "r_hat")


@dataclass(frozen=True)
class Summary:
    """A posterior summary: a table of :class:`Row` (one per scalar, ``lp__`` first),
    its text (the table and the sampler's diagnostics), per-chain divergences and
    tree-depth saturations.  It shows as its table in a REPL (``repr``) and a notebook
    (``_repr_html_``); ``summary["mu"]`` is a row, ``to_pandas()`` a DataFrame."""

    rows: tuple[Row, ...]
    text: str
    divergences: tuple[int, ...]
    tree_depth_saturated: tuple[int, ...]

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(c)}</th>" for c in ("", *_LABELS))
        body = "".join(
            "<tr><th>"
            + escape(r.name)
            + "</th>"
            + "".join(f"<td>{_fmt(getattr(r, c))}</td>" for c in _COLUMNS)
            + "</tr>"
            for r in self.rows
        )
        table_lines = len(self.rows) + 1
        rest = "\n".join(self.text.splitlines()[table_lines:]).strip()
        notes = f"<pre>{escape(rest)}</pre>" if rest else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` indexed by name (columns ``mean``, ``mcse``,
        ``sd``, ``5%``, ``50%``, ``95%``, ``ess_bulk``, ``ess_tail``, ``r_hat``)."""
        import pandas as pd

        return pd.DataFrame(
            [[getattr(r, c) for c in _COLUMNS] for r in self.rows],
            index=self.names,
            columns=list(_LABELS),
        )

    to_dataframe = to_pandas


__all__ = [
    "EBFMI_THRESHOLD",
    "Row",
    "Summary",
    "ebfmi",
    "ess_bulk",
    "ess_mean",
    "ess_tail",
    "format_summary",
    "mcse_mean",
    "norm_ppf",
    "rhat",
    "scalar_names",
    "summarize",
    "summary_rows",
    "timing_lines",
]
