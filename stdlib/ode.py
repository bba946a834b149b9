"""Stan's ODE solvers (``ode_rk45``, ``ode_bdf``, ``ode_adams``, ``ode_ckrk``, their ``_tol``
forms and the deprecated ``integrate_ode_*``) on diffrax.

The forms, by Stan's names and argument order (:data:`FORMS`)::

    ode_<m>(f, y0, t0, ts, args...)
    ode_<m>_tol(f, y0, t0, ts, rel_tol, abs_tol, max_num_steps, args...)
    integrate_ode_<m>(f, y0, t0, ts, theta, x_r, x_i [, rel_tol, abs_tol, max_num_steps])

``f(t, y, args...)`` returns dy/dt (``real[N]``, as ``y``); the result is ``real[T, N]``,
row ``i`` the state at ``ts[i]`` (Stan's ``array[T] vector[N]`` of ``ode_*`` and
``array[T, N] real`` of ``integrate_ode_*`` are both this).  Stan requires ``t0 < ts[1]``
and ``ts`` non-decreasing; so does FPL (a coded error where they are data, a failed
solve where they depend on params).

Methods (:data:`METHODS`; each an adaptive embedded Runge-Kutta pair under a PI step-size
controller on the mixed error test ``|err_i| <= abs_tol + rel_tol * max(|y_i|, |y1_i|)``
in the RMS norm):

- ``rk45``: Dormand-Prince 5(4) (``diffrax.Dopri5``), as Stan's Boost ``runge_kutta_dopri5``,
  output at ``ts`` by its dense interpolation.
- ``ckrk``: Cash-Karp 5(4), the tableau of Cash & Karp (1990) as Stan's Boost
  ``runge_kutta_cash_karp54``; it has no dense output, so (as Boost's ``integrate_times``)
  every ``ts[i]`` is a step end point.
- ``adams``: Stan runs CVODES' variable-order Adams-Moulton (non-stiff, multistep); diffrax
  has no multistep methods, so this is the other non-stiff workhorse, Tsitouras 5(4)
  (``diffrax.Tsit5``).  Same problems served, different step sequence.
- ``bdf``: Stan runs CVODES' variable-order BDF (stiff); here the L-stable ESDIRK method
  Kvaerno 5(4) (``diffrax.Kvaerno5``, Newton/chord iterations inside each step), for stiff
  systems.

Defaults (Stan's): ``rel_tol = abs_tol = 1e-6`` (``integrate_ode_bdf``/``_adams``:
``1e-10``).  ``max_num_steps`` (accepted and rejected steps) defaults to
:data:`DEFAULT_MAX_NUM_STEPS` = 1e5, not Stan's 1e6 (1e8 for the old bdf/adams): a solve
that runs out of steps is a rejected point, and a sampler meets such points, so their cost
is bounded at about 0.1 s for a small system (a ``_tol`` form sets any count).

Failures (the ``result`` codes of ``fpl.stdlib.solvers.Result``, as an implicit node's):
``MAX_ITER_REACHED`` when ``max_num_steps`` ran out, ``STAGNATED`` when the step size
collapsed (a proposed step no longer moves ``t`` in floating point: ``h <= 16 eps |t|``),
``NONFINITE`` when the step size or a saved state became NaN/inf (the vector field
returned NaN), ``INACCURATE`` for times out of order or any other solver failure.  The
compiler makes a failed solve's value NaN (and so its log density -inf) and reports it.

Derivatives: forward sensitivities, as Stan's ``ode_*`` (CVODES forward sensitivity;
Boost with coupled sensitivity equations).  The solve is wrapped in a ``custom_jvp``
identity whose JVP rule computes the Jacobian ``J = ∂ys/∂p`` of the discrete solution
with respect to the inputs ``p`` whose tangents are not zero (``jax.jacfwd`` through the
solver loop with ``diffrax.ForwardMode``: the solver run once with ``P`` tangents, the
step sizes chosen on the primal), then returns ``J · ṗ``.  The tangent is linear in ``ṗ``
through a contraction alone, so JAX transposes it for reverse mode (``grad`` is
``Jᵀ ȳ``), and ``J`` is itself differentiable in forward mode, so ``jax.hessian``
(forward over reverse) is exact too.  Reverse over reverse is not supported (``J`` comes
from a while loop).  Cost: one solve of ``N (1 + P)`` states per gradient, like Stan's.
These are the derivatives of the numerical solution, which agree with the exact
sensitivities to about the solver tolerance (checked in tests/stdlib/test_ode.py).

JAX and diffrax are imported lazily (``fpl check`` does not need them).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.types import RuleError, Ty

#: Stan's default tolerances of the ``ode_*`` forms
DEFAULT_REL_TOL = 1e-6
DEFAULT_ABS_TOL = 1e-6
#: FPL's default step budget (Stan: 1e6; see the module docstring)
DEFAULT_MAX_NUM_STEPS = 100_000


@dataclass(frozen=True)
class Method:
    """An ODE method: its Stan suffix, what runs it, and its default tolerances."""

    name: str
    runs: str  # the diffrax solver, for messages and the docs
    stiff: bool


METHODS: dict[str, Method] = {
    "rk45": Method("rk45", "Dormand-Prince 5(4) (diffrax.Dopri5)", stiff=False),
    "ckrk": Method("ckrk", "Cash-Karp 5(4), steps ending at every output time", stiff=False),
    "adams": Method("adams", "Tsitouras 5(4) (diffrax.Tsit5)", stiff=False),
    "bdf": Method("bdf", "Kvaerno 5(4), L-stable ESDIRK (diffrax.Kvaerno5)", stiff=True),
}


@dataclass(frozen=True)
class Form:
    """One of Stan's ODE functions: its method, whether it takes tolerances, and whether
    it is a deprecated ``integrate_ode_*`` (arguments ``theta, x_r, x_i`` before the
    optional tolerances, instead of tolerances before variadic arguments)."""

    name: str
    method: str
    tolerances: bool
    legacy: bool = False

    @property
    def defaults(self) -> tuple[float, float, int]:
        """Stan's default (rel_tol, abs_tol) and FPL's step budget for this form."""
        if self.legacy and self.method in ("bdf", "adams"):
            return 1e-10, 1e-10, DEFAULT_MAX_NUM_STEPS
        return DEFAULT_REL_TOL, DEFAULT_ABS_TOL, DEFAULT_MAX_NUM_STEPS

    @property
    def usage(self) -> str:
        if self.legacy:
            return f"{self.name}(f, y0, t0, ts, theta, x_r, x_i[, rel_tol, abs_tol, max_num_steps])"
        if self.tolerances:
            return f"{self.name}(f, y0, t0, ts, rel_tol, abs_tol, max_num_steps, args...)"
        return f"{self.name}(f, y0, t0, ts, args...)"


def _forms() -> dict[str, Form]:
    forms = {}
    for m in METHODS:
        forms[f"ode_{m}"] = Form(f"ode_{m}", m, tolerances=False)
        forms[f"ode_{m}_tol"] = Form(f"ode_{m}_tol", m, tolerances=True)
    for m in ("rk45", "bdf", "adams"):
        forms[f"integrate_ode_{m}"] = Form(f"integrate_ode_{m}", m, tolerances=True, legacy=True)
    return forms


#: Stan's ODE function names -> their forms
FORMS: dict[str, Form] = _forms()


def arrange(form: Form, args: list) -> tuple[list, list | None, list]:
    """Split the arguments after ``f`` into ``([y0, t0, ts], [rel_tol, abs_tol,
    max_num_steps] or None, extra args for f)`` by the form's argument order; raises
    ``ValueError`` (with the usage) if there are too few or a legacy form has a wrong
    count."""
    if len(args) < 3:
        raise ValueError(f"`{form.name}` needs at least y0, t0 and ts: `{form.usage}`")
    head, rest = list(args[:3]), list(args[3:])
    if form.legacy:
        if len(rest) not in (3, 6):
            raise ValueError(f"`{form.name}` takes 7 or 10 arguments: `{form.usage}`")
        return head, (rest[3:] or None), rest[:3]
    if form.tolerances:
        if len(rest) < 3:
            raise ValueError(f"`{form.name}` needs the tolerances: `{form.usage}`")
        return head, rest[:3], rest[3:]
    return head, None, rest


def types(form: Form, head: list[Ty], tolerances: list[Ty]) -> tuple[Ty, Ty]:
    """The state's type (``real[N]``, what ``f`` gets as ``y`` and must return) and the
    result's (``real[T, N]``) from the types of ``y0, t0, ts`` and the tolerances; raises
    ``RuleError`` where they are not Stan's (``y0`` a vector, ``t0`` a scalar, ``ts`` a
    vector, tolerances scalars)."""
    y0, t0, ts = head
    if y0.rank != 1 or y0.base == "bool":
        raise RuleError(f"`{form.name}`: the initial state y0 must be real[N], not {y0}")
    if t0.rank != 0 or t0.base == "bool":
        raise RuleError(f"`{form.name}`: the initial time t0 must be a real, not {t0}")
    if ts.rank != 1 or ts.base == "bool":
        raise RuleError(f"`{form.name}`: the output times ts must be real[T], not {ts}")
    for what, ty in zip(("rel_tol", "abs_tol", "max_num_steps"), tolerances):
        if ty.rank != 0 or ty.base == "bool":
            raise RuleError(f"`{form.name}`: `{what}` must be a number, not {ty}")
    state = Ty("real", y0.shape)
    return state, Ty("real", (ts.shape[0], y0.shape[0]))


# ---- the solvers ------------------------------------------------------------------------


def cash_karp_tableau():
    """Cash & Karp's 5(4) pair (ACM TOMS 16, 1990): ``(c, a, b5, b4)`` as NumPy arrays,
    ``a`` the strictly lower triangle as a square matrix (the order conditions are checked
    in tests/stdlib/test_ode.py)."""
    import numpy as np

    c = np.array([0.0, 1 / 5, 3 / 10, 3 / 5, 1.0, 7 / 8])
    a = np.zeros((6, 6))
    a[1, :1] = [1 / 5]
    a[2, :2] = [3 / 40, 9 / 40]
    a[3, :3] = [3 / 10, -9 / 10, 6 / 5]
    a[4, :4] = [-11 / 54, 5 / 2, -70 / 27, 35 / 27]
    a[5, :5] = [1631 / 55296, 175 / 512, 575 / 13824, 44275 / 110592, 253 / 4096]
    b5 = np.array([37 / 378, 0.0, 250 / 621, 125 / 594, 0.0, 512 / 1771])
    b4 = np.array([2825 / 27648, 0.0, 18575 / 48384, 13525 / 55296, 277 / 14336, 1 / 4])
    return c, a, b5, b4


@functools.cache
def _cash_karp():
    """The Cash-Karp pair as a diffrax explicit RK method (a class, made once)."""
    import diffrax
    from diffrax import AbstractERK, ButcherTableau, LocalLinearInterpolation

    c, a, b5, b4 = cash_karp_tableau()
    cash_karp = ButcherTableau(
        c=c[1:],
        a_lower=tuple(a[i, :i] for i in range(1, 6)),
        b_sol=b5,
        b_error=b5 - b4,
    )

    def linear(*, t0, t1, y0, y1, k):  # exact at the step ends, where the outputs are
        del k
        return LocalLinearInterpolation(t0=t0, t1=t1, y0=y0, y1=y1)

    class CashKarp(AbstractERK):
        """Cash-Karp 5(4): 6 stages, no FSAL; outputs only at step ends (``step_ts``)."""

        tableau = cash_karp
        interpolation_cls = staticmethod(linear)

        def order(self, terms):
            del terms
            return 5

    del diffrax
    return CashKarp


def solver(method: str):
    """The diffrax solver object of ``method``."""
    import diffrax

    match method:
        case "rk45":
            return diffrax.Dopri5()
        case "ckrk":
            return _cash_karp()()
        case "adams":
            return diffrax.Tsit5()
        case "bdf":
            return diffrax.Kvaerno5()
    raise ValueError(f"unknown ODE method {method!r}")


@functools.cache
def _collapse_controller():
    """A step-size controller wrapping diffrax's PI controller that fails fast: a step no
    longer moving ``t`` in floating point (``h <= 16 eps max(|t0|, |t1|)``) ends the solve
    with ``dt_min_reached`` and a non-finite step (NaN from the vector field) with
    ``nonfinite``, instead of spending the whole step budget."""
    import diffrax

    class Collapse(diffrax.AbstractAdaptiveStepSizeController):
        inner: Any
        rtol: Any
        atol: Any
        norm: Any

        def wrap(self, direction):
            return of(self.inner.wrap(direction))

        def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
            return self.inner.init(terms, t0, t1, y0, dt0, args, func, error_order)

        def adapt_step_size(self, t0, t1, y0, y1, args, y_error, error_order, state):
            out = self.inner.adapt_step_size(t0, t1, y0, y1, args, y_error, error_order, state)
            keep, next_t0, next_t1, jump, state, result = out
            h = next_t1 - next_t0
            eps = jnp.finfo(jnp.result_type(h)).eps
            tiny = jnp.abs(h) <= 16 * eps * jnp.maximum(jnp.abs(next_t0), jnp.abs(next_t1))
            # collapsing on a NaN from the vector field: say non-finite, not stagnated
            nan_field = ~jnp.all(jnp.isfinite(y1)) | ~jnp.all(jnp.isfinite(y_error))
            bad = ~jnp.isfinite(h) | (tiny & nan_field)
            ok = result == diffrax.RESULTS.successful
            result = diffrax.RESULTS.where(ok & tiny, diffrax.RESULTS.dt_min_reached, result)
            result = diffrax.RESULTS.where(ok & bad, diffrax.RESULTS.nonfinite, result)
            return keep, next_t0, next_t1, jump, state, result

    def of(inner) -> Collapse:
        return Collapse(inner, inner.rtol, inner.atol, inner.norm)

    return of


def _code(result, ys, times_ok):
    """diffrax's result (and the checks here) as an ``fpl.stdlib.solvers.Result`` code."""
    import diffrax

    from fpl.stdlib.solvers import Result

    R = diffrax.RESULTS
    code = jnp.int32(Result.INACCURATE)
    for theirs, ours in (
        (R.successful, Result.CONVERGED),
        (R.max_steps_reached, Result.MAX_ITER_REACHED),
        (R.dt_min_reached, Result.STAGNATED),
        (R.nonfinite, Result.NONFINITE),
    ):
        code = jnp.where(result == theirs, jnp.int32(ours), code)
    finite = jnp.all(jnp.isfinite(ys))
    code = jnp.where((code == Result.CONVERGED) & ~finite, jnp.int32(Result.NONFINITE), code)
    return jnp.where(times_ok, code, jnp.int32(Result.INACCURATE))


