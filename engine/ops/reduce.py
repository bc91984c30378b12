"""Reductions over ``dim`` (None for every axis, an int, or a tuple), with PyTorch's names
and meanings: ``keepdim``, ``var``'s Bessel correction by default, ``max(dim)`` returning
``(values, indices)``. NumPy's ``axis``, ``keepdims`` and ``ddof`` are accepted too.

The backward of each reduction first reshapes ``gy`` to the keepdim shape ``k`` so it
broadcasts against ``x``.
"""

from __future__ import annotations

import builtins
import math

from engine import backend, checks, dtypes
from engine.dtypes import float_dtype_of
from engine.function import Function
from engine.ops.elementwise import maximum, minimum
from engine.ops.indexing import gather
from engine.ops.select import return_types
from engine.ops.utils import kept_shape, normalize_axes, normalize_axis, numpy_names
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
    """y = Σ_dim x;  gx = broadcast(gy)"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, dtype=None):
        axes, _ = _prepare(ctx, x, axis, "sum")
        ctx.x_dtype = x.dtype
        return x.sum(axis=axes, keepdims=keepdims, dtype=dtype)

    @staticmethod
    def backward(ctx, gy):
        if gy.dtype != ctx.x_dtype:          # summed in a wider dtype (sum(dtype=...))
            gy = gy.astype(ctx.x_dtype)
        return ctx.xp.broadcast_to(gy.reshape(ctx.k_shape), ctx.x_shape)


class Mean(Function):
    """y = (1/n) Σ_dim x;  gx = broadcast(gy) / n"""

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
    """y = Σ_dim (x - x̄)² / (n - c);  gx = gy · 2(x - x̄) / (n - c)

    c is the correction: 1 (Bessel's, the unbiased estimator) by default as in PyTorch, 0
    for the population variance that NumPy's ``var`` and the normalization layers use.
    With n - c ≤ 0 the result is inf or NaN, as in PyTorch (NumPy warns).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        axes, n = _prepare(ctx, x, axis, "var")
        ctx.axes, ctx.denom = axes, builtins.max(n - correction, 0)
        ctx.save_for_backward(x)
        return x.var(axis=axes, keepdims=keepdims, ddof=correction,
                     dtype=float_dtype_of(x.dtype))

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        scale = 2.0 / ctx.denom if ctx.denom else math.inf
        return gy.reshape(ctx.k_shape) * centered * scale


class Std(Function):
    """y = √(Σ_dim (x - x̄)² / (n - c));  gx = gy · (x - x̄) / ((n - c) · y), 0 where y = 0

    (the derivative of √v is unbounded at v = 0: PyTorch gives 0 there, and so does this.)
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        axes, n = _prepare(ctx, x, axis, "std")
        ctx.axes, ctx.denom = axes, builtins.max(n - correction, 0)
        y = x.std(axis=axes, keepdims=keepdims, ddof=correction, dtype=float_dtype_of(x.dtype))
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        xp = ctx.xp
        centered = x - x.mean(axis=ctx.axes, keepdims=True)
        y_k = y.reshape(ctx.k_shape)
        zero = y_k == 0
        safe_y = xp.where(zero, 1.0, y_k)        # no 0/0 here, nor in a second derivative
        scale = 1.0 / ctx.denom if ctx.denom else math.inf
        return xp.where(zero, 0.0, gy.reshape(ctx.k_shape) * centered * scale / safe_y)


class _Extremum(Function):
    """y = max (or min) over dim;  gx = gy at the arg-extremum.

    Ties: the gradient is split evenly among all elements equal to the extremum (as
    ``torch.amax`` and ``torch.max()`` without a dim; ``max(dim)`` gives it to the one
    index it returns instead).
    """

    reduce = "max"

    @classmethod
    def forward(cls, ctx, x, axis=None, keepdims=False, op=None):
        op = op or cls.reduce
        axes, n = _prepare(ctx, x, axis, op)
        if n == 0:
            raise ValueError(f"{op}: reducing over an empty axis of shape {x.shape}")
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


class CumSum(Function):
    """yᵢ = Σ_{j ≤ i} xⱼ along dim;  gxⱼ = Σ_{i ≥ j} gyᵢ (a cumulative sum from the end)"""

    @staticmethod
    def forward(ctx, x, axis=0, dtype=None):
        ctx.axis = normalize_axis(axis, builtins.max(x.ndim, 1), "cumsum")
        ctx.x_dtype = x.dtype
        return ctx.xp.cumsum(x.reshape(x.shape or (1,)), axis=ctx.axis,
                             dtype=dtype).reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        if gy.dtype != ctx.x_dtype:
            gy = gy.astype(ctx.x_dtype)
        if gy.ndim == 0:
            return gy
        rev = (slice(None),) * ctx.axis + (slice(None, None, -1),)
        return ctx.xp.cumsum(gy[rev], axis=ctx.axis)[rev]


def _integer_sum_dtype(x, dtype):
    """PyTorch sums integer and bool tensors in int64 unless told otherwise."""
    if dtype is None and x.dtype.kind in "biu":
        return dtypes.int64
    return dtype


@numpy_names
def sum(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Σ over ``dim`` (every axis when None); integer and bool tensors sum to int64."""
    x = checks.tensor("sum", "input", input)
    return Sum.apply(x, axis=dim, keepdims=keepdim, dtype=_integer_sum_dtype(x, dtype))


@numpy_names
def mean(input, dim=None, keepdim: bool = False) -> Tensor:
    """Arithmetic mean over ``dim``."""
    return Mean.apply(checks.tensor("mean", "input", input), axis=dim, keepdims=keepdim)


def _correction(op: str, dim, unbiased, correction):
    """``(dim, c)`` from PyTorch's two spellings: ``correction=c`` (default 1) or the older
    ``unbiased`` (True: c = 1, False: c = 0), also given first as ``var(False)``."""
    if isinstance(dim, bool):
        if unbiased is not None:
            raise TypeError(f"{op}: unbiased given twice")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass either unbiased= or correction= (or NumPy's ddof=), "
                        "not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


@numpy_names
def var(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    """Variance over ``dim`` with ``correction`` degrees of freedom removed.

    PyTorch's meaning: the unbiased estimator Σ (x - x̄)² / (n - 1) by default; pass
    ``correction=0`` (or ``unbiased=False``, or NumPy's ``ddof=0``) for NumPy's default,
    the population variance that LayerNorm and BatchNorm normalize with.
    """
    dim, correction = _correction("var", dim, unbiased, correction)
    return Var.apply(checks.tensor("var", "input", input), axis=dim, keepdims=keepdim,
                     correction=correction)


@numpy_names
def std(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    """Standard deviation √var over ``dim`` (unbiased by default, as :func:`var`)."""
    dim, correction = _correction("std", dim, unbiased, correction)
    return Std.apply(checks.tensor("std", "input", input), axis=dim, keepdims=keepdim,
                     correction=correction)


def _all_if_empty(dim):
    """PyTorch's amax/amin/logsumexp read ``dim=()`` as every axis."""
    return None if dim == () or dim == [] else dim


@numpy_names
def amax(input, dim=None, keepdim: bool = False) -> Tensor:
    """The maximum over ``dim`` (values only; ties share the gradient)."""
    return Max.apply(checks.tensor("amax", "input", input), axis=_all_if_empty(dim),
                     keepdims=keepdim, op="amax")


@numpy_names
def amin(input, dim=None, keepdim: bool = False) -> Tensor:
    """The minimum over ``dim`` (values only; ties share the gradient)."""
    return Min.apply(checks.tensor("amin", "input", input), axis=_all_if_empty(dim),
                     keepdims=keepdim, op="amin")


def _along(op: str, x: Tensor, dim: int, keepdim: bool, pick: str):
    """``(values, indices)`` of the element the array method ``pick`` ("argmax" or
    "argmin") chooses along ``dim``: the values gathered from ``x``, so the gradient goes
    to that one element."""
    if not isinstance(dim, int):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if x.ndim == 0:
        normalize_axis(dim, 1, op)
        flat = x.reshape((1,))
        values, indices = _along(op, flat, 0, False, pick)
        return values.reshape(()), indices.reshape(())
    dim = normalize_axis(dim, x.ndim, op)
    if x.shape[dim] == 0:
        raise IndexError(f"{op}: dim {dim} of shape {x.shape} is empty")
    chosen = getattr(x.data, pick)(axis=dim)
    indices = Tensor._make(backend.array_module(x.data).expand_dims(chosen, dim), None, 0)
    values = gather(x, dim, indices)
    if not keepdim:
        shape = x.shape[:dim] + x.shape[dim + 1:]
        values, indices = values.reshape(shape), indices.reshape(shape)
    return values, indices


@numpy_names
def max(input, dim=None, keepdim: bool = False):
    """PyTorch's three ``max``: ``max(x)`` the largest value (ties share the gradient);
    ``max(x, dim)`` the named tuple ``(values, indices)`` along ``dim`` (the gradient goes
    to the index returned, the first on ties); ``max(x, other)`` the elementwise maximum."""
    if isinstance(dim, Tensor):
        return maximum(input, dim)
    x = checks.tensor("max", "input", input)
    if dim is None:
        return Max.apply(x)
    return return_types.max(*_along("max", x, dim, keepdim, "argmax"))


@numpy_names
def min(input, dim=None, keepdim: bool = False):
    """``min(x)``, ``min(x, dim)`` -> ``(values, indices)``, ``min(x, other)``: as
    :func:`max`."""
    if isinstance(dim, Tensor):
        return minimum(input, dim)
    x = checks.tensor("min", "input", input)
    if dim is None:
        return Min.apply(x)
    return return_types.min(*_along("min", x, dim, keepdim, "argmin"))


@numpy_names
def logsumexp(input, dim=None, keepdim: bool = False) -> Tensor:
    """log Σ exp(x) over ``dim``, computed with the maximum subtracted."""
    return LogSumExp.apply(checks.tensor("logsumexp", "input", input),
                           axis=_all_if_empty(dim), keepdims=keepdim)


@numpy_names
def cumsum(input, dim: int, *, dtype=None) -> Tensor:
    """Running sum along ``dim`` (integer and bool tensors in int64, as PyTorch)."""
    x = checks.tensor("cumsum", "input", input)
    return CumSum.apply(x, axis=dim, dtype=_integer_sum_dtype(x, dtype))


def _index_reduction(op: str, input, dim, keepdim: bool) -> Tensor:
    x = checks.tensor(op, "input", input)
    a = x.data
    if dim is None:
        out = getattr(a.reshape(-1), op)()
        if keepdim:
            out = out.reshape((1,) * a.ndim)
    else:
        dim = normalize_axis(dim, builtins.max(a.ndim, 1), op)
        if a.ndim == 0:
            a = a.reshape(1)
        if a.shape[dim] == 0:
            raise IndexError(f"{op}: dim {dim} of shape {x.shape} is empty")
        out = getattr(a, op)(axis=dim, keepdims=keepdim)
        if x.ndim == 0:
            out = out.reshape(())
    return Tensor._make(backend.array_module(a).asarray(out), None, 0)


@numpy_names
def argmax(input, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the maximum along ``dim`` (of the flattened tensor when None); int64, no
    gradient, the first one on ties."""
    return _index_reduction("argmax", input, dim, keepdim)


@numpy_names
def argmin(input, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the minimum along ``dim``, as :func:`argmax`."""
    return _index_reduction("argmin", input, dim, keepdim)


def _logical(op: str, input, dim, keepdim: bool) -> Tensor:
    x = checks.tensor(op, "input", input)
    xp = backend.array_module(x.data)
    axes = normalize_axes(dim, x.ndim, op)
    return Tensor._make(xp.asarray(getattr(xp, op)(x.data, axis=axes, keepdims=keepdim)),
                        None, 0)


@numpy_names
def all(input, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element along ``dim`` is nonzero (bool, no gradient)."""
    return _logical("all", input, dim, keepdim)


@numpy_names
def any(input, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element along ``dim`` is nonzero (bool, no gradient)."""
    return _logical("any", input, dim, keepdim)
