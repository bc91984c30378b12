"""Regression losses: squared, absolute, smooth-L1 and Huber errors, composed of engine ops.

Each loss is elementwise in d = input - target (broadcasting as PyTorch, with its warning
when the shapes differ) followed by the reduction: 'mean' (1/n) Σ ℓ, 'sum' Σ ℓ, or 'none'.
The gradients come from autograd through the composed ops, so the target may require grad.
"""

from __future__ import annotations

import warnings

import engine
from engine import checks
from engine.ops.loss import reduce
from engine.tensor import Tensor


def _difference(op: str, input, target, reduction: str) -> Tensor:
    checks.reduction(op, reduction)
    input = checks.tensor(op, "input", input)
    _warn_if_broadcast(op, input, target)
    return input - target


def _warn_if_broadcast(op: str, input: Tensor, target) -> None:
    """PyTorch's warning for regression losses whose target shape differs from the input's."""
    shape = tuple(getattr(target, "shape", ()))
    if shape != tuple(input.shape):
        warnings.warn(
            f"{op}: using a target size {shape} that is different to the input size "
            f"{tuple(input.shape)}; this will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            UserWarning, stacklevel=3,
        )


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error: ℓᵢ = (ŷᵢ - yᵢ)², 'mean' gives MSE = (1/n) Σᵢ (yᵢ - ŷᵢ)².

    Gradient: ∂ℓᵢ/∂ŷᵢ = 2 (ŷᵢ - yᵢ) (divided by n for 'mean').

    The classic least-squares objective J = ½ Σᵢ (yᵢ - ŷᵢ)² (docs/formulas.md, F2 and F4) is
    half the 'sum' reduction; its gradient is -Σᵢ (yᵢ - ŷᵢ) ∂ŷᵢ/∂θ:

        >>> import engine, losses
        >>> y_hat = engine.tensor([2.5, 0.0, 2.0])
        >>> y = engine.tensor([3.0, -0.5, 2.0])
        >>> losses.mse_loss(y_hat, y)                          # (1/n) Σ (yᵢ - ŷᵢ)²
        Tensor(0.1667)
        >>> 0.5 * losses.mse_loss(y_hat, y, reduction="sum")   # ½ Σ (yᵢ - ŷᵢ)²
        Tensor(0.25)
    """
    d = _difference("mse_loss", input, target, reduction)
    return reduce(d * d, reduction)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error: ℓᵢ = |ŷᵢ - yᵢ|;  ∂ℓᵢ/∂ŷᵢ = sign(ŷᵢ - yᵢ) (0 at 0, as PyTorch).

        >>> import engine, losses
        >>> losses.l1_loss(engine.tensor([1.0, 2.0]), engine.tensor([0.0, 4.0]))
        Tensor(1.5)
    """
    d = _difference("l1_loss", input, target, reduction)
    return reduce(engine.abs(d), reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Smooth L1: ℓᵢ = ½ dᵢ² / β where |dᵢ| < β, else |dᵢ| - ½ β  (d = ŷ - y).

    Gradient: dᵢ / β inside, sign(dᵢ) outside. ``beta=0`` is exactly the L1 loss.
    """
    op = "smooth_l1_loss"
    if beta < 0:
        raise ValueError(f"{op}: beta must be non-negative, got {beta}")
    d = _difference(op, input, target, reduction)
    a = engine.abs(d)
    if beta == 0:
        return reduce(a, reduction)
    loss = engine.where(a < beta, (0.5 / beta) * (d * d), a - 0.5 * beta)
    return reduce(loss, reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber: ℓᵢ = ½ dᵢ² where |dᵢ| < δ, else δ (|dᵢ| - ½ δ)  (d = ŷ - y).

    Gradient: dᵢ inside, δ sign(dᵢ) outside; Huber = δ · smooth_l1 with β = δ.
    """
    op = "huber_loss"
    if delta <= 0:
        raise ValueError(f"{op}: delta must be positive, got {delta}")
    d = _difference(op, input, target, reduction)
    a = engine.abs(d)
    loss = engine.where(a < delta, 0.5 * (d * d), delta * (a - 0.5 * delta))
    return reduce(loss, reduction)
