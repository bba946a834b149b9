"""Gaussian-process covariance functions (kernels) over sets of points."""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import RuleError, Ty, unify_dim


def _gp_rule(args: list[Arg]) -> Ty:
    """Points are the entries of a vector or the rows of a matrix; alpha and rho are
    scalars; two sets of points have points of the same dimension."""
    points = len(args) - 2
    for i in range(points):
        rules.need_rank(args, i, (1, 2), "the points")
    for i in range(points, len(args)):
        rules.need_rank(args, i, (0,), "alpha and rho")
    x = args[0].ty
    n = x.shape[0]
    if points == 2:
        x2 = args[1].ty
        if x.rank != x2.rank:
            raise RuleError(f"points of different dimensions: {x} and {x2}", arg=1, kind="shape")
        if x.rank == 2:
            unify_dim(x.shape[1], x2.shape[1], "gp_exp_quad_cov: point dimensions")
        return Ty("real", (n, x2.shape[0]))
    return Ty("real", (n, n))


@fn("gp_exp_quad_cov", rule=_gp_rule, args=(3, 4), category="matrix", aliases=("cov_exp_quad",))
def gp_exp_quad_cov(x, *rest):
    """alpha^2 exp(-|x_i - x_j|^2 / (2 rho^2)); gp_exp_quad_cov(x, alpha, rho) or
    gp_exp_quad_cov(x1, x2, alpha, rho).  Points are scalars or rows."""
    if len(rest) == 3:
        x2, alpha, rho = rest
    else:
        x2, (alpha, rho) = x, rest
    a = x if x.ndim > 1 else x[:, None]
    b = x2 if x2.ndim > 1 else x2[:, None]
    d2 = jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)
    return jnp.square(alpha) * jnp.exp(-0.5 * d2 / jnp.square(rho))
