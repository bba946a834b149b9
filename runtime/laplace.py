"""``Model.laplace``: the posterior mode, then a Gaussian there on the unconstrained scale.

The maths.  Let ``u`` be the params on the unconstrained scale (flattened to a vector)
and ``ℓ(u) = log p(θ(u) | y) + log |det ∂θ/∂u|`` the log density the samplers see,
the log-Jacobian of the unconstraining transform included.  Like Stan's ``laplace``
method (``jacobian=1``), the approximation is built from *this* density:

    û = argmax ℓ(u),     H = ∇²ℓ(û),     u ~ N(û, (−H)⁻¹),

and every draw ``u`` is mapped back through the constraining transforms (bounds that
depend on other params recomputed per draw), with outs and gens computed per draw.
Taking the mode with the Jacobian makes the approximation the second-order Taylor
expansion of the very density whose draws we return; for an unconstrained Gaussian
posterior it is exact.

The mode is found by optax's L-BFGS with a zoom (strong-Wolfe) line search, the whole
loop one compiled ``lax.while_loop``, from a point found like the sampler's inits, to a
relative gradient tolerance ``max |∇ℓ| <= tol * max(1, |ℓ|)``.  The Hessian is
forward-over-reverse (``jacfwd(grad(ℓ))``); through implicit nodes this differentiates
the implicit-function-theorem JVP rule of the reverse pass, so it is exact there too.
Checked invariants (each a coded error, E0407): the search converged, the density and
Hessian at the mode are finite, and ``−H`` is positive definite (its Cholesky factor
exists).  Weights are held at their given or initial values, as the sampler holds them.

How good the Gaussian is: each draw's log importance ratio ``ℓ(u) − log q(u)`` (``lp``
minus ``lp_approx``, both kept in ``sample_stats``) goes to PSIS (``fpl.runtime.psis``),
and its Pareto k̂ is stored as ``attrs["pareto_k"]``.  k̂ > 0.7 means the posterior's
tails are far heavier than the Gaussian's (eight schools' ``tau``, say): the draws
misrepresent the posterior, and ``fpl laplace`` prints a warning (W0403) suggesting
``fpl sample``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpl.compiler.compiled import CompiledModel
from fpl.dsl.diagnostics import Diagnostic, error
from fpl.runtime.fit import Fit
from fpl.runtime.methods import Method, Settings, option
from fpl.runtime.psis import K_THRESHOLD, pareto_k
from fpl.stdlib.lazy import LazyModule

# JAX loads when the method runs, not when the CLI lists its settings
jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
optax = LazyModule("optax")

DEFAULT_TOL = 1e-8  # relative gradient tolerance (Stan's tol_rel_grad is ~2e-9)
DEFAULT_MAX_ITER = 2000


@dataclass(frozen=True)
class LaplaceSettings(Settings):
    draws: int = option(4000, "draws from the approximation", min=1)
    seed: int | None = option(None, "random seed", min=0)
    init: Any = option(None, "initial param values for the mode search", file=True)
    weights: Any = option(None, "weight values by name (unset: their init)", file=True)
    tol: float = option(DEFAULT_TOL, "relative gradient tolerance", gt=0)
    max_iter: int = option(DEFAULT_MAX_ITER, "L-BFGS iterations at most", min=1)


@dataclass(frozen=True)
class LaplaceApproximation:
    """``N(mode, covariance)`` on the flattened unconstrained scale.

    ``names[i]`` is the scalar component (``beta[2]``, 1-based) of flat index ``i``;
    ``unravel`` maps a flat vector back to ``{param: unconstrained array}``."""

    mode: np.ndarray
    hessian: np.ndarray  # ∇²ℓ at the mode (negative definite)
    covariance: np.ndarray  # (−H)⁻¹
    cholesky: np.ndarray  # lower L with L Lᵀ = −H
    log_density: float  # ℓ at the mode, Jacobian included
    iterations: int
    gradient_norm: float  # max |∇ℓ| at the mode
    names: list[str]
    unravel: Any


def laplace_approximation(
    model,
    data=None,
    *,
    seed: int = 0,
    init: Mapping[str, Any] | None = None,
    weights: Mapping[str, Any] | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> LaplaceApproximation:
    """The mode and covariance alone (no draws): the Gaussian :func:`laplace` draws from."""
    from fpl.runtime.sampling import _float64

    with _float64():
        cm = model.bind(data, weights)
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        return approximate(cm, args, seed=seed, init=init, tol=tol, max_iter=max_iter)


def approximate(
    cm: CompiledModel,
    args: Mapping[str, Any],
    *,
    seed: int,
    init: Mapping[str, Any] | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> LaplaceApproximation:
    """The mode and the Hessian there (call inside :func:`_float64`)."""
    from fpl.runtime.inits import find_inits

    start = find_inits(cm, args, 1, seed, init)[0]
    from jax.flatten_util import ravel_pytree

    x0, unravel = ravel_pytree(start)
    names = _component_names(start)

    def log_density(x, a):
        return cm.log_density(cm.ravel(unravel(x)), data=a)

    x, f, gnorm, iterations = _maximise(log_density, x0, args, tol, max_iter)
    x, f, gnorm, iterations = np.asarray(x), float(f), float(gnorm), int(iterations)
    if not np.isfinite(f) or not np.all(np.isfinite(x)):
        raise error(
            "E0407",
            "Laplace approximation: the mode search left the support of the posterior",
            help="give `init` values near the mode, or check priors and constraints",
        )
    if not gnorm <= tol * max(1.0, abs(f)):
        raise error(
            "E0407",
            f"Laplace approximation: no mode found in {iterations} L-BFGS iterations "
            f"(largest gradient component {gnorm:.3g})",
            help="the posterior may be improper (a param with no prior that the data do not "
            "pin down); give a prior, `init` values, or a larger `max_iter`",
        )
    hessian = np.asarray(jax.jit(jax.jacfwd(jax.grad(log_density)))(jnp.asarray(x), args))
    hessian = 0.5 * (hessian + hessian.T)  # symmetric up to rounding; make it exactly so
    _check_negative_definite(hessian, names)
    chol = np.linalg.cholesky(-hessian)
    inv_chol = np.linalg.inv(chol)
    return LaplaceApproximation(
        mode=x,
        hessian=hessian,
        covariance=inv_chol.T @ inv_chol,
        cholesky=chol,
        log_density=f,
        iterations=iterations,
        gradient_norm=gnorm,
        names=names,
        unravel=unravel,
    )


def _maximise(log_density, x0, args, tol: float, max_iter: int):
    """L-BFGS on ``-log_density`` to ``max|g| <= tol * max(1, |f|)``; one compiled loop."""
    solver = optax.lbfgs()

    @jax.jit
    def search(x0, a):
        def f(x):
            return -log_density(x, a)

        value_and_grad = optax.value_and_grad_from_state(f)

        def cond(carry):
            _, _, i, value, gnorm = carry
            converged = gnorm <= tol * jnp.maximum(1.0, jnp.abs(value))
            return (i < max_iter) & ~converged & jnp.isfinite(value)

        def body(carry):
            x, state, i, _, _ = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=f)
            x = optax.apply_updates(x, updates)
            new_value = optax.tree_utils.tree_get(state, "value")
            new_grad = optax.tree_utils.tree_get(state, "grad")
            return x, state, i + 1, new_value, jnp.max(jnp.abs(new_grad))

        value, grad = jax.value_and_grad(f)(x0)
        carry = (x0, solver.init(x0), 0, value, jnp.max(jnp.abs(grad)))
        x, _, i, value, gnorm = jax.lax.while_loop(cond, body, carry)
        return x, -value, gnorm, i

    return search(x0, args)


def _check_negative_definite(hessian: np.ndarray, names: list[str]) -> None:
    if not np.all(np.isfinite(hessian)):
        bad = sorted({names[i] for i in np.argwhere(~np.isfinite(hessian)).ravel()})
        raise error(
            "E0407",
            "Laplace approximation: the Hessian at the mode is not finite "
            f"(in {', '.join(bad[:6])})",
            help="check the model for a non-differentiable or non-converging computation there",
        )
    eigenvalues, vectors = np.linalg.eigh(-hessian)
    scale = max(1.0, float(np.max(np.abs(eigenvalues))))
    flat = eigenvalues <= 1e-12 * scale  # relative to the largest curvature: rounding level
    if not np.any(flat):
        return
    involved: list[str] = []
    for j in np.flatnonzero(flat):
        v = np.abs(vectors[:, j])
        heavy = [names[i] for i in np.flatnonzero(v >= 0.3 * v.max())]
        involved += [n for n in heavy if n not in involved]
    raise error(
        "E0407",
        "Laplace approximation: the Hessian at the mode is not negative definite "
        f"(flat or upward in {', '.join(involved[:6])}{', ...' if len(involved) > 6 else ''})",
        help="the posterior is not locally Gaussian there: the mode may be a saddle, or those "
        "params may have no prior and no data to pin them down; give priors, or use "
        "`fpl sample`",
    )


def _component_names(start: Mapping[str, Any]) -> list[str]:
    names = []
    for name in sorted(start):  # ravel_pytree flattens a dict in sorted key order
        shape = np.shape(start[name])
        if not shape:
            names.append(name)
            continue
        for index in np.ndindex(*shape):
            names.append(f"{name}[{','.join(str(i + 1) for i in index)}]")
    return names


def run(model, data, s: LaplaceSettings) -> Fit:
    """Laplace approximation: ``draws`` draws of params, outs and gens as a :class:`Fit`
    (one chain).  ``attrs`` record the method, the mode and the log density there."""
    return laplace(
        model,
        data,
        draws=s.draws,
        seed=s.seed,
        init=s.init,
        weights=s.weights,
        tol=s.tol,
        max_iter=s.max_iter,
    )


def laplace(
    model,
    data,
    *,
    draws: int,
    seed: int | None,
    init: Mapping[str, Any] | None,
    weights: Mapping[str, Any] | None,
    tol: float,
    max_iter: int,
) -> Fit:
    from fpl.runtime.draws import draws_fit, per_draw
    from fpl.runtime.sampling import _float64

    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    began = time.perf_counter()
    with _float64():
        cm = model.bind(data, weights)
        if not cm.params:
            raise error("E0403", "the model has no params", help="Laplace needs a `param`")
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        approx = approximate(cm, args, seed=seed, init=init, tol=tol, max_iter=max_iter)
        draw_key, gen_key = jax.random.split(jax.random.PRNGKey(seed))
        z = jax.random.normal(draw_key, (draws, approx.mode.size), dtype=jnp.float64)
        # x = mode + L⁻ᵀ z has covariance L⁻ᵀ L⁻¹ = (L Lᵀ)⁻¹ = (−H)⁻¹
        x = approx.mode + jax.scipy.linalg.solve_triangular(approx.cholesky.T, z.T, lower=False).T
        # the mode rides along as an extra first draw: one compiled pass constrains both
        positions = jax.vmap(approx.unravel)(jnp.concatenate([approx.mode[None], x]))
        positions = {k: np.asarray(v)[None] for k, v in positions.items()}
        values = per_draw(cm, args, positions, gen_key, unconstrained=True)
        mode = {k: v[0, 0] for k, v in values.items()}
        values = {k: v[:, 1:] for k, v in values.items()}
        lp = _log_density_at(cm, args, approx.unravel, x)
        half = np.sum(np.asarray(z) ** 2, axis=1) / 2
        lp_approx = approx.log_density - half  # the quadratic (Gaussian) approximation of lp
        # log q differs from lp_approx by a constant, which k̂ does not depend on
        khat = pareto_k(lp - lp_approx)
    return draws_fit(
        cm,
        values,
        sample_stats={"lp": lp[None], "lp_approx": lp_approx[None]},
        attrs={
            "method": "laplace",
            "seed": seed,
            "draws": draws,
            "mode": json.dumps({k: np.asarray(mode[k]).tolist() for k in model.param_names}),
            "log_density_at_mode": approx.log_density,
            "mode_iterations": approx.iterations,
            "mode_gradient_norm": approx.gradient_norm,
            # ±inf (no tail / too few draws) as text: JSON and netCDF attrs hold no inf
            "pareto_k": khat if np.isfinite(khat) else str(khat),
            "seconds": round(time.perf_counter() - began, 3),
        },
    )


def _log_density_at(cm: CompiledModel, args, unravel, x) -> np.ndarray:
    def one(xi, a):
        return cm.log_density(cm.ravel(unravel(xi)), data=a)

    return np.asarray(jax.jit(jax.vmap(one, in_axes=(0, None)))(x, args))


def headline(fit) -> str:
    khat = fit.attrs.get("pareto_k")
    shown = "" if khat is None else f", Pareto k̂ {float(khat):.2f}"
    return (
        f"mode found in {fit.attrs['mode_iterations']} L-BFGS iterations, "
        f"log density there {fit.attrs['log_density_at_mode']:.6g}{shown}\n"
    )


def unreliable(fit) -> Diagnostic | None:
    """The warning (W0403) of a fit whose Pareto k̂ exceeds ``K_THRESHOLD``, or None."""
    khat = fit.attrs.get("pareto_k")
    if khat is None or not float(khat) > K_THRESHOLD:
        return None
    khat = float(khat)
    return Diagnostic(
        "W0403",
        f"the Laplace approximation is unreliable here: Pareto k̂ = {khat:.2f} > "
        f"{K_THRESHOLD} (importance ratios of the posterior to the Gaussian)",
        help="the posterior is far from Gaussian on the unconstrained scale (heavy tails, "
        "a funnel); its draws and summaries may be badly off: use `fpl sample`",
        severity="warning",
    )


def report(model, fit, args) -> int:
    """``fpl laplace``'s output: the default (headline, summary, ``-o``), then on stderr
    the warning of an unreliable approximation (k̂ > 0.7)."""
    import sys

    from fpl.runtime.cli_methods import report as default_report

    code = default_report(METHOD, fit, args)
    warning = unreliable(fit)
    if warning is not None:
        if getattr(args, "error_format", "text") == "json":
            print(json.dumps(warning.to_json()), file=sys.stderr)
        else:
            print("\n" + warning.render(), file=sys.stderr)
    return code


METHOD = Method(
    name="laplace",
    help="Laplace approximation: the mode and a Gaussian there",
    settings=LaplaceSettings,
    run="fpl.runtime.laplace:run",
    headline=headline,
    report=report,
)
