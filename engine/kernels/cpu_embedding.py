"""The embedding's gradient on the CPU: one Numba pass that adds each position's upstream
row into the table row it looked up.

    gW[r] = Σ_{positions p with idx[p] = r} gy[p] · s_p

with s_p = 0 where idx[p] is ``padding_idx``, 1 / count(idx[p]) under
``scale_grad_by_freq``, else 1 (formulas in :mod:`engine.ops.embedding`). Repeated
indices simply add up in place, so no sort and no per-index grouping is needed (the array
route of :func:`engine.ops.indexing.scatter_add` sorts the indices, gathers the rows and
sums runs with ``add.reduceat``). Large gradients split the columns among threads: each
thread walks all positions over its own columns, so no two threads write one element.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from engine.kernels.cpu_math import JIT, JIT_FMA, PARALLEL

PARALLEL_MIN = 1 << 18      # elements of gy from which column blocks go to threads


@njit(**JIT_FMA)
def _add_rows(idx, gy, padding_idx, counts, scaled, gW, lo, hi):
    """gW[idx[p], lo:hi] += gy[p, lo:hi] (· 1/count) for every position p."""
    width = hi - lo
    one = gy.dtype.type(1)
    for p in range(idx.shape[0]):
        r = idx[p]
        if r == padding_idx:
            continue
        src, dst = gy[p], gW[r]
        if scaled:
            s = one / gy.dtype.type(counts[r])
            for j in range(width):
                k = lo + j
                dst[k] += src[k] * s
        else:
            for j in range(width):
                k = lo + j
                dst[k] += src[k]


@njit(**JIT)
def _embedding_bwd_serial(idx, gy, padding_idx, counts, scaled, gW):
    _add_rows(idx, gy, padding_idx, counts, scaled, gW, 0, gy.shape[1])


@njit(**PARALLEL)
def _embedding_bwd_parallel(idx, gy, padding_idx, counts, scaled, gW, chunks):
    d = gy.shape[1]
    for k in prange(chunks):
        _add_rows(idx, gy, padding_idx, counts, scaled, gW, k * d // chunks,
                  (k + 1) * d // chunks)


def embedding_backward(xp, idx, gy, num: int, padding_idx, scale_grad_by_freq: bool):
    """gW (num, ...) from the integer indices ``idx`` (any shape) and the upstream ``gy``
    (idx.shape + row shape); ``padding_idx`` (a row, or None) gets no gradient."""
    row_shape = gy.shape[idx.ndim:]
    flat = np.ascontiguousarray(idx).reshape(-1)
    g = np.ascontiguousarray(gy).reshape(flat.shape[0], math.prod(row_shape))   # (n, D)
    gW = np.zeros((num, g.shape[1]), dtype=gy.dtype)
    counts = np.bincount(flat, minlength=num) if scale_grad_by_freq else \
        np.zeros(1, dtype=np.int64)
    pad = -1 if padding_idx is None else int(padding_idx)
    if g.size >= PARALLEL_MIN:
        chunks = max(1, min(numba.get_num_threads(), g.shape[1] // 16))
        _embedding_bwd_parallel(flat, g, pad, counts, scale_grad_by_freq, gW, chunks)
    elif g.size:
        _embedding_bwd_serial(flat, g, pad, counts, scale_grad_by_freq, gW)
    return gW.reshape((num,) + row_shape)
