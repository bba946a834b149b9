"""Strict test settings: float64 everywhere, warnings are errors (pyproject)."""

import jax

jax.config.update("jax_enable_x64", True)
