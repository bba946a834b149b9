"""``fpl optimize``: fit weights and params with an optax optimizer."""

from __future__ import annotations


def add_parsers(sub) -> dict:
    """Add this module's subcommands to ``sub``; returns ``{name: handler}``."""
    return {}
