"""Every registered solver on every problem it can serve, from one shared table.

The cases are the registry's solvers crossed with ``PROBLEMS``, filtered by the
solvers' class facts (``kinds``, ``scalar``, ``affine``, options without defaults that
a problem must supply), so a new solver is tested as soon as it is registered, and
``test_every_solver_has_a_case`` fails if a registered solver meets no problem (then add
a row). Each case solves one parametrised problem at three parameter values in one
``jit(vmap(...))`` call and checks each lane against the closed form, with the result
code ``converged``. Failures are checked by reason: an exhausted budget, a bad bracket,
an indefinite quadratic, a non-finite iteration, a stalled bracket.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fpl.stdlib.registry import registry
from fpl.stdlib.solvers import (
    Constraints,
    Problem,
    Result,
    Split,
    options,
    reason_message,
    reason_name,
)

RNG = np.random.default_rng(11)
N = 4
A = RNG.normal(size=(N, N))
A = 0.9 * A / np.linalg.norm(A, 2)  # spectral norm 0.9: 0.5 tanh(A z + .) contracts by 0.45
U = RNG.normal(size=N)
M = np.eye(N) * 3.0 + 0.5 * RNG.normal(size=(N, N))  # well conditioned, not symmetric
B = RNG.normal(size=N)
C = np.array([0.5, 1.3, 2.0, 3.7])
X = RNG.normal(size=(8, 3))
Y = RNG.normal(size=8)
THETAS = np.array([1.0, 0.8, 1.3])  # the parameter values of every case (one vmap)


def fix_reference(theta):
    z = np.zeros(N)
    for _ in range(200):  # contraction 0.45: 200 steps reach float64 round-off
        z = 0.5 * np.tanh(A @ z + theta * U)
    return z


def soft_threshold(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def split_reference(theta, prox):
    z = np.zeros(N)
    for _ in range(200):  # prox is nonexpansive: still a contraction by 0.45
        z = prox(0.5 * (A @ z) + theta * U)
    return z


@dataclass(frozen=True)
class Case:
    """A problem family in ``theta``: ``fn(theta)`` is the map / residual / objective on
    flat z, ``exact(theta)`` its solution. ``traits``: ``scalar`` (one unknown),
    ``affine`` (a residual affine in z), ``split`` (a fix map prox_g(G(z)) whose parts
    ``split(theta)`` gives). ``options``: values suited to the problem for the solvers
    that have such an option (a bracket, a learning rate, a budget)."""

    name: str
    kind: str
    fn: Any
    exact: Any
    z0: np.ndarray
    traits: frozenset[str] = frozenset()
    options: dict[str, Any] = field(default_factory=dict)
    split: Any = None
    constraints: Any = None  # trait `constrained`: theta -> Constraints; z = (w, λ, μ)


def simplex_reference(t):
    """argmin ½||w - t c||² subject to sum(w) == 1, w >= 0 (the projection of t c onto
    the simplex, by sorting) with its multipliers: λ = -τ (sum) and μ = τ - t c on the
    zero coordinates (stationarity w - t c - λ - μ = 0)."""
    v = t * SIMPLEX_C
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    k = np.nonzero(u - cumulative / np.arange(1, N + 1) > 0)[0][-1]
    tau = cumulative[k] / (k + 1)
    w = np.maximum(v - tau, 0.0)
    return np.concatenate([w, [-tau], np.where(w > 0, 0.0, tau - v)])


SIMPLEX_C = np.array([0.5, -1.3, 2.0, 1.1])  # at t = 0.8..1.3: two coordinates active


def simplex_constraints(t):
    return Constraints(lambda w: jnp.sum(w, keepdims=True) - 1.0, lambda w: w, 1, N)


def relu_split(t):
    return Split(lambda z: 0.5 * (A @ z) + t * U, lambda v, a: jnp.maximum(v, 0.0))


def l1_split(t):  # prox of a * 0.2 ||.||_1 is soft-thresholding at 0.2 a
    def prox(v, a):
        return jnp.sign(v) * jnp.maximum(jnp.abs(v) - 0.2 * a, 0.0)

    return Split(lambda z: 0.5 * (A @ z) + t * U, prox)


PROBLEMS = [
    Case(
        "fix_tanh",
        "fix",
        lambda t: lambda z: 0.5 * jnp.tanh(A @ z + t * U),
        fix_reference,
        np.zeros(N),
    ),
    Case(
        "fix_affine",
        "fix",
        lambda t: lambda z: 0.5 * (A @ z) + t * U,
        lambda t: np.linalg.solve(np.eye(N) - 0.5 * A, t * U),
        np.zeros(N),
        frozenset({"affine"}),
    ),
    # monotone-DEQ-like splits: F(z) = z - 0.5 A z is 0.55-strongly monotone and
    # 1.45-Lipschitz, so forward-backward's step 0.5 < 2 * 0.55 / 1.45^2 converges
    Case(
        "fix_split_relu",
        "fix",
        lambda t: lambda z: jnp.maximum(0.5 * (A @ z) + t * U, 0.0),
        lambda t: split_reference(t, lambda v: np.maximum(v, 0.0)),
        np.zeros(N),
        frozenset({"split"}),
        split=relu_split,
    ),
    Case(
        "fix_split_l1",
        "fix",
        lambda t: lambda z: l1_split(t).prox(0.5 * (A @ z) + t * U, 1.0),
        lambda t: split_reference(t, lambda v: soft_threshold(v, 0.2)),
        np.zeros(N),
        frozenset({"split"}),
        split=l1_split,
    ),
    Case(
        "root_cube",
        "root",
        lambda t: lambda z: z * z * z - t * C,
        lambda t: np.cbrt(t * C),
        np.ones(N),  # Newton from 0 would meet a singular Jacobian
    ),
    Case(
        "root_scalar_cube",
        "root",
        lambda t: lambda z: z**3 - 2.0 * t,
        lambda t: np.cbrt(np.array([2.0 * t])),
        np.ones(1),
        frozenset({"scalar"}),
        {"lower": 0.0, "upper": 10.0},
    ),
    Case(
        "root_affine",
        "root",
        lambda t: lambda z: M @ z - t * B,
        lambda t: np.linalg.solve(M, t * B),
        np.zeros(N),
        frozenset({"affine"}),
    ),
    Case(
        "argmin_ridge",
        "argmin",
        lambda t: lambda w: jnp.sum(jnp.square(X @ w - Y)) + t * jnp.dot(w, w),
        lambda t: np.linalg.solve(X.T @ X + t * np.eye(3), X.T @ Y),
        np.zeros(3),
        frozenset({"affine"}),  # its gradient is affine in w
        # below 2 / lambda_max of the Hessian, the budget test_solvers uses for it
        {"learning_rate": 0.02, "max_iter": 20000},
    ),
    Case(
        "argmin_exp",
        "argmin",
        lambda t: lambda w: jnp.sum(jnp.exp(w) - t * C * w),
        lambda t: np.log(t * C),
        np.zeros(N),
        # the Hessian diag(exp w) is at most 1.3 * 3.7 = 4.8 near the solution
        options={"learning_rate": 0.2},
    ),
    Case(
        "argmin_simplex",
        "argmin",
        lambda t: lambda w: 0.5 * jnp.sum(jnp.square(w - t * SIMPLEX_C)),
        simplex_reference,
        np.zeros(N + 1 + N),  # w, then the multipliers of sum(w) == 1 and of w >= 0
        frozenset({"constrained"}),
        constraints=simplex_constraints,
    ),
]


def fits(solver, case: Case) -> bool:
    """Whether ``solver``'s class facts let it solve ``case``."""
    required = {o.name for o in options(solver).values() if o.required}
    return (
        case.kind in solver.kinds
        and (not solver.scalar or "scalar" in case.traits)
        and (not solver.affine or "affine" in case.traits)
        and (not solver.splitting or "split" in case.traits)
        and solver.constrained == ("constrained" in case.traits)
        and required <= set(case.options)
    )


