"""Stan's ``bdf`` on diffrax: Newton stage solves (FPL) against diffrax's default chord
iterations, in one process.

    python benchmarks/ode_stiff.py            # prints a table, writes results/ode_stiff.json

For two systems -- Robertson's stiff chemical kinetics (rates 0.04, 1e4, 3e7; y0 = (1, 0,
0); outputs at 0.4, 4, 40; atol = rtol * 1e-4) and one_comp_mm_elim_abs's
Michaelis-Menten elimination at the posterior's median and at a far-tail point (K_m = 30,
V_m = 27) -- and three relative tolerances, it solves with

- ``chord``: ``diffrax.Kvaerno5()`` at the given tolerances (FPL's ``bdf`` before
  2026-11-30),
- ``fpl``: ``fpl.stdlib.ode_solve.solver("bdf")`` (Kvaerno5, Newton stage solves) with the
  controller at the tolerances / ``STIFF_TIGHTENING``, as ``ode_solve._solve`` runs it,

and reports the steps taken and rejected, the wall time per solve (median of 20, after a
compile) and the largest relative error of the outputs against SciPy's Radau at rtol
1e-13; SciPy's BDF and LSODA (the kind of CVODES, Stan's ``bdf``) at the same tolerances
give the errors a Stan user gets.  Times are ratios within this run, not absolutes.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ode_stiff.json"


def robertson(t, y, p, xp=np):
    k1, k2, k3 = 0.04, 1e4, 3e7
    return xp.stack(
        [
            -k1 * y[0] + k2 * y[1] * y[2],
            k1 * y[0] - k2 * y[1] * y[2] - k3 * y[1] ** 2,
            k3 * y[1] ** 2,
        ]
    )


def problems() -> dict:
    """name: (JAX field, NumPy field, params, y0, ts, atol / rtol); one_comp's fields (the
    posterior's data: D = 30, V = 2, outputs at 0.5, 1, ..., 10) are ode_gradient.py's."""
    import jax.numpy as jnp
    from ode_gradient import SYSTEMS, one_comp, one_comp_numpy

    ts = SYSTEMS["one_comp"]["ts"]
    return {
        "robertson": (
            lambda t, y, p: robertson(t, y, p, jnp),
            robertson,
            None,
            np.array([1.0, 0.0, 0.0]),
            np.array([0.4, 4.0, 40.0]),
            1e-4,
        ),
        "one_comp median": (
            one_comp,
            lambda t, y, p: one_comp_numpy(t, y, p)[0],
            (0.76, 1.0, 0.9),
            np.zeros(1),
            ts,
            1.0,
        ),
        "one_comp tail": (
            one_comp,
            lambda t, y, p: one_comp_numpy(t, y, p)[0],
            (0.76, 30.0, 27.0),
            np.zeros(1),
            ts,
            1.0,
        ),
    }


def run() -> list[dict]:
    import diffrax
    import jax
    import jax.numpy as jnp
    from scipy.integrate import solve_ivp

    from fpl.stdlib import ode_solve

    jax.config.update("jax_enable_x64", True)
    rows = []
    for name, (field, numpy_field, params, y0, ts, atol_ratio) in problems().items():
        args = None if params is None else jnp.asarray(params)

        def numpy_field_of(t, y, numpy_field=numpy_field, params=params):
            return numpy_field(t, y, params)

        reference = solve_ivp(
            numpy_field_of, (0.0, ts[-1]), y0, method="Radau", rtol=1e-13, atol=1e-16, t_eval=ts
        ).y.T
        scale = np.abs(reference) + 1e-12

        def error(ys, reference=reference, scale=scale):
            return float(np.max(np.abs(np.asarray(ys) - reference) / scale))

        for rtol in (1e-6, 1e-8, 1e-10):
            atol = rtol * atol_ratio
            row = {"problem": name, "rtol": rtol, "atol": atol}
            tight = ode_solve.STIFF_TIGHTENING
            for label, solver, divide in (
                ("chord", diffrax.Kvaerno5(), 1.0),
                ("fpl", ode_solve.solver("bdf"), tight),
            ):

                def solve(
                    field=field,
                    solver=solver,
                    divide=divide,
                    ts=ts,
                    y0=y0,
                    rtol=rtol,
                    atol=atol,
                    args=args,
                ):
                    sol = diffrax.diffeqsolve(
                        diffrax.ODETerm(field),
                        solver,
                        0.0,
                        ts[-1],
                        None,
                        jnp.asarray(y0),
                        args=args,
                        saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
                        stepsize_controller=diffrax.PIDController(
                            rtol=rtol / divide, atol=atol / divide
                        ),
                        max_steps=100_000,
                        throw=False,
                    )
                    return sol.ys, sol.stats

                compiled = jax.jit(solve)
                ys, stats = compiled()
                jax.block_until_ready(ys)
                times = []
                for _ in range(20):
                    start = time.perf_counter()
                    jax.block_until_ready(compiled()[0])
                    times.append(time.perf_counter() - start)
                row[label] = {
                    "steps": int(stats["num_steps"]),
                    "rejected": int(stats["num_rejected_steps"]),
                    "ms": 1000 * statistics.median(times),
                    "error": error(ys),
                }
            for method in ("BDF", "LSODA"):
                sol = solve_ivp(
                    numpy_field_of,
                    (0.0, ts[-1]),
                    y0,
                    method=method,
                    rtol=rtol,
                    atol=atol,
                    t_eval=ts,
                )
                row[f"scipy {method}"] = {"error": error(sol.y.T), "nfev": int(sol.nfev)}
            rows.append(row)
    return rows


def main() -> int:
    rows = run()
    print(
        f"{'problem':16} {'rtol':>6}  {'chord steps (rej)':>17} {'fpl steps (rej)':>15} "
        f"{'time chord/fpl':>14}  {'err chord':>9} {'err fpl':>9} {'err BDF':>9} {'err LSODA':>9}"
    )
    for r in rows:
        c, f = r["chord"], r["fpl"]
        print(
            f"{r['problem']:16} {r['rtol']:6.0e}  {c['steps']:>11} ({c['rejected']:>4}) "
            f"{f['steps']:>9} ({f['rejected']:>3}) {c['ms'] / f['ms']:>14.1f}  "
            f"{c['error']:9.1e} {f['error']:9.1e} {r['scipy BDF']['error']:9.1e} "
            f"{r['scipy LSODA']['error']:9.1e}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
