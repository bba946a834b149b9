"""Results of inference: draws by name, a Stan-style summary, ArviZ data and files.

A :class:`Fit` maps onto the groups of a fit file (:class:`fpl.runtime.io.FitData`,
ArviZ's schema): ``posterior`` (params and outs), ``unconstrained_posterior``,
``generated`` (gens: ``posterior_predictive``, and a ``gen log_lik...`` the model
declares goes to ``log_likelihood``), ``log_likelihood`` (the pointwise log-likelihood
of every data field observed by ``~``, recorded by the method; a declared ``gen
log_lik...`` of the same name wins), ``sample_stats``, ``warmup_sample_stats``,
``observed`` (``observed_data``: the fields observed by ``~``), ``constant_data`` (the
other data) and ``adaptation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpl.runtime.io import FitData, save_fit, to_arviz
from fpl.runtime.summary import Summary, format_summary, summary_rows


def is_declared_log_lik(name: str) -> bool:
    """A gen the model declares as pointwise log-likelihood (``gen log_lik...``)."""
    return name.startswith("log_lik")


@dataclass(repr=False)
class Fit:
    model: str
    posterior: dict[str, np.ndarray]  # params and outs, (chains, draws, ...)
    generated: dict[str, np.ndarray]  # gen values, (chains, draws, ...)
    sample_stats: dict[str, np.ndarray]  # (chains, draws)
    observed: dict[str, np.ndarray]  # data fields observed by ``~`` (all data where unsplit)
    attrs: dict[str, Any] = field(default_factory=dict)
    warmup_divergences: np.ndarray | None = None
    #: implicit node ("fix#1 at model.fpl:9:9") -> non-converged solves met per chain,
    #: counted over every log-density evaluation of the run (warmup included)
    solver_failures: dict[str, list[int]] = field(default_factory=dict)
    #: implicit node -> failed backward (gradient) solves per chain, where the forward
    #: solve had converged (the gradient was NaN there: a divergent transition)
    gradient_failures: dict[str, list[int]] = field(default_factory=dict)
    #: implicit node -> {failure reason (``max_iter_reached``, ...): count}, all chains
    solver_failure_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    #: variational inference: the ELBO after every optimisation step (None otherwise)
    elbo: np.ndarray | None = None
    #: the weights the draws were computed with, where the method fitted them (VI)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    #: NUTS: the warmup transitions' sampler stats, (chains, warmup) each
    warmup_sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    #: NUTS: the adapted step size (chains,) and inverse metric (chains, d) or
    #: (chains, d, d) over the unconstrained params, plus low-rank factors
    adaptation: dict[str, np.ndarray] = field(default_factory=dict)
    #: pointwise log-likelihood per observed data field, (chains, draws, *field shape)
    log_likelihood: dict[str, np.ndarray] = field(default_factory=dict)
    #: data not observed by ``~`` (sizes, covariates)
    constant_data: dict[str, np.ndarray] = field(default_factory=dict)
    #: the params' unconstrained values, (chains, draws, ...), where kept
    unconstrained_posterior: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def chains(self) -> int:
        return next(iter(self.posterior.values())).shape[0]

    @property
    def num_draws(self) -> int:
        return next(iter(self.posterior.values())).shape[1]

    def draws(self, name: str | None = None, *, merge_chains: bool = False):
        """Draws of one variable, shape (chains, draws, ...), or all as a dict."""
        if name is None:
            return {k: self.draws(k, merge_chains=merge_chains) for k in self.variables}
        pool = {**self.posterior, **self.generated}
        if name not in pool:
            raise KeyError(f"no variable `{name}`; have {', '.join(pool)}")
        x = pool[name]
        return x.reshape(-1, *x.shape[2:]) if merge_chains else x

    def __getitem__(self, name: str):
        return self.draws(name)

    @property
    def variables(self) -> list[str]:
        return [*self.posterior, *self.generated]

    @property
    def divergences(self) -> np.ndarray:
        if "diverging" not in self.sample_stats:  # Laplace and VI draws: no sampler
            return np.zeros(self.chains, dtype=int)
        return np.sum(self.sample_stats["diverging"], axis=1)

    def summary(self, variables: list[str] | None = None) -> Summary:
        """The summary of ``variables`` (default: the params and outs; for ``predict``'s
        fits the predictions, outs and gens), ``lp__`` first, with the sampler's
        per-chain diagnostics (divergences, tree depth, E-BFMI), implicit nodes'
        failures and the run's times; shows as its table."""
        if variables is None and self.attrs.get("predicted"):
            variables = str(self.attrs["predicted"]).split(",")
        chosen = self.posterior if variables is None else self.draws()
        chosen = {k: v for k, v in chosen.items() if variables is None or k in variables}
        rows = summary_rows(chosen, self.sample_stats)
        depth = int(self.attrs.get("max_tree_depth", 10))
        text = format_summary(
            rows,
            self.sample_stats,
            max_tree_depth=depth,
            attrs=self.attrs,
            warmup_divergences=self.warmup_divergences,
        )
        tree_depth = self.sample_stats.get("tree_depth", np.zeros((self.chains, 0)))
        sat = np.sum(tree_depth >= depth, axis=1)
        for node in {**self.solver_failures, **self.gradient_failures}:
            fwd = self.solver_failures.get(node, [0] * self.chains)
            bwd = self.gradient_failures.get(node, [0] * self.chains)
            per_chain = ", ".join(f"chain {i + 1}: {c}" for i, c in enumerate(fwd))
            why = self.solver_failure_reasons.get(node)
            why_text = f"; {', '.join(f'{r}: {k}' for r, k in why.items())}" if why else ""
            text += (
                f"\nImplicit node {node}: {sum(fwd)} non-converged solves "
                f"(the density was -inf there{why_text}) [{per_chain}]"
            )
            if any(bwd):
                per_chain = ", ".join(f"chain {i + 1}: {c}" for i, c in enumerate(bwd))
                text += (
                    f"; {sum(bwd)} failed gradient solves (singular or unsolved backward "
                    f"system: the gradient was NaN there) [{per_chain}]"
                )
        divergences = tuple(int(x) for x in self.divergences)
        return Summary(tuple(rows), text, divergences, tuple(int(x) for x in sat))

    def __repr__(self) -> str:
        return f"{self._title()}\n{self.summary()}"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p>{escape(self._title())}</p>{self.summary()._repr_html_()}"

    def _title(self) -> str:
        method = self.attrs.get("method", "sample")
        return (
            f"<fpl.Fit of {self.model} ({method}): {self.chains} chain"
            f"{'' if self.chains == 1 else 's'} x {self.num_draws} draws>"
        )

    @classmethod
    def from_fitdata(cls, fd: FitData) -> Fit:
        """A fit read back from a file (the I/O layer's :class:`FitData`): draws, sample
        statistics, adaptation and attributes as saved; failure counts are kept as totals
        in ``attrs`` (per-chain counts are not saved)."""
        attrs = {k: v for k, v in fd.attrs.items() if k != "model"}
        declared = {k: v for k, v in fd.log_likelihood.items() if is_declared_log_lik(k)}
        return cls(
            model=str(fd.attrs.get("model", "model")),
            posterior=dict(fd.posterior),
            generated={**fd.posterior_predictive, **declared},
            sample_stats=dict(fd.sample_stats),
            observed=dict(fd.observed_data),
            attrs=attrs,
            warmup_sample_stats=dict(fd.warmup_sample_stats),
            adaptation=dict(fd.adaptation),
            log_likelihood={k: v for k, v in fd.log_likelihood.items() if k not in declared},
            constant_data=dict(fd.constant_data),
            unconstrained_posterior=dict(fd.unconstrained_posterior),
            weights=_saved_weights(fd.attrs),
        )

    def to_fitdata(self) -> FitData:
        """The fit's groups; a declared ``gen log_lik...`` joins the recorded pointwise
        log-likelihood (and wins over a recorded entry of the same name)."""
        declared = {k: v for k, v in self.generated.items() if is_declared_log_lik(k)}
        predictive = {k: v for k, v in self.generated.items() if k not in declared}
        return FitData(
            posterior=dict(self.posterior),
            unconstrained_posterior=dict(self.unconstrained_posterior),
            posterior_predictive=predictive,
            log_likelihood={**self.log_likelihood, **declared},
            sample_stats=dict(self.sample_stats),
            warmup_sample_stats=dict(self.warmup_sample_stats),
            observed_data=dict(self.observed),
            constant_data=dict(self.constant_data),
            adaptation=dict(self.adaptation),
            attrs={
                "model": self.model,
                **self.attrs,
                **{f"solver_failures {k}": sum(v) for k, v in self.solver_failures.items()},
                **{f"gradient_failures {k}": sum(v) for k, v in self.gradient_failures.items()},
            },
        )

    def to_arviz(self) -> Any:
        """The fit as ArviZ data: an ``xarray.DataTree`` on ArviZ >= 1, an
        ``arviz.InferenceData`` on ArviZ 0.x, from one code path
        (:func:`fpl.runtime.netcdf.to_arviz`); the groups of a saved ``.nc`` file, so
        ``az.loo``, ``az.compare``, ``az.plot_ppc`` and ``az.plot_trace`` take it as is.
        """
        return to_arviz(self.to_fitdata())

    def save(self, path: str) -> list[str]:
        """Write the fit atomically: ``.nc`` (ArviZ netCDF), ``.csv`` (Stan CSV: one file
        per chain, ``fit_1.csv``, ...) or ``.json``; returns the files written."""
        return save_fit(str(path), self.to_fitdata())


def _saved_weights(attrs) -> dict[str, np.ndarray]:
    """The weights a saved fit was computed with (``vi``'s, an ``optimize`` result's)."""
    from fpl.runtime.io import weights_attr

    try:
        return weights_attr(attrs)
    except ValueError:
        return {}  # (``--weights`` reports a bad attribute; a fit is still readable)


def split_data(
    data: dict[str, np.ndarray], observed_fields
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(observed, constant)``: the data fields observed by ``~`` (``observed_fields``,
    e.g. ``{o.field for o in cm.observations}``) and the others, for ``Fit.observed`` and
    ``Fit.constant_data``."""
    fields = set(observed_fields)
    observed = {k: v for k, v in data.items() if k in fields}
    return observed, {k: v for k, v in data.items() if k not in fields}


def load_fit(path: str) -> Fit:
    """Read a saved fit (``.nc``, ``.csv`` (also CmdStan's files) or ``.json``) back as a
    :class:`Fit`, with ``summary()``, ``draws()``, ``to_arviz()`` and ``save()``."""
    from fpl.runtime.io import load_fit as load_fitdata

    return Fit.from_fitdata(load_fitdata(str(path)))


__all__ = ["Fit", "Summary", "load_fit", "split_data"]
