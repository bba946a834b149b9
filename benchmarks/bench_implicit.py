"""Implicit-node benchmarks (issue 3, item 8): memory and time of gradients through a fixed
point, solver iteration counts, and the equilibrium-calibration model under NUTS.

Run:  python benchmarks/bench_implicit.py [--quick] [--only memory|solvers|nuts] [--seeds 1 2 3]

(a) memory: a DEQ-like fixed point z = tanh(a W z + v + c) (n = 200, ||W||_2 = 0.9); for
    max_iter k in 10 ... 1000 the gradient of sum(wt * z) w.r.t. the params (a, c) is
    compiled through FPL (``compiler.lower.run``, data passed as arguments) with
    grad=implicit and with grad=unrolled (``iterate`` runs exactly k steps in a fori_loop),
    and XLA's ``memory_analysis()`` of the compiled program is recorded.  Then the forward
    solve and its implicit gradient (tol 1e-8) are timed in the same process (median of
    interleaved repeats) and their ratio reported.
(b) solvers: iterations and time to residual 1e-8 of iterate, anderson, broyden and newton
    on the same map (and on a harder one, ||W||_2 = 0.99).
(c) nuts: examples/equilibrium_calibration.fpl (n = 20) with FPL ``model.sample`` vs
    hand-written NumPyro models whose fixed point is solved by optimistix
    (``optx.fixed_point``, ``ImplicitAdjoint``) and by ``jax.lax.custom_root``; same data,
    chains, warmup, draws and seeds; optionally vs PyStan (``solve_powell`` /
    ``solve_newton``) when it is installed.  ESS/s = min over params of bulk ESS (ArviZ,
    the same function for every side) / sampling seconds, where sampling seconds = wall
    time of the whole run minus the JAX trace/lower/compile durations reported by
    ``jax.monitoring`` during it.  For Stan: the sampling wall time (model compiled before).

Writes benchmarks/results/implicit.json (implicit_quick.json with --quick) and prints
markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

# One BLAS/LAPACK thread: on a loaded machine OpenBLAS's worker threads spin against other
# processes, and a 200 x 200 LU (the dense tangent solve) measured 50-400 ms instead of
# ~1 ms.  Set before NumPy/JAX load LAPACK; recorded in the results.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpyro  # noqa: E402

numpyro.enable_x64()

import arviz  # noqa: E402
import jax  # noqa: E402
import jax.monitoring  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import fpl  # noqa: E402
from fpl.runtime.io import write_atomic  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_core import machine  # noqa: E402

# ---- JAX compile time, for "sampling seconds excluding compilation" -------------------------

COMPILE_EVENTS: dict[str, float] = defaultdict(float)


def _on_event(event: str, duration: float, **kwargs) -> None:
    if event.startswith("/jax/core/compile/") or "compilation_cache" in event:
        COMPILE_EVENTS[event] += duration


jax.monitoring.register_event_duration_secs_listener(_on_event)


def compile_seconds() -> float:
    return sum(COMPILE_EVENTS.values())


# ---- (a) memory and time of the gradient ---------------------------------------------------

DEQ = """\
data n: int
data W: real[n, n]
data v: real[n]
data wt: real[n]
param a: real
param c: real[n]
let z = fix z: real[n] = tanh(a * (W @ z) + v + c) OPTS
out iterations = z.iterations
out residual = z.residual
target += sum(wt * z)
"""


def deq_data(n: int, norm: float, seed: int = 0) -> dict:
    """W symmetric with ||W||_2 = norm, so that its spectral radius is ``norm`` too (a random
    non-symmetric W scaled to norm 0.9 has radius ~0.45 and the iteration is easy); the
    input v is small, so tanh is near its linear regime and the contraction rate is near
    ``norm`` (the hard case for plain iteration)."""
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n, n))
    W = norm * (S + S.T) / np.linalg.norm(S + S.T, 2)
    v = 0.1 * rng.normal(size=n)
    return {"n": n, "W": W, "v": v, "wt": rng.normal(size=n) / np.sqrt(n)}


def fpl_density(options: str, data: dict):
    """(log density of (params, arrays), params, arrays) through FPL's lowering; the data
    arrays are arguments of the compiled function, not constants baked into it."""
    cm = fpl.compile(DEQ.replace("OPTS", options)).bind(data)

    def log_density(params, arrays):
        return cm.evaluate(params, constrained=True, jacobian=False, data=arrays).log_density

    def stats(params, arrays):
        values = cm.evaluate(params, constrained=True, jacobian=False, data=arrays).values
        return values["iterations"], values["residual"]

    params = {"a": jnp.asarray(1.0), "c": jnp.zeros(data["n"])}
    arrays = {k: jnp.asarray(v) for k, v in cm.data.items()}
    return log_density, stats, params, arrays


def memory_of(fn, *args) -> dict:
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    return {
        "temp_bytes": int(analysis.temp_size_in_bytes),
        "argument_bytes": int(analysis.argument_size_in_bytes),
        "output_bytes": int(analysis.output_size_in_bytes),
        "peak_bytes": int(getattr(analysis, "peak_memory_in_bytes", 0) or 0),
    }


def median_seconds(fns: dict, args, repeats: int) -> dict:
    """Median wall time of each compiled function, calls interleaved (A B A B ...)."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        jax.block_until_ready(fn(*args))  # compile and warm
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_memory(quick: bool) -> dict:
    data = deq_data(200, 0.9)
    rows = []
    for k in (10, 30, 100, 300, 1000):
        row = {"max_iter": k}
        for mode, options in (
            ("implicit", f"with iterate(max_iter={k})"),
            ("unrolled", f"with iterate(max_iter={k}) grad=unrolled"),
        ):
            log_density, _, params, arrays = fpl_density(options, data)
            row[mode] = memory_of(jax.grad(log_density), params, arrays)
        rows.append(row)
        print(f"[memory] k={k}: " + json.dumps(row), flush=True)

    timing = {}
    for n, solver in ((200, "iterate"), (200, "anderson"), (400, "iterate"), (400, "anderson")):
        # n = 200 = DENSE_MAX: dense tangent solve (LU); n = 400: matrix-free GMRES
        log_density, stats, params, arrays = fpl_density(
            f"with {solver}(tol=1e-8, max_iter=5000)", deq_data(n, 0.9)
        )
        iterations, residual = jax.jit(stats)(params, arrays)
        grad = jax.jit(jax.grad(log_density))
        g = grad(params, arrays)
        assert all(np.all(np.isfinite(np.asarray(x))) for x in g.values()), "non-finite gradient"
        fns = {"forward": jax.jit(log_density), "gradient": grad}
        t = median_seconds(fns, (params, arrays), repeats=10 if quick else 50)
        timing[f"n={n} {solver}"] = {
            "iterations": int(iterations),
            "residual": float(residual),
            "forward_ms": 1e3 * t["forward"],
            "gradient_ms": 1e3 * t["gradient"],
            "ratio": t["gradient"] / t["forward"],
        }
        print(f"[timing] n={n} {solver}: " + json.dumps(timing[f"n={n} {solver}"]), flush=True)
    return {"n": 200, "spectral_norm": 0.9, "memory": rows, "timing": timing}


