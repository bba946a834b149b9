"""Well-posedness diagnostics of implicit nodes (``Model.diagnose``, ``fpl diagnose``).

``fpl diagnose`` prints one row per implicit node and, on stderr, a located warning
(W0401) for each ill-posed node and (W0402) for each that did not converge at the
point; its exit code is 0 unless ``--strict`` and a node is ill-posed or did not
converge (then 1).

At one point of the params (given, or drawn like the samplers' inits with a fixed
seed) every implicit node is solved as in the model (a node inside a function, ``map``,
``scan`` or ``fold`` once per call or element: the worst element is reported), and at
its solution z* (parameters held fixed) the matrix the implicit function theorem (IFT)
inverts is examined: A = ∂R/∂z with R the node's residual, i.e.

* ``fix``: A = I - J with J = df/dz.  The IFT needs A nonsingular: its extreme singular
  values (exact, dense SVD, for n <= DENSE_MAX; else matrix-free power iterations on
  AᵀA and on its shift s·I - AᵀA), sigma_min <= SINGULAR * sigma_max is ill-posed.  The
  spectral radius ρ(J) by power iteration on JVPs (the mean log growth of ||J^k v||
  over the second half of the iterations; exact in the limit for any J, complex
  dominant pairs included) is Picard's convergence condition only: ρ >= 1 with A
  nonsingular (a monotone DEQ) is well-posed, with a note.  And a no-fixed-point
  detector: Picard iterates z_k from the initial guess; for a nonexpansive map without
  a fixed point the normalised displacement ||z_k - z_0|| / k tends to the (nonzero)
  minimal displacement, while it goes to 0 like 1/k when the iterates converge.  A node
  that did not converge whose displacement at step K is still >= DRIFT_RATIO times the
  one at K/2 (or whose iterates blow up) has no fixed point in reach (ill-posed).
* ``root``: A = dF/dz, its extreme singular values likewise: sigma_min <= SINGULAR *
  sigma_max is a singular Jacobian.
* ``argmin``: A = the Hessian of the objective, its eigenvalue range: lambda_min <=
  SINGULAR * |lambda_max| is not a strict minimum.

And for every node ||J||_F by Hutchinson's estimator: ||J||_F^2 = E ||J v||^2 over
Rademacher v, averaged over ``probes`` JVPs (fixed seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpl.dsl.diagnostics import Diagnostic
from fpl.runtime.methods import CommandOptions, Input, Method, Settings, option

DENSE_MAX = 200  # root/argmin nodes up to this size get exact singular values/eigenvalues
DRIFT_RATIO = 0.9  # converging Picard iterates give ~0.5 (1/k decay); a translation 1.0
SINGULAR = 1.5e-8  # sqrt(float64 eps): relative size below which J counts as singular
RADIUS_MAX = 1.0 - 1e-9  # Picard's note at radius >= 1 (less round-off)


@dataclass
class NodeDiagnostics:
    node_id: int
    kind: str
    location: str
    solver: str
    residual: float
    iterations: int
    converged: bool
    frobenius: float  # Hutchinson estimate of ||J||_F
    spectral_radius: float | None = None  # fix: of df/dz (Picard's convergence note)
    # singular values of the IFT matrix: I - df/dz (fix), dF/dz (root), the Hessian
    sigma_min: float | None = None
    sigma_max: float | None = None
    eig_min: float | None = None  # argmin: eigenvalues of the Hessian
    eig_max: float | None = None
    drift: float | None = None  # fix: ||z_K - z_0|| / K of Picard iterates
    no_fixed_point: bool = False
    ill_posed: bool = False
    message: str = ""
    elements: int = 1  # solves examined (a node in `map`/`scan`: one per element)
    span: Any = field(default=None, repr=False)

    @property
    def condition(self) -> float | None:
        """sigma_max / sigma_min of a root's Jacobian (inf where singular)."""
        if self.sigma_min is None or self.sigma_max is None:
            return None
        return self.sigma_max / self.sigma_min if self.sigma_min > 0 else math.inf

    def warning(self) -> Diagnostic | None:
        """A located warning for an ill-posed or non-converged node."""
        if self.ill_posed:
            return Diagnostic(
                "W0401",
                f"ill-posed `{self.kind}`: {self.message}",
                self.span,
                help="its implicit gradient is meaningless here; rescale the "
                "map or check the model",
                severity="warning",
            )
        if not self.converged:
            return Diagnostic(
                "W0402",
                f"`{self.kind}` did not converge: residual "
                f"{self.residual:.3g} after {self.iterations} iterations",
                self.span,
                help="raise `max_iter`, or try another solver",
                severity="warning",
            )
        return None


