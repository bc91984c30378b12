"""Classification losses: negative log-likelihood, cross-entropy, binary cross-entropy.

PyTorch's semantics throughout. Inputs are (N, C), (C,) unbatched, or (N, C, d₁, ...) with
the classes on axis 1; index targets are (N,), () or (N, d₁, ...). A class weight w scales
each sample's loss by w[yᵢ], and the weighted 'mean' divides by Σᵢ w[yᵢ] over the targets
that are not ``ignore_index`` (NaN when every target is ignored, as PyTorch).

Cross-entropy with class indices and no weight is the engine's fused op
(:func:`engine.cross_entropy`: log-softmax and NLL in one pass), and binary cross-entropy
is :func:`engine.binary_cross_entropy`; every other case is composed of engine ops here,
so autograd differentiates it.
"""

from __future__ import annotations

import math

import numpy as np

import engine
from engine import backend, checks
from engine.ops.loss import binary_cross_entropy, constant_weight, reduce
from engine.tensor import Tensor

__all__ = ["nll_loss", "cross_entropy", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]


def _class_axis(op: str, x: Tensor) -> int:
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have a class axis, got a 0-d tensor")
    return 0 if x.ndim == 1 else 1


def _class_weight(op: str, weight, x: Tensor, c: int):
    w = constant_weight(op, weight, x)
    if w is not None and tuple(w.shape) != (c,):
        raise ValueError(f"{op}: weight must have shape ({c},) for {c} classes, got "
                         f"{tuple(w.shape)}")
    return w


def _rows(x: Tensor) -> Tensor:
    """(C,) -> (1, C);  (N, C) as is;  (N, C, d₁, ...) -> (N·d₁·..., C)."""
    c = x.shape[_class_axis("nll_loss", x)]
    if x.ndim == 1:
        return x.reshape(1, c)
    if x.ndim == 2:
        return x
    return x.permute((0,) + tuple(range(2, x.ndim)) + (1,)).reshape(-1, c)


def _target_weights(op: str, t, c: int, w, ignore_index: int, dtype):
    """Flat (M,) targets made safe to index, and wᵢ = w[yᵢ]·[yᵢ ≠ ignore_index]."""
    xp = backend.array_module(t)
    flat = t.reshape(-1).astype(np.int64, copy=False)
    checks.class_range(op, flat, c, ignore_index)
    valid = flat != ignore_index
    safe = xp.where(valid, flat, 0)
    wt = valid.astype(dtype) if w is None else w[safe] * valid
    return safe, wt


def _weighted_mean(total: Tensor, weight_sum: float) -> Tensor:
    """Σ ℓ / Σ w, NaN (without a division warning) when Σ w = 0, as PyTorch."""
    return total / weight_sum if weight_sum != 0 else total * float("nan")


