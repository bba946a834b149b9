"""FPL: a differentiable probabilistic programming language compiled to JAX.

``import fpl`` is the embedding API::

    model = fpl.load("eight_schools.fpl")
    fit = model.sample(data, chains=4, draws=1000, seed=1)
    fit.summary()                      # a table; .to_pandas() for a DataFrame
    fit.save("fit.nc")                 # or .csv (Stan CSV, one file per chain), .json
    fit = fpl.load_fit("fit.nc")       # a Fit again: summary, draws, to_arviz
    res = fpl.load_result("res.json")  # an optimize result again (.json or .nc)

Heavy dependencies (JAX, NumPyro) load on first use, so ``fpl check`` stays fast.
Importing ``fpl`` before JAX starts makes the host's cores into JAX CPU devices, so
chains run in parallel (``fpl.runtime.platform`` says how to choose or opt out).
"""

from fpl.runtime import platform as _platform

_platform.use_host_cores()
_platform.use_fast_compiler()

__version__ = "0.1.0"

_LAZY = {
    "load": "fpl.runtime.model",
    "compile": "fpl.runtime.model",
    "Model": "fpl.runtime.model",
    "Fit": "fpl.runtime.fit",
    "load_fit": "fpl.runtime.fit",
    "load_result": "fpl.runtime.optimize_result",
    "Summary": "fpl.runtime.summary",
    "read_data": "fpl.runtime.data",
    "FplError": "fpl.dsl.diagnostics",
    "parse": "fpl.dsl.parser",
}

__all__ = ["__version__", *_LAZY]


def __dir__() -> list[str]:
    """The public API (``dir(fpl)``), the lazily imported names included."""
    return sorted(__all__)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fpl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
