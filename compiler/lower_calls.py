"""Lowering of calls: user functions, derivatives of them, ``map``/``scan``/``fold`` and
the ODE solves (the :class:`fpl.compiler.lower.Evaluator` delegates here).

**Shared sub-calls are traced once.**  A user function instance (one ``ir.Lambda``: a
function checked at one list of argument types) called from many places is lowered,
while a JAX program is being staged out (under ``jit``, ``scan`` ...), to one
``jax.jit``-wrapped Python function per run and per *static signature*: which of its
inputs (arguments, the outer names its body reads, the random key, the reachability
flag of an enclosing ``? :``) are traced, and the identity of those that are not.
JAX then traces its body once per abstract signature (shapes, dtypes) and every call
is a ``pjit`` equation sharing that jaxpr, so the trace of
``f2(x) = f1(f1(x)) ... f30(x) = f29(f29(x))`` is linear in the number of functions,
not in the 2^29 call paths.  Values that are known while tracing (data sizes, constant
arguments) stay Python values inside the body, exactly as in the inlined lowering, so
a body that uses an argument as a slice bound still sees a number.

XLA does not keep the sharing: its CPU pipeline inlines every call and its call-graph
flattening clones a computation per call site (measured: 2^n copies, a segfault at
n = 16).  The one construct XLA runs many times from one copy is a loop, so a *chain*
of applications of one function to its own result, ``g(g(...g(x)))`` with the other
arguments the same at every link, is lowered as a ``lax.scan`` of length d over one
call of ``g`` (the loop carries the chained argument; the solver results, probes and
reject flags of the d calls leave it stacked and are reduced as a ``map``'s are, which
gives the same values as merging them call by call: max, all, sum and the first
failure code are order-free or keep the call order).  The doubling program then
compiles to 30 nested two-trip loops.  Its evaluation is still 2^29 applications of
``f1``: sharing removes the exponential code, not the exponential work.

Values are those of the inlined lowering: the same operations in the same order (the
loop runs the calls one after another); ``tests/compiler/test_shared_calls.py``
compares the two on every example and posteriordb model.  Outside a staged trace
(eager evaluation, or values all known: data-only code at bind time, where a
``reject`` is a located error with its values) calls are inlined as before, and
:func:`inlined` forces that everywhere (the reference the tests compare against).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, assert_never

from fpl.compiler import ir
from fpl.stdlib.lazy import jax, jnp

if TYPE_CHECKING:
    from fpl.compiler.lower import Evaluator

_SHARING: contextvars.ContextVar[bool] = contextvars.ContextVar("fpl_share_calls", default=True)


@contextlib.contextmanager
def inlined() -> Iterator[None]:
    """Within this block, code traced inlines every user function call (the lowering
    before calls were shared: the reference the tests compare the shared one with)."""
    token = _SHARING.set(False)
    try:
        yield
    finally:
        _SHARING.reset(token)


def staged() -> bool:
    """Whether JAX is staging a program out now (``jit``, ``scan``, a loop body ...),
    as opposed to evaluating eagerly, where a nested ``jit`` would compile each
    function on its own for nothing."""
    try:
        from jax._src import core
        from jax._src.interpreters.partial_eval import DynamicJaxprTrace

        trace = core.trace_ctx.trace
        while trace is not None:
            if isinstance(trace, DynamicJaxprTrace):
                return True
            trace = getattr(trace, "parent_trace", None)
    except (ImportError, AttributeError):  # another JAX: inline, as before
        return False
    return False


# ---- function values -------------------------------------------------------------


def body_value(ev: Evaluator, fn: ir.Lambda):
    """A function body evaluated by ``ev`` (its arguments bound): ``(value, (stats,
    probes, rejected))``, the solver results and reject flags of the nodes inside
    returned as data for the caller to absorb."""
    for name, value in fn.lets:
        ev.env[name] = ev.expr(value)
        if isinstance(value, ir.Implicit):  # `name.residual` in the body
            st = ev.solver_stats[value.node_id]
            ev.env[f"{name}.residual"] = st["residual"]
            ev.env[f"{name}.iterations"] = st["iterations"]
    return ev.expr(fn.result), (ev.solver_stats, ev.probes, ev.rejected)


def function_value(ev: Evaluator, fn: ir.FnValue) -> Callable:
    """A function value as a Python callable of JAX values returning ``(value,
    (stats, probes, rejected))`` (auxiliary outputs of ``vmap``, ``scan`` and the
    derivative transforms), which callers absorb."""
    if isinstance(fn, ir.Lambda):

        def call(*args):
            inner = ev.child(dict(zip(fn.params, args)))
            inner.solver_stats, inner.probes = {}, {}  # this call's own results, returned
            if ev.conditions:  # the call is reached where the caller is
                inner.conditions = [(ev.reached(), True)]
            return body_value(inner, fn)

        return call
    f = function_value(ev, fn.fn)
    k = fn.argnum

    def partial(a):
        a = _float_at(a, k)
        return lambda xk: f(*a[:k], xk, *a[k + 1 :]), a[k]

    def jvp(*a):
        g, x = partial(a[:-1])
        _, out, aux = jax.jvp(g, (x,), (jnp.asarray(a[-1], x.dtype),), has_aux=True)
        return out, aux

    def vjp(*a):
        g, x = partial(a[:-1])
        out, pull, aux = jax.vjp(g, x, has_aux=True)
        return pull(jnp.asarray(a[-1], out.dtype))[0], aux

    kind: ir.DerivativeKind = fn.kind
    match kind:
        case "grad":
            return lambda *a: jax.grad(f, argnums=k, has_aux=True)(*_float_at(a, k))
        case "jacobian":
            return lambda *a: jax.jacrev(f, argnums=k, has_aux=True)(*_float_at(a, k))
        case "hessian":
            return lambda *a: jax.hessian(f, argnums=k, has_aux=True)(*_float_at(a, k))
        case "jvp":
            return jvp
        case "vjp":
            return vjp
        case _:
            assert_never(kind)


def _float_at(args, k):
    args = list(args)
    args[k] = jnp.asarray(args[k], dtype=jnp.result_type(float))
    return args


# ---- calls -------------------------------------------------------------------------


def apply(ev: Evaluator, e: ir.Apply):
    """A call: a user function's shared body (see the module docstring), or inlined."""
    if isinstance(e.fn, ir.Lambda) and ev.reject_code is None and _SHARING.get() and staged():
        depth, k, innermost = _chain(e)
        args = [ev.expr(a) for a in innermost.args]
        if depth > 1 and isinstance(args[k], jax.core.Tracer) and _loopable(ev, e.fn):
            return _chained(ev, e.fn, args, k, depth)
        for _ in range(depth):  # (a chain whose argument is known: calls one by one)
            args[k] = _shared_call(ev, e.fn, args)
        return args[k]
    value, aux = function_value(ev, e.fn)(*[ev.expr(a) for a in e.args])
    _absorb(ev, aux, batched=False)
    return value


