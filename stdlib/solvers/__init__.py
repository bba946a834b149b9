"""Solvers for the implicit forms ``fix``, ``root`` and ``argmin``, as objects.

A solver is a frozen dataclass whose fields are its options (the keywords of
``with name(...)`` in a model), with their defaults and bounds (``metadata`` ``min`` /
``max``), and whose class says which forms it serves (``kinds``), whether reverse mode
can go through its loop (``unrollable``, for ``grad=unrolled``) and what it needs of a
problem (``scalar``: a one-element unknown; ``affine``: a residual affine in it;
``splitting``: a ``fix`` map written as a proximal map, :class:`Split`). Its
docstring is its entry in ``fpl list solvers`` and docs/reference.md. It has one method::

    solver.solve(problem, z0) -> Solution(z, residual, iterations, result)

``problem`` (a :class:`Problem`) says the kind and carries the function on a flat
unknown ``z`` of shape ``(n,)``: the map ``f`` of ``fix``, the residual ``F`` of
``root``, the objective of ``argmin``. ``result`` is an int32 :class:`Result` code (a
JAX array, so it works under ``jit`` and ``vmap``); :func:`reason_name` and
:func:`reason_message` turn a code into words on the host.

Every family lives in its own module (``fixed_point``, ``root``, ``minimize``,
``linear``, ``splitting``) and registers its classes in ``REGISTRY.solvers`` (name ->
class); the checker validates a node's options from the fields (:func:`options`) and the compiler
instantiates the class with them and calls ``solve``: nothing dispatches on a name.

Residuals (what ``tol`` is compared with, and ``Solution.residual``): ``||f(z) - z||``
for ``fix``, ``||F(z)||`` for ``root``, ``||grad obj(z)||`` for ``argmin`` (Euclidean
norms over all entries). The test is relative+absolute, ``residual <= tol * max(1,
||z||)``, so a tolerance means the same for unknowns of any scale.

Iterative solvers run :func:`drive`: a ``lax.while_loop`` that stops when the residual
meets the tolerance, is not finite, or after ``max_iter`` steps. Under ``vmap`` the loop
runs until every lane has stopped; a lane that has stopped keeps its state (each step is
guarded by ``where``), so its answer, iteration count and result are its own. With
``problem.unrolled`` it runs ``max_iter`` steps of a ``lax.fori_loop`` instead (steps
after stopping leave the state unchanged, through the same guard), so that JAX can
differentiate through the loop (``grad=unrolled``); reverse mode then needs a solver
without inner while loops (``unrollable``).

Nothing here imports JAX at import time (``fpl check`` and ``fpl list`` read these
classes): JAX is reached through :mod:`fpl.stdlib.lazy`.
"""

from __future__ import annotations

import contextvars
import enum
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, NamedTuple

from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import REGISTRY

DENSE_MAX = 200  # unknowns up to this size use dense Jacobians; larger ones go matrix-free
KINDS = ("fix", "root", "argmin")


class Result(enum.IntEnum):
    """Why a solve stopped. ``Solution.result`` holds the code as an int32 array."""

    CONVERGED = 0
    MAX_ITER_REACHED = 1
    NONFINITE = 2
    STAGNATED = 3
    BAD_BRACKET = 4
    INDEFINITE = 5
    INACCURATE = 6
    NESTED_FAILED = 7

    @classmethod
    def message(cls, code: int | Any) -> str:
        """The human explanation of ``code`` (an int, or a scalar array from a run)."""
        try:
            return _MESSAGES[cls(int(code))]
        except ValueError:
            return f"unknown solver result code {int(code)}"

    @classmethod
    def reason(cls, code: int | Any) -> str:
        """The name of ``code`` in lower case, e.g. ``"max_iter_reached"``."""
        try:
            return cls(int(code)).name.lower()
        except ValueError:
            return f"unknown_{int(code)}"


_MESSAGES = {
    Result.CONVERGED: "converged: the residual met the tolerance",
    Result.MAX_ITER_REACHED: "did not converge within `max_iter` iterations (raise `max_iter`, "
    "loosen `tol`, or check that a solution exists near the starting point)",
    Result.NONFINITE: "the residual became NaN or infinite",
    Result.STAGNATED: "the iteration stopped making progress before the residual met the "
    "tolerance (for `bisection`: a sign change without a root, e.g. a discontinuity)",
    Result.BAD_BRACKET: "the bracket [lower, upper] does not enclose a sign change of the "
    "residual (or an end is not finite)",
    Result.INDEFINITE: "the quadratic objective's Hessian is not positive definite: it has "
    "no minimum",
    Result.INACCURATE: "the direct solve's residual is above the tolerance: the system is "
    "singular or ill-conditioned, or the residual is not affine in the unknown",
    Result.NESTED_FAILED: "an implicit node inside this node's body did not converge",
}


def reason_name(code: int | Any) -> str:
    """``Result.reason``: the name of a result code, e.g. ``"bad_bracket"``."""
    return Result.reason(code)


def reason_message(code: int | Any) -> str:
    """``Result.message``: what a result code means, in words."""
    return Result.message(code)