# ---- (b) solvers -----------------------------------------------------------------------------


SOLVERS = (  # (label, extra options)
    ("iterate", ""),
    ("anderson memory=5", ", memory=5"),
    ("anderson (default memory)", ""),
    ("anderson memory=20", ", memory=20"),
    ("broyden", ""),
    ("newton", ""),
)


def bench_solvers(quick: bool) -> dict:
    out = {}
    for norm in (0.9, 0.99):
        data = deq_data(200, norm)
        rows = {}
        for solver, extra in SOLVERS:
            options = f"with {solver.split()[0]}(tol=1e-8, max_iter=5000{extra})"
            _, stats, params, arrays = fpl_density(options, data)
            fn = jax.jit(stats)
            t = median_seconds({"solve": fn}, (params, arrays), repeats=5 if quick else 20)
            iterations, residual = fn(params, arrays)
            rows[solver] = {
                "iterations": int(iterations),
                "residual": float(residual),
                "ms": 1e3 * t["solve"],
            }
            print(f"[solvers] norm={norm} {solver}: " + json.dumps(rows[solver]), flush=True)
        base = rows["iterate"]["iterations"]
        for r in rows.values():
            r["iterations_cut"] = base / max(r["iterations"], 1)
        out[str(norm)] = rows
    return {"n": 200, "tol": 1e-8, "maps": out}


