"""Dropout layer, as ``torch.nn.Dropout``."""

from __future__ import annotations

import nn.functional as F
from engine.tensor import Tensor
from nn.module import Module


class Dropout(Module):
    """Inverted dropout: in training y = x ⊙ m / (1 - p), m ~ Bernoulli(1 - p) from the
    engine generator; in eval the identity."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace   # accepted for PyTorch compatibility; results are new tensors

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
