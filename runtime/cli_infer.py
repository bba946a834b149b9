"""``fpl laplace | vi | predict``: Laplace approximation, variational inference and prediction."""

from __future__ import annotations


def add_parsers(sub) -> dict:
    """Add this module's subcommands to ``sub``; returns ``{name: handler}``."""
    return {}