# ---- (c) NUTS on the calibration model -------------------------------------------------------

CALIBRATION = ROOT / "examples" / "equilibrium_calibration.fpl"
TOL = 1e-8


def calibration_data() -> dict:
    return json.loads((ROOT / "examples" / "equilibrium_calibration.json").read_text())


def min_bulk_ess(draws: dict) -> float:
    """Min bulk ESS over params; draws[name] has shape (chains, draws)."""
    return min(float(arviz.ess(np.asarray(x), method="bulk")) for x in draws.values())


def _optimistix_solve(a, b, A, u):
    import optimistix as optx

    solver = optx.FixedPointIteration(rtol=TOL, atol=TOL)
    sol = optx.fixed_point(
        lambda x, args: jnp.tanh(a * (A @ x) + b * u),
        solver,
        jnp.zeros_like(u),
        max_steps=500,
        adjoint=optx.ImplicitAdjoint(),
        throw=False,
    )
    return jnp.where(sol.result == optx.RESULTS.successful, sol.value, jnp.nan)


def _custom_root_solve(a, b, A, u):
    def residual(x):
        return jnp.tanh(a * (A @ x) + b * u) - x

    def solve(f, x0):  # fixed-point iteration x <- x + f(x) to ||f(x)|| <= TOL
        def cond(c):
            x, k = c
            return (jnp.linalg.norm(f(x)) > TOL * jnp.maximum(1.0, jnp.linalg.norm(x))) & (k < 500)

        return jax.lax.while_loop(cond, lambda c: (c[0] + f(c[0]), c[1] + 1), (x0, 0))[0]

    def tangent_solve(g, y):
        return jnp.linalg.solve(jax.jacobian(g)(y), y)

    return jax.lax.custom_root(residual, jnp.zeros_like(u), solve, tangent_solve)


def numpyro_calibration(solve):
    def model(A, u, y):
        a = numpyro.sample("a", dist.LogNormal(0.0, 0.5))
        b = numpyro.sample("b", dist.Normal(0.0, 1.0))
        x = solve(a, b, A, u)
        numpyro.sample("y", dist.Normal(x, 0.1), obs=y)

    return model


def run_fpl(data, chains, warmup, draws, seed) -> dict:
    before, t0 = compile_seconds(), time.perf_counter()
    fit = fpl.load(CALIBRATION).sample(
        data, chains=chains, warmup=warmup, draws=draws, seed=seed, progress=False
    )
    wall, compiled = time.perf_counter() - t0, compile_seconds() - before
    return {
        "wall_s": wall,
        "compile_s": compiled,
        "sampling_s": wall - compiled,
        "min_ess_bulk": min_bulk_ess({p: fit.draws(p) for p in ("a", "b")}),
        "divergences": int(np.sum(fit.divergences)),
        "failed_solves": int(sum(sum(v) for v in fit.solver_failures.values())),
        "max_r_hat": max(r.r_hat for r in fit.summary().rows if r.name in ("a", "b")),
    }


def run_numpyro(solve, data, chains, warmup, draws, seed) -> dict:
    args = (jnp.asarray(data["A"]), jnp.asarray(data["u"]), jnp.asarray(data["y"]))
    before, t0 = compile_seconds(), time.perf_counter()
    mcmc = MCMC(
        NUTS(numpyro_calibration(solve)),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("diverging",))
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    wall, compiled = time.perf_counter() - t0, compile_seconds() - before
    draws_ = {p: np.asarray(samples[p]) for p in ("a", "b")}
    return {
        "wall_s": wall,
        "compile_s": compiled,
        "sampling_s": wall - compiled,
        "min_ess_bulk": min_bulk_ess(draws_),
        "divergences": int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"]))),
        "max_r_hat": max(float(arviz.rhat(x)) for x in draws_.values()),
    }


