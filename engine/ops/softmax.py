"""Softmax and log-softmax, written literally (the reference form of the fused kernels)."""

from __future__ import annotations

from engine.function import Function
from engine.ops.utils import normalize_axis


class Softmax(Function):
    """yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = y ⊙ (gy - Σⱼ gyⱼ yⱼ)   (the Jacobian diag(y) - y yᵀ applied to gy)
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        ctx.axis = normalize_axis(axis, x.ndim, "softmax")
        e = xp.exp(x - x.max(axis=ctx.axis, keepdims=True))
        y = e / e.sum(axis=ctx.axis, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return y * (gy - (gy * y).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """yᵢ = xᵢ - m - log Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = gy - exp(y) ⊙ Σⱼ gyⱼ   (softmax = exp(y))
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        ctx.axis = normalize_axis(axis, x.ndim, "log_softmax")
        shifted = x - x.max(axis=ctx.axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=ctx.axis, keepdims=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy - ctx.xp.exp(y) * gy.sum(axis=ctx.axis, keepdims=True)


def softmax(x, axis: int = -1):
    """Softmax along ``axis``."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis: int = -1):
    """Log-softmax along ``axis``."""
    return LogSoftmax.apply(x, axis=axis)
