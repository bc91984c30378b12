"""Loss classes: ``nn.Module`` wrappers of the functional losses, as ``torch.nn`` has them.

Class weights are registered as buffers (``weight``, ``pos_weight``), so they appear in the
state dict and move with ``.to(device)``. The options after ``weight`` are keyword-only:
PyTorch's positional slots there belong to the deprecated ``size_average``/``reduce``.
"""

from __future__ import annotations

from engine import checks
from engine.tensor import Tensor
from losses import classification, regression
from nn.module import Module


def _buffer(value) -> Tensor | None:
    if value is None or isinstance(value, Tensor):
        return value
    return Tensor(value)


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        checks.reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """ℓ = (ŷ - y)², reduced (see :func:`losses.mse_loss`)."""

    def forward(self, input, target) -> Tensor:
        return regression.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """ℓ = |ŷ - y|, reduced (see :func:`losses.l1_loss`)."""

    def forward(self, input, target) -> Tensor:
        return regression.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """ℓ = ½ d²/β for |d| < β, else |d| - ½β (see :func:`losses.smooth_l1_loss`)."""

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target) -> Tensor:
        return regression.smooth_l1_loss(input, target, reduction=self.reduction,
                                         beta=self.beta)


class HuberLoss(_Loss):
    """ℓ = ½ d² for |d| < δ, else δ(|d| - ½δ) (see :func:`losses.huber_loss`)."""

    def __init__(self, *, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target) -> Tensor:
        return regression.huber_loss(input, target, reduction=self.reduction,
                                     delta=self.delta)


class NLLLoss(_Loss):
    """ℓᵢ = -w[yᵢ] xᵢ,yᵢ on log-probabilities (see :func:`losses.nll_loss`)."""

    def __init__(self, weight=None, *, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index

    def forward(self, input, target) -> Tensor:
        return classification.nll_loss(input, target, weight=self.weight,
                                       ignore_index=self.ignore_index,
                                       reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """log-softmax + NLL on logits, indices or probabilities as targets (see
    :func:`losses.cross_entropy`)."""

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target) -> Tensor:
        return classification.cross_entropy(input, target, weight=self.weight,
                                            ignore_index=self.ignore_index,
                                            reduction=self.reduction,
                                            label_smoothing=self.label_smoothing)


class BCELoss(_Loss):
    """ℓ = -w [y log x + (1 - y) log(1 - x)] on probabilities (see
    :func:`losses.binary_cross_entropy`)."""

    def __init__(self, weight=None, *, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))

    def forward(self, input, target) -> Tensor:
        return classification.binary_cross_entropy(input, target, weight=self.weight,
                                                   reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Stable sigmoid + binary cross-entropy on logits, with ``pos_weight`` (see
    :func:`losses.binary_cross_entropy_with_logits`)."""

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input, target) -> Tensor:
        return classification.binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction,
            pos_weight=self.pos_weight)