STAN_CALIBRATION = """
functions {
  vector equilibrium_residual(vector x, real a, real b, matrix A, vector u) {
    return tanh(a * (A * x) + b * u) - x;
  }
}
data {
  int<lower=1> n;
  matrix[n, n] A;
  vector[n] u;
  vector[n] y;
}
parameters {
  real<lower=0> a;
  real b;
}
model {
  vector[n] x = SOLVER(equilibrium_residual, rep_vector(0, n), a, b, A, u);
  a ~ lognormal(0, 0.5);
  b ~ normal(0, 1);
  y ~ normal(x, 0.1);
}
"""


def run_stan(solver, data, chains, warmup, draws, seed) -> dict:
    import stan

    code = STAN_CALIBRATION.replace("SOLVER", solver)
    for attempt in range(2):  # httpstan's build sometimes answers garbled JSON under load
        try:
            posterior = stan.build(code, data=data, random_seed=seed)  # compiled, cached
            break
        except Exception as exc:
            if attempt == 1:
                return {"error": f"build: {type(exc).__name__}: {str(exc)[:300]}"}
    t0 = time.perf_counter()
    try:
        fit = posterior.sample(num_chains=chains, num_warmup=warmup, num_samples=draws)
    except Exception as exc:  # a solver failure aborts the whole fit in Stan
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    wall = time.perf_counter() - t0
    draws_ = {p: np.asarray(fit[p]).reshape(draws, chains).T for p in ("a", "b")}
    return {
        "wall_s": wall,
        "compile_s": 0.0,
        "sampling_s": wall,
        "min_ess_bulk": min_bulk_ess(draws_),
        "divergences": int(np.sum(fit["divergent__"])),
        "max_r_hat": max(float(arviz.rhat(x)) for x in draws_.values()),
    }


def bench_nuts(quick: bool, seeds: list[int], stan: bool) -> dict:
    chains, warmup, draws = (2, 300, 300) if quick else (4, 1000, 1000)
    data = calibration_data()
    sides = {
        "fpl": lambda s: run_fpl(data, chains, warmup, draws, s),
        "numpyro_optimistix": lambda s: run_numpyro(
            _optimistix_solve, data, chains, warmup, draws, s
        ),
        "numpyro_custom_root": lambda s: run_numpyro(
            _custom_root_solve, data, chains, warmup, draws, s
        ),
    }
    if stan:
        for solver in ("solve_powell", "solve_newton"):
            sides[f"stan_{solver}"] = lambda s, solver=solver: run_stan(
                solver, data, chains, warmup, draws, s
            )
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for seed in seeds:
        for name, side in sides.items():
            r = {"seed": seed, **side(seed)}
            if "sampling_s" in r:
                r["ess_per_s"] = r["min_ess_bulk"] / r["sampling_s"]
            runs[name].append(r)
            print(f"[nuts] seed {seed} {name}: " + json.dumps(r), flush=True)
    summary = {}
    for name, rs in runs.items():
        ok = [r["ess_per_s"] for r in rs if "ess_per_s" in r]
        summary[name] = {"median_ess_per_s": statistics.median(ok) if ok else None}
    fpl_median = summary["fpl"]["median_ess_per_s"]
    for s in summary.values():
        s["ratio_fpl_over_side"] = (
            fpl_median / s["median_ess_per_s"] if s["median_ess_per_s"] else None
        )
    settings = {
        "chains": chains,
        "warmup": warmup,
        "draws": draws,
        "seeds": seeds,
        "chain_method": "sequential",
        "tol": TOL,
    }
    return {"settings": settings, "runs": runs, "summary": summary}


def stan_available() -> bool:
    try:
        import stan  # noqa: F401
    except ImportError:
        return False
    return True


# ---- tables ----------------------------------------------------------------------------------


