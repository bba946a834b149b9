"""Solver entries for the implicit forms (options validated at check time).

The iteration code lives in ``fpl.compiler.implicit``; an entry here names a solver,
the implicit forms it solves and its options with their defaults."""

from __future__ import annotations

from fpl.stdlib.registry import REGISTRY

s = REGISTRY.solver
DEFAULT_SOLVER = {"fix": "anderson", "root": "newton", "argmin": "lbfgs"}
"""The solver of a node that names none (and whose body is not affine in the unknown:
those are solved directly, see ``fpl.compiler.implicit``)."""
UNROLLABLE = ("iterate", "halpern", "anderson", "broyden", "newton", "gradient_descent")
"""Solvers whose loop reverse mode can go through (``grad=unrolled``); ``lbfgs``'s zoom
line search is a while loop, which JAX cannot transpose."""
COMMON = {"tol": (float, 1e-8), "max_iter": (int, 500)}


@s("iterate", ("fix",), {**COMMON, "damping": (float, 1.0)})
def iterate():
    """Picard / Krasnosel'skii-Mann iteration z <- (1 - damping) z + damping f(z)."""
    return "iterate"


@s(
    "anderson",
    ("fix",),
    {
        **COMMON,
        "memory": (int, 20),
        "mixing": (float, 1.0),
        "regularization": (float, 1e-10),
        "delay": (int, 10),
    },
)
def anderson():
    """Anderson acceleration with `memory` past iterates, after `delay` plain Picard steps
    (cheap; a fast contraction is done by then) (at most n are used for n
    unknowns; the default 20 cuts iterations >= 3x vs `iterate` on DEQ-like maps, see
    docs/benchmarks.md); the least-squares regularisation is relative to the residual
    scale."""
    return "anderson"


@s("broyden", ("fix", "root"), {**COMMON})
def broyden():
    """Broyden's (good) quasi-Newton method on the residual."""
    return "broyden"


@s("newton", ("fix", "root"), {**COMMON, "max_iter": (int, 100)})
def newton():
    """Newton's method: dense Jacobian by forward mode for small unknowns, matrix-free
    Krylov (GMRES) for large ones."""
    return "newton"


@s("halpern", ("fix",), {**COMMON})
def halpern():
    """Halpern iteration z_{k+1} = a_k z_0 + (1 - a_k) f(z_k), a_k = 1/(k+2)."""
    return "halpern"


@s("lbfgs", ("argmin",), {**COMMON, "memory": (int, 10)})
def lbfgs():
    """L-BFGS with a zoom line search (optax)."""
    return "lbfgs"


@s(
    "gradient_descent",
    ("argmin",),
    {**COMMON, "max_iter": (int, 5000), "learning_rate": (float, 0.1)},
)
def gradient_descent():
    """Gradient descent with a fixed learning rate."""
    return "gradient_descent"
