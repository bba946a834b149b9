"""Every solver on a shared table of problems with known answers, through the language.

Each problem is a small model whose log density is ``sum(wt * z)`` for the implicit
node ``z`` (``wt`` fixed data), so the value, ``jax.grad`` and ``jax.jacfwd`` of the
log density check the solution and its implicit derivative against closed forms (or
a float64 reference solution and central finite differences where none exists).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fpl
from fpl.stdlib.solvers import reason_name

RNG = np.random.default_rng(7)
N = 4
A = RNG.normal(size=(N, N))
A = 0.9 * A / np.linalg.norm(A, 2)  # spectral norm 0.9; the map below contracts by 0.45
U = RNG.normal(size=N)
WT = RNG.normal(size=N)
THETA = np.array([0.5, 1.3, 2.0, 3.7])
X = RNG.normal(size=(8, 3))
Y = RNG.normal(size=8)

FIX = """
data n: int
data A: real[n, n]
data u: real[n]
data wt: real[n]
param c: real
let z = fix z: real[n] = 0.5 * tanh(A @ z + c * u) SOLVER
target += sum(wt * z)
"""

ROOT = """
data n: int
data wt: real[n]
param theta: real<lower=0>[n]
let z = root z: real[n] of z * z * z - theta init ones(n) SOLVER
target += sum(wt * z)
"""

ARGMIN = """
data n: int
data d: int
data X: real[n, d]
data y: real[n]
data wt: real[d]
param lam: real<lower=0>
let w = argmin w: real[d] of sum(square(X @ w - y)) + lam * dot_self(w) SOLVER
target += sum(wt * w)
"""


def fix_reference(c):
    z = np.zeros(N)
    for _ in range(200):  # contraction 0.45: 200 steps reach float64 round-off
        z = 0.5 * np.tanh(A @ z + c * U)
    return z


def ridge(lam):
    return np.linalg.solve(X.T @ X + lam * np.eye(3), X.T @ Y)


CASES = [
    ("fix", "iterate()"),
    ("fix", "iterate(damping=0.7)"),
    ("fix", "anderson()"),
    ("fix", "anderson(memory=2, mixing=0.8)"),
    ("fix", "broyden()"),
    ("fix", "newton()"),
    ("fix", "halpern()"),
    ("root", "newton()"),
    ("root", "broyden()"),
    ("root", ""),
    ("argmin", "lbfgs()"),
    ("argmin", "gradient_descent(learning_rate=0.02, max_iter=20000)"),
    # (argmin's default is lbfgs: compiling optax's zoom line search costs ~5 s)
]


def build(kind, solver):
    text = {"fix": FIX, "root": ROOT, "argmin": ARGMIN}[kind]
    model = fpl.compile(text.replace("SOLVER", f"with {solver}" if solver else ""))
    if kind == "fix":
        data = {"n": N, "A": A, "u": U, "wt": WT}
        return model, data, "c", 0.7
    if kind == "root":
        return model, {"n": N, "wt": WT}, "theta", THETA
    return model, {"n": 8, "d": 3, "X": X, "y": Y, "wt": WT[:3]}, "lam", 0.9


@pytest.mark.parametrize("kind,solver", CASES)
def test_solver_value_and_derivatives(kind, solver):
    model, data, name, p0 = build(kind, solver)
    f = jax.jit(lambda p: model.log_density({name: p}, data))
    p0 = jnp.asarray(p0, float)
    value, g = jax.value_and_grad(f)(p0)
    value = float(value)
    if kind == "fix":
        # No closed form: a float64 reference solve and central differences.  The
        # solver stops at ||f(z) - z|| <= 1e-8, so z is within 1e-8 / (1 - 0.45) of
        # the fixed point; FD with h = 1e-5 has truncation error ~h^2 |f'''| ~ 1e-10
        # plus round-off ~1e-16/h ~ 1e-11 (but the 1e-8 solve error / h enters: use
        # 1e-6 relative).
        assert value == pytest.approx(WT @ fix_reference(0.7), abs=1e-7)
        h = 1e-5
        fd = (WT @ fix_reference(0.7 + h) - WT @ fix_reference(0.7 - h)) / (2 * h)
        assert float(g) == pytest.approx(fd, rel=1e-6, abs=1e-8)
    elif kind == "root":
        # z = theta^(1/3); dz/dtheta = theta^(-2/3) / 3 (exact; tolerances are the
        # solver's 1e-8 and float64 round-off).
        assert value == pytest.approx(WT @ np.cbrt(THETA), abs=1e-7)
        np.testing.assert_allclose(g, WT * THETA ** (-2 / 3) / 3, rtol=1e-7, atol=1e-9)
    else:
        # Ridge: w = (X'X + lam I)^{-1} X'y, dw/dlam = -(X'X + lam I)^{-1} w.
        assert value == pytest.approx(WT[:3] @ ridge(0.9), abs=1e-7)
        M = X.T @ X + 0.9 * np.eye(3)
        assert float(g) == pytest.approx(-WT[:3] @ np.linalg.solve(M, ridge(0.9)), rel=1e-6)
    if solver in ("anderson()", "newton()", "gradient_descent(learning_rate=0.02, max_iter=20000)"):
        # forward mode (one solver per kind, to keep compile time down): the same JVP
        # rule, so equal to reverse mode up to round-off
        np.testing.assert_allclose(jax.jacfwd(f)(p0), g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", ["iterate", "anderson", "broyden", "newton", "halpern"])
def test_fix_solvers_report_stats(solver):
    from fpl.compiler.lower import from_constrained, run

    model, data, _, _ = build("fix", f"{solver}()")
    b = model.bind(data)
    res = run(b.program, {**b.static, **b.data}, from_constrained({"c": 0.7}))
    (stats,) = res.solver_stats.values()
    assert bool(stats["converged"]) and reason_name(stats["reason"]) == "converged"
    assert 0 < int(stats["iterations"]) <= 500
    assert float(stats["residual"]) <= 1e-8
    assert float(res.env["z.residual"]) == float(stats["residual"])


def test_anderson_beats_picard():
    from fpl.compiler.lower import from_constrained, run

    counts = {}
    for solver in ("iterate()", "anderson(delay=0)", "anderson()"):
        model, data, _, _ = build("fix", solver)
        b = model.bind(data)
        res = run(b.program, {**b.static, **b.data}, from_constrained({"c": 0.7}))
        counts[solver] = int(res.env["z.iterations"])
    assert counts["anderson(delay=0)"] < counts["iterate()"]  # acceleration from the start
    # the default starts with `delay` = 10 Picard steps: on this fast contraction (8 steps)
    # it is exactly Picard, never worse
    assert counts["anderson()"] == counts["iterate()"]


# ---- the rest of the table: unrolled route, hessian, vmap, non-convergence --------------

SLOW = pytest.mark.slow  # compiling these loops for reverse mode takes 4-6 s each
UNROLLED = [
    ("fix", "iterate(tol=1e-12, max_iter=100)"),
    pytest.param("fix", "anderson(tol=1e-12, max_iter=40)", marks=SLOW),
    pytest.param("fix", "broyden(tol=1e-12, max_iter=40)", marks=SLOW),
    ("fix", "newton(tol=1e-12, max_iter=10)"),
    ("fix", "halpern(tol=1e-12, max_iter=100)"),
    pytest.param("root", "newton(tol=1e-12, max_iter=20)", marks=SLOW),
    pytest.param("root", "broyden(tol=1e-12, max_iter=40)", marks=SLOW),
    ("argmin", "gradient_descent(learning_rate=0.069, tol=1e-12, max_iter=3000)"),
]


def closed_grad(kind):
    """d(sum(wt * z))/dparam at the table's point, from closed forms (fix: FD of a
    round-off-exact reference, see test_solver_value_and_derivatives)."""
    if kind == "fix":
        h = 1e-5
        return (WT @ fix_reference(0.7 + h) - WT @ fix_reference(0.7 - h)) / (2 * h)
    if kind == "root":
        return WT * THETA ** (-2 / 3) / 3
    M = X.T @ X + 0.9 * np.eye(3)
    return -WT[:3] @ np.linalg.solve(M, ridge(0.9))


@pytest.mark.parametrize("kind,solver", UNROLLED)
def test_unrolled_route_matches_closed_forms(kind, solver):
    # grad=unrolled differentiates through the iterations.  Run to tol=1e-12, the loop
    # derivative of a converging iteration converges to the implicit one at the rate of
    # the iterates (Gilbert 1992), so it agrees with the closed form to the accuracy of
    # the reference: rel 1e-6 (the fix reference's FD error, as above).
    model, data, name, p0 = build(kind, f"{solver} grad=unrolled")
    g = jax.jit(jax.grad(lambda p: model.log_density({name: p}, data)))(jnp.asarray(p0, float))
    np.testing.assert_allclose(g, closed_grad(kind), rtol=1e-6, atol=1e-8)


def test_unrolled_lbfgs_is_a_check_error():
    for solver in ("with lbfgs()", ""):  # lbfgs is also argmin's default
        with pytest.raises(fpl.FplError) as exc:
            fpl.compile(ARGMIN.replace("SOLVER", f"{solver} grad=unrolled"))
        assert exc.value.code == "E0206" and "unrolled" in str(exc.value)
        assert "<string>:8:" in str(exc.value)  # located at the node or its solver


# (gradient descent at the step 2 / (lambda_min + lambda_max) of this objective's Hessian)
@pytest.mark.parametrize(
    "kind,solver",
    [
        ("fix", "anderson()"),
        ("root", "newton()"),
        ("argmin", "gradient_descent(learning_rate=0.069, tol=1e-11)"),
    ],
)
def test_hessian_and_vmap(kind, solver):
    model, data, name, p0 = build(kind, solver)
    f = lambda p: model.log_density({name: p}, data)  # noqa: E731
    p0 = jnp.asarray(p0, float)
    H = np.asarray(jax.jit(jax.hessian(f))(p0))
    if kind == "fix":
        # second central difference of the reference (h = 1e-3: truncation ~h^2 ~ 1e-6,
        # round-off ~1e-16 / h^2 ~ 1e-10; the 1e-8 solve error does not enter, as the
        # reference is exact): rel 1e-4
        h = 1e-3
        r = [WT @ fix_reference(0.7 + s * h) for s in (-1, 0, 1)]
        assert float(H) == pytest.approx((r[0] - 2 * r[1] + r[2]) / h**2, rel=1e-4)
    elif kind == "root":
        # z = theta^(1/3): d2z/dtheta2 = -2/9 theta^(-5/3), diagonal (solver tol 1e-8)
        np.testing.assert_allclose(
            H, np.diag(WT * -2 / 9 * THETA ** (-5 / 3)), rtol=1e-6, atol=1e-9
        )
    else:
        # the ridge closed form differentiated twice by JAX (an independent route);
        # gradient descent stops at ||grad|| <= 1e-11, so w is exact to ~1e-11 / lambda_min
        def closed(lam):
            return WT[:3] @ jnp.linalg.solve(X.T @ X + lam * jnp.eye(3), X.T @ Y)

        assert float(H) == pytest.approx(float(jax.hessian(closed)(0.9)), rel=1e-6)
    # vmap over three points of value and gradient: each lane against its closed form
    scales = np.array([1.0, 0.8, 1.3])
    ps = jnp.asarray(np.multiply.outer(scales, np.asarray(p0)))
    values, grads = jax.jit(jax.vmap(jax.value_and_grad(f)))(ps)
    for p, v, gr in zip(np.asarray(ps), values, grads):
        if kind == "fix":  # tolerances as in test_solver_value_and_derivatives
            h = 1e-5
            fd = (WT @ fix_reference(p + h) - WT @ fix_reference(p - h)) / (2 * h)
            assert float(v) == pytest.approx(WT @ fix_reference(p), abs=1e-7)
            assert float(gr) == pytest.approx(fd, rel=1e-6, abs=1e-8)
        elif kind == "root":
            assert float(v) == pytest.approx(WT @ np.cbrt(p), abs=1e-7)
            np.testing.assert_allclose(gr, WT * p ** (-2 / 3) / 3, rtol=1e-7, atol=1e-9)
        else:
            M = X.T @ X + p * np.eye(3)
            assert float(v) == pytest.approx(WT[:3] @ ridge(p), abs=1e-7)
            assert float(gr) == pytest.approx(-WT[:3] @ np.linalg.solve(M, ridge(p)), rel=1e-6)


SOLVERS = sorted({(kind, solver.split("(")[0]) for kind, solver in CASES if solver})


@pytest.mark.parametrize("kind,solver", SOLVERS)
def test_non_convergence_is_reported(kind, solver):
    # one iteration cannot meet tol=1e-14 from these starting points: the node reports
    # converged=False, the value is NaN and the log density -inf (never a wrong number)
    from fpl.compiler.lower import from_constrained, run

    model, data, name, p0 = build(kind, f"{solver}(max_iter=1, tol=1e-14)")
    b = model.bind(data)
    res = run(b.program, {**b.static, **b.data}, from_constrained({name: p0}))
    (stats,) = res.solver_stats.values()
    assert not bool(stats["converged"]) and int(stats["iterations"]) == 1
    assert stats["reason"].dtype == np.int32
    assert reason_name(stats["reason"]) == "max_iter_reached"
    assert float(stats["residual"]) > 1e-14
    assert float(res.target) == -np.inf and int(res.solver_failures) == 1
    (z,) = [v for k, v in res.env.items() if k in ("z", "w")]
    assert np.all(np.isnan(z))


# ---- bisection, end to end ----------------------------------------------------------------

CUBE_ROOT = """
param a: real<lower=0>
let p = root p: real of p^3 - a with bisection(lower=0, upper=10, tol=1e-13)
target += p
"""


def test_bisection_from_source_with_an_implicit_gradient():
    model = fpl.compile(CUBE_ROOT)
    f = jax.jit(lambda a: model.log_density({"a": a}, {}))
    value, g = jax.value_and_grad(f)(2.0)
    # tol=1e-13 on |p^3 - a| puts p within 1e-13 / (3 p^2) ~ 2e-14 of cbrt(2)
    assert float(value) == pytest.approx(np.cbrt(2.0), abs=1e-12)
    # the implicit derivative dp/da = 1 / (3 p^2) against central differences of the
    # solves themselves: h = 1e-4 gives truncation ~h^2 |d3p/da3| / 6 ~ 1e-10 and solve
    # noise ~2e-14 / h ~ 2e-10, so rel 1e-6; and against the closed form a^(-2/3) / 3
    h = 1e-4
    fd = (float(f(2.0 + h)) - float(f(2.0 - h))) / (2 * h)
    assert float(g) == pytest.approx(fd, rel=1e-6)
    assert float(g) == pytest.approx(2.0 ** (-2 / 3) / 3, rel=1e-10)


@pytest.mark.parametrize(
    "solver,message",
    [
        ("bisection(lower=0)", "needs the option `upper`"),
        ("bisection(lower=1, upper=0)", "`lower` < `upper`"),
        ("bisection(lower=0, upper=1, max_iter=0)", "`max_iter` must be a positive integer"),
        ("bisection(lower=0, upper=1, tol=-1)", "`tol` must not be negative"),
        ("bisection(lower=0, upper=1, lower=2)", "given twice"),
        ("bisection(lowr=0, upper=1)", "did you mean `lower`"),
    ],
)
def test_bisection_options_are_checked_from_its_fields(solver, message):
    with pytest.raises(fpl.FplError) as exc:
        fpl.compile(CUBE_ROOT.replace("bisection(lower=0, upper=10, tol=1e-13)", solver))
    assert exc.value.code == "E0206" and message in str(exc.value)


def test_bisection_needs_one_unknown_and_no_unrolling():
    vector = ROOT.replace("SOLVER", "with bisection(lower=0, upper=10)")
    with pytest.raises(fpl.FplError) as exc:
        fpl.compile(vector)
    assert exc.value.code == "E0206" and "one unknown" in str(exc.value)
    with pytest.raises(fpl.FplError) as exc:
        fpl.compile(CUBE_ROOT.replace("tol=1e-13)", "tol=1e-13) grad=unrolled"))
    assert exc.value.code == "E0206" and "unrolled" in str(exc.value)