def tables(results: dict) -> str:
    lines = []
    if "memory" in results:
        m = results["memory"]
        lines += [
            f"(a) gradient through z = tanh(a W z + v + c), n = {m['n']}, ||W|| = 0.9",
            "",
            "| max_iter | implicit temp bytes | unrolled temp bytes | unrolled / implicit |",
            "|---|---|---|---|",
        ]
        for row in m["memory"]:
            i, u = row["implicit"]["temp_bytes"], row["unrolled"]["temp_bytes"]
            lines.append(f"| {row['max_iter']} | {i:,} | {u:,} | {u / i:.2f} |")
        lines += [
            "",
            "| n, solver | iterations | forward ms | gradient ms | gradient / forward |",
            "|---|---|---|---|---|",
        ]
        for solver, t in m["timing"].items():
            lines.append(
                f"| {solver} | {t['iterations']} | {t['forward_ms']:.3f} | "
                f"{t['gradient_ms']:.3f} | {t['ratio']:.2f} |"
            )
        lines.append("")
    if "solvers" in results:
        lines += [
            "(b) iterations to residual 1e-8, n = 200",
            "",
            "| ||W|| | solver | iterations | ms | iterate / this (iterations) |",
            "|---|---|---|---|---|",
        ]
        for norm, rows in results["solvers"]["maps"].items():
            for solver, r in rows.items():
                lines.append(
                    f"| {norm} | {solver} | {r['iterations']} | {r['ms']:.3f} | "
                    f"{r['iterations_cut']:.1f} |"
                )
        lines.append("")
    if "nuts" in results:
        n = results["nuts"]
        st = n["settings"]
        lines += [
            f"(c) calibration model under NUTS ({st['chains']} chains x {st['warmup']} "
            f"warmup + {st['draws']} draws, sequential)",
            "",
            "| side | seed | sampling s | compile s | min bulk ESS | ESS/s | divergences "
            "| max R-hat |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, rs in n["runs"].items():
            for r in rs:
                if "error" in r:
                    lines.append(f"| {name} | {r['seed']} | failed: {r['error'][:80]} | | | | | |")
                    continue
                lines.append(
                    f"| {name} | {r['seed']} | {r['sampling_s']:.2f} | {r['compile_s']:.2f} | "
                    f"{r['min_ess_bulk']:.0f} | {r['ess_per_s']:.1f} | {r['divergences']} | "
                    f"{r['max_r_hat']:.3f} |"
                )
        lines += ["", "| side | median ESS/s | FPL / side |", "|---|---|---|"]
        for name, s in n["summary"].items():
            med = s["median_ess_per_s"]
            ratio = s["ratio_fpl_over_side"]
            lines.append(
                f"| {name} | {med:.1f} | {ratio:.2f} |" if med else f"| {name} | failed | - |"
            )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats, short NUTS runs")
    ap.add_argument("--only", choices=["memory", "solvers", "nuts"])
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--no-stan", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    out = Path(a.out or HERE / "results" / ("implicit_quick.json" if a.quick else "implicit.json"))
    seeds = a.seeds or ([1] if a.quick else [1, 2, 3])
    results: dict = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    earlier = json.loads(out.read_text()) if a.only and out.exists() else {}

    def save() -> None:  # after every part, so a long NUTS run cannot lose the others
        merged = {**earlier, **results}  # --only keeps the other parts of an earlier run
        write_atomic(str(out), lambda path: Path(path).write_text(json.dumps(merged, indent=2)))

    if a.only in (None, "memory"):
        results["memory"] = bench_memory(a.quick)
        save()
    if a.only in (None, "solvers"):
        results["solvers"] = bench_solvers(a.quick)
        save()
    if a.only in (None, "nuts"):
        stan = not a.no_stan and stan_available()
        results["nuts"] = bench_nuts(a.quick, seeds, stan)
        results["nuts"]["stan"] = "run" if stan else "not run (PyStan not installed or --no-stan)"
        save()
    results = {**earlier, **results}
    print(tables(results))


if __name__ == "__main__":
    main()
