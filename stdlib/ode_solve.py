"""The numerics of Stan's ODE solvers (``fpl.stdlib.ode`` holds their forms): diffrax
solves and their forward sensitivities.

Methods (each an adaptive embedded Runge-Kutta pair under a PI step-size controller on
the mixed error test ``|err_i| <= abs_tol + rel_tol * max(|y_i|, |y1_i|)`` in the RMS
norm):

- ``rk45``: Dormand-Prince 5(4) (``diffrax.Dopri5``), as Stan's Boost ``runge_kutta_dopri5``,
  output at ``ts`` by its dense interpolation.
- ``ckrk``: Cash-Karp 5(4), the tableau of Cash & Karp (1990) as Stan's Boost
  ``runge_kutta_cash_karp54``; it has no dense output, so (as Boost's ``integrate_times``)
  every ``ts[i]`` is a step end point.
- ``adams``: Stan runs CVODES' variable-order Adams-Moulton (non-stiff, multistep); diffrax
  has no multistep methods, so this is the other non-stiff workhorse, Tsitouras 5(4)
  (``diffrax.Tsit5``).  Same problems served, different step sequence.
- ``bdf``: Stan runs CVODES' variable-order BDF (stiff); here the L-stable ESDIRK method
  Kvaerno 5(4) (``diffrax.Kvaerno5``, Newton iterations inside each step: not diffrax's
  default chord iterations, see :func:`_kvaerno5_newton`), for stiff systems.

Failures (the ``result`` codes of ``fpl.stdlib.solvers.Result``, as an implicit node's):
``MAX_ITER_REACHED`` when ``max_num_steps`` ran out, ``STAGNATED`` when the step size
collapsed (a proposed step no longer moves ``t`` in floating point: ``h <= 16 eps |t|``),
``NONFINITE`` when the step size or a saved state became NaN/inf (the vector field
returned NaN), ``INACCURATE`` for times out of order (:func:`times_in_order`; the
solve then runs on stand-in times, as diffrax raises on unordered ones:
:func:`_safe_times`) or any other solver failure.  The compiler makes a failed solve's
value NaN (and so its log density -inf) and reports it.

Derivatives: forward sensitivities, as Stan's (CVODES forward sensitivity; Boost's coupled
system).  For ``y' = f(t, y, q)``, ``y(t0) = y0``, the sensitivity ``S = ∂y/∂(y0, q)``
(``N x P``) solves the coupled system, solved once with the state ``(y, S)``::

    S' = (∂f/∂y) S + ∂f/∂q [0 | I],      S(t0) = [I | 0]

(each column ``(∂f/∂y) s + ∂f/∂q e`` is one forward-mode JVP of ``f``, the ``P`` of them
under ``vmap``).  The times add, at an output ``y_i = y(ts_i)``::

    ∂y_i/∂ts_i = f(ts_i, y_i, q),        ∂y_i/∂t0 = -S_y0(ts_i) f(t0, y0, q).

Only the inputs whose tangents are not zero enter ``P`` (a data ``y0`` adds no columns).
The step-size controller tests the error of ``y`` alone, so the coupled solve takes the
primal solve's steps (explicit methods: the same ``y``, bit for bit; then ``S`` is exactly
the derivative of the discrete solution at fixed steps) and a log density and its
gradient see the same solution.  The solve is a ``custom_jvp`` function whose JVP rule
runs the coupled system (the primal alone runs only ``y``) and returns
``S · (ẏ0, q̇) + ...``: linear in the tangents through contractions alone, so JAX
transposes it for reverse mode (``grad`` is ``Sᵀ ȳ``: one solve of ``N (1 + P)`` states
per gradient, as Stan's), and the coupled solve is itself forward-differentiable
(``diffrax.ForwardMode``), so ``jax.hessian`` (forward over reverse) is exact to the
tolerance too.  Reverse over reverse is not supported (the solve is a while loop).  The
alternatives measured in ``benchmarks/ode_gradient.py`` (reverse mode through the loop,
diffrax's adjoints, ``jacfwd`` through the loop) are slower for the small systems of
Stan's models.

JAX and diffrax are imported lazily (``fpl check`` does not need them).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

from fpl.stdlib.lazy import jax, jnp

#: Stan's default tolerances of the ``ode_*`` forms
DEFAULT_REL_TOL = 1e-6
DEFAULT_ABS_TOL = 1e-6
#: FPL's default step budget (Stan: 1e6; see fpl.stdlib.ode)
DEFAULT_MAX_NUM_STEPS = 100_000


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
            return _kvaerno5_newton()
    raise ValueError(f"unknown ODE method {method!r}")


#: ``bdf``'s step-size controller works to the given tolerances divided by this (see
#: :func:`_kvaerno5_newton`)
STIFF_TIGHTENING = 10.0


def _kvaerno5_newton():
    """Kvaerno 5(4) whose stage equations are solved by Newton's method (the Jacobian at
    every iteration) to the step-size controller's tolerances, instead of diffrax's
    default chord iterations (the Jacobian at the stage's start).  The chord iterations
    fail to converge so often that diffrax rejects step after step and halves it: on
    Robertson's problem (``benchmarks/ode_stiff.py``) at rtol 1e-8 433 of 894 steps were
    rejected, Newton rejects 4 of 68; on one_comp_mm_elim_abs at 1e-10 169 of 378 against
    17 of 106.  Stan's systems are small (N up to tens), so a Jacobian (N forward-mode
    columns) and an LU per iteration cost little next to a rejected step.

    The halved steps had made the chord solves accurate beyond what was asked; with
    Newton the embedded error estimate is all that limits the steps, and on stiff
    systems it is optimistic: Robertson's global error at rtol 1e-8 is 2.6e-6 relative,
    where SciPy's BDF and LSODA (CVODES' kind: Stan's ``bdf``) give 3-5e-8.  So the
    controller works to the tolerances divided by :data:`STIFF_TIGHTENING`: then 8e-8
    (at 1e-6: 2e-5 against BDF's 2e-6 and LSODA's 7e-7; at 1e-10: 6e-10 against 1e-9 and
    9e-10) in 113 steps instead of the chord's 894."""
    import diffrax
    import optimistix

    return diffrax.Kvaerno5(root_finder=diffrax.with_stepsize_controller_tols(optimistix.Newton)())


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
            finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((y1, y_error))]
            nan_field = ~functools.reduce(jnp.logical_and, finite)
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
    """Stan's condition on the times: all finite, ``t0 < ts[1]`` and ``ts``
    non-decreasing (repeated times allowed) (with ``numpy`` given, e.g. NumPy itself:
    computed on the host, a bool)."""
    xp = jnp if numpy is None else numpy
    ts = xp.ravel(ts)
    finite = xp.isfinite(t0) & xp.all(xp.isfinite(ts))
    ok = finite & (t0 < ts[0]) & xp.all(ts[1:] >= ts[:-1])
    return ok if numpy is None else bool(ok)