def times_in_order(t0, ts, numpy=None):
    """Stan's condition on the times: ``t0 < ts[1]`` and ``ts`` non-decreasing (with
    ``numpy`` given, e.g. NumPy itself: computed on the host, a bool)."""
    xp = jnp if numpy is None else numpy
    ts = xp.ravel(ts)
    ok = (t0 < ts[0]) & xp.all(ts[1:] >= ts[:-1])
    return ok if numpy is None else bool(ok)


def _solve(method: str, rhs, max_steps: int, y0, t0, ts, args, rtol, atol):
    """One solve: ``(ys (T, N), steps, code)``, through diffrax's ``ForwardMode`` loop
    (forward-mode differentiable; no reverse mode: see :func:`integrate`)."""
    import diffrax

    pid = _collapse_controller()(diffrax.PIDController(rtol=rtol, atol=atol))
    controller = diffrax.ClipStepSizeController(pid, step_ts=ts) if method == "ckrk" else pid
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: rhs(t, y, a)),
        solver(method),
        t0,
        ts[-1],
        None,
        y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        adjoint=diffrax.ForwardMode(),
        max_steps=max_steps,
        throw=False,
    )
    ys = sol.ys
    assert ys is not None
    code = _code(sol.result, ys, times_in_order(t0, ts))
    return ys, sol.stats["num_steps"], code


