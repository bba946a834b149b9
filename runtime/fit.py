"""Results of sampling: draws by name, a Stan-style summary, ArviZ data and files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpl.runtime.io import FitData, save_fit, to_arviz
from fpl.runtime.summary import Row, format_summary, summarize


@dataclass
class Summary:
    """A posterior summary: one :class:`Row` per scalar, plus sampler diagnostics."""

    rows: list[Row]
    text: str
    divergences: list[int]
    tree_depth_saturated: list[int]

    def __str__(self) -> str:
        return self.text

    def __getitem__(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dataframe(self):
        import pandas as pd

        cols = ["mean", "mcse", "sd", "q5", "q50", "q95", "ess_bulk", "ess_tail", "r_hat"]
        return pd.DataFrame(
            [[getattr(r, c) for c in cols] for r in self.rows],
            index=[r.name for r in self.rows],
            columns=["mean", "mcse", "sd", "5%", "50%", "95%", "ess_bulk", "ess_tail", "r_hat"],
        )


@dataclass
class Fit:
    model: str
    posterior: dict[str, np.ndarray]  # params and outs, (chains, draws, ...)
    generated: dict[str, np.ndarray]  # gen values, (chains, draws, ...)
    sample_stats: dict[str, np.ndarray]  # (chains, draws)
    observed: dict[str, np.ndarray]
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

    def summary(self) -> Summary:
        rows = summarize(self.posterior)
        depth = int(self.attrs.get("max_tree_depth", 10))
        text = format_summary(rows, self.sample_stats, max_tree_depth=depth)
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
        return Summary(rows, text, [int(x) for x in self.divergences], [int(x) for x in sat])

    @classmethod
    def from_fitdata(cls, fd: FitData) -> Fit:
        """A fit read back from a file (the I/O layer's :class:`FitData`): draws, sample
        statistics and attributes as saved; failure counts are kept as totals in
        ``attrs`` (per-chain counts are not saved)."""
        attrs = {k: v for k, v in fd.attrs.items() if k != "model"}
        return cls(
            model=str(fd.attrs.get("model", "model")),
            posterior=dict(fd.posterior),
            generated={**fd.log_likelihood, **fd.posterior_predictive},
            sample_stats=dict(fd.sample_stats),
            observed=dict(fd.observed_data),
            attrs=attrs,
        )

    def to_fitdata(self) -> FitData:
        loglik = {k: v for k, v in self.generated.items() if k.startswith("log_lik")}
        predictive = {k: v for k, v in self.generated.items() if k not in loglik}
        return FitData(
            posterior=dict(self.posterior),
            sample_stats=dict(self.sample_stats),
            observed_data=dict(self.observed),
            log_likelihood=loglik,
            posterior_predictive=predictive,
            attrs={
                "model": self.model,
                **self.attrs,
                **{f"solver_failures {k}": sum(v) for k, v in self.solver_failures.items()},
                **{f"gradient_failures {k}": sum(v) for k, v in self.gradient_failures.items()},
            },
        )

    def to_arviz(self) -> Any:
        """The fit as ArviZ data: an ``xarray.DataTree`` on ArviZ >= 1, an
        ``arviz.InferenceData`` on ArviZ 0.x (see :func:`fpl.runtime.io.to_arviz`).

        Groups: posterior, sample_stats, observed_data, and log_likelihood /
        posterior_predictive from ``gen`` values; the same as a saved ``.nc`` file.
        """
        return to_arviz(self.to_fitdata())

    def save(self, path: str) -> None:
        """Write the fit atomically: ``.nc`` (ArviZ netCDF), ``.csv`` or ``.json``."""
        save_fit(path, self.to_fitdata())


def load_fit(path: str) -> Fit:
    """Read a saved fit (``.nc``, ``.csv`` or ``.json``) back as a :class:`Fit`, with
    ``summary()``, ``draws()``, ``to_arviz()`` and ``save()``."""
    from fpl.runtime.io import load_fit as load_fitdata

    return Fit.from_fitdata(load_fitdata(str(path)))
