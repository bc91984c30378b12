"""Reductions over ``axis`` (None, an int or a tuple; NumPy's names and ``keepdims``).

The backward of each reduction first reshapes ``gy`` to the keepdims shape ``k`` so it
broadcasts against ``x``.
"""

from __future__ import annotations

from engine import backend
from engine.dtypes import float_dtype_of
from engine.function import Function
from engine.ops.utils import kept_shape, normalize_axes
from engine.tensor import Tensor


def _prepare(ctx, x, axis, op):
    axes = normalize_axes(axis, x.ndim, op)
    ctx.x_shape = x.shape
    ctx.k_shape = kept_shape(x.shape, axes)
    n = 1
    for a in axes:
        n *= x.shape[a]
    return axes, n


class Sum(Function):
    """y = Σ_axis x;  gx = broadcast(gy)"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        axes, _ = _prepare(ctx, x, axis, "sum")
        return x.sum(axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, gy):
        return ctx.xp.broadcast_to(gy.reshape(ctx.k_shape), ctx.x_shape)


class Mean(Function):
    """y = (1/n) Σ_axis x;  gx = broadcast(gy) / n"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        axes, ctx.n = _prepare(ctx, x, axis, "mean")
        if ctx.n == 0:
            raise ValueError(f"mean: reducing over an empty axis of shape {x.shape}")
        return x.mean(axis=axes, keepdims=keepdims, dtype=float_dtype_of(x.dtype))

    @staticmethod
    def backward(ctx, gy):
        return ctx.xp.broadcast_to(gy.reshape(ctx.k_shape) * (1.0 / ctx.n), ctx.x_shape)


class Var(Function):
    """y = Σ_axis (x - x̄)² / (n - ddof);  gx = gy · 2(x - x̄) / (n - ddof)

    ``ddof=0`` (NumPy's default) is the population variance; PyTorch's ``var`` defaults to
    ``ddof=1`` (``unbiased=True``).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        axes, n = _prepare(ctx, x, axis, "var")
        if n - ddof <= 0:
            raise ValueError(f"var: {n} elements with ddof={ddof} leave no degrees of freedom")
        ctx.axes, ctx.denom = axes, n - ddof
        ctx.save_for_backward(x)
        return x.var(axis=axes, keepdims=keepdims, ddof=ddof, dtype=float_dtype_of(x.dtype))

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        return gy.reshape(ctx.k_shape) * centered * (2.0 / ctx.denom)


class Std(Function):
    """y = √var,  var = Σ_axis (x - x̄)² / (n - ddof)

    g_var = gy / (2y);  gx = g_var · 2(x - x̄) / (n - ddof)

    At a constant (y = 0) the derivative of √ is infinite and x - x̄ is 0: g_var is defined
    as 0 there, as PyTorch does, so the gradient is 0 instead of ∞ · 0 = NaN.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        axes, n = _prepare(ctx, x, axis, "std")
        if n - ddof <= 0:
            raise ValueError(f"std: {n} elements with ddof={ddof} leave no degrees of freedom")
        ctx.axes, ctx.denom = axes, n - ddof
        y = x.std(axis=axes, keepdims=keepdims, ddof=ddof, dtype=float_dtype_of(x.dtype))
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        xp = ctx.xp
        x, y = ctx.saved_tensors
        y = y.reshape(ctx.k_shape)
        constant = y == 0
        g_var = xp.where(constant, 0.0,
                         gy.reshape(ctx.k_shape) / (2.0 * xp.where(constant, 1.0, y)))
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        return g_var * centered * (2.0 / ctx.denom)


class _Extremum(Function):
    """y = max (or min) over axis;  gx = gy at the arg-extremum.

    Ties: the gradient is split evenly among all elements equal to the extremum (as
    ``torch.amax``; ``torch.max(dim)`` gives it all to one index instead).
    """

    reduce = "max"

    @classmethod
    def forward(cls, ctx, x, axis=None, keepdims=False):
        axes, n = _prepare(ctx, x, axis, cls.reduce)
        if n == 0:
            raise ValueError(f"{cls.reduce}: reducing over an empty axis of shape {x.shape}")
        y = getattr(x, cls.reduce)(axis=axes, keepdims=keepdims)
        ctx.axes = axes
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        xp = ctx.xp
        hit = x == y.reshape(ctx.k_shape)
        count = hit.sum(axis=ctx.axes, keepdims=True).astype(gy.dtype)
        return xp.where(hit, gy.reshape(ctx.k_shape) / count, 0.0)


class Max(_Extremum):
    __doc__ = _Extremum.__doc__
    reduce = "max"


class Min(_Extremum):
    __doc__ = _Extremum.__doc__.replace("max (or min)", "min (or max)")
    reduce = "min"


class LogSumExp(Function):
    """y = m + log Σ exp(x - m), m = max x (finite);  gx = gy · exp(x - y)"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        xp = ctx.xp
        axes, _ = _prepare(ctx, x, axis, "logsumexp")
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)   # rows of -inf: exp(-inf) = 0, no inf - inf
        y = xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m
        if not keepdims:
            y = y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))
        ctx.save_for_backward(x, y)   # the output itself: second derivatives flow through it
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        k = ctx.k_shape
        return gy.reshape(k) * ctx.xp.exp(x - y.reshape(k))


def sum(x, axis=None, keepdims: bool = False):
    """Σ over ``axis`` (all axes when None)."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims: bool = False):
    """Arithmetic mean over ``axis``."""
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def var(x, axis=None, keepdims: bool = False, ddof: int = 0):
    """Variance over ``axis`` with ``ddof`` degrees of freedom removed (NumPy's default 0)."""
    return Var.apply(x, axis=axis, keepdims=keepdims, ddof=ddof)


def std(x, axis=None, keepdims: bool = False, ddof: int = 0):
    """Standard deviation √var over ``axis`` (gradient 0 where it is 0, as PyTorch)."""
    return Std.apply(x, axis=axis, keepdims=keepdims, ddof=ddof)


def max(x, axis=None, keepdims: bool = False):
    """Maximum over ``axis`` (ties share the gradient)."""
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims: bool = False):
    """Minimum over ``axis`` (ties share the gradient)."""
    return Min.apply(x, axis=axis, keepdims=keepdims)


def logsumexp(x, axis=None, keepdims: bool = False):
    """log Σ exp(x) over ``axis``, computed with the maximum subtracted."""
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the maximum (int64, no gradient; the first one on ties)."""
    xp = backend.array_module(x.data)
    return Tensor._make(xp.asarray(x.data.argmax(axis=axis, keepdims=keepdims)), None, 0)


def argmin(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the minimum (int64, no gradient; the first one on ties)."""
    xp = backend.array_module(x.data)
    return Tensor._make(xp.asarray(x.data.argmin(axis=axis, keepdims=keepdims)), None, 0)
