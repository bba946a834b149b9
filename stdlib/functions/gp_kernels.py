"""Gaussian-process covariance functions (kernels) over sets of points."""

from __future__ import annotations

from fpl.stdlib.functions._register import fn
from fpl.stdlib.lazy import jnp
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import Ty


def _gp_rule(args: list[Arg]) -> Ty:
    x = args[0].ty
    n = x.shape[0] if x.rank else None
    if len(args) == 4:
        m = args[1].ty.shape[0] if args[1].ty.rank else None
        return Ty("real", (n, m))
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