def _primal_norm(scaled_error):
    """The controller's norm of a ``(y, S)`` state: the RMS of ``y``'s scaled error alone
    (the coupled solve takes the primal solve's steps)."""
    y = scaled_error[0]
    return jnp.sqrt(jnp.mean(jnp.square(y))) if y.size else jnp.zeros((), y.dtype)


def _solve(method: str, rhs, max_steps: int, state0, t0, ts, args, rtol, atol):
    """One solve of ``state' = rhs(t, state, args)`` saved at ``ts``, the state a tuple
    whose first element is the ``y`` the step-size controller tests: ``(states (T, ...),
    steps, code)``, through diffrax's ``ForwardMode`` loop (forward-mode differentiable)."""
    import diffrax

    in_order = times_in_order(t0, ts)
    t0, ts = _safe_times(in_order, t0, ts)
    if method == "bdf":
        rtol, atol = rtol / STIFF_TIGHTENING, atol / STIFF_TIGHTENING
    pid = diffrax.PIDController(rtol=rtol, atol=atol, norm=_primal_norm)
    pid = _collapse_controller()(pid)
    controller = diffrax.ClipStepSizeController(pid, step_ts=ts) if method == "ckrk" else pid
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        solver(method),
        t0,
        ts[-1],
        None,
        state0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        adjoint=diffrax.ForwardMode(),
        max_steps=max_steps,
        throw=False,
    )
    states = sol.ys
    assert states is not None
    code = _code(sol.result, states[0], in_order)
    return states, sol.stats["num_steps"], code