def _absorb(ev: Evaluator, aux, batched: bool) -> None:
    stats, probes, rejected = aux
    ev.absorb(stats, probes, batched=batched)
    ev.take_rejected(rejected, batched=batched)


def _chain(e: ir.Apply) -> tuple[int, int, ir.Apply]:
    """``(d, k, innermost)`` where ``e`` is ``g(... g(... innermost ...) ...)``: d calls
    of one function instance each taking the next one's result as argument ``k``, the
    other arguments the same names or constants at every link (d = 1: no chain)."""
    depth, k, inner = 1, -1, e
    while True:
        links = [i for i, a in enumerate(inner.args) if isinstance(a, ir.Apply) and a.fn is e.fn]
        if len(links) != 1 or (k >= 0 and links[0] != k):
            break
        nested = inner.args[links[0]]
        assert isinstance(nested, ir.Apply)
        others = [i for i in range(len(inner.args)) if i != links[0]]
        if not all(_same_leaf(inner.args[i], nested.args[i]) for i in others):
            break
        depth, k, inner = depth + 1, links[0], nested
    return depth, max(k, 0), inner


def _loopable(ev: Evaluator, fn: ir.Lambda) -> bool:
    """Whether a chain of ``fn`` may run as a loop: not when its body holds a solver
    node (implicit or ODE).  Forward-over-reverse derivatives (``log_density_hessian``)
    of an implicit node inside ``lax.scan`` are wrong today (also through ``fold``:
    a known bug of the implicit rule, not of the loop), so such chains stay unrolled
    calls, whose values and derivatives are the inlined lowering's."""
    key = ("loopable", id(fn))
    found = ev.shared.get(key)
    if found is None:
        solver = any(
            isinstance(x, ir.Implicit) or (isinstance(x, ir.HigherOrder) and x.kind == "ode")
            for x in ir.walk(fn)
        )
        found = ev.shared[key] = (fn, not solver)
    return found[1]


