"""Constraints -> NumPyro bijections, as Stan does: a constrained param is sampled on
the unconstrained scale and ``log |det J|`` of the map back is added to the density.

Bounds that depend on other params are evaluated from the current constrained values
each time (the caller passes the evaluated bounds), so draws are mapped back with the
right bounds — the lowering never relies on ``ImproperUniform`` with such a bound.
"""

from __future__ import annotations

from fpl.stdlib.lazy import jnp

_STRUCTURED = {
    "simplex": "simplex",
    "ordered": "ordered_vector",
    "positive_ordered": "positive_ordered_vector",
    "cholesky_corr": "corr_cholesky",
    "corr_matrix": "corr_matrix",
    "cov_matrix": "positive_definite",
    "cholesky_cov": "lower_cholesky",
}


def numpyro_constraint(kind: str, lower=None, upper=None):
    from numpyro.distributions import constraints as c

    if kind == "real":
        return c.real
    if kind == "lower":
        return c.greater_than(lower)
    if kind == "upper":
        return c.less_than(upper)
    if kind == "interval":
        return c.interval(lower, upper)
    return getattr(c, _STRUCTURED[kind])


def bijection(kind: str, lower=None, upper=None):
    """The transform from unconstrained reals onto the constraint's support."""
    from numpyro.distributions.transforms import biject_to

    return biject_to(numpyro_constraint(kind, lower, upper))


def unconstrained_shape(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind in ("real", "lower", "upper", "interval"):
        return tuple(shape)
    return tuple(bijection(kind).inverse_shape(tuple(shape)))


def constrain(kind: str, u, lower=None, upper=None):
    """(value, log |det J|) for an unconstrained ``u``."""
    t = bijection(kind, lower, upper)
    x = t(u)
    return x, jnp.sum(t.log_abs_det_jacobian(u, x))


def unconstrain(kind: str, x, lower=None, upper=None):
    return bijection(kind, lower, upper).inv(x)


def in_support(kind: str, x, lower=None, upper=None):
    """A traced boolean: is every element of ``x`` inside the support?"""
    if kind == "real":
        return jnp.all(jnp.isfinite(x))
    return jnp.all(numpyro_constraint(kind, lower, upper).check(x))