# ---- problems and solutions -------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """A ``fix`` map written as a proximal map of a forward map, f(z) = prox_g(G(z)):
    the fixed points are the zeros of the monotone inclusion 0 in F(z) + dg(z) with
    F(z) = z - G(z) (a fixed point of prox_g(G(.)) is exactly such a zero, whatever the
    scale of g). ``forward`` is G on flat z; ``prox(v, step)`` is prox of ``step * g``
    at v. Splitting solvers (``fpl.stdlib.solvers.splitting``) use the two separately."""

    forward: Callable[[Any], Any]
    prox: Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Constraints:
    """The constraints of ``argmin ... subject to ...`` on a flat unknown w:
    ``equality(w) = 0`` (``equalities`` entries) and ``inequality(w) >= 0``
    (``inequalities`` entries), each a function of w returning a flat vector. A
    constrained solver (``fpl.stdlib.solvers.constrained``) solves for the stacked
    y = (w, multipliers of the equalities, multipliers of the inequalities)."""

    equality: Callable[[Any], Any]
    inequality: Callable[[Any], Any]
    equalities: int
    inequalities: int


@dataclass(frozen=True)
class Problem:
    """What to solve: ``fn`` on a flat unknown ``z`` of shape ``(n,)`` is the map ``f``
    (``fix``: z = f(z)), the residual ``F`` (``root``: F(z) = 0) or the scalar objective
    (``argmin``). ``unrolled``: the caller differentiates through the solver's loop.
    ``split``: the parts of a ``fix`` map written prox_g(G(z)) (for splitting solvers;
    ``fn`` is then their composition)."""

    kind: str
    fn: Callable[[Any], Any]
    unrolled: bool = False
    split: Split | None = None
    constraints: Constraints | None = None  # argmin subject to: fn is the objective of w

    def residual(self) -> Callable[[Any], Any]:
        """The map R(z) whose zero is the solution (see :func:`residual_fn`)."""
        return residual_fn(self.kind, self.fn)


class Solution(NamedTuple):
    """A solve's answer (a pytree: it can leave ``jit`` and ``vmap``)."""

    z: Any  # (n,) the last iterate
    residual: Any  # scalar, the residual norm at z (NaN if not finite)
    iterations: Any  # int32 steps taken
    result: Any  # int32 Result code


def residual_fn(kind: str, fun: Callable) -> Callable:
    """The residual map R(z) whose zero is the solution: f(z) - z, F(z) or grad obj(z)."""
    if kind == "fix":
        return lambda z: fun(z) - z
    if kind == "root":
        return fun
    return jax.grad(fun)


def norm(x):
    return jnp.sqrt(jnp.sum(x * x))


def converged(res, z, tol):
    """``res <= tol * max(1, ||z||)`` with ``res`` finite: an iterate so large that ||z||
    overflows must not make an infinite residual pass."""
    return jnp.isfinite(res) & (res <= tol * jnp.maximum(1.0, norm(z)))


def code(result: Result):
    return jnp.asarray(int(result), jnp.int32)


def classify(res, z, tol, halted=None):
    """The Result code of a stop at residual ``res`` and iterate ``z``: converged if the
    tolerance is met, else nonfinite, else stagnated where ``halted``, else out of
    iterations (the only other reason :func:`drive` stops)."""
    why = code(Result.MAX_ITER_REACHED)
    if halted is not None:
        why = jnp.where(halted, code(Result.STAGNATED), why)
    why = jnp.where(jnp.isfinite(res), why, code(Result.NONFINITE))
    return jnp.where(converged(res, z, tol), code(Result.CONVERGED), why)


def _select(done, old, new):
    return jax.tree.map(lambda a, b: jnp.where(done, a, b), old, new)


#: Set while tracing for ``optimize(on_failure="best")`` (by
#: ``fpl.compiler.reporting.keeping_unconverged``): a solve run by :func:`drive` that does
#: not converge returns its lowest-residual iterate (and that residual) instead of its last.
KEEP_BEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fpl_solver_keep_best", default=False
)


