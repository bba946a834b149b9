"""Stan's ODE solvers (``ode_rk45``, ``ode_bdf``, ``ode_adams``, ``ode_ckrk``, their ``_tol``
forms and the deprecated ``integrate_ode_*``) on diffrax.

The forms, by Stan's names and argument order (:data:`FORMS`)::

    ode_<m>(f, y0, t0, ts, args...)
    ode_<m>_tol(f, y0, t0, ts, rel_tol, abs_tol, max_num_steps, args...)
    integrate_ode_<m>(f, y0, t0, ts, theta, x_r, x_i [, rel_tol, abs_tol, max_num_steps])

``f(t, y, args...)`` returns dy/dt (``real[N]``, as ``y``); the result is ``real[T, N]``,
row ``i`` the state at ``ts[i]`` (Stan's ``array[T] vector[N]`` of ``ode_*`` and
``array[T, N] real`` of ``integrate_ode_*`` are both this).  Stan requires finite times,
``t0 < ts[1]`` and ``ts`` non-decreasing; so does FPL (:func:`times_in_order`): an E0202
at binding where the data decide them (``fpl.compiler.passes.bind_checks``), a failed
solve (``inaccurate``: the log density -inf) where params decide them.

Methods (:data:`METHODS`): ``rk45`` Dormand-Prince 5(4), ``ckrk`` Cash-Karp 5(4),
``adams`` Tsitouras 5(4) (diffrax has no multistep methods), ``bdf`` Kvaerno 5(4), an
L-stable ESDIRK method for stiff systems; the solves, their failure codes and their
derivatives (forward sensitivities) are in :mod:`fpl.stdlib.ode_solve`.

Defaults (Stan's): ``rel_tol = abs_tol = 1e-6`` (``integrate_ode_bdf``/``_adams``:
``1e-10``).  ``max_num_steps`` (accepted and rejected steps) defaults to
:data:`DEFAULT_MAX_NUM_STEPS` = 1e5, not Stan's 1e6 (1e8 for the old bdf/adams): a solve
that runs out of steps is a rejected point, and a sampler meets such points, so their cost
is bounded at about 0.1 s for a small system (a ``_tol`` form sets any count).

This module is the interface the checker reads (no JAX).
"""

from __future__ import annotations

from dataclasses import dataclass

from fpl.stdlib.ode_solve import (
    DEFAULT_ABS_TOL,
    DEFAULT_MAX_NUM_STEPS,
    DEFAULT_REL_TOL,
    cash_karp_tableau,
    integrate,
    solver,
    times_in_order,
)
from fpl.stdlib.types import RuleError, Ty


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


#: an ODE solve's failure (the name of its ``fpl.stdlib.solvers.Result`` code) in the
#: ODE's words: what the runtime's errors say instead of an implicit node's residual
FAILURES: dict[str, str] = {
    "max_iter_reached": "it used up `max_num_steps` steps before the last output time",
    "stagnated": "its step size collapsed (a stiff system, or a solution that blows up)",
    "nonfinite": "its state became NaN or infinite (`f` returned NaN or inf)",
    "inaccurate": "the output times are out of order, or the solver failed",
}


def failure(form: str, reason: str = "") -> str:
    """``the ODE solve `ode_rk45_tol` failed`` (``form``: the call's name, the IR node's and
    ``NodeInfo``'s ``solver``) with, where ``reason`` (a result code's name) is given, what
    it means for an ODE."""
    why = FAILURES.get(reason)
    return f"the ODE solve `{form}` failed" + (f" ({reason}: {why})" if why else "")


def failure_help(name: str) -> str:
    """What to change where an ODE solve of the form ``name`` fails: the step budget and
    the tolerances of the call (a form without them: its ``_tol`` form, with the
    defaults), and a stiff method for a non-stiff one."""
    form = FORMS[name]
    stiff = "" if METHODS[form.method].stiff else ", or a stiff method (`ode_bdf_tol`)"
    rel_tol, _, steps = form.defaults
    if form.legacy:  # its tolerances are optional trailing arguments
        return (
            f"give this call (or raise) its trailing `max_num_steps` (default {steps:g}), or "
            f"loosen `rel_tol`/`abs_tol` (default {rel_tol:g}){stiff}"
        )
    if form.tolerances:
        return f"raise `max_num_steps` or loosen `rel_tol`/`abs_tol` in this call{stiff}"
    return (
        f"call `{form.name}_tol(f, y0, t0, ts, rel_tol, abs_tol, max_num_steps, args...)` to "
        f"raise `max_num_steps` (default {steps:g}) or loosen the tolerances (default "
        f"{rel_tol:g}){stiff}"
    )


__all__ = [
    "DEFAULT_ABS_TOL",
    "DEFAULT_MAX_NUM_STEPS",
    "DEFAULT_REL_TOL",
    "FAILURES",
    "FORMS",
    "METHODS",
    "Form",
    "Method",
    "arrange",
    "cash_karp_tableau",
    "failure",
    "failure_help",
    "integrate",
    "solver",
    "times_in_order",
    "types",
]
