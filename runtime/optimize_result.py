"""What ``Model.optimize`` returns (:class:`OptimizeResult`), saved and read back as
JSON or netCDF.

The JSON file is the result's fields (``"format": "fpl-optimize"``).  The netCDF file is
a fit of one chain of one draw — the params and outs at the optimum in ArviZ's
``posterior`` group, so ``arviz.from_netcdf`` and ``fpl.load_fit`` read it — whose
attributes hold the weights (``weights``, JSON, as a VI fit holds its fitted weights)
and the whole result (``result``, the JSON document), which :func:`load_result` reads
back.  Either file is a ``--weights`` file (``fpl.runtime.io.read_weights``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import error

GTOL = 1e-5  # `converged`: full-data gradient norm <= GTOL * (1 + |loss|)
FORMAT = "fpl-optimize"


@dataclass
class OptimizeResult:
    """What ``Model.optimize`` returns.

    ``params`` holds the constrained params and the weights by name (``weights``
    only the weights, ready for ``Model.sample(weights=...)``), ``outputs`` every
    ``out`` value at the optimum, ``trace`` the loss of every step (on its minibatch
    when minibatching), ``loss`` and ``grad_norm`` the full-data objective and the norm
    of its gradient (unconstrained scale) at the end.
    """

    model: str
    param_values: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    trace: np.ndarray
    loss: float
    grad_norm: float
    steps: int
    skipped: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    #: implicit node ("fix#1 at model.fpl:9:9") -> failed backward (gradient) solves met
    #: during the steps (with on_failure="skip"; otherwise the first one is an error)
    gradient_failures: dict[str, int] = field(default_factory=dict)
    #: implicit node -> steps whose forward solve of it did not converge (with
    #: on_failure="best" those steps went on from the best iterate, with "skip" they
    #: were skipped; with "error" the first one is an error)
    solver_failures: dict[str, int] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {**self.param_values, **self.weights}

    @property
    def converged(self) -> bool:
        """The full-data gradient norm is at most ``GTOL * (1 + |loss|)``."""
        return bool(np.isfinite(self.loss) and self.grad_norm <= GTOL * (1 + abs(self.loss)))

    @property
    def stopped_at_convergence(self) -> bool:
        """The run stopped before its ``steps`` because its gradient met ``tol``."""
        return self.attrs.get("stopped") == "converged"

    @property
    def message(self) -> str:
        state = "converged" if self.converged or self.stopped_at_convergence else "stopped"
        of = f" of {self.attrs['max_steps']}" if self.stopped_at_convergence else ""
        text = (
            f"{state} after {self.steps}{of} steps: loss {self.loss:.6g}, "
            f"gradient norm {self.grad_norm:.3g}"
        )
        text += f", {self.skipped} steps skipped" if self.skipped else ""
        failed = sum(self.gradient_failures.values())
        text += f", {failed} failed gradient solves" if failed else ""
        unsolved = {k: n for k, n in self.solver_failures.items() if n}
        if unsolved:
            each = ", ".join(f"{k}: {n}" for k, n in unsolved.items())
            text += f", non-converged solves ({each})"
        at_end = self.attrs.get("unconverged_at_end") or []
        if at_end:
            text += f"; the final solve of {', '.join(at_end)} did not converge"
        return text

    def __repr__(self) -> str:
        return f"<OptimizeResult {self.model}: {self.message}>"

    def summary(self) -> str:
        """A printable summary: the loss, then every param, weight and out (large
        arrays as their shape and norm)."""
        lines = [self.message]
        for title, group in (
            ("params", self.param_values),
            ("weights", self.weights),
            ("outs", self.outputs),
        ):
            if group:
                lines.append(f"{title}:")
                lines += [f"  {k} = {_show(v)}" for k, v in group.items()]
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        """Write the result as ``.json`` or ``.nc``, atomically (read back with
        :func:`load_result`)."""
        import json

        from fpl.runtime.io import FitData, save_fit, write_atomic

        suffix = Path(path).suffix.lower()
        if suffix not in (".json", ".nc"):
            raise error(
                "E0502", f"cannot write `{path}`: an optimize result is saved as .json or .nc"
            )
        text = json.dumps(self.document())
        if suffix == ".nc":
            optimum = {**self.param_values, **self.outputs}
            attrs = {
                "model": self.model,
                "method": "optimize",
                "format": FORMAT,
                "weights": json.dumps({k: np.asarray(v).tolist() for k, v in self.weights.items()}),
                "result": text,
            }
            posterior = {k: np.asarray(v, float)[None, None] for k, v in optimum.items()}
            save_fit(str(path), FitData(posterior=posterior, attrs=attrs))
            return
        write_atomic(str(path), lambda tmp: Path(tmp).write_text(text))

    def document(self) -> dict[str, Any]:
        """The result as a JSON document (what the ``.json`` file holds)."""
        from fpl.runtime.jsondata import to_json_value

        return {
            "format": FORMAT,
            "model": self.model,
            "params": {k: to_json_value(v) for k, v in self.param_values.items()},
            "weights": {k: to_json_value(v) for k, v in self.weights.items()},
            "outputs": {k: to_json_value(v) for k, v in self.outputs.items()},
            "trace": to_json_value(self.trace),
            "loss": to_json_value(self.loss),
            "grad_norm": to_json_value(self.grad_norm),
            "steps": self.steps,
            "skipped": self.skipped,
            "attrs": self.attrs,
            "gradient_failures": self.gradient_failures,
            "solver_failures": self.solver_failures,
        }


def _show(v) -> str:
    a = np.asarray(v)
    if a.size <= 12:
        return np.array2string(a, precision=6, separator=", ") if a.ndim else f"{float(a):.6g}"
    return f"array of shape {a.shape}, norm {np.linalg.norm(a):.4g}"


def load_result(path: str | Path) -> OptimizeResult:
    """Read a result written by :meth:`OptimizeResult.save` (``.json`` or ``.nc``)."""
    from fpl.runtime.jsondata import load_json_object

    if Path(path).suffix.lower() == ".nc":
        from fpl.runtime.io import load_fit

        attrs = load_fit(str(path)).attrs
        if attrs.get("format") != FORMAT or not isinstance(attrs.get("result"), str):
            raise error("E0404", f"`{path}` is not an FPL optimize result")
        text = attrs["result"]
    else:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise error("E0501", f"cannot read `{path}`: {reason}") from None
    doc = load_json_object(text, str(path), code="E0404", what="optimize result")
    if doc.get("format") != FORMAT:
        raise error("E0404", f"`{path}` is not an FPL optimize result")
    return from_document(doc, path)


def from_document(doc: dict, path: str | Path) -> OptimizeResult:
    """The result a JSON document of :meth:`OptimizeResult.document` holds (E0404 where
    a field is missing or bad)."""
    from fpl.runtime.jsondata import JsonValueError, convert_value

    def arrays(group: str) -> dict[str, np.ndarray]:
        try:
            return {
                k: np.asarray(convert_value(v, k), float) for k, v in doc.get(group, {}).items()
            }
        except (JsonValueError, AttributeError) as exc:
            raise error("E0404", f"`{path}`: bad `{group}`: {exc}") from None

    try:
        trace = np.asarray(convert_value(doc["trace"], "trace"), float).reshape(-1)
        loss = float(convert_value(doc["loss"], "loss"))
        grad_norm = float(convert_value(doc["grad_norm"], "grad_norm"))
        steps, skipped = int(doc["steps"]), int(doc.get("skipped", 0))
        grad_fail = {str(k): int(v) for k, v in dict(doc.get("gradient_failures", {})).items()}
        solve_fail = {str(k): int(v) for k, v in dict(doc.get("solver_failures", {})).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise error("E0404", f"`{path}`: missing or bad field {exc}") from None
    return OptimizeResult(
        str(doc.get("model", "model")),
        arrays("params"),
        arrays("weights"),
        arrays("outputs"),
        trace,
        loss,
        grad_norm,
        steps,
        skipped,
        dict(doc.get("attrs", {})),
        grad_fail,
        solve_fail,
    )


__all__ = ["GTOL", "OptimizeResult", "load_result"]
