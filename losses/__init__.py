"""Loss functions (MSE, L1, smooth L1, Huber, cross-entropy, NLL, binary cross-entropy) and
their ``nn.Module`` classes, with PyTorch's arguments and reductions; metrics in
:mod:`losses.metrics`.

    >>> import engine, losses
    >>> losses.mse_loss(engine.tensor([1.0, 2.0]), engine.tensor([1.0, 4.0]))
    Tensor(2.)
"""

# The loss classes are nn Modules, and nn offers them (nn.CrossEntropyLoss is
# losses.CrossEntropyLoss): nn is made first, whichever of the two a program imports first.
import nn  # noqa: F401
from losses.regression import huber_loss, l1_loss, mse_loss, smooth_l1_loss
from losses.classification import (
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, nll_loss,
)
from losses.modules import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss,
    SmoothL1Loss,
)
from losses import metrics

__all__ = [
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss", "cross_entropy",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "NLLLoss", "CrossEntropyLoss",
    "BCELoss", "BCEWithLogitsLoss", "metrics",
]
