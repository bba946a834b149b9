"""The cost of one ODE gradient: FPL's forward sensitivities against the alternatives.

Two systems, those of the two posteriordb ODE posteriors with reference draws, at their
reference posterior means:

- ``lotka_volterra`` (hudson_lynx_hare): 2 states, 4 parameters + 2 initial states,
  ``rk45`` at the model's rel 1e-5, abs 1e-3;
- ``one_comp`` (one_comp_mm_elim_abs): 1 state, 3 parameters, ``bdf`` at Stan's 1e-10.

For each, the gradient of ``L(p) = sum(w * y(ts; p))`` (fixed random ``w``) by:

- ``fpl``: ``fpl.stdlib.ode.integrate`` as it is, and with each of its two sensitivity
  routes (``fpl.stdlib.ode_solve.ROUTES``): ``fpl_coupled``, the coupled forward
  sensitivity system (one solve of ``N (1 + P)`` states, the controller testing ``y``
  alone), and ``fpl_loop``, ``P`` forward-mode tangents through the primal solve's loop
  (``vmap`` of ``jvp``: one solve);
- ``jacfwd_loop``: the previous FPL route, the primal solve plus ``jax.jacfwd`` through
  diffrax's loop (``ForwardMode``);
- ``recursive_checkpoint``, ``direct``, ``backsolve``: ``jax.grad`` through diffrax with
  its ``RecursiveCheckpointAdjoint`` (the default), ``DirectAdjoint`` and
  ``BacksolveAdjoint`` (a reverse solve of the adjoint ODE);
- ``scipy``: SciPy's ``solve_ivp`` of the same coupled sensitivity system (``RK45`` /
  ``BDF``, the same tolerances, error control on the whole coupled state; the vector
  field and its Jacobians in NumPy: an interpreted solver, Python's overhead per step).

Printed per route: compile time (first call), the warm time of one gradient (the best of
several repeats, interleaved to share the machine's load equally), the steps taken and
the largest relative difference from ``fpl``'s gradient.  Then, per posterior, the
compiled model's ``log_density_gradient`` (compile, warm time, the log density alone).

Run: ``python benchmarks/ode_gradient.py [--repeats 20] [--only lotka_volterra]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

HERE = Path(__file__).parent
POSTERIORDB = HERE.parent / "tests" / "posteriordb"


def lotka_volterra(t, y, p):
    a, b, c, d = p[0], p[1], p[2], p[3]
    return jnp.stack([(a - b * y[1]) * y[0], (-c + d * y[0]) * y[1]])


def one_comp(t, y, p):
    k_a, K_m, V_m = p[0], p[1], p[2]
    D, V = 30.0, 2.0
    dose = jnp.where(t > 0, jnp.exp(-k_a * t) * D * k_a / V, 0.0)
    return jnp.stack([dose - (V_m / V) * y[0] / (K_m + y[0])])


SYSTEMS = {
    # name: (field, method, diffrax solver, scipy method, params, y0, ts, rtol, atol,
    #        max_steps, which of y0 are differentiated)
    "lotka_volterra": dict(
        field=lotka_volterra,
        method="rk45",
        scipy="RK45",
        params=[0.5469, 0.02775, 0.8001, 0.02409],
        y0=[34.04, 5.936],
        ts=np.arange(1.0, 21.0),
        rtol=1e-5,
        atol=1e-3,
        max_steps=500,
        y0_moves=True,
    ),
    "one_comp": dict(
        field=one_comp,
        method="bdf",
        scipy="BDF",
        params=[0.761, 2.537, 0.9818],
        y0=[0.0],
        ts=np.arange(0.5, 10.01, 0.5),
        rtol=1e-10,
        atol=1e-10,
        max_steps=100_000,
        y0_moves=False,
    ),
}


def _diffrax_solve(system, adjoint, p, y0):
    import diffrax

    from fpl.stdlib.ode_solve import solver

    ts = jnp.asarray(system["ts"])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(system["field"]),
        solver(system["method"]),
        0.0,
        ts[-1],
        None,
        y0,
        args=p,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=system["rtol"], atol=system["atol"]),
        adjoint=adjoint,
        max_steps=system["max_steps"],
        throw=False,
    )
    return sol.ys, sol.stats["num_steps"]


def routes(system) -> dict[str, Callable]:
    """Each route as a function ``z -> (loss, gradient, steps)`` of ``z = (params, y0)``."""
    import diffrax

    from fpl.stdlib import ode, ode_solve

    k = len(system["params"])
    w = jnp.asarray(np.random.default_rng(0).normal(size=(len(system["ts"]), len(system["y0"]))))
    fixed_y0 = jnp.asarray(system["y0"])

    def split(z):
        return z[:k], (z[k:] if system["y0_moves"] else fixed_y0)

    def fpl_loss(z):
        p, y0 = split(z)
        ys, steps, _ = ode.integrate(
            system["method"],
            system["field"],
            y0,
            0.0,
            jnp.asarray(system["ts"]),
            p,
            rel_tol=system["rtol"],
            abs_tol=system["atol"],
            max_num_steps=system["max_steps"],
        )
        return jnp.sum(w * ys), steps

    def through(adjoint):
        def loss(z):
            p, y0 = split(z)
            ys, steps = _diffrax_solve(system, adjoint, p, y0)
            return jnp.sum(w * ys), steps

        def run(z):
            (value, steps), grad = jax.value_and_grad(loss, has_aux=True)(z)
            return value, grad, steps

        return run

    def fpl_route(z):
        (value, steps), grad = jax.value_and_grad(fpl_loss, has_aux=True)(z)
        return value, grad, steps

    def jacfwd_loop(z):
        def ys_of(z):
            p, y0 = split(z)
            return _diffrax_solve(system, diffrax.ForwardMode(), p, y0)

        ys, steps = ys_of(jax.lax.stop_gradient(z))  # the primal solve, as FPL's was
        jac = jax.jacfwd(lambda z: ys_of(z)[0])(z)
        return jnp.sum(w * ys), jnp.einsum("tn,tnp->p", w, jac), steps

    def max_steps_adjoint(cls):
        return cls()

    def fpl_with(route):  # the sensitivity route chosen while tracing
        def run(z):
            saved = dict(ode_solve.ROUTES)
            ode_solve.ROUTES[system["method"]] = route
            try:
                return fpl_route(z)
            finally:
                ode_solve.ROUTES.update(saved)

        return run

    return {
        "fpl": fpl_route,
        "fpl_coupled": fpl_with("coupled"),
        "fpl_loop": fpl_with("loop"),
        "jacfwd_loop": jacfwd_loop,
        "recursive_checkpoint": through(max_steps_adjoint(diffrax.RecursiveCheckpointAdjoint)),
        "direct": through(diffrax.DirectAdjoint()),
        "backsolve": through(diffrax.BacksolveAdjoint()),
    }


def lotka_volterra_numpy(t, y, p):
    """Lotka-Volterra's field, ∂f/∂y and ∂f/∂p in NumPy (SciPy's vector field)."""
    a, b, c, d = p
    u, v = y
    f = np.array([(a - b * v) * u, (-c + d * u) * v])
    jy = np.array([[a - b * v, -b * u], [d * v, -c + d * u]])
    jp = np.array([[u, -u * v, 0.0, 0.0], [0.0, 0.0, -v, u * v]])
    return f, jy, jp


def one_comp_numpy(t, y, p):
    """The one-compartment field, ∂f/∂y and ∂f/∂p in NumPy."""
    k_a, K_m, V_m = p
    D, V = 30.0, 2.0
    C = y[0]
    dose = np.exp(-k_a * t) * D * k_a / V if t > 0 else 0.0
    ddose = np.exp(-k_a * t) * D / V * (1 - k_a * t) if t > 0 else 0.0
    f = np.array([dose - (V_m / V) * C / (K_m + C)])
    jy = np.array([[-(V_m / V) * K_m / (K_m + C) ** 2]])
    jp = np.array([[ddose, (V_m / V) * C / (K_m + C) ** 2, -C / (V * (K_m + C))]])
    return f, jy, jp


NUMPY_FIELDS = {"lotka_volterra": lotka_volterra_numpy, "one_comp": one_comp_numpy}


def scipy_gradient(name, system, z):
    """The same gradient from SciPy's solve_ivp of the coupled sensitivity system (the
    vector field, its Jacobians and the coupling in NumPy)."""
    from scipy.integrate import solve_ivp

    k = len(system["params"])
    n = len(system["y0"])
    p = np.asarray(z[:k])
    y0 = np.asarray(z[k:]) if system["y0_moves"] else np.asarray(system["y0"])
    field = NUMPY_FIELDS[name]
    cols = k + (n if system["y0_moves"] else 0)

    def rhs(t, state):
        y, s = state[:n], state[n:].reshape(n, cols)
        f, jy, jp = field(t, y, p)
        ds = jy @ s
        ds[:, :k] += jp
        return np.concatenate([f, ds.ravel()])

    s0 = np.zeros((n, cols))
    if system["y0_moves"]:
        s0[:, k:] = np.eye(n)
    w = np.random.default_rng(0).normal(size=(len(system["ts"]), n))
    sol = solve_ivp(
        rhs,
        (0.0, system["ts"][-1]),
        np.concatenate([y0, s0.ravel()]),
        t_eval=system["ts"],
        method=system["scipy"],
        rtol=system["rtol"],
        atol=system["atol"],
    )
    states = sol.y.T
    sens = states[:, n:].reshape(-1, n, cols)
    return float(np.sum(w * states[:, :n])), np.einsum("tn,tnp->p", w, sens), sol.nfev


def bench_routes(name: str, repeats: int) -> None:
    system = SYSTEMS[name]
    z = jnp.asarray(system["params"] + (system["y0"] if system["y0_moves"] else []))
    table = {}
    for route, fn in routes(system).items():
        jitted = jax.jit(fn)
        start = time.perf_counter()
        value, grad, steps = jax.block_until_ready(jitted(z))
        table[route] = dict(fn=jitted, compile=time.perf_counter() - start, grad=grad,
                            steps=int(steps), best=np.inf)  # fmt: skip
    for _ in range(repeats):  # interleaved: every route sees the same load
        for row in table.values():
            start = time.perf_counter()
            jax.block_until_ready(row["fn"](z))
            row["best"] = min(row["best"], time.perf_counter() - start)
    scipy_time = np.inf
    for _ in range(3):  # the first call imports SciPy's solvers
        start = time.perf_counter()
        _, scipy_grad, nfev = scipy_gradient(name, system, z)
        scipy_time = min(scipy_time, time.perf_counter() - start)
    ref = np.asarray(table["fpl"]["grad"])
    print(f"\n{name}: {system['method']}, rtol {system['rtol']}, atol {system['atol']}")
    print(f"{'route':22s} {'compile s':>10s} {'grad ms':>9s} {'steps':>7s} {'max rel diff':>13s}")
    for route, row in table.items():
        diff = np.max(np.abs(np.asarray(row["grad"]) - ref) / np.maximum(np.abs(ref), 1e-300))
        print(
            f"{route:22s} {row['compile']:10.1f} {row['best'] * 1e3:9.3f} {row['steps']:7d} "
            f"{diff:13.2e}"
        )
    diff = np.max(np.abs(scipy_grad - ref) / np.abs(ref))
    print(f"{'scipy (' + system['scipy'] + ')':22s} {'-':>10s} {scipy_time * 1e3:9.1f} "
          f"{'f:' + str(nfev):>7s} {diff:13.2e}")  # fmt: skip


POSTERIORS = {
    "lotka_volterra": "hudson_lynx_hare-lotka_volterra",
    "one_comp": "one_comp_mm_elim_abs-one_comp_mm_elim_abs",
}


def bench_model(name: str, repeats: int) -> None:
    """The compiled model's log density gradient at the reference posterior means."""
    import fpl

    posterior = POSTERIORS[name]
    data = json.loads((POSTERIORDB / "data" / posterior / "data.json").read_text())
    reference = json.loads((POSTERIORDB / "data" / posterior / "reference.json").read_text())
    cm = fpl.load(POSTERIORDB / "models" / f"{posterior}.fpl").bind(data)
    means = {}
    for comp, row in reference["components"].items():
        base, _, index = comp.partition("[")
        means.setdefault(base, []).append(row["mean"])
    params = {k: np.asarray(v) if len(v) > 1 or k == "theta" else v[0] for k, v in means.items()}
    theta = cm.unconstrain({k: params[k] for k in cm.param_shapes})
    gradient = jax.jit(cm.log_density_gradient)
    density = jax.jit(cm.log_density)
    start = time.perf_counter()
    jax.block_until_ready(gradient(theta))
    compile_gradient = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(density(theta))
    compile_density = time.perf_counter() - start
    best_gradient = best_density = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(gradient(theta))
        best_gradient = min(best_gradient, time.perf_counter() - start)
        start = time.perf_counter()
        jax.block_until_ready(density(theta))
        best_density = min(best_density, time.perf_counter() - start)
    print(
        f"{posterior}: log_density_gradient compile {compile_gradient:.1f} s, "
        f"{best_gradient * 1e3:.3f} ms; log_density compile {compile_density:.1f} s, "
        f"{best_density * 1e3:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", choices=sorted(SYSTEMS))
    parser.add_argument("--no-model", action="store_true", help="skip the compiled models")
    args = parser.parse_args()
    for name in [args.only] if args.only else list(SYSTEMS):
        bench_routes(name, args.repeats)
        if not args.no_model:
            bench_model(name, args.repeats)


if __name__ == "__main__":
    main()