def make(solver, case: Case, **extra):
    """``solver`` with the options ``case`` suggests (those it has) and ``extra``."""
    names = set(options(solver))
    return solver(**{k: v for k, v in {**case.options, **extra}.items() if k in names})


SOLVERS = registry().solvers
CASES = [(s, c) for s in sorted(SOLVERS) for c in PROBLEMS if fits(SOLVERS[s], c)]
CASE_BY_NAME = {c.name: c for c in PROBLEMS}


def solve_batch(solver, case: Case, thetas):
    """``solver`` on ``case`` at each theta, in one ``jit(vmap(...))`` call."""

    def one(t):
        split = case.split(t) if case.split else None
        cons = case.constraints(t) if case.constraints else None
        problem = Problem(case.kind, case.fn(t), split=split, constraints=cons)
        return solver.solve(problem, jnp.asarray(case.z0, float))

    return jax.jit(jax.vmap(one))(jnp.asarray(thetas, float))


def test_every_solver_has_a_case():
    covered = {s for s, _ in CASES}
    missing = sorted(set(SOLVERS) - covered)
    assert not missing, f"solvers without a conformance case (add a PROBLEMS row): {missing}"


def test_every_kind_of_each_solver_is_exercised():
    for name, solver in SOLVERS.items():
        kinds = {c.kind for s, c in CASES if s == name}
        assert kinds == set(solver.kinds), f"{name}: no case for {set(solver.kinds) - kinds}"


@pytest.mark.parametrize("name,case", [(s, c.name) for s, c in CASES])
def test_solver_solves_the_problem(name, case):
    case = CASE_BY_NAME[case]
    solver = make(SOLVERS[name], case)
    sol = solve_batch(solver, case, THETAS)
    assert sol.z.shape == (len(THETAS), case.z0.shape[0])
    assert sol.result.dtype == jnp.int32
    for lane, t in enumerate(THETAS):
        why = int(sol.result[lane])
        assert why == Result.CONVERGED, f"lane {lane}: {reason_name(why)}"
        z = np.asarray(sol.z[lane])
        # the stopping test itself: residual <= tol * max(1, ||z||) (tol 1e-8 default)
        assert float(sol.residual[lane]) <= solver.tol * max(1.0, np.linalg.norm(z))
        assert 0 < int(sol.iterations[lane]) <= getattr(solver, "max_iter", 1)
        # residual 1e-8 and these problems' inverse Jacobians (<= 1 / (1 - 0.45) for
        # fix_tanh, ~1 elsewhere; 1 / lambda_min for the ridge, whose X'X + 0.8 I has
        # lambda_min > 0.8) bound the error of z by ~2e-8: 1e-7 absolute
        np.testing.assert_allclose(z, case.exact(t), rtol=0, atol=1e-7)


