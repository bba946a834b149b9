"""Operators of proximal and implicit-layer methods: ``stop_gradient``, ``sign`` and the
proximal maps (soft-thresholding, projections) that forward-backward and
plug-and-play fixed points are written with.

Each proximal map is prox_g(x) = argmin_z ½‖z − x‖² + g(z), in closed form:

* ``prox_l1(x, t)``, g = t‖·‖₁: sign(x) · max(|x| − t, 0) (soft-thresholding);
* ``prox_nonneg(x)``, g the indicator of z ≥ 0: max(x, 0);
* ``project_box(x, lo, hi)``, g the indicator of lo ≤ z ≤ hi: clip(x, lo, hi);
* ``project_simplex(x)``, g the indicator of {z ≥ 0, Σz = 1}: max(x − τ, 0) with τ from
  the sorted values (Held, Wolfe and Crowder 1974): with u sorted descending, ρ the
  largest k with u_k − (Σ_{j≤k} u_j − 1)/k > 0, τ = (Σ_{j≤ρ} u_j − 1)/ρ.

``PROXIMAL`` lists the maps the splitting solvers (``fpl.stdlib.solvers.splitting``)
accept as the outer call of a ``fix`` map ``z = prox(G(z), ...)``, with the argument
positions that scale with the step: the prox of ``a * g`` is the same map with those
arguments times ``a`` (``prox_l1(x, a t)``; an indicator's prox does not change).

Their derivatives are JAX's of these formulas: exact away from the kinks (|x| = t, the
box's faces, ties at τ), where any one-sided value is returned.  ``stop_gradient``'s
derivative is 0 by definition and ``sign``'s is 0 almost everywhere.
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import binary, fn, promoting, unary
from fpl.stdlib.lazy import jax, jnp

unary(
    "stop_gradient",
    "x, with derivative 0: no derivative flows through it (a constant in `grad`, in the "
    "implicit gradients of fix/root/argmin nodes and in optimize).",
    rule=rules.elementwise_keep,
)(lambda x: jax.lax.stop_gradient(x))
unary("sign", "-1, 0 or 1 as x < 0, = 0 or > 0 (derivative 0).", rule=rules.elementwise_keep)(
    lambda x: jnp.sign(x)
)
binary(
    "prox_l1",
    "Soft-thresholding, the proximal map of t‖·‖₁: sign(x) max(|x| - t, 0).",
    lambda x, t: jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0),
    aliases=("soft_threshold",),
)
unary("prox_nonneg", "Projection onto z >= 0: max(x, 0).")(lambda x: jnp.maximum(x, 0.0))


@fn("project_box", rule=rules.elementwise_real, args=3)
@promoting
def project_box(x, lower, upper):
    """Projection onto the box lower <= z <= upper: clip(x, lower, upper)."""
    return jnp.minimum(jnp.maximum(x, lower), upper)


@fn("project_simplex", rule=rules.vector_of_first, args=1, category="matrix")
@promoting
def project_simplex(x):
    """Euclidean projection of a vector onto the probability simplex
    {z >= 0, sum(z) = 1}: max(x - tau, 0) with tau from the sorted values."""
    n = x.shape[-1]
    u = jnp.sort(x)[::-1]
    css = jnp.cumsum(u) - 1.0
    k = jnp.arange(1, n + 1, dtype=x.dtype)
    rho = jnp.sum(u - css / k > 0)  # >= 1 always: u_1 - (u_1 - 1) = 1 > 0
    tau = jnp.take(css, rho - 1) / rho.astype(x.dtype)
    return jnp.maximum(x - tau, 0.0)


#: proximal maps a splitting solver can split off (name -> the argument positions that
#: are multiplied by the step a to give the prox of a * g)
PROXIMAL: dict[str, tuple[int, ...]] = {
    "prox_l1": (1,),
    "prox_nonneg": (),
    "project_box": (),
    "project_simplex": (),
}
