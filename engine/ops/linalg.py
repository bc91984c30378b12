"""Matrix product with NumPy's ``matmul`` rules (batched, broadcast batch axes, 1-D cases)."""

from __future__ import annotations

from engine.function import Function
from engine.ops.utils import sum_to


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
            return a @ b
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
            ga = sum_to(gy @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to(a2.swapaxes(-1, -2) @ gy, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    """a @ b with NumPy's rules."""
    return MatMul.apply(a, b)
