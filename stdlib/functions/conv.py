"""Convolutions on ``lax.conv_general_dilated``: ``conv1d``, ``conv2d`` and their
``_same`` forms, single channel, with an optional integer stride.

As in deep learning (and ``lax.conv``), these are cross-correlations, the kernel not
flipped: for a signal x of length n and a kernel w of length k,

    conv1d(x, w)[i] = sum_j x[i s + j] w[j],   i = 0 .. (n - k) // s   ("valid"),

which is ``scipy.signal.correlate(x, w, "valid")[::s]``. The ``_same`` forms pad x with
k // 2 zeros before and k - 1 - k // 2 after, so that with stride 1 the result has x's
length and is ``scipy.signal.correlate(x, w, "same")``; a stride s keeps every s-th of
those values (length ceil(n / s)). ``conv2d`` does the same on both axes of a matrix
with a matrix kernel (``scipy.signal.correlate``; for an even kernel its "same" output
is aligned as that function's, one row or column off ``correlate2d``'s), one stride for
both axes.
Derivatives are JAX's (a convolution is bilinear in x and w). Multi-channel layers are
written with ``map`` over channels and a sum.
"""

from __future__ import annotations

from fpl.stdlib import rules
from fpl.stdlib.functions._register import fn, real
from fpl.stdlib.lazy import jax
from fpl.stdlib.registry import Arg
from fpl.stdlib.types import Dim, RuleError, Ty


def _stride(args: list[Arg]) -> Dim:
    if len(args) < 3:
        return 1
    rules.need_int_scalar(args, 2, "the stride")
    stride = args[2].dim
    if isinstance(stride, int) and stride < 1:
        raise RuleError(f"the stride must be at least 1, not {stride}", arg=2)
    return stride


def _conv_rule(rank: int, same: bool):
    """The result's shape: per axis (n - k) // s + 1 (valid) or ceil(n / s) (same),
    where the sizes are known numbers (else the data tell, at bind time)."""
    what = "a vector" if rank == 1 else "a matrix"

    def rule(args: list[Arg]) -> Ty:
        rules.need_rank(args, 0, (rank,), f"the signal ({what})")
        rules.need_rank(args, 1, (rank,), f"the kernel ({what})")
        stride = _stride(args)
        shape: list[Dim] = []
        for n, k in zip(args[0].ty.shape, args[1].ty.shape):
            if isinstance(k, int) and k < 1:
                raise RuleError("the kernel is empty", arg=1, kind="shape")
            known = isinstance(n, int) and isinstance(k, int) and isinstance(stride, int)
            if not same and known and k > n:  # type: ignore[operator]
                raise RuleError(
                    f"the kernel ({k}) is longer than the signal ({n}); "
                    "use the `_same` form to pad",
                    arg=1,
                    kind="shape",
                )
            if not known and not (same and isinstance(n, int) and isinstance(stride, int)):
                shape.append(None)
            elif same:
                shape.append(-(-n // stride))  # type: ignore[operator]
            else:
                shape.append((n - k) // stride + 1)  # type: ignore[operator]
        return Ty("real", tuple(shape))

    return rule


def _conv(x, w, stride, same: bool):
    x, w = real(x), real(w)
    rank = x.ndim
    if same:
        padding = [(k // 2, k - 1 - k // 2) for k in w.shape]
    else:
        padding = [(0, 0)] * rank
    out = jax.lax.conv_general_dilated(
        x.reshape((1, 1, *x.shape)),
        w.reshape((1, 1, *w.shape)),
        window_strides=(int(stride),) * rank,
        padding=padding,
        precision=jax.lax.Precision.HIGHEST,
    )
    return out[0, 0]


@fn("conv1d", rule=_conv_rule(1, False), args=(2, 3), static=(2,), category="matrix")
def conv1d(x, w, stride=1):
    """Valid 1-D cross-correlation of vector x with kernel w, stride s (default 1):
    sum_j x[i s + j] w[j], length (n - k) // s + 1."""
    return _conv(x, w, stride, same=False)


@fn("conv1d_same", rule=_conv_rule(1, True), args=(2, 3), static=(2,), category="matrix")
def conv1d_same(x, w, stride=1):
    """1-D cross-correlation of x with w, zero-padded to x's length (k // 2 zeros
    before): scipy.signal.correlate(x, w, "same"); with stride s every s-th value."""
    return _conv(x, w, stride, same=True)


@fn("conv2d", rule=_conv_rule(2, False), args=(2, 3), static=(2,), category="matrix")
def conv2d(x, w, stride=1):
    """Valid 2-D cross-correlation of matrix x with matrix kernel w, the same stride s
    on both axes (default 1): shape ((h - kh) // s + 1, (w - kw) // s + 1)."""
    return _conv(x, w, stride, same=False)


@fn("conv2d_same", rule=_conv_rule(2, True), args=(2, 3), static=(2,), category="matrix")
def conv2d_same(x, w, stride=1):
    """2-D cross-correlation of x with w, zero-padded to x's shape (k // 2 zeros before,
    per axis: scipy.signal.correlate(x, w, "same")); with stride s every s-th row and
    column."""
    return _conv(x, w, stride, same=True)
