"""Where variational inference starts, and the coordinates it runs in.

The maths.  A Gaussian fit ``N(m, Σ)`` of the posterior on the flat unconstrained scale
(``u``, ``cm.ravel`` order) is found first: the Laplace approximation (the mode of the
log density ``ℓ(u)``, Jacobian included, and ``Σ = (−∇²ℓ)⁻¹`` there) or, where there is
no mode or the Hessian is not negative definite, Pathfinder's best Gaussian along the
L-BFGS path; failing both, the samplers' initial point with ``Σ = I``.  SVI then runs in
*whitened* coordinates ``z``:

    u = m + A z,        ℓ_z(z) = ℓ(m + A z) + log |det A|,

with ``A = chol(Σ)`` (lower) for the full-rank guide and ``A = diag(a)``,
``a_i = 1/√(Σ⁻¹)_ii`` (the conditional sds) for the others.  The change of variables is
exact: ``ℓ_z`` is the density of ``z`` when ``u`` has density ``ℓ``, a guide ``q_z`` on
``z`` is the guide ``q_u(u) = q_z(A⁻¹(u − m)) / |det A|`` on ``u``, and the ELBO is the
same number in either coordinates.  Families are preserved: a full-rank Gaussian stays
full-rank under any affine map, and a diagonal ``A`` keeps mean-field guides mean-field
(and low-rank-plus-diagonal ones so) on ``u``.  What changes is the optimiser's view:
Adam's steps are of the same size in every coordinate, so in ``u`` a step size fit for
a posterior sd of 1 jitters by ten sds where the sd is 0.001; in ``z`` every sd is near 1
and one step size serves all, and the guide starts at ``z ~ N(0, I)``, which is the
starting Gaussian itself (exact for the full-rank guide; the mean-field optimum for a
Gaussian posterior with the diagonal ``A``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.compiler.compiled import CompiledModel
from fpl.dsl.diagnostics import FplError
from fpl.stdlib.lazy import LazyModule

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")

#: ``start`` settings: ``auto`` tries them in this order and keeps the first that works
STARTS = ("auto", "laplace", "pathfinder", "init")
#: the site of the whitened model's one latent vector
SITE = "z"
#: the autoguides' parameter prefix
PREFIX = "fpl_guide"


@dataclass(frozen=True)
class Start:
    """``u = mean + A z``: ``A`` is ``factor`` (a lower-triangular matrix) or
    ``diag(factor)`` (a vector); ``log_det = log |det A|``; ``kind`` says which fit it
    came from (``laplace``, ``pathfinder`` or ``init``)."""

    mean: np.ndarray
    factor: np.ndarray
    log_det: float
    kind: str

    def to_unconstrained(self, z):
        """``m + A z`` for ``z`` of shape ``(..., n)``."""
        if self.factor.ndim == 1:
            return self.mean + z * self.factor
        return self.mean + z @ self.factor.T


def gaussian_start(
    cm: CompiledModel,
    args: Mapping[str, Any],
    *,
    start: str,
    full_rank: bool,
    seed: int,
    init: Mapping[str, Any] | None,
) -> Start:
    """The starting Gaussian (see the module docstring) and its whitening map; ``start``
    is one of :data:`STARTS`.  With ``auto`` a fit that fails with a coded error gives
    way to the next; a named fit's error is raised."""
    kinds = ("laplace", "pathfinder", "init") if start == "auto" else (start,)
    for kind in kinds:
        try:
            mean, covariance = _FITS[kind](cm, args, seed, init)
        except FplError:
            if start != "auto":
                raise
            continue
        return _whitening(mean, covariance, full_rank, kind)
    raise AssertionError("unreachable: the `init` start does not fail with FplError")


def _laplace(cm, args, seed, init):
    from fpl.runtime.laplace import approximate

    approx = approximate(cm, args, seed=seed, init=init)
    # the Laplace fit's flat order is ravel_pytree's (names sorted); ours is cm.ravel's
    n = approx.mode.size
    permute = np.asarray(
        jax.vmap(lambda e: cm.ravel(approx.unravel(e)))(jnp.eye(n, dtype=jnp.float64))
    ).T
    return permute @ approx.mode, permute @ approx.covariance @ permute.T


def _pathfinder(cm, args, seed, init):
    from fpl.runtime.pathfinder import approximate

    fitted = approximate(cm, args, seed=seed, init=init)
    chol = np.asarray(fitted.cholesky)
    return np.asarray(fitted.mean), chol @ chol.T


def _init(cm, args, seed, init):
    from fpl.runtime.sampling import find_inits

    point = np.asarray(cm.ravel(find_inits(cm, args, 1, seed, init)[0]))
    return point, np.eye(point.size)


_FITS: dict[str, Callable] = {"laplace": _laplace, "pathfinder": _pathfinder, "init": _init}


def _whitening(mean, covariance, full_rank: bool, kind: str) -> Start:
    covariance = 0.5 * (covariance + covariance.T)
    if full_rank:
        chol = np.linalg.cholesky(covariance)
        return Start(mean, chol, float(np.sum(np.log(np.diag(chol)))), kind)
    scale = 1.0 / np.sqrt(np.diag(np.linalg.inv(covariance)))
    return Start(mean, scale, float(np.sum(np.log(scale))), kind)


def whitened_model(cm: CompiledModel, start: Start) -> Callable:
    """The NumPyro model of ``cm`` in the whitened coordinates: one latent site
    :data:`SITE` of shape ``(n,)`` (``ImproperUniform`` on the real line), one
    ``numpyro.param`` site per weight, and a factor ``ℓ(m + A z) + log |det A|``."""
    import numpyro
    import numpyro.distributions as dist

    n = start.mean.size
    mean, factor = jnp.asarray(start.mean), jnp.asarray(start.factor)
    whitened = Start(mean, factor, start.log_det, start.kind)

    # compiled once: NumPyro runs the model eagerly while setting a guide up
    @jax.jit
    def log_density(z, w, args):
        u = whitened.to_unconstrained(z)
        return cm.log_density(u, data=args, weights=w) + start.log_det

    def model(args):
        z = numpyro.sample(SITE, dist.ImproperUniform(dist.constraints.real, (), (n,)))
        w = {name: numpyro.param(name, jnp.asarray(v)) for name, v in cm.weights.items()}
        numpyro.factor("fpl_log_density", log_density(z, w, args))

    return model


__all__ = ["PREFIX", "SITE", "STARTS", "Start", "gaussian_start", "whitened_model"]
