"""Sampler benchmark: effective draws per gradient of FPL's NUTS against its peers.

Run:  FPL_HOST_DEVICES=2 python benchmarks/sampler.py [--only NAME ...]
          [--samplers fpl_low_rank fpl_diag fpl_dense nutpie_low_rank nutpie_diag numpyro_dense]
          [--budget SECONDS] [--out benchmarks/results/sampler.json]

Every sampler sees the same density: FPL's compiled model bound to the posterior's data
(``model.bind(data).log_density`` of the flat unconstrained vector, Jacobian included), in
float64.  Each run is 4 chains x (1000 warmup + 1000 draws).  Recorded per run:

* ``min_ess``: the smallest bulk ESS (``arviz.ess``) over every scalar component of the
  params on the constrained scale (``param_constrain`` order; outs are left out so every
  sampler is measured on the same components);
* ``gradients``: leapfrog steps in warmup plus sampling, summed over chains (one
  gradient each; initialisation and the few gradients spent finding a first step size
  are not counted for any sampler);
* ``ess_per_grad_x1000`` = 1000 * min_ess / gradients: the headline, independent of the
  machine's load;
* ``sampling_s`` (the sampler's own run) and ``total_s`` (from binding the data to having
  draws: tracing and compilation included), wall seconds;
* ``divergences`` after warmup, and the median step size and mean tree depth after warmup.

Samplers: FPL ``model.sample`` with ``metric`` low_rank (the default), diag and dense;
nutpie (``nutpie.compiled_pyfunc.from_pyfunc`` on a jitted value-and-gradient of FPL's
density; ``low_rank_modified_mass_matrix`` True or False), whose draws are constrained by
``cm.param_constrain`` (vmapped) in its expand function; NumPyro's NUTS with a dense mass
matrix on the same density through ``potential_fn`` (sequential chains).

Results are merged into the JSON file after each run, so a run that is stopped keeps what
it measured.  ``--budget`` skips the remaining runs once that many seconds have passed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from datetime import date
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

import fpl  # before any JAX backend starts: it sets the host device count

jax.config.update("jax_enable_x64", True)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PDB = ROOT / "tests" / "posteriordb"
CHAINS, WARMUP, DRAWS = 4, 1000, 1000
SEED = 20240501
SAMPLERS = (
    "fpl_low_rank",
    "fpl_diag",
    "fpl_dense",
    "nutpie_low_rank",
    "nutpie_diag",
    "numpyro_dense",
)
#: the benchmark set: the issue's list first, then the posteriordb translations the
#: first measurement had (tests/posteriordb holds more; ``--all`` runs every one)
FIRST = (
    "kidiq-kidscore_interaction",
    "earnings-logearn_height",
    "arK-arK",
    "nes1972-nes",
    "kilpisjarvi_mod-kilpisjarvi",
    "gp_pois_regr-gp_pois_regr",
    "diamonds-diamonds",
    "eight_schools",
)
SET = (
    *FIRST,
    "earnings-log10earn_height",
    "eight_schools-eight_schools_noncentered",
    "kidiq-kidscore_momiq",
    "kidiq_with_mom_work-kidscore_mom_work",
    "mesquite-logmesquite",
    "mesquite-logmesquite_logva",
)


def posteriors(every: bool = False) -> dict[str, tuple[Path, Path]]:
    """Name -> (model file, data file): the benchmark set (``every``: all posteriordb
    translations FPL tests), plus the eight schools example, issue-listed ones first."""
    found = {p.stem: (p, PDB / "data" / p.stem / "data.json") for p in PDB.glob("models/*.fpl")}
    found["eight_schools"] = (
        ROOT / "examples/eight_schools.fpl",
        ROOT / "examples/eight_schools.json",
    )
    rest = sorted(n for n in found if n not in SET) if every else []
    return {n: found[n] for n in (*SET, *rest) if n in found}


def min_ess(draws: np.ndarray) -> float:
    """Smallest bulk ESS over the components of ``draws`` (chains, draws, k); components
    that never move (ESS undefined) are left out."""
    ds = az.convert_to_dataset({"x": draws})
    ess = np.asarray(az.ess(ds, method="bulk")["x"].values, float)
    return float(np.nanmin(ess))


def summary(draws, grads, divergences, step, depth, sampling_s, total_s, **extra) -> dict:
    ess = min_ess(draws)
    return {
        "min_ess": round(ess, 1),
        "gradients": int(grads),
        "ess_per_grad_x1000": round(1000 * ess / grads, 3),
        "sampling_s": round(sampling_s, 2),
        "total_s": round(total_s, 2),
        "divergences": int(divergences),
        "median_step_size": float(np.median(step)),
        "mean_tree_depth": round(float(np.mean(depth)), 2),
        **extra,
    }


# ---- FPL ------------------------------------------------------------------------------
def run_fpl(model, data, metric: str, seed: int) -> dict:
    began = time.perf_counter()
    fit = model.sample(
        data, chains=CHAINS, warmup=WARMUP, draws=DRAWS, seed=seed, progress=False, metric=metric
    )
    total = time.perf_counter() - began
    cm = model.bind(data)
    # every param's scalar components (their order does not change a minimum)
    draws = np.concatenate(
        [
            np.reshape(np.asarray(fit.posterior[p.name], float), (CHAINS, DRAWS, -1))
            for p in cm.params
        ],
        axis=2,
    )
    grads = int(
        np.sum(fit.warmup_sample_stats["n_leapfrog"]) + np.sum(fit.sample_stats["n_leapfrog"])
    )
    return summary(
        draws,
        grads,
        np.sum(fit.sample_stats["diverging"]),
        fit.sample_stats["step_size"],
        fit.sample_stats["tree_depth"],
        float(fit.attrs["seconds"]),
        total,
        devices=int(fit.attrs["devices"]),
    )


# ---- the shared density -------------------------------------------------------------
def bound(model, data):
    """``(cm, value_and_grad, constrain)``: jitted float64 functions of the flat
    unconstrained vector (constrain vmapped over a batch of draws)."""
    cm = model.bind(data)
    args = {k: jnp.asarray(v) for k, v in cm.prepare_data().items()}
    vg = jax.jit(jax.value_and_grad(lambda th, a: cm.log_density(th, data=a)))
    constrain = jax.jit(jax.vmap(lambda th, a: cm.param_constrain(th, data=a), in_axes=(0, None)))
    return cm, (lambda th: vg(th, args)), (lambda ths: constrain(ths, args)), args


def run_nutpie(model, data, low_rank: bool, seed: int) -> dict:
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    began = time.perf_counter()
    cm, vg, constrain, _ = bound(model, data)
    d = cm.param_unc_num()
    k = len(cm.param_names())
    vg(jnp.zeros(d))  # compile before sampling starts
    constrain(jnp.zeros((1, d)))

    def make_logp_fn():
        def logp(x, **_):
            lp, g = vg(jnp.asarray(x))
            lp = float(lp)
            if not math.isfinite(lp):
                return -math.inf, np.zeros(d)
            return lp, np.asarray(g, dtype="float64", order="C")

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **_):
            return {"constrained": np.asarray(constrain(jnp.asarray(x)[None])[0], float)}

        return expand

    def initial_point(s):  # Stan's: uniform(-2, 2) on the unconstrained scale
        return np.random.default_rng(s).uniform(-2, 2, d)

    compiled = from_pyfunc(
        d,
        make_logp_fn,
        make_expand_fn,
        [np.dtype("float64")],
        [(k,)],
        ["constrained"],
        make_initial_point_fn=initial_point,
    )
    start = time.perf_counter()
    trace = nutpie.sample(
        compiled,
        chains=CHAINS,
        tune=WARMUP,
        draws=DRAWS,
        seed=seed,
        progress_bar=False,
        low_rank_modified_mass_matrix=low_rank,
    )
    sampling = time.perf_counter() - start
    total = time.perf_counter() - began
    draws = np.asarray(trace.posterior["constrained"].values, float)
    stats, wstats = trace.sample_stats, trace.warmup_sample_stats
    grads = int(stats["n_steps"].values.sum() + wstats["n_steps"].values.sum())
    return summary(
        draws,
        grads,
        stats["diverging"].values.sum(),
        stats["step_size"].values,
        stats["depth"].values,
        sampling,
        total,
        cores=int(os.cpu_count() or 1),
    )


def run_numpyro(model, data, seed: int) -> dict:
    from numpyro.infer import MCMC, NUTS

    began = time.perf_counter()
    cm, _, constrain, args = bound(model, data)
    d = cm.param_unc_num()
    kernel = NUTS(potential_fn=lambda th: -cm.log_density(th, data=args), dense_mass=True)
    mcmc = MCMC(
        kernel,
        num_warmup=WARMUP,
        num_samples=DRAWS,
        num_chains=CHAINS,
        chain_method="sequential",
        progress_bar=False,
    )
    init = jnp.asarray(np.random.default_rng(seed).uniform(-2, 2, (CHAINS, d)))
    fields = ("num_steps", "diverging", "adapt_state.step_size")
    start = time.perf_counter()
    key = jax.random.PRNGKey(seed)
    mcmc.warmup(key, init_params=init, collect_warmup=True, extra_fields=fields)
    warm_steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=fields)
    sampling = time.perf_counter() - start
    flat = np.asarray(mcmc.get_samples(group_by_chain=True), float)
    draws = np.asarray(constrain(jnp.asarray(flat.reshape(-1, d)))).reshape(CHAINS, DRAWS, -1)
    total = time.perf_counter() - began
    extra = mcmc.get_extra_fields(group_by_chain=True)
    steps = np.asarray(extra["num_steps"])
    return summary(
        draws,
        warm_steps + int(steps.sum()),
        np.sum(extra["diverging"]),
        np.asarray(extra["adapt_state.step_size"]),
        np.log2(steps + 1),
        sampling,
        total,
    )


def run_one(sampler: str, model, data, seed: int) -> dict:
    if sampler.startswith("fpl_"):
        return run_fpl(model, data, sampler[4:], seed)
    if sampler.startswith("nutpie_"):
        return run_nutpie(model, data, sampler == "nutpie_low_rank", seed)
    return run_numpyro(model, data, seed)


def machine() -> dict:
    import numpyro
    import nutpie

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "nutpie": nutpie.__version__,
        "numpyro": numpyro.__version__,
        "arviz": az.__version__,
        "fpl_host_devices": os.environ.get("FPL_HOST_DEVICES", ""),
        "jax_devices": len(jax.devices()),
        "date": date.today().isoformat(),
    }


COLUMNS = ("fpl_low_rank", "fpl_diag", "fpl_dense", "nutpie_low_rank", "nutpie_diag")


def _cell(run: dict | None) -> str:
    if run is None:
        return "-"
    if "ess_per_grad_x1000" not in run:
        return "skipped" if "skipped" in run else "failed"
    div = f" ({run['divergences']} div)" if run["divergences"] else ""
    return f"{run['ess_per_grad_x1000']:.1f}{div}"


def table(out: dict) -> str:
    """The markdown table of 1000 x min bulk ESS per gradient, with geometric means over
    the posteriors every column has, and FPL low-rank / nutpie low-rank."""
    head = "| posterior | d | " + " | ".join(COLUMNS) + " | FPL/nutpie low-rank |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    per = {c: [] for c in (*COLUMNS, "ratio")}
    for name, row in out["runs"].items():
        cells = [_cell(row.get(c)) for c in COLUMNS]
        a, b = row.get("fpl_low_rank", {}), row.get("nutpie_low_rank", {})
        ratio = "-"
        if "ess_per_grad_x1000" in a and "ess_per_grad_x1000" in b:
            r = a["ess_per_grad_x1000"] / b["ess_per_grad_x1000"]
            ratio = f"{r:.2f}"
        if all("ess_per_grad_x1000" in row.get(c, {}) for c in COLUMNS):
            for c in COLUMNS:
                per[c].append(row[c]["ess_per_grad_x1000"])
            per["ratio"].append(r)
        lines.append(
            f"| {name} | {row['unconstrained_dims']} | " + " | ".join(cells) + f" | {ratio} |"
        )
    if per["ratio"]:
        gm = [math.exp(np.mean(np.log(per[c]))) for c in (*COLUMNS, "ratio")]
        n = len(per["ratio"])
        lines.append(
            f"| **geometric mean** ({n} posteriors) | | "
            + " | ".join(f"**{g:.1f}**" for g in gm[:-1])
            + f" | **{gm[-1]:.2f}** |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--all", action="store_true", help="every posteriordb translation")
    ap.add_argument("--samplers", nargs="*", default=list(SAMPLERS[:5]), choices=SAMPLERS)
    ap.add_argument("--budget", type=float, default=math.inf, help="seconds, then skip the rest")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "sampler.json")
    a = ap.parse_args()
    if a.table:
        print(table(json.loads(a.out.read_text())))
        return
    out = json.loads(a.out.read_text()) if a.out.exists() else {"runs": {}}
    out["machine"] = machine()
    out["settings"] = {"chains": CHAINS, "warmup": WARMUP, "draws": DRAWS, "seed": a.seed}
    began = time.perf_counter()
    for name, (model_file, data_file) in posteriors(a.all).items():
        if a.only and name not in a.only:
            continue
        model = fpl.load(model_file)
        data = json.loads(data_file.read_text())
        row = out["runs"].setdefault(name, {})
        row["unconstrained_dims"] = model.bind(data).param_unc_num()
        for sampler in a.samplers:
            if time.perf_counter() - began > a.budget:
                row[sampler] = {"skipped": f"time budget of {a.budget:.0f} s spent"}
            else:
                try:
                    row[sampler] = run_one(sampler, model, data, a.seed)
                except Exception as e:  # a failing peer is a result too
                    row[sampler] = {"failed": f"{type(e).__name__}: {e}"[:300]}
            print(name, sampler, row[sampler], flush=True)
            a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