# ---- failures, by reason ------------------------------------------------------------------


def iterative(name):
    return "max_iter" in options(SOLVERS[name])


FIRST_CASE = {s: c for s, c in reversed(CASES)}  # each solver's first case


@pytest.mark.parametrize("name", [s for s in sorted(SOLVERS) if iterative(s)])
def test_an_exhausted_budget_is_max_iter_reached(name):
    # one step cannot meet tol=1e-14 from these starting points
    case = FIRST_CASE[name]
    solver = make(SOLVERS[name], case, max_iter=1, tol=1e-14)
    sol = solve_batch(solver, case, THETAS[:2])
    assert [reason_name(r) for r in sol.result] == ["max_iter_reached"] * 2
    np.testing.assert_array_equal(sol.iterations, 1)
    assert np.all(np.asarray(sol.residual) > 1e-14)


def scalar_root(fn, **opts):
    solver = SOLVERS["bisection"](**opts)
    return solver.solve(Problem("root", fn), jnp.ones(1))


def test_bisection_reasons_under_vmap():
    # z^3 - t has its root cbrt(t) in [0, 10] for t = 2 but not for t = -2 (no sign change)
    def at(t):
        return scalar_root(lambda z: z**3 - t, lower=0.0, upper=10.0)

    sol = jax.jit(jax.vmap(at))(jnp.array([2.0, -2.0]))
    assert [reason_name(r) for r in sol.result] == ["converged", "bad_bracket"]
    assert int(sol.iterations[1]) == 0
    assert float(sol.z[0, 0]) == pytest.approx(np.cbrt(2.0), abs=1e-8)

    # a sign change without a root (a jump at 0.3, |F| = 1 everywhere): the bracket
    # shrinks to adjacent floats around 0.3 in ~55 halvings, and the solve says so
    # instead of running on to max_iter
    def step(z):
        return jnp.where(z < 0.3, -1.0, 1.0)

    sol = jax.jit(lambda: scalar_root(step, lower=0.0, upper=3.0))()
    assert reason_name(sol.result) == "stagnated"
    assert 40 < int(sol.iterations) < 70
    # an end that is a root is the answer at once
    sol = scalar_root(lambda z: z - 3.0, lower=3.0, upper=5.0)
    assert reason_name(sol.result) == "converged" and float(sol.z[0]) == 3.0


def test_bisection_checks_its_bracket_before_solving():
    assert SOLVERS["bisection"](lower=1.0, upper=0.0).invalid() is not None
    assert SOLVERS["bisection"](lower=0.0, upper=1.0).invalid() is None


def test_linear_reports_an_indefinite_quadratic_and_an_inaccurate_solve():
    solver = SOLVERS["linear"]()
    # a concave quadratic has a stationary point but no minimum
    sol = solver.solve(Problem("argmin", lambda w: -jnp.dot(w, w) + w[0]), jnp.zeros(2))
    assert reason_name(sol.result) == "indefinite" and np.isnan(float(sol.residual))
    # a body that is not affine: the direct solve's measured residual exposes it
    sol = solver.solve(Problem("root", lambda z: z * z * z - 2.0 + z), jnp.zeros(1))
    assert reason_name(sol.result) == "inaccurate"


def test_a_diverging_iteration_is_nonfinite():
    # z <- z^2 + 1 from 1 overflows to inf within ~10 steps
    sol = SOLVERS["iterate"]().solve(Problem("fix", lambda z: z * z + 1.0), jnp.ones(1))
    assert reason_name(sol.result) == "nonfinite"
    assert int(sol.iterations) < 20


def test_every_result_code_has_a_name_and_a_message():
    messages = {reason_message(r) for r in Result}
    assert len(messages) == len(Result)  # one distinct explanation per code
    for r in Result:
        assert reason_name(r) == r.name.lower() == Result.reason(jnp.int32(r))
        assert Result.message(np.int32(r)) == reason_message(int(r))
    assert "unknown" in reason_message(99) and reason_name(99) == "unknown_99"


def test_solvers_are_frozen_typed_dataclasses():
    for name, solver in SOLVERS.items():
        assert dataclasses.is_dataclass(solver) and solver.name == name
        assert solver.doc, f"{name} has no docstring"
        instance = make(solver, FIRST_CASE[name])
        with pytest.raises(dataclasses.FrozenInstanceError):
            instance.tol = 1.0
        for o in options(solver).values():
            assert o.type in (int, float), (name, o.name)
            if not o.required:
                assert isinstance(o.default, o.type), (name, o.name)
                assert o.min is None or o.default >= o.min, (name, o.name)