def integrate(
    method: str,
    rhs,
    y0,
    t0,
    ts,
    args: Any,
    *,
    rel_tol=DEFAULT_REL_TOL,
    abs_tol=DEFAULT_ABS_TOL,
    max_num_steps: int = DEFAULT_MAX_NUM_STEPS,
):
    """Solve ``dy/dt = rhs(t, y, args)``, ``y(t0) = y0``, at the times ``ts``.

    ``rhs`` must be a pure function of its operands (``args`` is any pytree of arrays:
    everything the vector field reads that may be traced must be in it).  Returns
    ``(ys, steps, code)``: ``ys`` of shape ``(T, N)`` (NaN, value and derivative, where
    the solve failed: ``code != 0``), the steps taken (int32) and the
    ``fpl.stdlib.solvers.Result`` code.  Differentiable in forward and reverse mode (see
    the module docstring), under ``vmap`` and ``jit``."""
    dt = jnp.result_type(float)
    y0 = jnp.asarray(y0, dt)
    shape = y0.shape
    n = math.prod(shape)

    def field(t, y, a):
        value = rhs(t, jnp.reshape(y, shape), a)
        return jnp.ravel(jnp.broadcast_to(jnp.asarray(value, dt), shape))

    leaves, tree = jax.tree.flatten((jnp.ravel(y0), jnp.asarray(t0, dt), ts, args))
    leaves = [jnp.asarray(v) for v in leaves]
    leaves[2] = jnp.ravel(jnp.asarray(leaves[2], dt))  # ts
    inexact = [bool(jnp.issubdtype(v.dtype, jnp.inexact)) for v in leaves]
    tols = (jnp.asarray(rel_tol, dt), jnp.asarray(abs_tol, dt))

    def merge(floats, ints):
        fi, ii = iter(floats), iter(ints)
        return [next(fi) if f else next(ii) for f in inexact]

    def solve(floats, ints, tols):
        y0_, t0_, ts_, args_ = jax.tree.unflatten(tree, merge(floats, ints))
        return _solve(method, field, max_num_steps, y0_, t0_, ts_, args_, *tols)

    floats = [v for v, f in zip(leaves, inexact) if f]
    ints = [v for v, f in zip(leaves, inexact) if not f]
    stopped = jax.lax.stop_gradient((floats, tols))
    ys, steps, code = solve(stopped[0], ints, stopped[1])

    @jax.custom_jvp
    def attach(ys, floats, ints, tols):
        return ys

    def attach_jvp(primals, tangents):
        ys, floats, ints, tols = primals
        dfloats = tangents[1]
        ys = attach(ys, floats, ints, tols)  # a function of the inputs again: higher orders
        moving = [i for i, d in enumerate(dfloats) if not _is_zero(d)]
        dys = jnp.zeros_like(ys)
        if moving:

            def of(active):
                full = list(floats)
                for i, v in zip(moving, active):
                    full[i] = v
                return solve(full, ints, tols)[0]

            jac = jax.jacfwd(of)([floats[i] for i in moving])
            for i, block in zip(moving, jac):
                d = jnp.asarray(dfloats[i], ys.dtype)
                dys = dys + jnp.tensordot(block, d, axes=d.ndim)
        return ys, dys

    attach.defjvp(attach_jvp, symbolic_zeros=True)
    ok = jax.lax.stop_gradient(code == 0)
    poison = jnp.where(ok, 1.0, jnp.nan).astype(dt)
    out = attach(ys, floats, ints, tols) * poison
    return jnp.reshape(out, (-1, *shape)) if n else out, steps.astype(jnp.int32), code


def _is_zero(tangent) -> bool:
    from jax.custom_derivatives import SymbolicZero

    return isinstance(tangent, SymbolicZero)


__all__ = [
    "DEFAULT_ABS_TOL",
    "DEFAULT_MAX_NUM_STEPS",
    "DEFAULT_REL_TOL",
    "FORMS",
    "METHODS",
    "Form",
    "Method",
    "arrange",
    "cash_karp_tableau",
    "integrate",
    "solver",
    "times_in_order",
    "types",
]
