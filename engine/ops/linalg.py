"""Matrix products: ``matmul`` with NumPy's rules (batched, broadcast batch axes, 1-D
cases), and the linear layer's y = x Wᵀ + b.

On NumPy arrays every product goes through :func:`engine.threads.matmul`: BLAS on one
thread, a large product shared among the engine's threads (:func:`engine.get_num_threads`).
"""

from __future__ import annotations

import numpy as np

from engine import checks, threads
from engine.function import Function
from engine.ops.utils import sum_to
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


def matmul(a, b):
    """a @ b with NumPy's rules."""
    return MatMul.apply(a, b)


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
