"""Matrix products: ``matmul`` with NumPy's rules (batched, broadcast batch axes, 1-D
cases), the linear layer's y = x Wᵀ + b, and vector norms.

On NumPy arrays every product goes through :func:`engine.threads.matmul`: BLAS on one
thread, a large product shared among the engine's threads (:func:`engine.get_num_threads`).
"""

from __future__ import annotations

import math

import numpy as np

from engine import checks, threads
from engine.function import Function
from engine.ops.elementwise import astype, promote
from engine.ops.utils import kept_shape, normalize_axes, numpy_names, sum_to
from engine.tensor import Tensor


def _mm(a, b):
    """a @ b: NumPy arrays through :func:`engine.threads.matmul`, CuPy arrays and Tensors
    (a backward building a graph) through ``@``."""
    if type(a) is np.ndarray and type(b) is np.ndarray:
        return threads.matmul(a, b)
    return a @ b


class MatMul(Function):
    """Y = A @ B;  gA = gY @ Bᵀ,  gB = Aᵀ @ gY   (ᵀ swaps the last two axes)

    A 1-D A is treated as a row (1, n) and a 1-D B as a column (n, 1), the inserted axis
    removed from Y; the backward re-inserts it. Gradients of broadcast batch axes are
    summed back with ``sum_to``.
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 axis, got "
                             f"{a.shape} @ {b.shape}")
        inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != inner_b:
            raise ValueError(f"matmul: shapes {a.shape} @ {b.shape} do not align "
                             f"({a.shape[-1]} != {inner_b})")
        ctx.save_for_backward(a, b)
        try:
            return _mm(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch axes of {a.shape} @ {b.shape} cannot be "
                             "broadcast together") from None

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a       # (n,) -> (1, n)
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b       # (n,) -> (n, 1)
        if a.ndim == 1:
            gy = gy.reshape(gy.shape[:-1] + (1,) + gy.shape[-1:]) if b.ndim > 1 \
                else gy.reshape((1,))
        if b.ndim == 1:
            gy = gy.reshape(gy.shape + (1,))
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to(_mm(gy, b2.swapaxes(-1, -2)), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to(_mm(a2.swapaxes(-1, -2), gy), b2.shape).reshape(b.shape)
        return ga, gb


def matmul(input, other) -> Tensor:
    """input @ other with NumPy's rules (dtypes promoted as the elementwise ops)."""
    return MatMul.apply(*promote(input, other))


class Linear(Function):
    """y = x Wᵀ + b  over the last axis of x (any leading axes, flattened to M rows)

    gx = gy W,   gW = gyᵀ x,   gb = Σ_rows gy

    docs/formulas.md, F8 the neuron.
    """

    @staticmethod
    def forward(ctx, x, W, b=None):
        if x.shape[-1:] != W.shape[1:]:
            raise ValueError(f"linear: input {x.shape} does not fit weight {W.shape} "
                             f"(last axis {x.shape[-1:]} vs in_features {W.shape[1]})")
        ctx.x_shape = x.shape
        ctx.save_for_backward(x, W)
        x2 = x.reshape(-1, W.shape[1])                     # (..., in) -> (M, in)
        y = _mm(x2, W.swapaxes(-1, -2))                     # (M, out)
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + (W.shape[0],))

    @staticmethod
    def backward(ctx, gy):
        x, W = ctx.saved_tensors
        out_f, in_f = W.shape
        gy2 = gy.reshape(-1, out_f)                         # (..., out) -> (M, out)
        gx = gW = gb = None
        if ctx.needs_input_grad[0]:
            gx = _mm(gy2, W).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            gW = _mm(gy2.swapaxes(-1, -2), x.reshape(-1, in_f))
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            gb = gy2.sum(axis=0)
        return (gx, gW, gb)[:len(ctx.needs_input_grad)]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b, with W of shape (out_features, in_features)."""
    checks.same_dtype("linear", input=input, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"linear: bias {bias.shape} does not fit weight {weight.shape}")
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


class Norm(Function):
    """The vector p-norm over dim: y = (Σ |x|ᵖ)^(1/p); p = ∞: max |x|, p = -∞: min |x|,
    p = 0: the number of nonzeros.

    gx = gy · sign(x) · (|x| / y)^(p-1)   (p = 2: gy · x / y;  p = 1: gy · sign(x))
    p = ±∞: gy · sign(x) shared evenly among the entries with |x| = y;  p = 0: 0.
    0 where y = 0 or x = 0 (no 0/0 at the kink, as PyTorch).
    """

    @staticmethod
    def forward(ctx, x, p=2.0, axis=None, keepdims=False):
        xp = ctx.xp
        ctx.axes = normalize_axes(axis, x.ndim, "norm")
        ctx.k_shape = kept_shape(x.shape, ctx.axes)
        ctx.p = p
        a = xp.abs(x)
        kw = dict(axis=ctx.axes, keepdims=keepdims)
        if p == math.inf:
            y = a.max(**kw) if a.size else a.sum(**kw)
        elif p == -math.inf:
            y = a.min(**kw)
        elif p == 0:
            y = (x != 0).sum(**kw).astype(x.dtype)
        elif p == 1:
            y = a.sum(**kw)
        elif p == 2:
            y = xp.sqrt((x * x).sum(**kw))
        else:
            y = (a ** p).sum(**kw) ** (1.0 / p)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        xp, p = ctx.xp, ctx.p
        gy, y = gy.reshape(ctx.k_shape), y.reshape(ctx.k_shape)
        if p == 0:
            return x * 0.0
        if p == 1:
            return gy * xp.sign(x)
        zero = y == 0
        safe_y = xp.where(zero, 1.0, y)
        if p in (math.inf, -math.inf):
            hit = xp.logical_and(xp.abs(x) == y, xp.logical_not(zero))
            count = hit.sum(axis=ctx.axes, keepdims=True).astype(x.dtype)
            return xp.where(hit, gy * xp.sign(x) / xp.where(zero, 1.0, count), 0.0)
        if p == 2:
            return xp.where(zero, 0.0, gy * x / safe_y)
        a = xp.abs(x)
        safe_a = xp.where(a == 0, 1.0, a)
        ratio = (safe_a / safe_y) ** (p - 1)
        return xp.where(zero, 0.0, gy * xp.sign(x) * ratio)


@numpy_names
def norm(input, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """PyTorch's ``norm``: the vector p-norm of the elements over ``dim`` (all of them when
    None): p = 2 or 'fro' (the Frobenius norm of a matrix is the 2-norm of its entries),
    1, ∞ (``float('inf')``), -∞, 0 or any other number. Differentiable, with gradient 0
    at a zero vector."""
    x = checks.tensor("norm", "input", input)
    checks.floating("norm", "input", x)
    if dtype is not None and x.dtype != dtype:
        x = astype(x, dtype)
    if p == "fro":
        if dim is not None and not isinstance(dim, int) and len(tuple(dim)) > 2:
            raise ValueError(f"norm: p='fro' takes at most 2 dims, got dim={dim}")
        p = 2.0
    elif isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is not supported (expected a number or 'fro')")
    return Norm.apply(x, p=float(p), axis=dim, keepdims=keepdim)
