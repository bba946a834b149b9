"""IR -> JAX.  The lowering is an evaluator over the IR that runs at *trace time*: under
``jax.jit`` it walks the IR once and leaves behind only the JAX operations, so the
compiled program is what hand-written JAX of the same model would be.

One walk serves every use (log density on either scale, generated quantities):
``run`` evaluates the statements in order, taking each param's value from a
``ParamSource`` and adding every ``~`` and ``target +=`` term to the log density.
Compiling a model never executes text from the model: the IR only names registry
entries, and the evaluator dispatches on IR node types.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, assert_never

import numpy as np

from fpl.compiler import ir, lower_calls, reporting, transforms
from fpl.dsl.diagnostics import error
from fpl.stdlib.lazy import jax, jnp
from fpl.stdlib.registry import Registry, registry

ParamSource = Callable[[ir.ParamDecl, Any, Any], tuple[Any, Any]]
"""(decl, lower, upper) -> (constrained value, log-Jacobian term)."""


@dataclass
class Result:
    target: Any
    env: dict[str, Any]
    solver_stats: dict[int, dict[str, Any]] = field(default_factory=dict)
    in_support: Any = True
    solver_failures: Any = 0  # implicit nodes whose forward solve did not converge
    #: warm-start state out: node id -> last converged solution (flat) of each `warm=true`
    #: node, NaN where none yet; feed it back as ``run(..., warm=)`` (only when given)
    warm: dict[int, Any] = field(default_factory=dict)
    #: what ``run(..., probe=)`` returned per implicit node (well-posedness diagnostics)
    probes: dict[int, Any] = field(default_factory=dict)
    #: statement index -> the elementwise log density of that ``~`` term before it is
    #: summed (and before any ``term_scale``): what ``fpl.compiler.pointwise`` reads
    terms: dict[int, Any] = field(default_factory=dict)
    #: whether a ``reject`` was reached (then ``target`` is -inf), by the `reject` node
    rejected: dict[int, Any] = field(default_factory=dict)
    reject_nodes: dict[int, ir.Reject] = field(default_factory=dict)


class Evaluator:
    def __init__(self, reg: Registry, env: dict[str, Any], rng_key=None):
        self.reg = reg
        self.env = env
        self.rng_key = rng_key
        self.solver_stats: dict[int, dict[str, Any]] = {}
        # set by `run` on the top-level evaluator only (see `run`'s `warm` and `probe`)
        self.warm: dict[int, Any] | None = None
        self.warm_out: dict[int, Any] = {}
        self.probe: Callable | None = None
        self.probes: dict[int, Any] = {}
        # `reject` (Stan's): the tests of the `? :` branches being evaluated, with the
        # branch taken (a reject is reached where all hold); the rejects reached (flags,
        # by node key); the error code of a reject reached with known values, where it is
        # an error (data-only values at bind time: `derive`), else None (a flag: -inf)
        self.conditions: list[tuple[Any, bool]] = []
        self.rejected: dict[int, Any] = {}
        self.reject_nodes: dict[int, ir.Reject] = {}
        self.reject_code: str | None = None
        #: user function instances wrapped for sharing, per run (``lower_calls``)
        self.shared: dict[Any, Any] = {}

    def next_key(self):
        if self.rng_key is None:
            raise RuntimeError("random draws need a key")
        self.rng_key, key = jax.random.split(self.rng_key)
        return key

    def child(self, bindings: dict[str, Any]) -> Evaluator:
        ev = Evaluator(self.reg, {**self.env, **bindings}, self.rng_key)
        ev.solver_stats = self.solver_stats
        ev.probe = self.probe
        ev.reject_nodes, ev.reject_code = self.reject_nodes, self.reject_code
        ev.shared = self.shared
        return ev

    # ---- reject ----
    def reached(self):
        """Whether the expression being evaluated is reached: every enclosing ``? :``
        test holds on the branch taken, for some element (tests of shapes that do not
        broadcast together are reduced first)."""
        mask: Any = True
        for test, branch in self.conditions:
            hold = test if branch else jnp.logical_not(test)
            try:
                np.broadcast_shapes(np.shape(mask), np.shape(hold))
            except ValueError:
                mask = jnp.any(mask)
            mask = jnp.logical_and(mask, hold)
        return jnp.any(mask)

    def x_Reject(self, e: ir.Reject):
        """Reached in data-only code (at bind time, ``reject_code`` set): the located
        error, with the values; elsewhere (a sampler, a density, an optimizer) a flag that
        makes the log density -inf (``run``): the point is rejected, as in Stan.  Its
        value is never used."""
        values = [self.expr(a) for a in e.args]
        reached = self.reached()
        known = not any(isinstance(v, jax.core.Tracer) for v in (reached, *values))
        if known and self.reject_code is not None and bool(reached):
            raise self.rejection(e, values)
        self.reject_nodes[id(e)] = e
        self.take_rejected({id(e): reached}, batched=False)
        return jnp.nan if e.ty.base == "real" else 0

    def integer_divisor(self, e: ir.Op, divisor) -> None:
        """Integer ``%`` and ``/`` by 0 (Stan's domain error; JAX gives 0 or inf) reject
        the point where reached, as a ``reject`` at the divisor would: -inf where params
        decide it (``5 % int_step(mu)``), E0208 where it is known in data-only code (a
        function body's argument; top-level data divisors are E0208 at bind time)."""
        self.conditions.append((jnp.asarray(divisor) == 0, True))
        try:
            zero = self.reached()  # an element divides by 0 where it is evaluated
        finally:
            self.conditions.pop()
        if not isinstance(zero, jax.core.Tracer) and not bool(zero):
            return
        what = "`%`" if e.name == "mod" else "`/`"
        site = ir.Reject(e.name, (), e.ty, e.args[1].span, message=f"integer {what} by zero")
        self.reject_nodes.setdefault(id(e), site)  # named `mod`/`div`: E0208 (`rejection`)
        self.take_rejected({id(e): zero}, batched=False)

    def rejection(self, e: ir.Reject, values=None):
        assert self.reject_code is not None  # raised only where rejects are errors
        if e.name != "reject":  # an integer divisor (`integer_divisor`)
            return error("E0208", e.message, e.span, label="this is zero")
        shown = "".join(_shown(v) for v in values) if values is not None else ""
        where = "" if values is not None else " (inside a function of `map`, `scan` or `fold`)"
        return error(
            self.reject_code,
            f"rejected: {e.message}{shown}{where}",
            e.span,
            label="`reject` reached here",
        )

    def take_rejected(self, flags: dict[int, Any], batched: bool) -> None:
        """Merge the reject flags of an inner evaluation (reduced over its leading axes
        where ``batched``); a flag known to be set is the located error."""
        for key, flag in flags.items():
            flag = jnp.any(flag) if batched else flag
            have = self.rejected.get(key)
            self.rejected[key] = flag if have is None else jnp.logical_or(have, flag)
            known = not isinstance(self.rejected[key], jax.core.Tracer)
            if known and self.reject_code is not None and bool(self.rejected[key]):
                raise self.rejection(self.reject_nodes[key])

    def absorb(self, stats: dict[int, dict[str, Any]], probes: dict[int, Any], batched: bool):
        """Take in the solver results of an inner evaluation (a function body, a ``map``,
        ``scan`` or ``fold`` step, a derivative): per node, reduced over the leading
        axis where ``batched``, then merged with what this evaluation already holds
        (``fpl.compiler.implicit.merge_stats``)."""
        from fpl.compiler.implicit import merge_probes, merge_stats, reduce_stats

        for node_id, st in stats.items():
            st = reduce_stats(st) if batched else st
            have = self.solver_stats.get(node_id)
            self.solver_stats[node_id] = st if have is None else merge_stats(have, st)
        for node_id, pr in probes.items():
            have = self.probes.get(node_id)
            self.probes[node_id] = pr if have is None else merge_probes(have, pr)

    # ---- expressions ----
    def expr(self, e: ir.Expr) -> Any:
        match e:
            case ir.Const():
                return self.x_Const(e)
            case ir.Ref():
                return self.x_Ref(e)
            case ir.Reject():
                return self.x_Reject(e)
            case ir.Op():
                return self.x_Op(e)
            case ir.Cond():
                return self.x_Cond(e)
            case ir.Index():
                return self.x_Index(e)
            case ir.ArrayLit():
                return self.x_ArrayLit(e)
            case ir.LogProb():
                return self.x_LogProb(e)
            case ir.Rng():
                return self.x_Rng(e)
            case ir.Apply():
                return self.x_Apply(e)
            case ir.HigherOrder():
                return self.x_HigherOrder(e)
            case ir.Implicit():
                return self.x_Implicit(e)
            case ir.Attr():
                return self.x_Attr(e)
            case _:
                assert_never(e)

    def x_Const(self, e: ir.Const):
        return e.value

    def x_Ref(self, e: ir.Ref):
        return self.env[e.name]

    def x_Op(self, e: ir.Op):
        args = [self.expr(a) for a in e.args]
        if ir.integer_division(e):
            self.integer_divisor(e, args[1])
        try:
            return self.reg.functions[e.name].impl(*args)
        except jax.errors.JAXTypeError:
            raise  # tracer misuse is a bug in FPL, not a user's shape error
        except (TypeError, ValueError) as exc:
            raise error("E0202", f"`{e.name}`: {exc}", e.span) from None

    def x_Cond(self, e: ir.Cond):
        test = self.expr(e.test)
        if isinstance(test, bool):
            return self.expr(e.then) if test else self.expr(e.orelse)
        branches = []
        for branch, value in ((True, e.then), (False, e.orelse)):
            self.conditions.append((test, branch))  # for a `reject` inside (x_Reject)
            try:
                branches.append(self.expr(value))
            finally:
                self.conditions.pop()
        return jnp.where(test, *branches)

    def x_ArrayLit(self, e: ir.ArrayLit):
        items = [jnp.asarray(self.expr(i)) for i in e.items]
        if not items:
            return jnp.zeros((0,))
        shape = jnp.broadcast_shapes(*(i.shape for i in items))
        return jnp.stack([jnp.broadcast_to(i, shape) for i in items])

    def static_int(self, e, what: str) -> int:
        value = self.expr(e)
        try:
            return int(value)
        except Exception:  # a tracer: the bound depends on params
            raise error("E0201", f"{what} must be known before the model runs", e.span) from None

    def x_Index(self, e: ir.Index):
        x = jnp.asarray(self.expr(e.target))
        axis = 0
        arrays: list[tuple[int, Any]] = []  # (axis of x, 0-based index array): paired below
        for item in e.items:
            if isinstance(item, ir.Slice):
                lo = self.static_int(item.lo, "a slice bound") if item.lo is not None else 1
                hi = (
                    self.static_int(item.hi, "a slice bound")
                    if item.hi is not None
                    else x.shape[axis]
                )
                if lo < 1 or hi > x.shape[axis] or hi < lo - 1:
                    raise error(
                        "E0202", f"slice {lo}:{hi} is out of range 1:{x.shape[axis]}", e.span
                    )
                x = jax.lax.slice_in_dim(x, lo - 1, hi, axis=axis)
                axis += 1
            else:
                idx = self.expr(item)
                if isinstance(idx, int):
                    if not 1 <= idx <= x.shape[axis]:
                        raise error(
                            "E0202", f"index {idx} is out of range 1:{x.shape[axis]}", item.span
                        )
                    x = jnp.take(x, idx - 1, axis=axis)
                else:
                    if not isinstance(idx, jax.core.Tracer):  # known now: check the range
                        bad = (np.asarray(idx) < 1) | (np.asarray(idx) > x.shape[axis])
                        if np.any(bad):
                            v = np.asarray(idx)[bad].flat[0]
                            raise error(
                                "E0202", f"index {v} is out of range 1:{x.shape[axis]}", item.span
                            )
                    idx = jnp.asarray(idx)
                    if idx.ndim:
                        arrays.append((axis, idx - 1))
                        axis += 1
                        continue
                    # traced indices out of range read NaN (for reals), so the log density
                    # is rejected rather than silently computed from a clipped element
                    x = jnp.take(x, idx - 1, axis=axis, mode="fill")
        if len(arrays) == 1:
            x = jnp.take(x, arrays[0][1], axis=arrays[0][0], mode="fill")
        elif arrays:
            # index arrays pick elements pairwise (NumPy's rule once they are adjacent):
            # their common shape stands where the first of them was (the checker's rule)
            first, axes = arrays[0][0], [a for a, _ in arrays]
            x = jnp.moveaxis(x, axes, list(range(first, first + len(axes))))
            index = (slice(None),) * first + tuple(i for _, i in arrays)
            x = x.at[index].get(mode="fill")
        return x

    def dist(self, d: ir.Dist, value=None):
        entry = self.reg.distributions[d.name]
        args = [self.expr(a) for a in d.args]
        # NumPyro's eager argument validation would raise a ValueError on, e.g., a NaN from a
        # failed solve when run outside jit; FPL's semantics are a log density of -inf/NaN
        # there (rejected by samplers, reported by the runtime), the same under jit or not.
        from numpyro.distributions.distribution import validation_enabled

        with validation_enabled(False):
            if entry.needs_event_shape:
                shape = jnp.shape(value) if value is not None else tuple(d.ty.shape)
                event = shape[len(shape) - entry.event_rank :]
                return entry, entry.build(*args, event_shape=event)
            return entry, entry.build(*args)

    def log_prob(self, d: ir.Dist, value, kind: ir.LogProbKind = "lpdf"):
        entry, dist = self.dist(d, value)
        if entry.value_offset:
            value = value - entry.value_offset
        match kind:
            case "lpdf":
                return dist.log_prob(value)
            case "cdf":
                return dist.cdf(value)
            case "lcdf":
                return jnp.log(dist.cdf(value))
            case "lccdf":
                return jnp.log1p(-dist.cdf(value))
            case _:
                assert_never(kind)

    def x_LogProb(self, e: ir.LogProb):
        return self.log_prob(e.dist, self.expr(e.value), e.kind)

    def draw(self, d: ir.Dist, sample_shape: tuple[int, ...] = ()):
        entry, dist = self.dist(d)
        x = dist.sample(self.next_key(), sample_shape)
        return x + entry.value_offset if entry.value_offset else x

    def x_Rng(self, e: ir.Rng):
        if self.rng_key is None:  # a `loss` with draws, evaluated by anything but optimize
            raise error(
                "E0207",
                f"`{e.dist.name}_rng` in a `loss` draws fresh numbers at each optimizer "
                "step: only `optimize` evaluates such a loss",
                e.span,
                help="fit this model with `optimize`, or move the draw to a `gen` statement",
            )
        return self.draw(e.dist)

    def callable(self, fn: ir.FnValue) -> Callable:
        """A function value as a Python callable (``fpl.compiler.lower_calls``)."""
        return lower_calls.function_value(self, fn)

    def x_Apply(self, e: ir.Apply):
        return lower_calls.apply(self, e)

    def x_HigherOrder(self, e: ir.HigherOrder):
        return lower_calls.higher_order(self, e)

    def x_Implicit(self, e: ir.Implicit):
        from fpl.compiler.implicit import lower_implicit

        return lower_implicit(self, e)

    def x_Attr(self, e: ir.Attr):
        return self.env[f"{e.target.name}.{e.name}"]


def _shown(value) -> str:
    """A value after a `reject` message, as Stan prints it: numbers plainly, arrays in
    brackets."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return f"{arr.item():g}" if arr.dtype.kind == "f" else str(arr.item())
    return np.array2string(arr, precision=6, threshold=20, separator=", ")


def run(
    program: ir.Program,
    env: dict[str, Any],
    params: ParamSource,
    *,
    rng_key=None,
    generate: bool = False,
    reg: Registry | None = None,
    term_scale: dict[int, Any] | None = None,
    warm: dict[int, Any] | None = None,
    probe: Callable | None = None,
) -> Result:
    """Evaluate ``program`` in order.  ``env`` holds data and weights; params come from
    ``params``.  Returns the log density, every named value, and solver statistics.

    ``term_scale`` maps the index (in ``program.statements``) of a ``~`` or
    ``target +=`` statement to a factor its term is multiplied by: minibatched
    optimization scales the likelihood terms of a batch by N / batch size so that the
    objective is an unbiased estimate of the full-data one (priors stay unscaled).

    ``warm`` (warm starts of implicit nodes declared ``warm=true``): a dict node id ->
    previous solution, e.g. ``fpl.compiler.implicit.warm_state(program)`` (all NaN: no
    previous solution) on the first call and ``Result.warm`` of the previous call after
    that.  Each such node then starts from its previous converged solution instead of
    its ``init``; values and derivatives are unchanged (the implicit derivative does not
    depend on the starting point), only the iteration count drops.  Pure-functional: a
    jitted optimizer step takes the state as an operand and returns the new one, e.g.
    ``value, grad, state = step(params, state)`` with ``res = run(..., warm=state)``
    and ``(-res.target, res.warm)`` as ``value_and_grad(..., has_aux=True)``'s output.
    ``warm=None`` (default) disables warm starts and leaves ``Result.warm`` empty.

    ``probe(node, f, z, z0)``, if given, is called once per solve of an implicit node
    (per element for a node inside ``map``/``scan``/``fold``; not for a node nested in
    another node's body) at its solution ``z`` with the node's map ``f`` of the flat
    unknown (parameters held fixed); what it returns is collected in ``Result.probes``
    by node id (with leading axes for the elements, or raveled where merged).

    Solver results of nodes inside functions, ``map``, ``scan``, ``fold`` and the
    derivative operators leave those traces as data and are reduced per node
    (``fpl.compiler.implicit.reduce_stats``), so they count for the -inf rule below and
    appear in ``Result.solver_stats`` like top-level nodes.  Warm starts apply to
    top-level nodes only."""
    with warnings.catch_warnings():
        # Params outside their support get -inf below; NumPyro's eager warning about
        # out-of-support values is expected there and not the user's concern.
        warnings.filterwarnings("ignore", "Out-of-support values", UserWarning)
        return _run(program, env, params, rng_key, generate, reg, term_scale or {}, warm, probe)


def _run(program, env, params, rng_key, generate, reg, term_scale, warm=None, probe=None):
    ev = Evaluator(reg or registry(), dict(env), rng_key)
    ev.warm, ev.warm_out, ev.probe, ev.probes = warm, {}, probe, {}
    target = 0.0
    ok = True
    terms: dict[int, Any] = {}
    for i, s in enumerate(program.statements):
        if isinstance(s, ir.ParamDecl):
            c = s.constraint
            lower = ev.expr(c.lower) if c.lower is not None else None
            upper = ev.expr(c.upper) if c.upper is not None else None
            value, log_jac, valid = params(s, lower, upper)
            ev.env[s.name] = value
            target = target + log_jac
            ok = jnp.logical_and(ok, valid)
        elif isinstance(s, (ir.Let, ir.Out)):
            ev.env[s.name] = ev.expr(s.value)
            if isinstance(s.value, ir.Implicit):
                stats = ev.solver_stats.get(s.value.node_id, {})
                ev.env[f"{s.name}.residual"] = stats.get("residual", 0.0)
                ev.env[f"{s.name}.iterations"] = stats.get("iterations", 0)
        elif isinstance(s, ir.Observe):
            terms[i] = ev.log_prob(s.dist, ev.expr(s.value))
            term = jnp.sum(terms[i])
            target = target + (term * term_scale[i] if i in term_scale else term)
        elif isinstance(s, ir.Factor):
            term = jnp.sum(ev.expr(s.value))
            target = target + (term * term_scale[i] if i in term_scale else term)
        elif generate and isinstance(s, ir.GenDraw):
            ev.env[s.name] = ev.draw(s.dist)
        elif generate and isinstance(s, ir.GenLet):
            ev.env[s.name] = ev.expr(s.value)
    # A non-converged solve makes the log density -inf (the sampler rejects the point;
    # optimizers see it), never a silently wrong value.
    failed = [jnp.logical_not(st["converged"]) for st in ev.solver_stats.values()]
    n_failed = sum(jnp.asarray(f, jnp.int32) for f in failed) if failed else 0
    # (optimize's on_failure="best" keeps the value: fpl.compiler.reporting.keep_unconverged)
    solved = (n_failed == 0) | reporting.keep_unconverged()
    target = jnp.where(jnp.logical_and(ok, solved), target, -jnp.inf)
    # a `reject` reached: the proposal is rejected, as in Stan
    rejected = functools.reduce(jnp.logical_or, ev.rejected.values(), jnp.asarray(False))
    target = jnp.where(rejected, -jnp.inf, target)
    return Result(
        target,
        ev.env,
        ev.solver_stats,
        ok,
        n_failed,
        ev.warm_out,
        ev.probes,
        terms,
        ev.rejected,
        ev.reject_nodes,
    )


def derive(
    derivations: tuple[tuple[str, ir.Expr], ...],
    env: dict[str, Any],
    constants: tuple[tuple[str, ir.Expr], ...] = (),
    reg: Registry | None = None,
) -> dict[str, Any]:
    """The values of data-only ``derivations`` (``fpl.compiler.passes.hoist``), in order,
    each seeing ``env`` (data and sizes), the ``constants`` (lets of sizes only,
    evaluated first, not returned) and the derivations before it.  Pure: called once at
    bind time on the data's arrays, or inside a trace on data passed as operands."""
    ev = Evaluator(reg or registry(), dict(env))
    ev.reject_code = reporting.REJECT_CODE  # data-only values: a `reject` reached is an error
    for name, value in constants:
        ev.env[name] = ev.expr(value)
    out: dict[str, Any] = {}
    for name, value in derivations:
        out[name] = ev.env[name] = ev.expr(value)
    return out


# ---- param sources ------------------------------------------------------------------


def from_constrained(values: dict[str, Any], jacobian: bool = False) -> ParamSource:
    """Params given on their own (constrained) scale, as ``Model.log_density`` takes them.
    Values outside the declared support give a log density of -inf."""

    def source(decl: ir.ParamDecl, lower, upper):
        x = jnp.asarray(values[decl.name], dtype=jnp.result_type(float))
        kind = decl.constraint.kind
        valid = transforms.in_support(kind, x, lower, upper)
        if not jacobian or kind == "real":
            return x, 0.0, valid
        return x, transforms.log_jacobian_at(kind, x, lower, upper), valid

    return source


def from_unconstrained(values: dict[str, Any], jacobian: bool = True) -> ParamSource:
    """Params given on the unconstrained scale (what samplers move in)."""

    def source(decl: ir.ParamDecl, lower, upper):
        u = values[decl.name]
        kind = decl.constraint.kind
        if kind == "real":
            return u, 0.0, True
        x, log_jac = transforms.constrain(kind, u, lower, upper)
        return x, (log_jac if jacobian else 0.0), transforms.bounds_ordered(kind, lower, upper)

    return source