@dataclass
class Diagnosis:
    """One :class:`NodeDiagnostics` per implicit node, at ``params``."""

    nodes: list[NodeDiagnostics]
    params: dict[str, np.ndarray]

    @property
    def ill_posed(self) -> list[NodeDiagnostics]:
        return [n for n in self.nodes if n.ill_posed]

    def __getitem__(self, node_id: int) -> NodeDiagnostics:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def __str__(self) -> str:
        if not self.nodes:
            return "no implicit nodes"
        head = ("node", "at", "solver", "residual", "iters", "ok", "‖J‖_F", "spectrum", "status")
        rows = [head]
        for n in self.nodes:
            if n.kind == "fix":
                spec = f"radius {n.spectral_radius:.4g}"
                if n.sigma_min is not None:
                    spec += f", σ(I-J) [{n.sigma_min:.3g}, {n.sigma_max:.3g}]"
            elif n.kind == "root":
                spec = (
                    f"σ [{n.sigma_min:.3g}, {n.sigma_max:.3g}]" if n.sigma_min is not None else "-"
                )
            else:
                spec = f"λ [{n.eig_min:.3g}, {n.eig_max:.3g}]" if n.eig_min is not None else "-"
            status = "ILL-POSED" if n.ill_posed else ("ok" if n.converged else "not converged")
            rows.append(
                (
                    f"{n.kind}#{n.node_id}",
                    n.location,
                    n.solver,
                    f"{n.residual:.2e}",
                    str(n.iterations),
                    "yes" if n.converged else "NO",
                    f"{n.frobenius:.4g}",
                    spec,
                    status,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines += [f"  {n.kind}#{n.node_id}: {n.message}" for n in self.nodes if n.message]
        return "\n".join(lines)


def make_probe(seed: int, power_iters: int, probes: int, drift_steps: int):
    """The ``lower.run`` probe computing the raw (traced) diagnostics of one node: a dict
    of scalars (a node solved per element of a ``map`` gets one per element)."""
    import jax
    import jax.numpy as jnp

    def probe(node, f, z, z0):
        n = z.shape[0]
        # the map examined: f itself (fix), the residual (root), the objective's gradient
        g = f if node.kind == "fix" else (f if node.kind == "root" else jax.grad(f))

        def jv(v):
            return jax.jvp(g, (z,), (v,))[1]

        def av(v):  # the matrix of the implicit function theorem, applied to v
            return v - jv(v) if node.kind == "fix" else jv(v)

        key = jax.random.fold_in(jax.random.PRNGKey(seed), node.node_id)
        k1, k2 = jax.random.split(key)
        v0 = jax.random.normal(k1, (n,), z.dtype)
        v0 = v0 / jnp.linalg.norm(v0)
        tiny = jnp.finfo(z.dtype).tiny

        def growth(apply):
            def power(v, _):
                w = apply(v)
                nw = jnp.linalg.norm(w)
                return w / jnp.maximum(nw, tiny), jnp.log(nw)

            _, logs = jax.lax.scan(power, v0, None, length=power_iters)
            return jnp.exp(jnp.mean(logs[power_iters // 2 :]))

        out = {"radius": growth(jv)}
        V = jax.random.rademacher(k2, (probes, n), z.dtype)
        out["fro"] = jnp.sqrt(jnp.mean(jnp.sum(jax.vmap(jv)(V) ** 2, axis=1)))
        if n <= DENSE_MAX:
            A = jax.vmap(av, out_axes=1)(jnp.eye(n, dtype=z.dtype))
            sv = jnp.linalg.svd(A, compute_uv=False)
            out["sigma_min"], out["sigma_max"] = jnp.min(sv), jnp.max(sv)
            if node.kind == "argmin":
                eigs = jnp.linalg.eigvalsh(0.5 * (A + A.T))
                out["eig_min"], out["eig_max"] = jnp.min(eigs), jnp.max(eigs)
        else:  # matrix-free: power iterations on AᵀA and on its shift s - AᵀA
            _, pull = jax.vjp(av, z)

            def ata(v):
                return pull(av(v))[0]

            top = growth(ata)
            shift = 1.01 * top
            out["sigma_max"] = jnp.sqrt(top)
            out["sigma_min"] = jnp.sqrt(
                jnp.maximum(shift - growth(lambda v: shift * v - ata(v)), 0)
            )
        if node.kind == "fix":
            half = drift_steps // 2

            def picard(x, _):
                y = f(x)
                return y, y

            zs = jax.lax.scan(picard, z0, None, length=drift_steps)[1]
            out["drift"] = jnp.linalg.norm(zs[-1] - z0) / drift_steps
            out["drift_half"] = jnp.linalg.norm(zs[half - 1] - z0) / half
        return out

    return probe


def _default_point(cm, args, seed: int):
    """Unconstrained params drawn like sampler inits (uniform(-2, 2), fixed seed): the
    first candidate with a finite log density, else the first candidate (an ill-posed
    model may have none; it is diagnosed all the same)."""
    import jax
    import jax.numpy as jnp

    from fpl.runtime.sampling import INIT_RADIUS, INIT_TRIES

    n = cm.param_unc_num()
    density = jax.jit(lambda u, a: cm.log_density(u, data=a))
    rng = np.random.default_rng(seed)
    first = None
    for _ in range(INIT_TRIES if n else 1):
        u = cm.ravel(
            {
                k: jnp.asarray(rng.uniform(-INIT_RADIUS, INIT_RADIUS, size=s))
                for k, s in cm.param_unc_shapes.items()
            }
        )
        first = first if first is not None else u
        if np.isfinite(float(density(u, args))):
            return u
    return first


def diagnose(
    model,
    params: Mapping[str, Any] | None = None,
    data=None,
    *,
    weights=None,
    seed: int = 0,
    power_iters: int = 200,
    probes: int = 64,
    drift_steps: int = 200,
) -> Diagnosis:
    """Diagnose every implicit node of ``model`` at ``params`` (constrained values by
    name; default: a point drawn like the samplers' inits with ``seed``)."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        cm = model.bind(data, weights)
        args = {k: jnp.asarray(v) for k, v in cm.data.items()}
        if params is None:
            point, constrained = _default_point(cm, args, seed), False
        else:
            cm.check_params(params)
            point = {k: jnp.asarray(v, float) for k, v in params.items()}
            constrained = True
        probe = make_probe(seed, power_iters, probes, drift_steps)

        def evaluate(a):
            ev = cm.evaluate(
                point, constrained=constrained, jacobian=False, data=a, probe=probe, report=False
            )
            values = {p.name: ev.values[p.name] for p in cm.params}
            return ev.stats, ev.probes, values

        stats, probed, values = jax.device_get(jax.jit(evaluate)(args))
    nodes = []
    for node in cm.nodes:
        if node.node_id not in stats:
            continue
        st = stats[node.node_id]
        raw = probed.get(node.node_id)
        d = NodeDiagnostics(
            node.node_id,
            node.kind,
            node.location,
            node.solver,
            float(st["residual"]),
            int(st["iterations"]),
            bool(st["converged"]),
            math.nan,
            span=node.span,
        )
        if raw is not None:
            _judge(d, node, raw)
        nodes.append(d)
    return Diagnosis(nodes, {k: np.asarray(v) for k, v in values.items()})


def _judge(d: NodeDiagnostics, node, raw: dict) -> None:
    """Judge each element's probe (one per solve of the node: a node in a ``map`` has
    many) and report the worst: the first ill-posed element, else the one with the
    smallest σ_min/σ_max."""
    fields = {k: np.ravel(np.asarray(v, float)) for k, v in raw.items()}
    count = len(fields["fro"])
    judged = []
    for i in range(count):
        one = NodeDiagnostics(
            d.node_id, d.kind, d.location, d.solver, d.residual, d.iterations, d.converged, 0.0
        )
        _judge_one(one, node, {k: v[i] for k, v in fields.items()})
        judged.append(one)

    def badness(x: NodeDiagnostics):
        ratio = (x.sigma_min or 0.0) / max(x.sigma_max or 0.0, 1e-300)
        return (not x.ill_posed, ratio if x.sigma_min is not None else math.inf)

    worst = min(judged, key=badness)
    for name in (
        "frobenius",
        "spectral_radius",
        "sigma_min",
        "sigma_max",
        "eig_min",
        "eig_max",
        "drift",
        "no_fixed_point",
        "ill_posed",
        "message",
    ):
        setattr(d, name, getattr(worst, name))
    d.elements = count
    if count > 1 and d.message:
        d.message += f" (the worst of {count} solves)"


def _judge_one(d: NodeDiagnostics, node, raw: dict) -> None:
    """The implicit function theorem needs A = ∂R/∂z nonsingular at z* (A = I − ∂f/∂z
    for ``fix``, ∂F/∂z for ``root``, the Hessian for ``argmin``, which must moreover be
    positive definite for a strict minimum).  ρ(∂f/∂z) < 1 is only the condition under
    which Picard iteration converges: a ``fix`` with ρ ≥ 1 and A nonsingular (a
    monotone DEQ) is well-posed, with a note."""
    d.frobenius = float(raw["fro"])
    if "sigma_min" in raw:
        d.sigma_min, d.sigma_max = float(raw["sigma_min"]), float(raw["sigma_max"])
    singular = d.sigma_min is not None and not d.sigma_min > SINGULAR * max(d.sigma_max, 1e-300)
    problems, notes = [], []
    if node.kind == "fix":
        d.spectral_radius = float(raw["radius"])
        d.drift = float(raw["drift"])
        half = float(raw["drift_half"])
        blown = not (np.isfinite(d.drift) and np.isfinite(half))
        drifting = d.drift > SINGULAR and d.drift >= DRIFT_RATIO * half
        d.no_fixed_point = not d.converged and (blown or drifting)
        if d.no_fixed_point:
            what = "blow up" if blown else f"drift at {d.drift:.3g} per step"
            problems.append(f"no fixed point in reach: the Picard iterates {what}")
        if singular:
            problems.append(
                f"I - df/dz is singular (smallest singular value {d.sigma_min:.3g}, "
                f"largest {d.sigma_max:.3g})"
            )
        if not d.spectral_radius < RADIUS_MAX:
            notes.append(
                f"spectral radius of df/dz is {d.spectral_radius:.4g} >= 1: plain Picard "
                "iteration need not converge (the implicit gradient needs only I - df/dz "
                "nonsingular)"
            )
    elif node.kind == "root" and singular:
        problems.append(
            f"dF/dz is singular (smallest singular value {d.sigma_min:.3g}, "
            f"largest {d.sigma_max:.3g})"
        )
    elif node.kind == "argmin":
        if "eig_min" in raw:
            d.eig_min, d.eig_max = float(raw["eig_min"]), float(raw["eig_max"])
            if not d.eig_min > SINGULAR * max(abs(d.eig_max), 1e-300):
                problems.append(
                    f"the Hessian is not positive definite (eigenvalues in "
                    f"[{d.eig_min:.3g}, {d.eig_max:.3g}])"
                )
        elif singular:
            problems.append(f"the Hessian is singular (smallest singular value {d.sigma_min:.3g})")
    d.ill_posed = bool(problems) and node.grad != "unrolled"
    d.message = "; ".join(problems + notes)


# ---- the method: settings, ``Model.diagnose`` and ``fpl diagnose`` --------------------


@dataclass(frozen=True)
class DiagnoseSettings(Settings):
    seed: int = option(0, "seed of the init point and the probes", min=0)
    weights: Any = option(None, "weight values (none: their init)", file=True)
    power_iters: int = option(200, "power iterations for a fix's spectral radius", min=1)
    probes: int = option(64, "Hutchinson probes of ‖J‖_F", min=1)
    drift_steps: int = option(200, "Picard steps of the no-fixed-point detector", min=2)


@dataclass(frozen=True)
class DiagnoseCommand(CommandOptions):
    strict: bool = option(False, "exit 1 if a node is ill-posed or did not converge")


def run(model, data, s: DiagnoseSettings, *, params=None) -> Diagnosis:
    return diagnose(
        model,
        params,
        data,
        weights=s.weights,
        seed=s.seed,
        power_iters=s.power_iters,
        probes=s.probes,
        drift_steps=s.drift_steps,
    )


def report(model, result: Diagnosis, args) -> int:
    """The table on stdout and, on stderr, a located warning (W0401) for each ill-posed
    node and (W0402) for each that did not converge; exit 1 for those with ``--strict``."""
    import json
    import sys

    print(result)
    warnings = [w for w in (n.warning() for n in result.nodes) if w is not None]
    for w in warnings:
        if args.error_format == "json":
            print(json.dumps(w.to_json()), file=sys.stderr)
        else:
            print("\n" + w.render(), file=sys.stderr)
    return 1 if args.strict and warnings else 0


METHOD = Method(
    name="diagnose",
    help="residuals and spectral radii of implicit nodes",
    settings=DiagnoseSettings,
    run="fpl.runtime.diagnose:run",
    inputs=(Input("params", "param values (none: a random init point, with --seed)", file=True),),
    command=DiagnoseCommand,
    report=report,
    output=None,
    quiet=None,
)

__all__ = [
    "METHOD",
    "DiagnoseSettings",
    "Diagnosis",
    "NodeDiagnostics",
    "diagnose",
    "make_probe",
    "run",
]