#: the span of the stand-in times of a solve whose times are out of order (a few steps)
_STAND_IN_SPAN = 2.0**-10


def _safe_times(in_order, t0, ts):
    """``(t0, ts)`` where they are in order (:func:`times_in_order`), else stand-ins
    diffrax accepts: ``t0 = 0`` and ``ts`` evenly spaced over ``(0, 2^-10]``, a short
    solve from the same ``y0`` whose result the failure code (``INACCURATE``) discards.
    diffrax checks ``SaveAt(ts)`` at run time (an exception, not a result code), and
    times that params decide cannot be checked before the solve: this keeps the check a
    failed solve (-inf) instead of a crash.  Times in order pass through unchanged (the
    same solve and the same derivatives)."""
    steps = jnp.arange(1, ts.shape[0] + 1, dtype=ts.dtype) * (_STAND_IN_SPAN / max(ts.shape[0], 1))
    return jnp.where(in_order, t0, 0.0), jnp.where(in_order, ts, steps)


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
    inexact = tuple(bool(jnp.issubdtype(v.dtype, jnp.inexact)) for v in leaves)
    floats = [v for v, f in zip(leaves, inexact) if f]
    ints = [v for v, f in zip(leaves, inexact) if not f]
    problem = _Problem(method, field, max_num_steps, tree, inexact)
    problem.read = _read_leaves(problem, floats, ints)
    tols = jax.lax.stop_gradient((jnp.asarray(rel_tol, dt), jnp.asarray(abs_tol, dt)))
    ys, steps, code = problem.solution(floats, ints, tols)
    ok = jax.lax.stop_gradient(code == 0)
    out = ys * jnp.where(ok, 1.0, jnp.nan).astype(dt)
    return jnp.reshape(out, (-1, *shape)) if n else out, steps.astype(jnp.int32), code


#: How each method's sensitivities are computed: ``coupled`` (the coupled system, solved
#: once) or ``loop`` (forward mode through the primal solve's loop); the faster of the
#: two by benchmarks/ode_gradient.py.
ROUTES = {"rk45": "coupled", "ckrk": "coupled", "adams": "coupled", "bdf": "loop"}


