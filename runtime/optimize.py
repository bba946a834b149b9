"""``Model.optimize``: fit params and weights with any optax optimizer.

The objective is the negative log density, on the unconstrained scale of each param
(and of each constrained weight), without the log-Jacobian by default — the mode of
the posterior on the params' own scale, as Stan's ``optimize`` finds it; with
``jacobian=True`` the log-Jacobian is added (the mode on the unconstrained scale, what
a Laplace approximation there is centred on).  Models without priors give the MLE.

One optimizer step (value and gradient, then the optax update) is one compiled
function of the data (arguments, never baked-in constants); steps run in compiled
chunks of ``lax.scan`` with the progress bar updated between chunks.

Minibatching (``batch_size=B``) slices the *batched fields* along their leading axis
(length N).  By default they are the data arrays whose declared leading size is the
size name leading the most data arrays (``N`` for ``x: real[N]``, ``X: real[N, D]``,
``y: int[N]``); ``batch_fields=`` names them explicitly.  Each epoch is a random
permutation of the N rows cut into ``N // B`` batches (a remainder is left out of that
epoch), so every batch is a uniform random subset.  The batch program is the model
bound to data of length B (the size names become B).  Each ``~`` or ``target +=``
statement that reads a batched field (directly or through ``let``/``out`` values) is a
likelihood term and is multiplied by N / B; everything else (priors) is not, so the
batch objective is an unbiased estimate of the full one when likelihood terms are sums
over rows.  A term that is an average at its top (``loss mean(...)``, ``target +=
-mean(...)``) is not scaled: a batch mean already estimates the full mean without bias.
Other non-sum terms (e.g. ``loss log(sum(...))``) have no unbiased minibatch estimate.

A non-converged implicit solve during a step is an error (E0406) naming the node and
the step, unless ``on_failure="skip"``: then that step's update is skipped and counted
(as are steps with a non-finite loss or gradient, otherwise E0410).  A failed backward
solve (an implicit node's gradient: singular or unsolved linear system, where its
forward solve converged) makes the gradient NaN; it is an error E0411 naming the node
and the step, or, with ``on_failure="skip"``, a skipped step, and it is counted per
node in ``OptimizeResult.gradient_failures``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpl.compiler import ir
from fpl.dsl.diagnostics import error

CHUNK = 200  # steps per compiled chunk: progress and Ctrl-C are checked between chunks
GTOL = 1e-5  # `converged`: full-data gradient norm <= GTOL * (1 + |loss|)
FORMAT = "fpl-optimize"


@dataclass
class OptimizeResult:
    """What ``Model.optimize`` returns.

    ``params`` holds the constrained params and the weights by name (``weights``
    only the weights, ready for ``Model.sample(weights=...)``), ``outputs`` every
    ``out`` value at the optimum, ``trace`` the loss of every step (on its minibatch
    when minibatching), ``loss`` and ``grad_norm`` the full-data objective and the norm
    of its gradient (unconstrained scale) at the end.
    """

    model: str
    param_values: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    trace: np.ndarray
    loss: float
    grad_norm: float
    steps: int
    skipped: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    #: implicit node ("fix#1 at model.fpl:9:9") -> failed backward (gradient) solves met
    #: during the steps (with on_failure="skip"; otherwise the first one is an error)
    gradient_failures: dict[str, int] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {**self.param_values, **self.weights}

    @property
    def converged(self) -> bool:
        """The full-data gradient norm is at most ``GTOL * (1 + |loss|)``."""
        return bool(np.isfinite(self.loss) and self.grad_norm <= GTOL * (1 + abs(self.loss)))

    @property
    def message(self) -> str:
        state = "converged" if self.converged else "stopped"
        text = (
            f"{state} after {self.steps} steps: loss {self.loss:.6g}, "
            f"gradient norm {self.grad_norm:.3g}"
        )
        text += f", {self.skipped} steps skipped" if self.skipped else ""
        failed = sum(self.gradient_failures.values())
        return text + (f", {failed} failed gradient solves" if failed else "")

    def __repr__(self) -> str:
        return f"<OptimizeResult {self.model}: {self.message}>"

    def summary(self) -> str:
        """A printable summary: the loss, then every param, weight and out (large
        arrays as their shape and norm)."""
        lines = [self.message]
        for title, group in (
            ("params", self.param_values),
            ("weights", self.weights),
            ("outs", self.outputs),
        ):
            if group:
                lines.append(f"{title}:")
                lines += [f"  {k} = {_show(v)}" for k, v in group.items()]
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        """Write the result as JSON, atomically (read back with :func:`load_result`)."""
        import json

        from fpl.runtime.io import write_atomic
        from fpl.runtime.jsondata import to_json_value

        if not str(path).endswith(".json"):
            raise error("E0502", f"cannot write `{path}`: an optimize result is saved as .json")
        doc = {
            "format": FORMAT,
            "model": self.model,
            "params": {k: to_json_value(v) for k, v in self.param_values.items()},
            "weights": {k: to_json_value(v) for k, v in self.weights.items()},
            "outputs": {k: to_json_value(v) for k, v in self.outputs.items()},
            "trace": to_json_value(self.trace),
            "loss": to_json_value(self.loss),
            "grad_norm": to_json_value(self.grad_norm),
            "steps": self.steps,
            "skipped": self.skipped,
            "attrs": self.attrs,
            "gradient_failures": self.gradient_failures,
        }
        text = json.dumps(doc)
        write_atomic(str(path), lambda tmp: Path(tmp).write_text(text))


def _show(v) -> str:
    a = np.asarray(v)
    if a.size <= 12:
        return np.array2string(a, precision=6, separator=", ") if a.ndim else f"{float(a):.6g}"
    return f"array of shape {a.shape}, norm {np.linalg.norm(a):.4g}"


def load_result(path: str | Path) -> OptimizeResult:
    """Read a result written by :meth:`OptimizeResult.save`."""
    from fpl.runtime.jsondata import JsonValueError, convert_value, load_json_object

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error("E0501", f"cannot read `{path}`: {exc.strerror or exc}") from None
    doc = load_json_object(text, str(path), code="E0404", what="optimize result")
    if doc.get("format") != FORMAT:
        raise error("E0404", f"`{path}` is not an FPL optimize result")

    def arrays(group: str) -> dict[str, np.ndarray]:
        try:
            return {
                k: np.asarray(convert_value(v, k), float) for k, v in doc.get(group, {}).items()
            }
        except (JsonValueError, AttributeError) as exc:
            raise error("E0404", f"`{path}`: bad `{group}`: {exc}") from None

    try:
        trace = np.asarray(convert_value(doc["trace"], "trace"), float).reshape(-1)
        loss = float(convert_value(doc["loss"], "loss"))
        grad_norm = float(convert_value(doc["grad_norm"], "grad_norm"))
        steps, skipped = int(doc["steps"]), int(doc.get("skipped", 0))
        grad_fail = {str(k): int(v) for k, v in dict(doc.get("gradient_failures", {})).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise error("E0404", f"`{path}`: missing or bad field {exc}") from None
    return OptimizeResult(
        str(doc.get("model", "model")),
        arrays("params"),
        arrays("weights"),
        arrays("outputs"),
        trace,
        loss,
        grad_norm,
        steps,
        skipped,
        dict(doc.get("attrs", {})),
        grad_fail,
    )


# ---- minibatching ---------------------------------------------------------------------


@dataclass
class Batching:
    fields: list[str]  # data arrays sliced along their leading axis
    n: int  # rows in the full data
    size: int  # rows per batch
    sizes: list[str]  # size names bound to the batch length


def _leading_name(decl: ir.DataDecl):
    return decl.ty.shape[0] if decl.ty.rank else None


def plan_batches(model, raw: Mapping[str, Any], full, batch_size: int, batch_fields) -> Batching:
    decls = {d.name: d for d in model.ir.data}
    if batch_fields is None:
        counts: dict[str, int] = {}
        for d in model.ir.data:
            dim = _leading_name(d)
            if isinstance(dim, str) and dim.isidentifier():
                counts[dim] = counts.get(dim, 0) + 1
        if not counts:
            raise error(
                "E0403",
                "no data array to minibatch (none has a size name as its leading size)",
                help="name them with `batch_fields`",
            )
        best = max(counts.values())
        leaders = [k for k, c in counts.items() if c == best]
        if len(leaders) > 1:
            raise error(
                "E0403",
                f"cannot tell which size to minibatch over "
                f"({', '.join(leaders)} lead as many data arrays)",
                help="name the batched data fields with `batch_fields`",
            )
        fields = [d.name for d in model.ir.data if _leading_name(d) == leaders[0]]
    else:
        fields = [batch_fields] if isinstance(batch_fields, str) else list(batch_fields)
        if not fields:
            raise error("E0403", "`batch_fields` is empty")
    for f in fields:
        if f not in decls:
            raise error(
                "E0403",
                f"`batch_fields` names `{f}`, which is not a data field of the model",
                help="data fields: " + ", ".join(decls),
            )
        if decls[f].ty.rank == 0:
            raise error("E0403", f"cannot minibatch the scalar data field `{f}`")
    lengths = {f: int(np.shape(full.arrays[f])[0]) for f in fields}
    n = lengths[fields[0]]
    if any(v != n for v in lengths.values()):
        shown = ", ".join(f"`{k}` {v}" for k, v in lengths.items())
        raise error("E0403", f"batched fields have different leading lengths: {shown}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= n:
        raise error("E0403", f"`batch_size` must be an integer in 1..{n}, got {batch_size!r}")
    sizes = []
    for f in fields:
        dim = _leading_name(decls[f])
        if not (isinstance(dim, str) and dim.isidentifier()):
            raise error(
                "E0403",
                f"cannot minibatch `{f}`: its leading size `{dim}` is not a size name",
                decls[f].span,
            )
        if dim not in sizes:
            sizes.append(dim)
    for d in model.ir.data:  # an unbatched array sized by a batched size would not fit
        if d.name not in fields and any(dim in sizes for dim in d.ty.shape):
            raise error(
                "E0403",
                f"data field `{d.name}` is sized by "
                f"`{next(x for x in d.ty.shape if x in sizes)}` but is not batched",
                d.span,
                help="add it to `batch_fields`",
            )
    return Batching(fields, n, batch_size, sizes)


def _is_average(s) -> bool:
    """A ``loss mean(...)`` / ``target += mean(...)`` term: a batch mean is already an
    unbiased estimate of the full mean, so it is not scaled by N / B."""
    if not isinstance(s, ir.Factor):
        return False
    e = s.value
    while isinstance(e, ir.Op) and e.name == "neg":
        e = e.args[0]
    return isinstance(e, ir.Op) and e.name == "mean"


def likelihood_terms(program: ir.Program, fields: list[str]) -> list[int]:
    """Indices of the ``~`` / ``target +=`` statements that read a batched field,
    directly or through ``let`` / ``out`` values."""
    tainted = set(fields)

    def reads(node) -> bool:
        for x in ir.walk(node):
            if isinstance(x, ir.Ref) and x.name in tainted:
                return True
            if isinstance(x, ir.Attr) and x.target.name in tainted:
                return True
        return False

    out = []
    for i, s in enumerate(program.statements):
        if isinstance(s, (ir.Let, ir.Out)) and reads(s.value):
            tainted.add(s.name)
        elif isinstance(s, (ir.Observe, ir.Factor)) and reads(s) and not _is_average(s):
            out.append(i)
        elif isinstance(s, ir.ParamDecl) and reads(s.constraint):
            raise error(
                "E0403", f"cannot minibatch: the bounds of `{s.name}` read batched data", s.span
            )
    return out


@dataclass
class Problem:
    full: Any  # the model bound to all the data
    batching: Batching | None
    program: ir.Program  # the program one step runs (bound at the batch size)
    static: dict[str, int]
    term_scale: dict[int, float]  # likelihood statements -> N / batch size
    to_raw: Any
    from_raw: Any


def _problem(model, raw, init_weights, batch_size, batch_fields, seed: int = 0) -> Problem:
    full = model.bind(raw, init_weights, weight_seed=seed)
    to_raw, from_raw = _weight_transforms(full.program, {**full.static, **full.arrays})
    if batch_size is None:
        if batch_fields is not None:
            raise error("E0403", "`batch_fields` needs `batch_size`")
        return Problem(full, None, full.program, full.static, {}, to_raw, from_raw)
    batching = plan_batches(model, raw, full, batch_size, batch_fields)
    small = {**raw, **{f: np.asarray(full.arrays[f])[:batch_size] for f in batching.fields}}
    small.update({s: batch_size for s in batching.sizes if s in raw})
    bb = model.bind(small, full.weights)
    for p_full, p_b in zip(full.program.params, bb.program.params):
        if tuple(p_full.ty.shape) != tuple(p_b.ty.shape):
            raise error(
                "E0403",
                f"cannot minibatch: the shape of param `{p_full.name}` depends on the batched size",
                p_full.span,
            )
    scale = batching.n / batching.size
    term_scale = {i: scale for i in likelihood_terms(bb.program, batching.fields)}
    return Problem(full, batching, bb.program, bb.static, term_scale, to_raw, from_raw)


def minibatch_objective(
    model, data, rows, params, *, batch_fields=None, weights=None, jacobian: bool = False
) -> float:
    """The objective ``optimize`` minimises on the minibatch of data rows ``rows`` (0-based
    indices into the batched fields), at constrained ``params``: the negative log
    density with the likelihood terms scaled by N / len(rows)."""
    import jax.numpy as jnp

    from fpl.runtime.sampling import _float64

    with _float64():
        rows = np.asarray(rows, int)
        prob = _problem(model, dict(data), weights, len(rows), batch_fields)
        full = prob.full
        fields = prob.batching.fields
        args = {k: jnp.asarray(v[rows] if k in fields else v) for k, v in full.arrays.items()}
        u = model.unconstrain(params, data, weights=full.weights)
        theta = {
            "params": {k: jnp.asarray(v) for k, v in u.items()},
            "weights": prob.to_raw({k: jnp.asarray(v) for k, v in full.weights.items()}),
        }
        f = _objective(prob.program, prob.static, prob.from_raw, jacobian, prob.term_scale)
        return float(f(theta, args)[0])


# ---- the optimization ------------------------------------------------------------------


def _weight_transforms(program: ir.Program, env: dict):
    """(to_raw, from_raw) for weights: constrained weights move on the unconstrained
    scale of their constraint (no Jacobian: weights are points, not random)."""
    from fpl.compiler import transforms
    from fpl.compiler.lower import Evaluator
    from fpl.stdlib.registry import registry

    ev = Evaluator(registry(), dict(env))
    bounds = {}
    for w in program.weights:
        c = w.constraint
        if c.kind != "real":
            lo = ev.expr(c.lower) if c.lower is not None else None
            hi = ev.expr(c.upper) if c.upper is not None else None
            bounds[w.name] = (c.kind, lo, hi)

    def to_raw(weights):
        return {
            k: (transforms.unconstrain(bounds[k][0], v, *bounds[k][1:]) if k in bounds else v)
            for k, v in weights.items()
        }

    def from_raw(raw):
        return {
            k: (transforms.constrain(bounds[k][0], v, *bounds[k][1:])[0] if k in bounds else v)
            for k, v in raw.items()
        }

    return to_raw, from_raw


def _objective(program, static, from_raw, jacobian, term_scale, names=()):
    """(theta, args, warm) -> (loss, (per-node failure flags, {name: value} for ``names``,
    the new warm-start state of ``warm=true`` implicit nodes))."""
    import jax.numpy as jnp

    from fpl.compiler.lower import from_unconstrained, run

    def objective(theta, args, warm=None):
        env = {**static, **args, **from_raw(theta["weights"])}
        source = from_unconstrained(theta["params"], jacobian)
        res = run(program, env, source, term_scale=term_scale, warm=warm)
        ids = objective.node_ids = sorted(res.solver_stats)  # the order of `failed`
        failed = (
            jnp.stack([jnp.logical_not(res.solver_stats[i]["converged"]) for i in ids])
            if ids
            else jnp.zeros((0,), bool)
        )
        return -res.target, (failed, {n: res.env[n] for n in names}, res.warm)

    return objective


def _split_init(model, init) -> tuple[dict | None, dict | None]:
    if init is None:
        return None, None
    if isinstance(init, OptimizeResult):
        init = init.params
    if isinstance(init, (str, Path)):
        from fpl.runtime.data import read_data

        init = read_data(init)
    weights = {w.name for w in model.ir.weights}
    unknown = set(init) - weights - set(model.param_names)
    if unknown:
        raise error(
            "E0403", f"`init` names unknown params or weights: {', '.join(sorted(unknown))}"
        )
    p = {k: v for k, v in init.items() if k in model.param_names}
    w = {k: v for k, v in init.items() if k in weights}
    return p or None, w or None


def _optimizer_name(optimizer) -> str:
    name = getattr(optimizer, "fpl_name", None)
    return name or type(optimizer).__name__


def optimize(
    model,
    data,
    *,
    optimizer,
    steps,
    seed,
    batch_size,
    batch_fields,
    init,
    jacobian,
    checkpoint,
    every,
    resume,
    progress,
    on_failure,
):
    import jax
    import jax.numpy as jnp
    import optax

    from fpl.compiler.implicit import BACKWARD_LISTENERS, warm_state
    from fpl.runtime import checkpoint as ckpt
    from fpl.runtime.nuts import Progress
    from fpl.runtime.sampling import _float64, find_inits

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise error("E0403", f"`steps` must be an integer >= 1, got {steps!r}")
    if on_failure not in ("error", "skip"):
        raise error("E0403", f"`on_failure` must be 'error' or 'skip', got {on_failure!r}")
    if every is not None and (not isinstance(every, int) or every < 1):
        raise error("E0403", f"`every` must be an integer >= 1, got {every!r}")
    if (every is not None or resume) and checkpoint is None:
        raise error("E0403", "`every` and `resume` need a `checkpoint` file")
    if optimizer is None:
        optimizer = optax.adam(1e-2)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise error(
            "E0403",
            f"`optimizer` must be an optax GradientTransformation, got {type(optimizer).__name__}",
        )
    extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)
    if seed is None and resume:  # the seed of the first run
        seed = ckpt.saved_seed(checkpoint)
    seed = secrets.randbelow(2**31) if seed is None else int(seed)

    with _float64():
        if isinstance(data, (str, Path)):
            from fpl.runtime.data import read_data

            data = read_data(data)
        raw = dict(data or {})
        init_params, init_weights = _split_init(model, init)
        prob = _problem(model, raw, init_weights, batch_size, batch_fields, seed)
        full, batching, from_raw, to_raw = prob.full, prob.batching, prob.from_raw, prob.to_raw
        program = prob.program
        args = {k: jnp.asarray(v) for k, v in full.arrays.items()}
        objective = _objective(program, prob.static, from_raw, jacobian, prob.term_scale)
        names = [*model.param_names, *model.out_names]
        full_objective = _objective(full.program, full.static, from_raw, jacobian, {}, names)

        key = jax.random.PRNGKey(seed)
        batch_key = jax.random.fold_in(key, 1)
        settings = {
            "seed": seed,
            "jacobian": bool(jacobian),
            "on_failure": on_failure,
            "batch": None if batching is None else [batching.fields, batching.size],
        }

        def fresh_theta():
            if init_params is not None and set(init_params) == set(model.param_names):
                model._check_params(full.program, init_params)
                u = model.unconstrain(init_params, raw, weights=full.weights)
                u = {k: jnp.asarray(v, float) for k, v in u.items()}
            else:  # Stan's random inits (for the params not given)
                (u,) = find_inits(model, full, args, 1, seed, init_params)
            w = to_raw({k: jnp.asarray(v, float) for k, v in full.weights.items()})
            return {"params": u, "weights": w}

        # the structure of theta and the optimizer state (for checking a checkpoint)
        shapes = model.unconstrained_shapes(full)
        theta_like = {
            "params": {k: jnp.zeros(s) for k, s in shapes.items()},
            "weights": {k: jnp.zeros(np.shape(v)) for k, v in full.weights.items()},
        }
        # the carried state: the optimizer's, and warm starts of `warm=true` implicit nodes
        warm0 = warm_state(program)
        state_like = (optimizer.init(theta_like), warm0)
        settings["optimizer"] = str(jax.tree_util.tree_structure(state_like))
        fp = ckpt.fingerprint(model, full.arrays, settings)

        if resume and Path(checkpoint).exists():
            header, saved = ckpt.load(str(checkpoint), "optimize", fp)
            start = int(header["step"])
            if start > steps:
                raise error("E0403", f"the checkpoint is at step {start}, beyond steps={steps}")
            theta = ckpt.tree_from("theta", saved, theta_like, str(checkpoint))
            opt_state = ckpt.tree_from("opt", saved, state_like, str(checkpoint))
            trace = [np.asarray(saved["trace"], float)]
            skipped = int(header.get("skipped", 0))
        elif resume:
            ckpt.load(str(checkpoint), "optimize", fp)  # raises: no such file
            raise AssertionError("unreachable")
        else:
            start, trace, skipped = 0, [np.zeros(0)], 0
            theta = fresh_theta()
            opt_state = (optimizer.init(theta), warm0)

        def batch_of(args, t):
            if batching is None:
                return args
            nb = batching.n // batching.size
            perm = jax.random.permutation(jax.random.fold_in(batch_key, t // nb), batching.n)
            idx = jax.lax.dynamic_slice_in_dim(perm, (t % nb) * batching.size, batching.size)
            return {
                k: (jnp.take(v, idx, axis=0) if k in batching.fields else v)
                for k, v in args.items()
            }

        value_and_grad = jax.value_and_grad(objective, has_aux=True)

        def step(carry, t, args):
            theta, (state, warm), skipped = carry
            batch = batch_of(args, t)
            (loss, (failed, _, new_warm)), g = value_and_grad(theta, batch, warm)
            if extra_args:
                updates, new_state = optimizer.update(
                    g,
                    state,
                    theta,
                    value=loss,
                    grad=g,
                    value_fn=lambda th: objective(th, batch, warm)[0],
                )
            else:
                updates, new_state = optimizer.update(g, state, theta)
            new_theta = optax.apply_updates(theta, updates)
            finite = jnp.isfinite(loss)
            for leaf in jax.tree_util.tree_leaves((g, new_theta)):
                finite = jnp.logical_and(finite, jnp.all(jnp.isfinite(leaf)))
            bad = jnp.logical_or(jnp.any(failed), jnp.logical_not(finite))
            keep = jax.tree_util.tree_map(
                lambda old, new: jnp.where(bad, old, new),
                (theta, (state, warm)),
                (new_theta, (new_state, new_warm)),
            )
            return (*keep, skipped + bad.astype(jnp.int32)), (loss, failed, bad)

        @jax.jit
        def chunk(theta, state, skipped, start, stop, args):
            # one compiled length for every chunk (the last one's spare steps idle)
            outs = jax.eval_shape(step, (theta, state, skipped), start, args)[1]

            def idle(carry, t, args):
                return carry, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), outs)

            def body(c, t):
                return jax.lax.cond(t < stop, step, idle, c, t, args)

            ts = start + jnp.arange(chunk_len)
            return jax.lax.scan(body, (theta, state, skipped), ts)

        def write(path, at, theta, opt_state, trace, skipped):
            arrays = {
                **ckpt.tree_arrays("theta", theta),
                **ckpt.tree_arrays("opt", opt_state),
                "trace": np.concatenate(trace),
                "key": np.asarray(key),
            }
            meta = {"skipped": int(skipped), "seed": seed}
            ckpt.save(str(path), "optimize", fp, at, meta, arrays)

        nodes = {n.node_id: n for n in program.implicit_nodes}
        bar = Progress(progress, steps - start, "optimize")
        chunk_len = min(CHUNK, every or CHUNK, steps)
        began = time.perf_counter()
        done, last_saved = start, start
        # failed backward solves are reported by the lowering through a host callback
        events: list[int] = []  # their node ids, since the last chunk
        grad_fail: dict[int, int] = {}
        listen = events.append
        grad_at = jax.jit(value_and_grad)

        def backward_failures_at(theta, opt_state, skipped, t0, k):
            """The nodes whose backward solve fails in step t0 + k of a chunk started at t0
            (re-run up to it: steps are deterministic)."""
            if k:
                (theta, opt_state, _), _ = chunk(
                    theta, opt_state, jnp.asarray(skipped, jnp.int32), t0, t0 + k, args
                )
            jax.effects_barrier()
            events.clear()
            jax.block_until_ready(grad_at(theta, batch_of(args, t0 + k), opt_state[1]))
            jax.effects_barrier()
            return list(events)

        BACKWARD_LISTENERS.append(listen)
        try:
            while done < steps:
                # chunks end on multiples of chunk_len, so a resumed run cuts the same way
                n = min(chunk_len - done % chunk_len, steps - done)
                (theta_n, state_n, skipped_n), (losses, failed, bad) = chunk(
                    theta, opt_state, jnp.asarray(skipped, jnp.int32), done, done + n, args
                )
                losses, bad = np.asarray(losses)[:n], np.asarray(bad)[:n]
                jax.effects_barrier()  # every callback of the chunk has run
                for i in events:
                    grad_fail[i] = grad_fail.get(i, 0) + 1
                if on_failure == "error" and bad.any():
                    k = int(np.argmax(bad))
                    if events and not np.asarray(failed)[k].any():
                        hit = backward_failures_at(theta, opt_state, skipped, done, k)
                        if hit:
                            _raise_backward(done + k + 1, hit[0], nodes)
                    _raise_step(
                        done + k + 1,
                        np.asarray(failed)[k],
                        objective.node_ids,
                        nodes,
                        float(np.asarray(losses)[k]),
                    )
                events.clear()
                theta, opt_state, skipped = theta_n, state_n, int(skipped_n)
                trace.append(np.asarray(losses, float))
                done += n
                bar.update(n, f"loss {float(trace[-1][-1]):.6g}")
                if every and done - last_saved >= every and done < steps:
                    write(checkpoint, done, theta, opt_state, trace, skipped)
                    last_saved = done
        except KeyboardInterrupt:
            if progress:
                import sys

                sys.stderr.write("\n")
            state = (done, theta, opt_state, list(trace), skipped)

            def save_later(path, state=state):
                write(path, state[0], *state[1:])

            if checkpoint is not None:
                save_later(str(checkpoint))
            where = f"; checkpoint written to {checkpoint}" if checkpoint is not None else ""
            how = (
                f"; resume with: model.optimize(..., checkpoint={str(checkpoint)!r}, resume=True)"
                if checkpoint is not None
                else "; pass checkpoint= (and every=) to be able to resume"
            )
            raise ckpt.Interrupted(
                f"interrupted at step {done}{where}{how}",
                step=done,
                checkpoint=None if checkpoint is None else str(checkpoint),
                save=save_later,
            ) from None
        finally:
            BACKWARD_LISTENERS.remove(listen)
        if checkpoint is not None:
            write(checkpoint, done, theta, opt_state, trace, skipped)
        seconds = time.perf_counter() - began

        # the optimum, on the full data: loss, gradient norm, params, weights and outs
        final = jax.jit(jax.value_and_grad(full_objective, has_aux=True))
        (loss, (_, values, _)), g = final(theta, args)
        grad_norm = float(optax.global_norm(g))
        values = {k: np.asarray(v) for k, v in values.items()}
    return OptimizeResult(
        model=model.name,
        param_values={p: values[p] for p in model.param_names},
        weights={k: np.asarray(v) for k, v in from_raw(theta["weights"]).items()},
        outputs={o: values[o] for o in model.out_names},
        trace=np.concatenate(trace),
        loss=float(loss),
        grad_norm=grad_norm,
        steps=done,
        skipped=skipped,
        gradient_failures={
            f"{n.kind}#{n.node_id} at {n.span.location}": grad_fail.get(n.node_id, 0)
            for n in program.implicit_nodes
        },
        attrs={
            "seed": seed,
            "optimizer": _optimizer_name(optimizer),
            "jacobian": bool(jacobian),
            "batch_size": batch_size or 0,
            "seconds": round(seconds, 3),
        },
    )


def _raise_backward(step: int, node_id: int, nodes) -> None:
    node = nodes.get(node_id)
    what = f"`{node.kind}`" if node is not None else f"implicit node #{node_id}"
    raise error(
        "E0411",
        f"the gradient (backward) solve of the {what} failed at optimization step {step}: "
        "its linear system (the Jacobian of the residual in the unknown, at the solution) "
        "is singular or was not solved, so the gradient is NaN",
        None if node is None else node.span,
        label="this implicit node",
        help="the solution must be locally unique (an invertible Jacobian) for its gradient "
        "to exist: check the model there (`fpl diagnose`), start elsewhere, or pass "
        "on_failure='skip' (CLI: --on-solver-failure skip) to skip such steps",
    )


def _raise_step(step: int, failed, node_ids, nodes, loss: float) -> None:
    failed = np.asarray(failed).reshape(-1)
    for i, bad in zip(node_ids, failed):
        if bad:
            node = nodes[i]
            raise error(
                "E0406",
                f"the `{node.kind}` solve did not converge at optimization step {step}",
                node.span,
                label="this implicit node",
                help="raise the solver's `max_iter` or loosen `tol`, start nearer a solution, "
                "or pass on_failure='skip' (CLI: --on-solver-failure skip) to skip such steps",
            )
    raise error(
        "E0410",
        f"the loss or its gradient is not finite at optimization step {step} (loss {loss:g})",
        help="lower the learning rate, give `init` values, or pass on_failure='skip' "
        "(CLI: --on-solver-failure skip) to skip such steps",
    )


__all__ = ["OptimizeResult", "load_result", "optimize"]