def nll_loss(input, target, weight=None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at class indices ``target``.

    ℓᵢ = -w[yᵢ] · xᵢ,yᵢ  (0 where yᵢ = ignore_index);  'mean': Σᵢ ℓᵢ / Σᵢ w[yᵢ] over the
    targets not ignored, 'sum': Σᵢ ℓᵢ, 'none': ℓ with the target's shape.
    Gradient: ∂ℓᵢ/∂xᵢ,c = -w[yᵢ] [c = yᵢ]. ``weight`` is a constant (no gradient).
    """
    op = "nll_loss"
    checks.reduction(op, reduction)
    x = checks.tensor(op, "input", input)
    checks.floating(op, "input", x)
    c = x.shape[_class_axis(op, x)]
    t = checks.class_targets(op, target, x)
    w = _class_weight(op, weight, x, c)
    rows = _rows(x)                                               # (M, C)
    safe, wt = _target_weights(op, t, c, w, ignore_index, x.dtype)
    xp = backend.array_module(safe)
    picked = rows[xp.arange(safe.shape[0]), safe]                 # xᵢ,yᵢ, (M,)
    loss = -(picked * wt)
    if reduction == "none":
        return loss.reshape(t.shape)
    if reduction == "sum":
        return loss.sum()
    return _weighted_mean(loss.sum(), float(wt.sum()))


def _broadcast_weight(w, x: Tensor):
    """Class weight (C,) shaped to broadcast along axis 1 of (N, C, d₁, ...)."""
    return w if x.ndim <= 2 else w.reshape((-1,) + (1,) * (x.ndim - 2))


def _cross_entropy_probs(x: Tensor, y, w, reduction: str, eps: float) -> Tensor:
    """ℓᵢ = -Σ_c w_c yᵢ,c log pᵢ,c with y smoothed to (1 - ε) y + ε/C; 'mean' over the
    N·d₁·... samples (not the weights, as PyTorch)."""
    dim = _class_axis("cross_entropy", x)
    c = x.shape[dim]
    logp = engine.log_softmax(x, dim=dim)
    if eps > 0:
        y = y * (1.0 - eps) + eps / c
    prod = logp * y
    if w is not None:
        prod = prod * _broadcast_weight(w, x)
    loss = -prod.sum(dim=dim)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return _weighted_mean(loss.sum(), float(x.numel() // c) if c else 0.0)


def cross_entropy(input, target, weight=None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits ``input`` with class indices or class probabilities.

    With p = softmax(x) over the class axis (docs/formulas.md, F5 cross-entropy and F7
    softmax):

    - indices: ℓᵢ = (1 - ε) · (-w[yᵢ] log pᵢ,yᵢ) + (ε/C) · (-Σ_c w_c log pᵢ,c), 0 where
      yᵢ = ignore_index; 'mean' divides each part by Σᵢ w[yᵢ] over the targets kept;
    - probabilities (a float ``target`` of the input's shape): ℓᵢ = -Σ_c w_c ỹᵢ,c log pᵢ,c
      with ỹ = (1 - ε) y + ε/C; 'mean' divides by the number of samples.

    Gradient for one-hot y, no weight or smoothing: ∂ℓᵢ/∂xᵢ = pᵢ - yᵢ ("ŷ - y",
    docs/formulas.md, F10).

        >>> import engine, losses
        >>> logits = engine.tensor([[2.0, 0.0, 0.0]])
        >>> losses.cross_entropy(logits, engine.tensor([0]))   # -log(e²/(e² + 2))
        Tensor(0.2395)
    """
    if weight is None and not _is_probabilities(target):
        return engine.cross_entropy(input, target, ignore_index=ignore_index,
                                    label_smoothing=label_smoothing, reduction=reduction)
    op = "cross_entropy"
    checks.reduction(op, reduction)
    checks.unit_interval(op, "label_smoothing", label_smoothing)
    x = checks.tensor(op, "input", input)
    checks.floating(op, "input", x)
    dim = _class_axis(op, x)
    c = x.shape[dim]
    if _is_probabilities(target):
        y = target if isinstance(target, Tensor) else checks.array_on(op, "target", target, x)
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(f"{op}: class-probability targets must have the input's shape "
                             f"{tuple(x.shape)}, got {tuple(y.shape)}")
        return _cross_entropy_probs(x, y, _class_weight(op, weight, x, c), reduction,
                                    label_smoothing)
    t = checks.class_targets(op, target, x)
    w = _class_weight(op, weight, x, c)
    logp = engine.log_softmax(x, dim=dim)
    nll = nll_loss(logp, t, w, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    smooth = -(logp * _broadcast_weight(w, x)).sum(dim=dim)       # -Σ_c w_c log pᵢ,c
    valid = t != ignore_index
    smooth = engine.where(valid, smooth, 0.0)
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":
        _, wt = _target_weights(op, t, c, w, ignore_index, x.dtype)
        smooth = _weighted_mean(smooth.sum(), float(wt.sum()))
    return (1.0 - label_smoothing) * nll + (label_smoothing / c) * smooth


def _is_probabilities(target) -> bool:
    """A floating target holds class probabilities (an integer one, class indices)."""
    dtype = getattr(target, "dtype", None)
    return (dtype if dtype is not None else np.asarray(target).dtype).kind == "f"


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Binary cross-entropy of logits x, stable for any x (PyTorch's form):

    ℓᵢ = wᵢ [(1 - yᵢ) xᵢ - (1 + (p - 1) yᵢ) log σ(xᵢ)],
    log σ(x) = -softplus(-x) = min(x, 0) - log(1 + e^(-|x|))   (no overflow for any x),

    with p = ``pos_weight`` (broadcast along the last axis: one weight per class) scaling
    the positive term. Gradient: ∂ℓᵢ/∂xᵢ = wᵢ [(1 + (p - 1) yᵢ) σ(xᵢ) - p yᵢ], which is
    σ(x) - y without pos_weight. Composed of engine ops, so target, weight and pos_weight
    get gradients too when they require them.
    """
    op = "binary_cross_entropy_with_logits"
    checks.reduction(op, reduction)
    x = checks.tensor(op, "input", input)
    checks.floating(op, "input", x)
    if tuple(getattr(target, "shape", ())) != tuple(x.shape):
        raise ValueError(f"{op}: target size {tuple(getattr(target, 'shape', ()))} must be "
                         f"the same as the input size {tuple(x.shape)}")
    y = target if isinstance(target, Tensor) else checks.array_on(op, "target", target, x)
    if y.dtype != x.dtype:
        y = y.astype(x.dtype)
    log_sigmoid = -engine.softplus(-x, threshold=math.inf)     # log σ(x), never linearized
    if pos_weight is None:
        loss = (1.0 - y) * x - log_sigmoid
    else:
        p = _coefficient(pos_weight, x, op, "pos_weight")
        loss = (1.0 - y) * x - (1.0 + (p - 1.0) * y) * log_sigmoid
    if weight is not None:
        loss = loss * _coefficient(weight, x, op, "weight")
    return reduce(loss, reduction)


def _coefficient(value, x: Tensor, op: str, name: str):
    """A weight in the input's dtype: Tensors stay differentiable, anything else constant."""
    if isinstance(value, Tensor):
        return value if value.dtype == x.dtype else value.astype(x.dtype)
    return constant_weight(op, value, x, name)
