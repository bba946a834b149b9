"""Core benchmark: FPL ``model.sample`` vs hand-written NumPyro, same model, same settings.

Run:  python benchmarks/bench_core.py [--reps 2] [--only eight_schools|logistic]

For each model, alternates FPL and NumPyro runs (A B A B ...) in ONE process and records
total wall time (including compilation), sampling seconds reported by FPL, and
ESS per draw (mean bulk ESS over params / total draws).  Also times FPL's front end
(parse + check + bind data) averaged over 20 repetitions.
Writes benchmarks/results/core.json and prints a markdown table.
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
    a = ap.parse_args(argv)
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
