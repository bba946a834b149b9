"""FPL: a differentiable probabilistic programming language compiled to JAX.

``import fpl`` is the embedding API::

    model = fpl.load("eight_schools.fpl")
    fit = model.sample(data, chains=4, draws=1000, seed=1)

Heavy dependencies (JAX, NumPyro) load on first use, so ``fpl check`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load": "fpl.runtime.model",
    "compile": "fpl.runtime.model",
    "Model": "fpl.runtime.model",
    "Fit": "fpl.runtime.fit",
    "load_fit": "fpl.runtime.fit",
    "read_data": "fpl.runtime.data",
    "FplError": "fpl.dsl.diagnostics",
    "parse": "fpl.dsl.parser",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fpl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
