"""Constraints -> NumPyro bijections, as Stan does: a constrained param is sampled on
the unconstrained scale and ``log |det J|`` of the map back is added to the density.

Bounds that depend on other params are evaluated from the current constrained values
each time (the caller passes the evaluated bounds), so draws are mapped back with the
right bounds — the lowering never relies on ``ImproperUniform`` with such a bound.

Well-posed weight types (``contractive``, ``monotone``; weights only, see "well-posed
weights" below): their maps onto the constraint set are not bijections (many raw
values give one weight), so no log-Jacobian exists and they are refused as params.
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
    if kind in WELL_POSED:
        return _raw_shape(kind, tuple(shape))
    if kind in ("real", "lower", "upper", "interval"):
        return tuple(shape)
    return tuple(bijection(kind).inverse_shape(tuple(shape)))


#: kinds whose value has the shape of its unconstrained array (one real per element)
ELEMENTWISE = ("real", "lower", "upper", "interval", "ordered", "positive_ordered")


def constrained_shape(kind: str, unconstrained: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the value of an unconstrained array of shape ``unconstrained``."""
    if kind in ELEMENTWISE:
        return tuple(unconstrained)
    return tuple(bijection(kind).forward_shape(tuple(unconstrained)))


def _is_empty(shape: tuple[int, ...]) -> bool:
    return any(int(n) == 0 for n in shape)


def constrain(kind: str, u, lower=None, upper=None):
    """(value, log |det J|) for an unconstrained ``u``.

    An empty value (Stan's zero-size params: ``real<lower=0>[N]``, ``cov_matrix[N]``
    with N = 0) is an empty array with log-Jacobian 0, without calling the NumPyro
    transform (its reductions divide by the zero size).  ``simplex[0]``,
    ``corr_matrix[0]`` and ``cholesky_corr[0]`` never get here: they are refused at
    bind (E0202), since their unconstrained array is the same empty one as ``[1]``'s.

    Where params decide an interval's bounds, see ``bounds_ordered``."""
    if kind in WELL_POSED:
        return _well_posed_constrain(kind, u, lower, upper), jnp.zeros(())
    shape = constrained_shape(kind, jnp.shape(u))
    if _is_empty(shape):
        return jnp.zeros(shape, dtype=jnp.result_type(u, float)), jnp.zeros(())
    t = bijection(kind, lower, upper)
    x = t(u)
    return x, jnp.sum(t.log_abs_det_jacobian(u, x))


def bounds_ordered(kind: str, lower=None, upper=None):
    """A traced boolean: are an interval's bounds ordered, lower < upper everywhere?

    Bounds the data decide are checked once at bind (E0204); where params decide them
    (``param x: real<lower=s, upper=0>``), a draw with lower >= upper has no value
    inside them, so the param sources make its log density -inf and a sampler rejects
    it, as Stan rejects such a draw.  Always true for the other kinds."""
    if kind != "interval":
        return jnp.asarray(True)
    return jnp.all(jnp.less(lower, upper))


def unconstrain(kind: str, x, lower=None, upper=None):
    if kind in WELL_POSED:
        return _well_posed_unconstrain(kind, x, lower, upper)
    if _is_empty(jnp.shape(x)):  # an empty value: its empty unconstrained array
        return jnp.zeros(unconstrained_shape(kind, jnp.shape(x)), dtype=jnp.result_type(x, float))
    return bijection(kind, lower, upper).inv(x)


def log_jacobian_at(kind: str, x, lower=None, upper=None):
    """``log |det J|`` of the map onto the support at the constrained value ``x`` (the
    term ``constrain`` adds at ``unconstrain(x)``); 0 for an empty value."""
    if _is_empty(jnp.shape(x)):
        return jnp.zeros(())
    t = bijection(kind, lower, upper)
    return jnp.sum(t.log_abs_det_jacobian(t.inv(x), x))


def in_support(kind: str, x, lower=None, upper=None):
    """A traced boolean: is every element of ``x`` inside the support?  (An empty value
    is: NumPyro's matrix checks index its first element.)"""
    if _is_empty(jnp.shape(x)):
        return jnp.asarray(True)
    if kind == "real":
        return jnp.all(jnp.isfinite(x))
    if kind in WELL_POSED:
        return _well_posed_in_support(kind, x, lower, upper)
    return jnp.all(numpyro_constraint(kind, lower, upper).check(x))