class _Problem:
    """One ODE call's static parts (method, vector field, step budget, how its operands
    are arranged) and its solution as a ``custom_jvp`` function of the operands."""

    def __init__(self, method, field, max_steps, tree, inexact):
        self.method, self.field, self.max_steps = method, field, max_steps
        self.tree, self.inexact = tree, inexact
        #: per float leaf, whether the solution can depend on it (see _read_leaves)
        self.read = (True,) * sum(inexact)
        self.solution = jax.custom_jvp(self._primal)
        self.solution.defjvp(self._jvp, symbolic_zeros=True)

    def operands(self, floats, ints):
        """``(y0, t0, ts, args)`` from the float and integer leaves."""
        fi, ii = iter(floats), iter(ints)
        return jax.tree.unflatten(self.tree, [next(fi) if f else next(ii) for f in self.inexact])

    def _primal(self, floats, ints, tols):
        y0, t0, ts, args = self.operands(floats, ints)

        def rhs(t, state, a):
            return (self.field(t, state[0], a),)

        states, steps, code = _solve(self.method, rhs, self.max_steps, (y0,), t0, ts, args, *tols)
        return states[0], steps, code

    def _jvp(self, primals, tangents):
        floats, ints, tols = primals
        dfloats = list(tangents[0])
        moving = [i for i, d in enumerate(dfloats) if not _is_zero(d) and self.read[i]]
        if not moving:
            ys, steps, code = self._primal(floats, ints, tols)
            return (ys, steps, code), (jnp.zeros_like(ys), _no_tangent(steps), _no_tangent(code))
        # float leaf k: 0 is y0, 1 is t0, 2 is ts, then the float leaves of args
        first_arg = sum(self.inexact[:3])
        route = self._coupled if ROUTES[self.method] == "coupled" else self._through_loop
        ys, sens, steps, code, at = route(floats, ints, tols, moving, first_arg)
        dys = jnp.zeros_like(ys)
        columns = 0
        if 0 in moving or 1 in moving:
            s_y0 = sens[..., : ys.shape[-1]]
            columns = ys.shape[-1]
            if 0 in moving:
                dys = dys + s_y0 @ dfloats[0]
            if 1 in moving:  # ∂y_i/∂t0 = -S_y0(ts_i) f(t0, y0)
                dys = dys - (s_y0 @ at["f0"]) * dfloats[1]
        for k in (k for k in moving if k >= first_arg):
            d = jnp.ravel(dfloats[k])
            dys = dys + sens[..., columns : columns + d.size] @ d
            columns += d.size
        if 2 in moving:  # ∂y_i/∂ts_i = f(ts_i, y_i)
            dys = dys + at["fs"] * dfloats[2][:, None]
        return (ys, steps, code), (dys, _no_tangent(steps), _no_tangent(code))

    def _through_loop(self, floats, ints, tols, moving, first_arg):
        """As :meth:`_coupled`, by forward mode through the primal solve's loop: ``P``
        tangents of one solve (``vmap`` of ``jvp``; the primal is computed once)."""
        y0, t0, ts, _ = self.operands(floats, ints)
        field_of, q_flat = self._field_of(floats, ints, moving, first_arg)
        n, m = y0.shape[0], q_flat.shape[0]
        k_y0 = n if (0 in moving or 1 in moving) else 0

        def solve_of(y0_, q_):
            def rhs(t, state, q):
                return (field_of(t, state[0], q),)

            states, steps, code = _solve(
                self.method, rhs, self.max_steps, (y0_,), t0, ts, q_, *tols
            )
            return states[0], (steps, code)

        if not k_y0 + m:  # only the output times move: no sensitivities to solve for
            ys, steps, code = self._primal(floats, ints, tols)
            sens = jnp.zeros((*ys.shape, 0), ys.dtype)
            return ys, sens, steps, code, self._times(field_of, moving, t0, y0, ts, ys, q_flat)
        # columns: [∂/∂y0 (if y0 or t0 moves) | ∂/∂q]; each column's (ẏ0, q̇)
        basis_y0 = jnp.eye(k_y0 + m, n, dtype=y0.dtype) * (jnp.arange(k_y0 + m) < k_y0)[:, None]
        basis_q = jnp.eye(k_y0 + m, m, -k_y0, dtype=y0.dtype)

        def column(dy0, dq):
            return jax.jvp(solve_of, (y0, q_flat), (dy0, dq), has_aux=True)

        ys, sens, (steps, code) = jax.vmap(column, out_axes=(None, -1, None))(basis_y0, basis_q)
        return ys, sens, steps, code, self._times(field_of, moving, t0, y0, ts, ys, q_flat)

    def _field_of(self, floats, ints, moving, first_arg):
        """The vector field as a function ``(t, y, q)`` of the moving args' leaves raveled
        into one vector ``q``, and that vector."""
        qs = [floats[k] for k in moving if k >= first_arg]
        dtype = floats[0].dtype
        q_flat = jnp.concatenate([jnp.ravel(q) for q in qs]) if qs else jnp.zeros((0,), dtype)
        starts = [0, *itertools.accumulate(q.size for q in qs)]

        def field_of(t, y, q_flat):
            full = list(floats)
            for k, q, start in zip((k for k in moving if k >= first_arg), qs, starts):
                full[k] = jnp.reshape(q_flat[start : start + q.size], q.shape)
            return self.field(t, y, self.operands(full, ints)[3])

        return field_of, q_flat

    def _times(self, field_of, moving, t0, y0, ts, ys, q_flat):
        """The vector field where the times' derivatives need it: at ``t0`` if ``t0``
        moves, at the outputs if ``ts`` moves."""
        at = {}
        if 1 in moving:
            at["f0"] = field_of(t0, y0, q_flat)
        if 2 in moving:
            at["fs"] = jax.vmap(field_of, in_axes=(0, 0, None))(ts, ys, q_flat)
        return at

    def _coupled(self, floats, ints, tols, moving, first_arg):
        """The coupled solve of ``(y, S)``: ``(ys, S (T, N, P), steps, code, at)`` with
        ``at`` the vector field at ``t0`` and at the outputs where the times move."""
        y0, t0, ts, _ = self.operands(floats, ints)
        field_of, q_flat = self._field_of(floats, ints, moving, first_arg)
        n, m = y0.shape[0], q_flat.shape[0]
        with_y0 = 0 in moving or 1 in moving
        k_y0 = n if with_y0 else 0
        # columns: [∂/∂y0 (if y0 or t0 moves) | ∂/∂q]; the q-part of each column's tangent
        basis = jnp.concatenate([jnp.zeros((k_y0, m), y0.dtype), jnp.eye(m, dtype=y0.dtype)])
        s0 = jnp.concatenate([jnp.eye(n, k_y0, dtype=y0.dtype), jnp.zeros((n, m), y0.dtype)], 1)

        def rhs(t, state, q):
            y, s = state

            def column(s_col, e_col):
                return jax.jvp(lambda y_, q_: field_of(t, y_, q_), (y, q), (s_col, e_col))

            f, ds = jax.vmap(column, in_axes=(1, 0), out_axes=(None, 1))(s, basis)
            return (f, ds)

        if k_y0 + m:
            states = (y0, s0)
            (ys, sens), steps, code = _solve(
                self.method, rhs, self.max_steps, states, t0, ts, q_flat, *tols
            )
        else:  # only the output times move: no sensitivities to solve for
            ys, steps, code = self._primal(floats, ints, tols)
            sens = jnp.zeros((*ys.shape, 0), ys.dtype)
        return ys, sens, steps, code, self._times(field_of, moving, t0, y0, ts, ys, q_flat)


def _read_leaves(problem: _Problem, floats, ints) -> tuple[bool, ...]:
    """Per float leaf, whether the solution can depend on it: ``y0``, ``t0`` and ``ts``
    always, an argument's leaf only if the vector field's program reads it (an operand
    it never reads, such as a closure name the field shadows, has zero sensitivity and
    adds no columns to the sensitivity system)."""
    from jax.extend.core import Var

    def at_start(*leaves):
        y0, t0, _, args = problem.operands(list(leaves), ints)
        return problem.field(t0, y0, args)

    program = jax.make_jaxpr(at_start)(*floats).jaxpr
    used = {v for e in program.eqns for v in e.invars if isinstance(v, Var)}
    used |= {v for v in program.outvars if isinstance(v, Var)}
    first_arg = sum(problem.inexact[:3])
    return tuple(k < first_arg or v in used for k, v in enumerate(program.invars))


def _no_tangent(x):
    import numpy as np

    return np.zeros(np.shape(x), dtype=jax.dtypes.float0)


def _is_zero(tangent) -> bool:
    from jax.custom_derivatives import SymbolicZero

    return isinstance(tangent, SymbolicZero)
