"""Softmax and log-softmax along one axis: one Function each, served by the fused kernels.

Each Function's forward and backward call the implementation :func:`engine.kernels.select`
picks (the Numba kernels, or the literal formula under ``engine.use_fused(False)``). Both
save only their output, so under ``create_graph`` the backward runs the reference formula on
Tensors and is differentiated again, whichever implementation ran the forward.
"""

from __future__ import annotations

import numpy as np

from engine import checks, kernels
from engine.function import Function
from engine.kernels import reference
from engine.ops.elementwise import astype, widen_half
from engine.ops.utils import normalize_axis, numpy_names
from engine.tensor import Tensor


class Softmax(Function):
    """yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = y ⊙ (gy - Σⱼ gyⱼ yⱼ)   (the Jacobian diag(y) - y yᵀ applied to gy)

    docs/formulas.md, F7 softmax.
    """

    log = False
    op = "softmax"

    @classmethod
    def forward(cls, ctx, x, axis=-1):
        ctx.axis = normalize_axis(axis, x.ndim, cls.op)
        ctx.impl = kernels.select(x)
        y = ctx.impl.softmax_forward(ctx.xp, x, ctx.axis, cls.log)
        ctx.save_for_backward(y)
        return y

    @classmethod
    def backward(cls, ctx, gy):
        (y,) = ctx.saved_tensors
        impl = reference if isinstance(gy, Tensor) else ctx.impl
        return impl.softmax_backward(ctx.xp, y, gy, ctx.axis, cls.log)


class LogSoftmax(Softmax):
    """yᵢ = xᵢ - m - log Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = gy - exp(y) ⊙ Σⱼ gyⱼ   (softmax = exp(y))
    """

    log = True
    op = "log_softmax"


@numpy_names
def softmax(input, dim: int = -1) -> Tensor:
    """Softmax along ``dim``: yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m), m the max (float16
    computed in float32)."""
    x = checks.tensor("softmax", "input", input)
    if x.dtype == np.float16:
        return astype(softmax(widen_half(x), dim), np.float16)
    return Softmax.apply(x, axis=dim)


@numpy_names
def log_softmax(input, dim: int = -1) -> Tensor:
    """Log-softmax along ``dim``: yᵢ = xᵢ - m - log Σⱼ exp(xⱼ - m) (float16 computed in
    float32)."""
    x = checks.tensor("log_softmax", "input", input)
    if x.dtype == np.float16:
        return astype(log_softmax(widen_half(x), dim), np.float16)
    return LogSoftmax.apply(x, axis=dim)
