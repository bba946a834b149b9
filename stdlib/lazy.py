"""Deferred imports: the registries name JAX/NumPyro objects without importing them,
so that parsing and checking (``fpl check``) never load JAX."""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """A module proxy that imports on first attribute access."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


jnp = LazyModule("jax.numpy")
jax = LazyModule("jax")
jsp_special = LazyModule("jax.scipy.special")
jsp_linalg = LazyModule("jax.scipy.linalg")
jsp_stats = LazyModule("jax.scipy.stats")
dist = LazyModule("numpyro.distributions")