def _same_leaf(a: ir.Expr, b: ir.Expr) -> bool:
    """The same value at every link of a chain: one node, or equal names or constants
    (a cheap test: structural equality of larger expressions could be exponential)."""
    if a is b:
        return True
    if isinstance(a, ir.Ref) and isinstance(b, ir.Ref):
        return (a.name, a.kind) == (b.name, b.kind)
    if isinstance(a, ir.Const) and isinstance(b, ir.Const):
        return type(a.value) is type(b.value) and a.value == b.value and a.ty == b.ty
    return False


def _chained(ev: Evaluator, fn: ir.Lambda, args: list, k: int, depth: int):
    """``depth`` calls of ``fn`` chained through argument ``k``: one ``lax.scan`` over
    the body (traced once) when the result has the argument's abstract type (shape,
    dtype, weak type), else the calls one by one (shared)."""
    call = function_value(ev, fn)
    carry = args[k]

    def step(value, _):
        result, aux = call(*args[:k], value, *args[k + 1 :])
        if _aval(result) != _aval(value):
            raise _NotALoopError
        return result, aux

    try:
        last, aux = jax.lax.scan(step, carry, None, length=depth)
    except _NotALoopError:  # (the one trace of the body that found it out is dropped)
        for _ in range(depth):
            carry = _shared_call(ev, fn, [*args[:k], carry, *args[k + 1 :]])
        return carry
    stats, probes, rejected = aux
    probes = {node: {key: jnp.ravel(v) for key, v in pr.items()} for node, pr in probes.items()}
    _absorb(ev, (stats, probes, rejected), batched=True)
    return last


class _NotALoopError(Exception):
    """A chain's result type differs from its argument's: no loop can carry it."""


def _aval(x) -> tuple:
    """Shape, dtype and weak type: what a loop's carry must keep."""
    t = x if isinstance(x, jax.ShapeDtypeStruct) else jax.typeof(x)
    return (tuple(t.shape), t.dtype, bool(getattr(t, "weak_type", False)))


def _with(inputs: dict[str, Any], k: int, value) -> dict[str, Any]:
    return {**inputs, f"arg:{k}": value}


def _shared_call(ev: Evaluator, fn: ir.Lambda, args: list):
    found = _shared(ev, fn, args)
    if found is None:  # nothing traced: inlined, so known values stay known (sizes)
        value, aux = function_value(ev, fn)(*args)
        _absorb(ev, aux, batched=False)
        return value
    shared, inputs = found
    value, aux = shared(inputs)
    _absorb(ev, aux, batched=False)
    ev.reject_nodes.update(shared.reject_nodes)
    return value


@dataclass
class _Shared:
    """One function instance at one static signature, wrapped for ``jax.jit``."""

    call: Callable
    keep: tuple  # the static values, kept alive (the key holds their ids)
    reject_nodes: dict[int, ir.Reject] = field(default_factory=dict)

    def __call__(self, inputs: dict[str, Any]):
        return self.call(inputs)


def _shared(ev: Evaluator, fn: ir.Lambda, args: list) -> tuple[_Shared, dict[str, Any]] | None:
    """The jitted body of ``fn`` for these inputs (made once per run and static
    signature, in ``ev.shared``) and its traced inputs by slot; None where no input is
    traced."""
    names = _free_names(ev, fn)
    slots: dict[str, Any] = {f"arg:{i}": a for i, a in enumerate(args)}
    slots.update({f"env:{n}": ev.env[n] for n in names if n in ev.env})
    slots["key"] = ev.rng_key
    slots["reached"] = ev.reached() if ev.conditions else None
    traced = {s: v for s, v in slots.items() if isinstance(v, jax.core.Tracer)}
    if not traced:
        return None
    fixed = {s: v for s, v in slots.items() if s not in traced}
    from fpl.compiler.implicit_derivatives import in_loop_body

    # a body traced inside a loop carries its implicit nodes' loop correction: traced apart
    signature = (
        id(fn),
        tuple(sorted(traced)),
        tuple(sorted((s, id(v)) for s, v in fixed.items())),
        in_loop_body(),
    )
    entry = ev.shared.get(signature)
    if entry is None:
        entry = _Shared(lambda inputs: None, tuple(fixed.values()))
        entry.call = jax.jit(_body(ev, fn, fixed, entry.reject_nodes))
        ev.shared[signature] = entry
    return entry, traced


