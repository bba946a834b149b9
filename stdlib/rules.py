"""Reusable type rules for registry entries.  A rule maps argument types to a result
type or raises :class:`RuleError` with a message the checker locates."""

from __future__ import annotations

from fpl.stdlib.registry import Arg, DistributionEntry
from fpl.stdlib.types import REAL, Dim, RuleError, Ty, broadcast, join_base, unify_dim


def elementwise_real(args: list[Arg]) -> Ty:
    """Real result, arguments broadcast (``exp``, ``log``, ``pow``, ...)."""
    return Ty("real", broadcast(*(a.ty.shape for a in args)))


def elementwise_keep(args: list[Arg]) -> Ty:
    """Int if every argument is int, else real; arguments broadcast (``abs``, ``+``)."""
    return Ty(join_base(*(a.ty.base for a in args)), broadcast(*(a.ty.shape for a in args)))


def elementwise_int(args: list[Arg]) -> Ty:
    """Int result, arguments broadcast (``floor`` of reals in FPL returns real; this is
    for integer-valued functions like ``int_step``)."""
    return Ty("int", broadcast(*(a.ty.shape for a in args)))


def elementwise_bool(args: list[Arg]) -> Ty:
    return Ty("bool", broadcast(*(a.ty.shape for a in args)))


def reduce_real(args: list[Arg]) -> Ty:
    """A real scalar (``mean``, ``sd``, ``log_sum_exp`` ...)."""
    return REAL


def reduce_keep(args: list[Arg]) -> Ty:
    """A scalar of the argument's base (``sum``, ``max`` ...)."""
    return Ty(join_base(args[0].ty.base), ())


def same_shape_real(args: list[Arg]) -> Ty:
    return Ty("real", args[0].ty.shape)


def same_as_first(args: list[Arg]) -> Ty:
    return args[0].ty


def int_scalar(args: list[Arg]) -> Ty:
    return Ty("int", ())


def need_rank(args: list[Arg], i: int, ranks: tuple[int, ...], what: str) -> None:
    if args[i].ty.rank not in ranks:
        want = " or ".join(
            {0: "a scalar", 1: "a vector", 2: "a matrix"}.get(r, f"rank {r}") for r in ranks
        )
        raise RuleError(f"{what} must be {want}, not {args[i].ty}", arg=i)


def need_int_scalar(args: list[Arg], i: int, what: str) -> None:
    """Argument ``i`` must be one integer (a position, a count)."""
    if args[i].ty.base not in ("int", "bool") or args[i].ty.rank != 0:
        raise RuleError(f"{what} must be an integer, not {args[i].ty}", arg=i)


def need_real_scalar(args: list[Arg], i: int, what: str) -> None:
    if args[i].ty.rank != 0:
        raise RuleError(f"{what} must be a scalar, not {args[i].ty}", arg=i)


def fits_length(length: Dim, start: Dim, count: Dim, what: str) -> None:
    """Positions ``start .. start + count - 1`` (1-based) lie in ``1 .. length`` when all
    three are known numbers (else the check is left to the data)."""
    if isinstance(start, int) and start < 1:
        raise RuleError(f"{what}: position {start} is before the first (1)", kind="shape")
    if isinstance(count, int) and count < 0:
        raise RuleError(f"{what}: a negative length {count}", kind="shape")
    if all(isinstance(d, int) for d in (length, start, count)):
        assert isinstance(length, int) and isinstance(start, int) and isinstance(count, int)
        if start + count - 1 > length:
            raise RuleError(
                f"{what}: elements {start} to {start + count - 1} of {length}", kind="shape"
            )


def vector_of_first(args: list[Arg]) -> Ty:
    need_rank(args, 0, (1,), "the argument")
    return Ty("real", args[0].ty.shape)


def dot(args: list[Arg]) -> Ty:
    need_rank(args, 0, (1,), "the first argument")
    need_rank(args, 1, (1,), "the second argument")
    unify_dim(args[0].ty.shape[0], args[1].ty.shape[0], "dot_product")
    return REAL


def matmul_shape(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """NumPy ``@`` on symbolic shapes."""
    if not a or not b:
        raise RuleError("`@` needs vectors or matrices, not scalars (use `*`)")
    a2 = a if len(a) > 1 else (1, a[0])
    b2 = b if len(b) > 1 else (b[0], 1)
    unify_dim(a2[-1], b2[-2], "matrix product: inner sizes")
    batch = broadcast(a2[:-2], b2[:-2])
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def matmul(args: list[Arg]) -> Ty:
    return Ty(
        join_base(args[0].ty.base, args[1].ty.base),
        matmul_shape(args[0].ty.shape, args[1].ty.shape),
    )


def square_matrix(args: list[Arg]) -> Ty:
    need_rank(args, 0, (2,), "the argument")
    n, m = args[0].ty.shape
    unify_dim(n, m, "a square matrix is needed")
    return Ty("real", args[0].ty.shape)


def square_matrix_scalar(args: list[Arg]) -> Ty:
    square_matrix(args)
    return REAL


def sizes_shape(args: list[Arg], first: int = 0) -> tuple[Dim, ...]:
    """Shape from static integer arguments ``first...`` (``zeros(N, K)``)."""
    shape = []
    for i, a in enumerate(args[first:], start=first):
        if a.ty.base != "int" or a.ty.rank != 0:
            raise RuleError("a size must be an integer", arg=i, kind="shape")
        shape.append(a.dim)
    return tuple(shape)


# ---- distributions ----------------------------------------------------------------------


def distribution_batch(entry: DistributionEntry, shapes: list[tuple[Dim, ...]]) -> tuple[Dim, ...]:
    """The batch shape of ``entry(args...)`` with arguments of ``shapes``: the broadcast of
    each argument's leading axes (all but the ``arg_ranks`` trailing ones that belong to
    one draw).  Raises :class:`RuleError` when they cannot broadcast."""
    return broadcast(*(s[: len(s) - r] for s, r in zip(shapes, entry.arg_ranks)))


def log_prob_shape(
    entry: DistributionEntry, value: tuple[Dim, ...], shapes: list[tuple[Dim, ...]]
) -> tuple[Dim, ...]:
    """The shape of ``d_lpdf(y | args...)``: FPL's distribution functions are elementwise
    (one log density per draw, not Stan's sum), so it is the broadcast of the value's
    draws (its axes before the ``event_rank`` trailing ones) with the batch of the
    arguments: ``normal_lpdf(y[1] | mu, 1)`` with ``mu: real[K]`` is ``real[K]``.  The
    same broadcast NumPyro's ``log_prob`` does at run time (a test checks the two agree
    for every distribution)."""
    draws = value[: len(value) - entry.event_rank]
    return broadcast(draws, distribution_batch(entry, shapes))