def drive(
    step,
    state,
    z_of,
    res0,
    tol: float,
    max_iter: int,
    unrolled: bool,
    halted=None,
    keep_best: bool | None = None,
):
    """Run ``step(state, k) -> (state, residual)`` from ``state`` (residual ``res0``)
    until the residual meets ``tol``, is not finite, ``halted(state)`` holds (the solver
    can make no more progress) or ``max_iter`` steps were taken.
    Returns (state, residual, iterations, result).

    With ``keep_best`` (default: :data:`KEEP_BEST` when traced) the loop also carries the
    state of lowest finite residual seen (the start included), and a solve that does not
    converge returns that state and residual (its last state if no residual was finite);
    the result code and iteration count are
    still those of the stop.  A fixed-budget solve passes False: its answer is the K-th
    iterate by definition."""
    keep = KEEP_BEST.get() if keep_best is None else keep_best

    def stop(s, r, k):
        done = (k >= max_iter) | converged(r, z_of(s), tol) | ~jnp.isfinite(r)
        return done if halted is None else done | halted(s)

    def cond(carry):
        return ~stop(*carry[:3])

    def body(carry):
        s, r, k, best, best_r = carry
        s2, r2 = step(s, k)
        done = stop(s, r, k)  # a lane that has already stopped (under vmap) keeps its state
        s2, r2 = _select(done, s, s2), jnp.where(done, r, r2)
        if keep:
            better = jnp.isfinite(r2) & (r2 < best_r)
            best, best_r = _select(better, s2, best), jnp.where(better, r2, best_r)
        return s2, r2, jnp.where(done, k, k + 1), best, best_r

    r_start = jnp.where(jnp.isfinite(res0), res0, jnp.inf)
    carry = (state, res0, jnp.asarray(0, jnp.int32), *((state, r_start) if keep else (None, None)))
    if unrolled:  # a fixed trip count, so that reverse mode can go through the loop
        s, r, k, best, best_r = jax.lax.fori_loop(0, max_iter, lambda i, c: body(c), carry)
    else:
        s, r, k, best, best_r = jax.lax.while_loop(cond, body, carry)
    why = classify(r, z_of(s), tol, None if halted is None else halted(s))
    if keep:  # (a solve that never saw a finite residual keeps its last state)
        use = (why != code(Result.CONVERGED)) & jnp.isfinite(best_r)
        s, r = _select(use, best, s), jnp.where(use, best_r, r)
    return s, r, k, why


# ---- the protocol -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Solver:
    """A solver: its fields are its options. Subclasses set the class facts below, are
    registered with ``@REGISTRY.solver`` and implement :meth:`solve`."""

    name: ClassVar[str]  # the name a model uses: `with name(...)`
    kinds: ClassVar[tuple[str, ...]]  # the forms it serves: fix, root, argmin
    unrollable: ClassVar[bool] = True  # reverse mode can go through it (grad=unrolled)
    scalar: ClassVar[bool] = False  # it solves only one-element unknowns
    affine: ClassVar[bool] = False  # it is exact only for residuals affine in the unknown
    splitting: ClassVar[bool] = False  # it needs the map as prox_g(G(z)) (Problem.split)
    constrained: ClassVar[bool] = False  # it solves argmin subject to (Problem.constraints)
    doc: ClassVar[str] = ""  # its docstring, set at registration

    tol: float = field(default=1e-8, metadata={"min": 0.0})

    def solve(self, problem: Problem, z0) -> Solution:
        raise NotImplementedError

    def invalid(self) -> str | None:
        """Why these option values do not go together (checked before solving), or None."""
        return None


@dataclass(frozen=True, kw_only=True)
class IterativeSolver(Solver):
    """A solver that iterates at most ``max_iter`` steps."""

    max_iter: int = field(default=500, metadata={"min": 1})


@dataclass(frozen=True)
class Option:
    """One option of a solver, read from its dataclass field."""

    name: str
    type: type  # int or float
    default: Any  # MISSING: the option must be given
    min: float | None = None
    max: float | None = None

    @property
    def required(self) -> bool:
        return self.default is MISSING


def options(solver: type[Solver]) -> dict[str, Option]:
    """The options of a solver class, in field order."""
    hints = typing.get_type_hints(solver)
    out = {}
    for f in fields(solver):
        out[f.name] = Option(
            f.name, hints[f.name], f.default, f.metadata.get("min"), f.metadata.get("max")
        )
    return out


def defaults_text(solver: type[Solver]) -> str:
    """``tol=1e-08, max_iter=500`` (a required option is shown bare)."""
    return ", ".join(
        o.name if o.required else f"{o.name}={o.default!r}" for o in options(solver).values()
    )


DEFAULT_SOLVER = {"fix": "anderson", "root": "newton", "argmin": "lbfgs"}
"""The solver of a node that names none (and whose body is not affine in the unknown)."""
AFFINE_SOLVER = "linear"
"""The solver of a node that names none and whose residual is affine in the unknown
(``fpl.compiler.implicit.direct`` decides that on the IR)."""


CONSTRAINED_SOLVER = "augmented_lagrangian"
"""The solver of an ``argmin ... subject to ...`` that names none."""


def default_solver(kind: str, affine: bool = False) -> str:
    return AFFINE_SOLVER if affine else DEFAULT_SOLVER[kind]


# the families register themselves (they import the protocol above)
from fpl.stdlib.solvers import (  # noqa: E402, F401
    constrained,
    fixed_point,
    linear,
    minimize,
    root,
    splitting,
)

UNROLLABLE = tuple(n for n, s in REGISTRY.solvers.items() if s.unrollable)
"""Solvers reverse mode can go through (``grad=unrolled``), from their class facts."""

__all__ = [
    "AFFINE_SOLVER",
    "CONSTRAINED_SOLVER",
    "Constraints",
    "DEFAULT_SOLVER",
    "DENSE_MAX",
    "IterativeSolver",
    "Option",
    "Problem",
    "Result",
    "Solution",
    "Solver",
    "Split",
    "UNROLLABLE",
    "default_solver",
    "defaults_text",
    "drive",
    "options",
    "reason_message",
    "reason_name",
    "residual_fn",
]