def _body(ev: Evaluator, fn: ir.Lambda, fixed: dict[str, Any], reject_nodes: dict):
    from fpl.compiler.lower import Evaluator

    def body(traced: dict[str, Any]):
        slots = {**fixed, **traced}
        env = {s[4:]: v for s, v in slots.items() if s.startswith("env:")}
        env.update({p: slots[f"arg:{i}"] for i, p in enumerate(fn.params)})
        inner = Evaluator(ev.reg, env, slots["key"])
        inner.probe, inner.shared = ev.probe, ev.shared
        inner.reject_nodes = reject_nodes
        if slots["reached"] is not None:  # the call is reached where the caller is
            inner.conditions = [(slots["reached"], True)]
        return body_value(inner, fn)

    return body


def _free_names(ev: Evaluator, fn: ir.Lambda) -> tuple[str, ...]:
    """The outer names ``fn``'s body may read (a superset is harmless), once per run."""
    key = ("free", id(fn))
    found = ev.shared.get(key)
    if found is None:
        names: set[str] = set()
        for x in ir.walk(fn):
            if isinstance(x, ir.Ref):
                names.add(x.name)
            elif isinstance(x, ir.Attr):
                names.add(f"{x.target.name}.{x.name}")
        found = ev.shared[key] = (fn, tuple(sorted(names - set(fn.params))))
    return found[1]


# ---- map, scan, fold, ode --------------------------------------------------------------


def higher_order(ev: Evaluator, e: ir.HigherOrder):
    if e.kind == "ode":
        return ode(ev, e)
    f = function_value(ev, e.fn)
    args = [jnp.asarray(ev.expr(a)) for a in e.args]
    if e.kind == "map":
        # one result per element: reduced here, so one report per evaluation however
        # many elements (no per-element host callback)
        value, aux = jax.vmap(f)(*args)
        _absorb(ev, aux, batched=True)
        return value
    init, seqs = args[0], args[1:]
    carry0 = jnp.broadcast_to(
        jnp.asarray(init, jnp.result_type(float)),
        tuple(e.fn.ty.shape) if all(isinstance(d, int) for d in e.fn.ty.shape) else init.shape,
    )

    def step(carry, xs):
        out, aux = f(carry, *xs)
        new = jnp.broadcast_to(jnp.asarray(out, carry.dtype), carry.shape)
        return new, (new, aux)

    from fpl.compiler.implicit_derivatives import loop_body  # exact Hessians of nodes in f

    with loop_body():
        last, (ys, aux) = jax.lax.scan(step, carry0, tuple(seqs))
    _absorb(ev, aux, batched=True)
    return ys if e.kind == "scan" else last


def ode(ev: Evaluator, e: ir.HigherOrder):
    """An ODE solve (fpl/stdlib/ode.py) as a solver node: its result NaN where the solve
    failed, its stats (``iterations``: steps taken) recorded like an implicit node's.
    The names the vector field reads from outside (params, data) become operands of
    the solve, so it is differentiated with respect to them too.  Solver nodes inside
    the vector field are not reported (a failure there is a NaN the solve fails on)."""
    from fpl.compiler.implicit import node_stats
    from fpl.stdlib.ode import FORMS, integrate

    y0, t0, ts, rel, absolute = (ev.expr(a) for a in e.args[:5])
    steps = ev.static_int(e.args[5], "`max_num_steps`")
    extra = [ev.expr(a) for a in e.args[6:]]
    free = {x.name for x in ir.walk(e.fn) if isinstance(x, ir.Ref) and x.kind != "arg"}
    free -= {name for name, _ in e.fn.lets}  # the field's own lets shadow outer names
    closure = {k: v for k, v in ev.env.items() if k in free and isinstance(v, jax.Array)}

    def vector_field(t, y, operands):
        args, values = operands
        return function_value(ev.child(values), e.fn)(t, y, *args)[0]

    ys, taken, code = integrate(
        FORMS[e.solver].method,
        vector_field,
        y0,
        t0,
        ts,
        (tuple(extra), closure),
        rel_tol=rel,
        abs_tol=absolute,
        max_num_steps=steps,
    )
    ev.absorb({e.node_id: node_stats(0.0, taken, code == 0, code)}, {}, batched=False)
    return ys
