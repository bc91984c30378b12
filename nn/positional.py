"""Sinusoidal positional encoding ("Attention Is All You Need", section 3.5)."""

from __future__ import annotations

import math

import numpy as np

import engine
from engine.tensor import Tensor
from nn.linear import Dropout
from nn.module import Module

__all__ = ["PositionalEncoding", "sinusoidal_encoding"]


def sinusoidal_encoding(max_len: int, d_model: int, dtype=None) -> np.ndarray:
    """PE (max_len, d_model) on the host:

        PE[pos, 2i]   = sin(pos / 10000^(2i/d_model))
        PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))

    computed in float64 and cast to ``dtype`` (the default dtype when None).
    """
    dtype = engine.get_default_dtype() if dtype is None else np.dtype(dtype)
    pos = np.arange(max_len, dtype=np.float64)[:, None]                        # (T, 1)
    inv_freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64)
                      * (-math.log(10000.0) / d_model))                         # (⌈d/2⌉,)
    angle = pos * inv_freq                                                      # (T, ⌈d/2⌉)
    pe = np.zeros((max_len, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, :d_model // 2])
    return pe.astype(dtype)


class PositionalEncoding(Module):
    """y = dropout(x + PE[:T]) with the fixed sinusoidal PE of :func:`sinusoidal_encoding`.

    ``x`` (T, N, d_model), or (N, T, d_model) with ``batch_first``, or unbatched
    (T, d_model); T ≤ ``max_len``. PE is kept in the buffer ``pe`` (max_len, d_model),
    registered *non-persistent*: it is a fixed function of the constructor arguments, so
    it stays out of ``state_dict`` (checkpoints hold only what was learned) and is rebuilt
    on construction. It follows the module across ``to(device)``; it is cast to the
    input's dtype in forward, so a float32 input stays float32.
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0,
                 batch_first: bool = False) -> None:
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"PositionalEncoding: d_model and max_len must be positive, "
                             f"got {d_model} and {max_len}")
        self.d_model = d_model
        self.max_len = max_len
        self.batch_first = batch_first
        self.dropout = Dropout(dropout)
        self.register_buffer("pe", Tensor._make(sinusoidal_encoding(max_len, d_model),
                                                None, 0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            raise ValueError(f"PositionalEncoding: expected input (..., {self.d_model}) with "
                             f"2 or 3 axes, got {x.shape}")
        T = x.shape[1] if (self.batch_first and x.ndim == 3) else x.shape[0]
        if T > self.max_len:
            raise ValueError(f"PositionalEncoding: sequence length {T} exceeds max_len "
                             f"{self.max_len} (input {x.shape})")
        pe = self.pe.data[:T].astype(x.dtype, copy=False)                     # (T, d)
        if x.ndim == 3:
            pe = pe[None] if self.batch_first else pe[:, None]   # (1, T, d) or (T, 1, d)
        return self.dropout(x + Tensor._make(pe, None, 0))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"
