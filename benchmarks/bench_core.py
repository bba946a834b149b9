"""Core benchmark: FPL ``model.sample`` vs hand-written NumPyro, same model, same settings.

Run:  python benchmarks/bench_core.py [--reps 2] [--only eight_schools|logistic]
      python benchmarks/bench_core.py --gradients [--reps 5]

For each model, alternates FPL and NumPyro runs (A B A B ...) in ONE process and records
total wall time (including compilation), sampling seconds reported by FPL, and
ESS per draw (mean bulk ESS over params / total draws).  Also times FPL's front end
(parse + check + bind data) averaged over 20 repetitions.
Writes benchmarks/results/core.json and prints a markdown table.

``--gradients`` measures instead the cost of one log-density gradient of the nes1972
posterior (tests/posteriordb; 1330 rows, three data-only ``let``s) in one process: a
hand-written NumPyro density (its ``potential_fn``, dummies computed once outside, as
Stan's transformed data would), the same density in plain JAX, and FPL's
``CompiledModel`` with data-only values hoisted (data passed prepared, or raw and
recomputed inside) and without (``hoist_data=False``: the program as checked, as before
the bind-time pass).  Each gradient is compiled with the data as operands (as the
samplers do) and timed two ways: one jitted call per gradient (the mean of many calls:
dispatch included) and K gradients inside one compiled
``fori_loop`` (what a sampler's trajectory costs).  Writes
benchmarks/results/core_gradients.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpyro

numpyro.enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.diagnostics import effective_sample_size  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import fpl  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHAINS, WARMUP, DRAWS, SEED = 4, 1000, 1000, 1

EIGHT_SCHOOLS_DATA = {
    "J": 8,
    "y": [28, 8, -3, 7, -1, 1, 18, 12],
    "sigma": [15, 10, 16, 11, 9, 11, 10, 18],
}

LOGISTIC_FPL = """\
data N: int
data D: int
data X: real[N, D]
data y: int<lower=0, upper=1>[N]
param alpha ~ normal(0, 2.5)
param beta: real[D] ~ normal(0, 2.5)
y ~ bernoulli_logit(alpha + X @ beta)
"""


def eight_schools_source() -> str:
    return (ROOT / "examples" / "eight_schools.fpl").read_text()


def logistic_data(n=5000, d=50, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    beta = rng.normal(scale=0.5, size=d)
    alpha = 0.3
    p = 1 / (1 + np.exp(-(alpha + X @ beta)))
    y = (rng.uniform(size=n) < p).astype(int)
    return {"N": n, "D": d, "X": X.tolist(), "y": y.tolist()}


# ---- hand-written NumPyro ----
def np_eight_schools(J, y, sigma):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0, 1).expand([J]))
    theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
    numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def np_logistic(X, y):
    D = X.shape[1]
    alpha = numpyro.sample("alpha", dist.Normal(0, 2.5))
    beta = numpyro.sample("beta", dist.Normal(0, 2.5).expand([D]))
    numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)


def np_args(name, data):
    if name == "eight_schools":
        return (data["J"], jnp.asarray(data["y"], float), jnp.asarray(data["sigma"], float))
    return (jnp.asarray(data["X"], float), jnp.asarray(data["y"], float))


def run_numpyro(name, data, params):
    fn = np_eight_schools if name == "eight_schools" else np_logistic
    t0 = time.perf_counter()
    mcmc = MCMC(
        NUTS(fn),
        num_warmup=WARMUP,
        num_samples=DRAWS,
        num_chains=CHAINS,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(
        jax.random.PRNGKey(SEED), *np_args(name, data), extra_fields=("diverging", "num_steps")
    )
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    total = time.perf_counter() - t0
    ess = []
    for p in params:
        x = np.asarray(samples[p])
        x = x.reshape(x.shape[0], x.shape[1], -1)
        for i in range(x.shape[2]):
            ess.append(float(effective_sample_size(x[:, :, i : i + 1])[0]))
    extra = mcmc.get_extra_fields()
    ndiv = int(np.sum(np.asarray(extra["diverging"])))
    return {
        "total_s": total,
        "ess_per_draw": float(np.mean(ess)) / (CHAINS * DRAWS),
        "mean_ess_bulk": float(np.mean(ess)),
        "divergences": ndiv,
        "leapfrog_sampling": int(np.sum(np.asarray(extra["num_steps"]))),
    }


def run_fpl(source, data):
    t0 = time.perf_counter()
    model = fpl.compile(source)
    fit = model.sample(data, chains=CHAINS, warmup=WARMUP, draws=DRAWS, seed=SEED, progress=False)
    total = time.perf_counter() - t0
    params = set(model.param_names)
    ess = [r.ess_bulk for r in fit.summary().rows if r.name.split("[")[0] in params]
    ndiv = int(np.sum(fit.sample_stats["diverging"]))
    return {
        "total_s": total,
        "sampling_s": float(fit.attrs["seconds"]),
        "ess_per_draw": float(np.mean(ess)) / (CHAINS * DRAWS),
        "mean_ess_bulk": float(np.mean(ess)),
        "divergences": ndiv,
        "leapfrog_sampling": int(np.sum(fit.sample_stats["n_leapfrog"])),
    }


NES = ROOT / "tests" / "posteriordb"
NES_NAME = "nes1972-nes"
LOOP = 5000  # gradients per compiled loop
CALLS = 200  # jitted calls per timing of the per-call cost


def nes_data() -> dict:
    return json.loads((NES / "data" / NES_NAME / "data.json").read_text())


def nes_columns(data):
    """The design the FPL model builds: intercept, ideology, race, three age dummies,
    education, gender, income (dummies computed once, here)."""
    age = np.asarray(data["age_discrete"])
    cols = [np.ones(len(age)), data["real_ideo"], data["race_adj"]]
    cols += [(age == k).astype(float) for k in (2, 3, 4)]
    cols += [data["educ1"], data["gender"], data["income"]]
    return jnp.asarray(np.column_stack(cols), float), jnp.asarray(data["partyid7"], float)


def np_nes(X, y):
    beta = numpyro.sample("beta", dist.ImproperUniform(dist.constraints.real, (), (9,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(dist.constraints.positive, (), ()))
    numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def jax_nes(theta, X, y):
    """log p(beta, log sigma | y) with flat priors: the normal likelihood plus the
    log-Jacobian log sigma of sigma = exp(u)."""
    beta, u = theta[:9], theta[9]
    return jnp.sum(jax.scipy.stats.norm.logpdf(y, X @ beta, jnp.exp(u))) + u


def _compiled(fn):
    """(one jitted gradient, LOOP gradients in one compiled loop) of ``fn``."""

    def loop(theta, *rest):
        def body(i, acc):
            lp, g = jax.value_and_grad(fn)(theta + i * 1e-9, *rest)
            return acc + lp + g[0]

        return jax.lax.fori_loop(0, LOOP, body, 0.0)

    return jax.jit(jax.value_and_grad(fn)), jax.jit(loop)


def _timed(sides: dict, reps: int) -> dict:
    """Microseconds per gradient of each side: per jitted call (dispatch included), and
    inside one compiled loop.  CPU time of this process (``time.process_time``: on a
    shared machine wall time counts other processes' turns too), the best of ``reps``
    rounds (interference only ever adds time), the sides interleaved in every round."""
    compiled = {name: _compiled(fn) for name, (fn, _) in sides.items()}
    for name, (call, looped) in compiled.items():
        jax.block_until_ready(call(*sides[name][1]))
        jax.block_until_ready(looped(*sides[name][1]))
    per_call: dict[str, list] = {name: [] for name in sides}
    in_loop: dict[str, list] = {name: [] for name in sides}
    for _ in range(reps):
        for name, (call, looped) in compiled.items():
            args = sides[name][1]
            t0 = time.process_time()
            for _ in range(CALLS):
                jax.block_until_ready(call(*args))
            per_call[name].append((time.process_time() - t0) / CALLS * 1e6)
            t0 = time.process_time()
            jax.block_until_ready(looped(*args))
            in_loop[name].append((time.process_time() - t0) / LOOP * 1e6)
    return {
        name: {
            "per_call_us": float(np.min(per_call[name])),
            "in_loop_us": float(np.min(in_loop[name])),
        }
        for name in sides
    }


def gradient_costs(reps: int) -> dict:
    from numpyro.infer.util import potential_energy

    from fpl.compiler.compiled import compile_model

    data = nes_data()
    model = fpl.load(NES / "models" / f"{NES_NAME}.fpl")
    hoisted = model.bind(data)
    checked = compile_model(model.ast, model.ir, data, hoist_data=False, name=model.name)
    X, y = nes_columns(data)
    theta = jnp.asarray(np.random.default_rng(0).normal(scale=0.1, size=10))

    def numpyro_lp(t, X, y):  # unconstrained values in, data as operands
        return -potential_energy(np_nes, (X, y), {}, {"beta": t[:9], "sigma": t[9]})

    raw = {k: jnp.asarray(v) for k, v in hoisted.data.items()}
    prepared = {k: jnp.asarray(v) for k, v in hoisted.prepare_data().items()}
    sides = {
        "numpyro": (numpyro_lp, (theta, X, y)),
        "jax": (jax_nes, (theta, X, y)),
        "fpl_hoisted_prepared": (lambda t, d: hoisted.log_density(t, data=d), (theta, prepared)),
        "fpl_hoisted_raw": (lambda t, d: hoisted.log_density(t, data=d), (theta, raw)),
        "fpl_not_hoisted": (lambda t, d: checked.log_density(t, data=d), (theta, raw)),
    }
    values = {name: float(fn(*args)) for name, (fn, args) in sides.items()}
    # the same density on every side (up to rounding; the Jacobian of sigma included)
    assert np.allclose(list(values.values()), values["jax"], rtol=1e-10), values
    out = {"model": NES_NAME, "loop_length": LOOP, "calls": CALLS, "sides": {}}
    out["sides"] = _timed(sides, reps)
    base = out["sides"]["numpyro"]
    for r in out["sides"].values():
        r["per_call_over_numpyro"] = r["per_call_us"] / base["per_call_us"]
        r["in_loop_over_numpyro"] = r["in_loop_us"] / base["in_loop_us"]
    return out


def gradient_table(result) -> str:
    lines = [
        f"| {result['model']} | µs per call | / NumPyro | µs in a loop | / NumPyro |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["sides"].items():
        lines.append(
            f"| {name} | {r['per_call_us']:.1f} | {r['per_call_over_numpyro']:.2f} | "
            f"{r['in_loop_us']:.2f} | {r['in_loop_over_numpyro']:.2f} |"
        )
    return "\n".join(lines)


def front_end_ms(source, data, reps=20):
    fpl.compile(source).bind(data)  # warm imports
    t0 = time.perf_counter()
    for _ in range(reps):
        fpl.compile(source).bind(data)
    return (time.perf_counter() - t0) / reps * 1000


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(line for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        ram_gb = round(int(mem.split()[1]) / 1024**2, 1)
    except OSError:
        ram_gb = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "backend": jax.default_backend(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", choices=["eight_schools", "logistic"])
    ap.add_argument("--out", default=str(HERE / "results" / "core.json"))
    ap.add_argument("--gradients", action="store_true", help="per-gradient costs (nes1972)")
    a = ap.parse_args(argv)
    if a.gradients:
        result = {"machine": machine(), **gradient_costs(a.reps)}
        path = HERE / "results" / "core_gradients.json"
        path.write_text(json.dumps(result, indent=2))
        print(gradient_table(result))
        return
    cases = {
        "eight_schools": (eight_schools_source(), EIGHT_SCHOOLS_DATA, ["mu", "tau", "theta_tilde"]),
        "logistic": (LOGISTIC_FPL, logistic_data(), ["alpha", "beta"]),
    }
    if a.only:
        cases = {a.only: cases[a.only]}
    results = {
        "machine": machine(),
        "settings": {
            "chains": CHAINS,
            "warmup": WARMUP,
            "draws": DRAWS,
            "seed": SEED,
            "chain_method": "sequential",
        },
        "models": {},
    }
    for name, (src, data, params) in cases.items():
        fe = front_end_ms(src, data)
        runs = {"fpl": [], "numpyro": []}
        for rep in range(a.reps):
            for side in ("fpl", "numpyro"):
                r = run_fpl(src, data) if side == "fpl" else run_numpyro(name, data, params)
                runs[side].append(r)
                print(f"[{name}] rep {rep + 1} {side}: " + json.dumps(r), flush=True)
        f_med = float(np.median([r["total_s"] for r in runs["fpl"]]))
        n_med = float(np.median([r["total_s"] for r in runs["numpyro"]]))
        results["models"][name] = {
            "front_end_ms": fe,
            "runs": runs,
            "fpl_median_s": f_med,
            "numpyro_median_s": n_med,
            "ratio_fpl_over_numpyro": f_med / n_med,
        }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    # merge with existing results when running one model only
    if a.only and Path(a.out).exists():
        old = json.loads(Path(a.out).read_text())
        old.get("models", {}).update(results["models"])
        results["models"] = old["models"]
    Path(a.out).write_text(json.dumps(results, indent=2))
    print(table(results))


def table(results) -> str:
    lines = [
        "| model | side | run | total s | FPL sampling s | ESS/draw | divergences |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in results["models"].items():
        for rep in range(len(m["runs"]["fpl"])):
            for side in ("fpl", "numpyro"):
                r = m["runs"][side][rep]
                samp = f"{r['sampling_s']:.2f}" if "sampling_s" in r else "-"
                lines.append(
                    f"| {name} | {side} | {rep + 1} | {r['total_s']:.2f} | {samp} | "
                    f"{r['ess_per_draw']:.3f} | {r['divergences']} |"
                )
    lines += [
        "",
        "| model | FPL median s | NumPyro median s | ratio FPL/NumPyro | front end ms (< 50) |",
        "|---|---|---|---|---|",
    ]
    for name, m in results["models"].items():
        lines.append(
            f"| {name} | {m['fpl_median_s']:.2f} | {m['numpyro_median_s']:.2f} | "
            f"{m['ratio_fpl_over_numpyro']:.2f} | {m['front_end_ms']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