# ---- well-posed weights ---------------------------------------------------------------
#
# A DEQ layer z = relu(W z + U x + b) (or tanh) has a unique fixed point, for every
# input, when W is declared with one of these types:
#
# ``contractive<bound=c>[H, H]`` (default c = 0.9): ‖W‖₂ <= c < 1.  relu and tanh are
#     1-Lipschitz, so z -> σ(W z + ·) is a c-contraction: Banach's theorem gives one
#     fixed point and Picard/Anderson iteration converges to it.  Raw value V (H × H),
#         W = V · min(1, c / σ_max(V))            (spectral normalisation)
#     σ_max(V) is the exact largest singular value (LAPACK's SVD, values only), not a
#     power-iteration estimate: exact for every H, and its derivative dσ = u₁ᵀ dV v₁ is
#     JAX's SVD rule (no division by singular-value gaps when only values are asked,
#     so it stays finite for repeated σ).  The map is the identity on the set (σ <= c)
#     and radial outside it, so ``unconstrain(W) = W`` and ``constrain(unconstrain(W))
#     = W`` for every W in the set; a raw V outside it is shrunk onto its boundary.
#
# ``monotone<margin=m>[H]`` (default m = 0.1): I − W is strongly monotone,
#     sym(I − W) = (I − W + (I − W)ᵀ)/2 ⪰ m I  (Winston & Kolter 2020).  Raw value
#     (A, B), two H × H matrices (shape (2, H, H)),
#         W = (1 − m) I − AᵀA + B − Bᵀ,
#     so sym(I − W) = m I + AᵀA ⪰ m I for every A, B (the skew part B − Bᵀ has no
#     symmetric part).  Then F(z) = (I − W) z − (U x + b) is strongly monotone and the
#     fixed point z = relu(W z + U x + b) — the zero of F + N (N the normal cone of
#     z >= 0, relu its resolvent) — exists and is unique; forward–backward splitting
#     z <- relu(z − α F(z)) converges to it for 0 < α < 2m / ‖I − W‖².  Inverse:
#     S = sym(W), K = (W − Wᵀ)/2; A = ((1 − m) I − S)^½ (symmetric square root by eigh,
#     eigenvalues clipped at 0: exact when W is in the set), B = K / 2.
#
# Invariants (checked by tests/compiler/test_wellposed.py): σ_max(constrain(V)) <= c;
# λ_min(sym(I − constrain(A, B))) >= m; the round trips above; derivatives of the
# constrained weight against finite differences.

WELL_POSED = ("contractive", "monotone")
#: the option of each well-posed type (``contractive<bound=0.9>``, ``monotone<margin=0.1>``),
#: where the checker stores it in the ``Constraint``, and its default
WELL_POSED_OPTIONS = {"contractive": ("bound", "upper", 0.9), "monotone": ("margin", "lower", 0.1)}


def _option(kind: str, lower, upper):
    _, side, default = WELL_POSED_OPTIONS[kind]
    value = lower if side == "lower" else upper
    return default if value is None else value


def _raw_shape(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    return (2, *shape) if kind == "monotone" else shape


def spectral_norm(v):
    """σ_max(v), the largest singular value of the last two axes (exact; see above)."""
    return jnp.linalg.svd(v, compute_uv=False)[..., 0]


def _identity_like(w):
    return jnp.broadcast_to(jnp.eye(w.shape[-1], dtype=w.dtype), w.shape)


def _transpose(w):
    return jnp.swapaxes(w, -1, -2)


def _well_posed_constrain(kind: str, u, lower=None, upper=None):
    if kind == "contractive":
        bound = _option(kind, lower, upper)
        sigma = spectral_norm(u)[..., None, None]
        # min(1, c/σ) written so that σ = 0 gives 1, not 0 · inf
        return u * jnp.minimum(1.0, bound / jnp.maximum(sigma, bound))
    margin = _option(kind, lower, upper)
    a, b = u[0], u[1]
    return (1.0 - margin) * _identity_like(a) - _transpose(a) @ a + b - _transpose(b)


def _well_posed_unconstrain(kind: str, x, lower=None, upper=None):
    if kind == "contractive":
        return x
    margin = _option(kind, lower, upper)
    sym = (x + _transpose(x)) / 2
    skew = (x - _transpose(x)) / 2
    values, vectors = jnp.linalg.eigh((1.0 - margin) * _identity_like(x) - sym)
    root = (vectors * jnp.sqrt(jnp.maximum(values, 0.0))[..., None, :]) @ _transpose(vectors)
    return jnp.stack([root, skew / 2])


def _well_posed_in_support(kind: str, x, lower=None, upper=None, slack: float = 1e-9):
    """σ_max(x) <= c, or λ_min(sym(I − x)) >= m (each with ``slack`` for rounding)."""
    if kind == "contractive":
        return jnp.all(spectral_norm(x) <= _option(kind, lower, upper) * (1 + slack))
    eye = _identity_like(x)
    sym = eye - (x + _transpose(x)) / 2
    lowest = jnp.linalg.eigvalsh(sym)[..., 0]
    return jnp.all(lowest >= _option(kind, lower, upper) - slack * jnp.max(jnp.abs(sym)))
