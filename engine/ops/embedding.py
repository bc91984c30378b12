"""Embedding: a table lookup y = W[idx] and its scatter-add gradient (``nn.Embedding``).

The gradient of a lookup adds each position's upstream row into the table row it read
(repeated indices add up): on the CPU in one Numba pass over the positions
(:mod:`engine.kernels.cpu_embedding`), elsewhere, and under ``engine.use_fused(False)``,
through the one ``scatter_add`` of :mod:`engine.ops.indexing` (the literal formula below).
"""

from __future__ import annotations

import numpy as np

from engine import backend, kernels
from engine.function import Function
from engine.kernels import reference
from engine.ops.indexing import index_add, scatter_add
from engine.tensor import Tensor


class Embedding(Function):
    """y[..., :] = W[idx[...], :]  (a row lookup)

    gW[r] = Σ_{positions p with idx[p] = r} gy[p]  (scatter-add; repeated indices add up),
    except the ``padding_idx`` row, which gets no gradient; with ``scale_grad_by_freq``
    each contribution is divided by how often its index occurs in ``idx``.
    """

    ctx_arrays = ("idx",)

    @staticmethod
    def forward(ctx, W, idx, padding_idx=None, scale_grad_by_freq=False):
        ctx.idx, ctx.num = idx, W.shape[0]
        ctx.padding_idx, ctx.scale = padding_idx, scale_grad_by_freq
        return W[idx]

    @staticmethod
    def backward(ctx, gy):
        xp, idx = ctx.xp, ctx.idx
        if not isinstance(gy, Tensor) and not backend.is_cuda_array(gy):
            impl = kernels.select(gy)
            if impl is not reference:                  # one Numba pass on the CPU
                return impl.embedding_backward(xp, idx, gy, ctx.num, ctx.padding_idx,
                                               ctx.scale), None
        keep = None
        if ctx.padding_idx is not None:
            keep = (idx != ctx.padding_idx)[..., None]
        if ctx.scale:
            counts = backend.array_module(idx).bincount(idx.ravel(), minlength=ctx.num)
            inv = (1.0 / counts[idx])[..., None]
            keep = inv if keep is None else keep * inv
        if keep is not None:
            gy = gy * keep.astype(gy.dtype)
        shape = (ctx.num,) + tuple(gy.shape[idx.ndim:])
        if isinstance(gy, Tensor):
            return index_add(gy, idx, shape), None
        gW = xp.zeros(shape, dtype=gy.dtype)
        scatter_add(gW, (idx,), gy)
        return gW, None


def _index_array(op: str, input, num: int):
    idx = input.data if isinstance(input, Tensor) else input
    if not hasattr(idx, "dtype"):
        idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer tensor, got {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(f"{op}: index out of range: indices span [{int(idx.min())}, "
                         f"{int(idx.max())}] for a table of {num} rows")
    return idx


def embedding(input, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False) -> Tensor:
    """Rows ``weight[input]``: (…) integer indices -> (…, embedding_dim).

    ``padding_idx``: that row receives no gradient. ``max_norm``: rows looked up whose
    ``norm_type``-norm exceeds it are first rescaled to that norm, in place in ``weight``.
    """
    num = weight.shape[0]
    idx = _index_array("embedding", input, num)
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within the "
                             f"{num} rows of weight")
        padding_idx %= num
    if max_norm is not None:
        _embedding_renorm_(weight, idx, max_norm, norm_type)
    return Embedding.apply(weight, idx, padding_idx=padding_idx,
                           scale_grad_by_freq=scale_grad_by_freq)


def _embedding_renorm_(weight: Tensor, idx, max_norm: float, norm_type: float) -> None:
    """W[r] *= max_norm / (‖W[r]‖ + 1e-7) for the looked-up rows whose norm is too large."""
    xp = backend.array_module(weight.data)
    rows = xp.unique(idx.ravel())
    sel = weight.data[rows]
    norms = (xp.abs(sel) ** norm_type).sum(axis=-1) ** (1.0 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(sel.dtype)
    weight.data[rows] = sel * scale[:, None]
