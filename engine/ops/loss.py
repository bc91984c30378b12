"""Losses with a formula of their own: cross-entropy with class indices (a fused op) and
binary cross-entropy, each a Function and its entry; and the reductions every loss shares.

PyTorch's semantics. The other losses (NLL, class weights and probability targets, binary
cross-entropy with logits, the regression losses) are compositions of engine ops in
:mod:`losses`, which calls these for the cases they cover.
"""

from __future__ import annotations

import numpy as np

from engine import checks, kernels
from engine.function import Function
from engine.kernels import reference
from engine.ops.elementwise import astype, widen_half
from engine.ops.shape import permute, reshape
from engine.tensor import Tensor


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """'none': the elementwise losses; 'sum': Σ ℓ; 'mean': (1/n) Σ ℓ over all n elements
    (NaN for no elements, as PyTorch)."""
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum() if reduction == "sum" else loss.sum() * float("nan")
    return loss.mean()


def constant_weight(op: str, weight, like: Tensor, name: str = "weight"):
    """A weight that gets no gradient, as an array of ``like``'s dtype and device."""
    if weight is None:
        return None
    return checks.array_on(op, name, weight, like).astype(like.dtype, copy=False)


# ---------------------------------------------------------------- cross-entropy
class CrossEntropy(Function):
    """Cross-entropy of logits x (N, C) with class indices t (N,), label smoothing ε:

    log pᵢ = log_softmax(xᵢ);  ℓᵢ = -(1 - ε) log pᵢ,tᵢ - (ε / C) Σ_c log pᵢc  (0 where tᵢ is
    ignore_index); 'mean' divides Σᵢ ℓᵢ by the number of rows not ignored.

    gxᵢ = gℓᵢ · (pᵢ Σ_c wᵢc - wᵢ),  wᵢ = ((1 - ε) onehot(tᵢ) + ε / C) · [tᵢ ≠ ignore_index]
    (softmax minus target, the classic "ŷ - y"). The fused kernels save log Σ exp per row
    and are differentiable once; the reference saves x, so it is differentiable again.

    docs/formulas.md, F5 cross-entropy and F10 its gradient.
    """

    ctx_arrays = ("target",)

    @staticmethod
    def forward(ctx, x, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        xp = ctx.xp
        ctx.impl = kernels.select(x)
        ctx.once_differentiable = ctx.impl is not reference
        loss, saved = ctx.impl.cross_entropy_forward(xp, x, target, ignore_index,
                                                     label_smoothing)
        ctx.save_for_backward(*saved)
        ctx.target, ctx.params = target, (ignore_index, label_smoothing)
        ctx.reduction, ctx.dtype = reduction, x.dtype
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "mean":
            ctx.n_valid = n = int((target != ignore_index).sum())
            total = total / x.dtype.type(n) if n else x.dtype.type("nan")
        return xp.asarray(total, dtype=x.dtype)

    @staticmethod
    def backward(ctx, gl):
        g = gl                                        # the gradient of each row's ℓ
        if ctx.reduction == "mean":                   # every row ignored: gradient 0
            g = gl / ctx.dtype.type(ctx.n_valid) if ctx.n_valid else gl * 0
        gx = ctx.impl.cross_entropy_backward(ctx.xp, ctx.saved_tensors, ctx.target, g,
                                             *ctx.params)
        return gx, None


def cross_entropy(input, target, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits ``input`` (N, C) with class indices ``target`` (N,), the
    log-softmax fused in; PyTorch's semantics (see :class:`CrossEntropy`).

    ``reduction``: 'mean' (Σ ℓᵢ over the number of rows not ignored; NaN when every row is
    ignored, as PyTorch), 'sum', or 'none' (the losses, shaped like the target). Also takes
    (C,) logits with a 0-d target and (N, C, d₁, ...) logits with (N, d₁, ...) targets.
    Class weights and probability targets: ``losses.cross_entropy``.
    """
    op = "cross_entropy"
    x = checks.tensor(op, "input", input)
    checks.floating(op, "input", x)
    checks.reduction(op, reduction)
    checks.unit_interval(op, "label_smoothing", label_smoothing)
    t = checks.class_targets(op, target, x)
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    out_shape = t.shape
    if x.ndim == 1:                                 # (C,) -> (1, C)
        x = reshape(x, (1, c))
    elif x.ndim > 2:                                # (N, C, d...) -> (N·d..., C)
        x = reshape(permute(x, (0,) + tuple(range(2, x.ndim)) + (1,)), (-1, c))
    t = t.reshape(-1).astype(np.int64, copy=False)
    checks.class_range(op, t, c, ignore_index)
    loss = CrossEntropy.apply(widen_half(x), t, ignore_index=int(ignore_index),
                              label_smoothing=float(label_smoothing), reduction=reduction)
    if loss.dtype != x.dtype:                       # float16 is computed in float32
        loss = astype(loss, x.dtype)
    if reduction == "none" and loss.shape != out_shape:
        loss = reshape(loss, out_shape)
    return loss


# ---------------------------------------------------------------- binary cross-entropy
_BCE_EPS = float(np.float32(1e-12))   # PyTorch clamps x(1 - x) at the float32 value of 1e-12


class BinaryCrossEntropy(Function):
    """ℓ = -w [y · max(log x, -100) + (1 - y) · max(log(1 - x), -100)]

    gx = gℓ · w (x - y) / max(x (1 - x), 10⁻¹²)
    gy = gℓ · w (max(log(1 - x), -100) - max(log x, -100))
    (PyTorch's clamps: finite losses and gradients at x = 0 and x = 1.)

    docs/formulas.md, F6 binary cross-entropy.
    """

    ctx_arrays = ("weight",)

    @staticmethod
    def forward(ctx, x, y, weight=None):
        xp = ctx.xp
        ctx.weight = weight
        ctx.save_for_backward(x, y)
        with np.errstate(divide="ignore"):
            log_x = xp.maximum(xp.log(x), -100.0)
            log_1mx = xp.maximum(xp.log1p(-x), -100.0)
        loss = (y - 1.0) * log_1mx - y * log_x
        return loss if weight is None else loss * weight

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        xp = ctx.xp
        g = gy if ctx.weight is None else gy * ctx.weight
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = g * (x - y) / xp.maximum(x * (1.0 - x), _BCE_EPS)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gt = g * (xp.maximum(xp.log(1.0 - x), -100.0) - xp.maximum(xp.log(x), -100.0))
        return gx, gt


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` ∈ [0, 1] against ``target``.

    ℓᵢ = -wᵢ [yᵢ log xᵢ + (1 - yᵢ) log(1 - xᵢ)], each log clamped to ≥ -100 as PyTorch
    (see :class:`BinaryCrossEntropy` for the gradients). Targets must lie in [0, 1] too,
    as in PyTorch (outside it the loss is no cross-entropy and can go negative). The
    worked value of docs/formulas.md, F6 binary cross-entropy, y = 1 and ŷ = 0.9:

        >>> import engine, losses
        >>> losses.binary_cross_entropy(engine.tensor([0.9]), engine.tensor([1.0]))
        Tensor(0.1054)
    """
    op = "binary_cross_entropy"
    checks.reduction(op, reduction)
    x = checks.tensor(op, "input", input)
    checks.floating(op, "input", x)
    y = target if isinstance(target, Tensor) else \
        checks.tensor(op, "target", checks.array_on(op, "target", target, x))
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"{op}: target size {tuple(y.shape)} must be the same as the input "
                         f"size {tuple(x.shape)}")
    if x.numel() and (bool((x.data < 0).any()) or bool((x.data > 1).any())):
        raise ValueError(f"{op}: all elements of input should be between 0 and 1 (got range "
                         f"[{float(x.data.min())}, {float(x.data.max())}]); use "
                         "binary_cross_entropy_with_logits for logits")
    if y.size and (bool((y.data < 0).any()) or bool((y.data > 1).any())):
        raise ValueError(f"{op}: all elements of target should be between 0 and 1 (got range "
                         f"[{float(y.data.min())}, {float(y.data.max())}])")
    w = constant_weight(op, weight, x)
    if w is not None and np.broadcast_shapes(w.shape, x.shape) != tuple(x.shape):
        raise ValueError(f"{op}: weight of shape {tuple(w.shape)} does not broadcast to the "
                         f"input shape {tuple(x.shape)}")
    if y.dtype != x.dtype:
        y = y.astype(x.dtype)
    return reduce(BinaryCrossEntropy.apply(x, y, weight=w), reduction)
