"""Embedding table, as ``torch.nn.Embedding``; the sinusoidal positional encoding
("Attention Is All You Need", section 3.5) added to embedded sequences."""

from __future__ import annotations

import math

import numpy as np

import engine
import nn.functional as F
from engine.tensor import Tensor
from nn import init
from nn.linear import Dropout
from nn.module import Module, Parameter, empty_parameter


class Embedding(Module):
    """y = weight[indices]: (…) integer indices -> (…, embedding_dim).

    ``weight`` (num_embeddings, embedding_dim) ~ N(0, 1), with the ``padding_idx`` row
    zeroed; that row also receives no gradient, so it stays as it is through training.
    ``max_norm`` renormalizes looked-up rows in place; ``scale_grad_by_freq`` divides each
    row's gradient by its index's frequency in the batch.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: int | None = None, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        if sparse:
            raise ValueError("Embedding: sparse gradients are not supported (sparse=False "
                             "gives the same values as a dense gradient)")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"num_embeddings {num_embeddings}")
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = empty_parameter((num_embeddings, embedding_dim), dtype,
                                          requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight of shape {tuple(_weight.shape)} does "
                                 f"not match ({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm,
                           self.norm_type, self.scale_grad_by_freq)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True,
                        padding_idx: int | None = None, max_norm: float | None = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding holding (a copy of) ``embeddings``; frozen unless ``freeze=False``."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got "
                             f"shape {tuple(embeddings.shape)}")
        rows, dim = embeddings.shape
        data = embeddings.data.copy() if isinstance(embeddings, Tensor) else embeddings.copy()
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=Tensor._make(data, None, 0), _freeze=freeze)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s


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
