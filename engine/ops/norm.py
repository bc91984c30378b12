"""Normalization: layer norm (a fused op) and batch norm, each a Function and its entry.

Both normalize x̂ = (x - μ) / √(σ² + ε) and scale and shift it, y = γ x̂ + β; layer norm
takes μ and σ² over the trailing axes of each sample, batch norm over every axis but the
channel axis 1 (over the batch). Their backward passes are the same chain rule, written
once per op with one named intermediate per step (g_x̂, then gx).
"""

from __future__ import annotations

import numpy as np

from engine import checks, kernels
from engine.function import Function
from engine.kernels import reference
from engine.ops.elementwise import astype, widen_half
from engine.ops.unary import sqrt
from engine.tensor import Tensor


class LayerNorm(Function):
    """y = x̂ ⊙ γ + β,  x̂ = (x - μ) / √(σ² + eps), μ and σ² (biased) over the last axes

    g_x̂ = gy ⊙ γ;  gx = rstd · (g_x̂ - mean(g_x̂) - x̂ ⊙ mean(g_x̂ ⊙ x̂));
    gγ = Σ_rows gy ⊙ x̂;  gβ = Σ_rows gy        (rstd = 1/√(σ² + eps))

    The fused kernels save μ and rstd per row and are differentiable once; the reference
    saves x and γ and recomputes, so it is differentiable again.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, n_axes=1, eps=1e-5):
        ctx.impl = kernels.select(x)
        ctx.once_differentiable = ctx.impl is not reference
        ctx.n_axes, ctx.eps = n_axes, eps
        y, saved = ctx.impl.layer_norm_forward(ctx.xp, x, weight, bias, n_axes, eps)
        ctx.save_for_backward(*saved)
        return y

    @staticmethod
    def backward(ctx, gy):
        return ctx.impl.layer_norm_backward(ctx.xp, ctx.saved_tensors, gy, ctx.n_axes,
                                            ctx.eps, ctx.needs_input_grad)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the last ``len(normalized_shape)`` axes (as
    ``torch.nn.functional.layer_norm``): y = (x - μ) / √(σ² + eps) ⊙ weight + bias, with
    μ and the biased σ² taken over those axes."""
    op = "layer_norm"
    x = checks.tensor(op, "x", x)
    checks.floating(op, "x", x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(int(n) for n in normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"{op}: normalized_shape {shape} does not match the last axes of "
                         f"an input of shape {x.shape}")
    if not eps > 0:
        raise ValueError(f"{op}: eps must be positive, got {eps}")
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            p = checks.tensor(op, name, p)
            if p.shape != shape:
                raise ValueError(f"{op}: {name} of shape {p.shape} does not match "
                                 f"normalized_shape {shape}")
            checks.dtype_of(op, name, p, x.dtype)
            checks.array_on(op, name, p, x)
        params.append(p)
    if x.dtype == np.float16:                       # computed in float32
        y = layer_norm(widen_half(x), shape, widen_half(params[0]), widen_half(params[1]), eps)
        return astype(y, np.float16)
    return LayerNorm.apply(x, params[0], params[1], n_axes=k, eps=float(eps))


class BatchNorm(Function):
    """Batch normalization over every axis but the channel axis 1, with batch statistics.

    μ = mean(x),  σ² = mean((x - μ)²),  x̂ = (x - μ) / √(σ² + ε),  y = γ x̂ + β

    gβ = Σ gy,  gγ = Σ gy ⊙ x̂,  g_x̂ = gy ⊙ γ,
    gx = (g_x̂ - mean(g_x̂) - x̂ ⊙ mean(g_x̂ ⊙ x̂)) / √(σ² + ε)

    (sums and means over the reduced axes). Backward recomputes μ, σ² and x̂ from the
    saved input, so it is itself differentiable.
    """

    @staticmethod
    def forward(ctx, x, w=None, b=None, eps=1e-5):
        xp = ctx.xp
        ctx.axes = (0,) + tuple(range(2, x.ndim))
        ctx.cshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)    # (C,) -> (1, C, 1, ...)
        ctx.eps = eps
        ctx.save_for_backward(x, w)
        mu = x.mean(axis=ctx.axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=ctx.axes, keepdims=True)
        y = (x - mu) / xp.sqrt(var + eps)
        if w is not None:
            y = y * w.reshape(ctx.cshape)
        if b is not None:
            y = y + b.reshape(ctx.cshape)
        return y

    @staticmethod
    def backward(ctx, gy):
        xp, axes = ctx.xp, ctx.axes
        x, w = ctx.saved_tensors
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        inv_std = 1.0 / xp.sqrt((xc * xc).mean(axis=axes, keepdims=True) + ctx.eps)
        xhat = xc * inv_std
        need = ctx.needs_input_grad
        gx = gw = gb = None
        g_xhat = gy if w is None else gy * w.reshape(ctx.cshape)
        if need[0]:
            gx = (g_xhat - g_xhat.mean(axis=axes, keepdims=True)
                  - xhat * (g_xhat * xhat).mean(axis=axes, keepdims=True)) * inv_std
        if len(need) > 1 and need[1]:
            gw = (gy * xhat).sum(axis=axes)
        if len(need) > 2 and need[2]:
            gb = gy.sum(axis=axes)
        return (gx, gw, gb)[:len(need)]


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch norm of an (N, C, ...) input, as ``torch.nn.functional.batch_norm``.

    training: normalize with the batch's μ and biased σ², and (when given) update the running
    statistics in place:  r_μ ← (1 - m) r_μ + m μ,  r_σ² ← (1 - m) r_σ² + m σ² n/(n - 1)
    with n the number of values per channel (the unbiased variance, as PyTorch).
    eval: y = (x - r_μ) / √(r_σ² + ε) · γ + β.
    """
    op = "batch_norm"
    if input.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C, ...), got {input.shape}")
    checks.same_dtype(op, input=input, weight=weight, bias=bias)
    C = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"{op}: {name} of shape {t.shape} does not fit the "
                             f"{C} channels of input {input.shape}")
    cshape = (1, C) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // C
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"input size {tuple(input.shape)}")
        args = [input] + [t for t in (weight, bias) if t is not None]
        if weight is None and bias is not None:
            args = [input, None, bias]
        y = BatchNorm.apply(*args, eps=eps)
        if running_mean is not None and running_var is not None:
            _update_running_stats(input.data, running_mean, running_var, float(momentum))
        return y
    if running_mean is None or running_var is None:
        raise ValueError(f"{op}: running_mean and running_var are needed when "
                         "training=False")
    scale = 1.0 / sqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return input * scale.reshape(cshape) + shift.reshape(cshape)


def _update_running_stats(x, running_mean: Tensor, running_var: Tensor, m: float) -> None:
    """r_μ ← (1 - m) r_μ + m μ,  r_σ² ← (1 - m) r_σ² + m σ²_unbiased, in place."""
    axes = (0,) + tuple(range(2, x.ndim))
    mu = x.mean(axis=axes)
    var_unbiased = x.var(axis=axes, ddof=1)
    running_mean.data[...] = (1.0 - m) * running_mean.data + m * mu
    running_var.data[...] = (1.0 - m) * running_var.data + m * var_unbiased
