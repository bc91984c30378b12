"""Indexing: ``x[index]`` forward, and the one ``scatter_add`` that every indexing gradient
goes through.

``x[index]`` accepts what NumPy does: ints, slices (negative steps too), ``None``,
``Ellipsis``, integer arrays (repeats allowed) and boolean masks. The gradient is
``gx = zeros_like(x); gx[index] += gy`` with repeated indices accumulating, which
:func:`scatter_add` does by the cheapest correct route:

- basic indices and boolean masks select each element at most once: plain ``+=``;
- integer arrays on the leading axes (an embedding lookup, ``x[rows, cols]``): sort the
  flat indices and sum runs of equal ones with ``add.reduceat``, one write per row;
- anything else (arrays mixed between slices): unbuffered ``add.at``.
"""

from __future__ import annotations

import numpy as np

from engine import backend, checks
from engine.function import Function
from engine.ops.utils import normalize_axis
from engine.tensor import Tensor


def _is_basic(k) -> bool:
    return k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer)) and not \
        isinstance(k, bool)


def prepare_index(xp, index):
    """Normalize an index: Tensors and lists become arrays of the data's module."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for k in index:
        if isinstance(k, Tensor):
            k = k.data
        if _is_basic(k):
            out.append(int(k) if isinstance(k, np.integer) else k)
            continue
        k = xp.asarray(k)
        if k.dtype.kind not in "iub":
            raise IndexError(f"getitem: index arrays must be integer or bool, got {k.dtype}")
        out.append(k)
    return tuple(out)


def _leading_int_arrays(index, ndim):
    """How many leading entries are integer arrays followed only by full slices, or 0."""
    k = 0
    while k < len(index) and not _is_basic(index[k]) and index[k].dtype.kind in "iu":
        k += 1
    rest = index[k:]
    if k == 0 or any(r is None for r in rest):
        return 0
    if any(not (r is Ellipsis or r == slice(None)) for r in rest) or k > ndim:
        return 0
    return k


def scatter_add(target, index, values) -> None:
    """``target[index] += values`` in place, accumulating over repeated indices."""
    index = index if isinstance(index, tuple) else (index,)
    arrays = [k for k in index if not _is_basic(k)]
    if not arrays or all(a.dtype == bool for a in arrays):
        target[index] += values           # each element selected at most once
        return
    k = _leading_int_arrays(index, target.ndim)
    if k == 0 or backend.is_cuda_array(target) or not target.flags.c_contiguous:
        backend.add_at(target, index, values)   # GPU atomics, or the general case
        return
    lead = target.shape[:k]
    idx = np.broadcast_arrays(*index[:k])
    idx = [np.where(i < 0, i + n, i) for i, n in zip(idx, lead)]
    flat = np.ravel_multi_index(tuple(i.ravel() for i in idx), lead)
    if flat.size == 0:
        return
    rows = target.reshape(int(np.prod(lead)), -1)              # (M, D) view of target
    vals = np.asarray(values).reshape(flat.size, -1)            # (n, D)
    order = np.argsort(flat, kind="stable")
    sorted_flat = flat[order]
    starts = np.flatnonzero(np.diff(sorted_flat, prepend=-1))   # first of each run
    if starts.size == flat.size:                                # all unique
        rows[flat] += vals
    else:
        rows[sorted_flat[starts]] += np.add.reduceat(vals[order], starts, axis=0)


class GetItem(Function):
    """y = x[index];  gx = zeros_like(x) with gy scatter-added at index"""

    ctx_arrays = ("index",)

    @staticmethod
    def forward(ctx, x, index=()):
        ctx.index = index
        ctx.x_shape = x.shape
        try:
            return x[index]
        except IndexError as exc:
            raise IndexError(f"getitem: {exc} (tensor shape {x.shape})") from None

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return IndexAdd.apply(gy, index=ctx.index, shape=ctx.x_shape)
        gx = ctx.xp.zeros(ctx.x_shape, dtype=gy.dtype)
        scatter_add(gx, ctx.index, gy)
        return gx


class IndexAdd(Function):
    """y = zeros(shape) with v scatter-added at index (the adjoint of getitem);  gv = gy[index]"""

    ctx_arrays = ("index",)

    @staticmethod
    def forward(ctx, v, index=(), shape=()):
        ctx.index = index
        y = ctx.xp.zeros(shape, dtype=v.dtype)
        scatter_add(y, index, v)
        return y

    @staticmethod
    def backward(ctx, gy):
        return GetItem.apply(gy, index=ctx.index) if isinstance(gy, Tensor) else gy[ctx.index]


def getitem(x: Tensor, index) -> Tensor:
    """``x[index]`` with NumPy's indexing rules, a view of x wherever NumPy's is; also for
    an all-integer index (a 0-d view, as PyTorch's ``x[i]``, where NumPy returns a copy)."""
    index = prepare_index(backend.array_module(x.data), index)
    if not any(k is Ellipsis for k in index):
        index += (Ellipsis,)          # x[i, j, ...] is a 0-d view; x[i, j] a NumPy scalar
    return GetItem.apply(x, index=index)


def index_add(values, index, shape) -> Tensor:
    """``zeros(shape)`` with ``values`` added at ``index`` (repeats accumulate)."""
    xp = backend.array_module(values.data)
    return IndexAdd.apply(values, index=prepare_index(xp, index), shape=tuple(shape))


def gather(input, dim: int, index) -> Tensor:
    """Values picked along ``dim`` (PyTorch's ``gather``): for dim = 1,
    ``y[i, j, k] = x[i, index[i, j, k], k]``. ``index`` has ``x``'s number of axes and no
    larger a length on the others; the gradient is scatter-added back (repeats add up)."""
    x = checks.tensor("gather", "input", input)
    xp = backend.array_module(x.data)
    idx = checks.array_on("gather", "index", index, x)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must hold integers, got {idx.dtype}")
    dim = normalize_axis(dim, max(x.ndim, 1), "gather")
    if idx.ndim != x.ndim or any(m > n for a, (m, n) in enumerate(zip(idx.shape, x.shape))
                                 if a != dim):
        raise ValueError(f"gather: index of shape {tuple(idx.shape)} does not fit input of "
                         f"shape {x.shape} along dim {dim}")
    n = x.shape[dim] if x.ndim else 1
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"gather: index values span [{int(idx.min())}, {int(idx.max())}] "
                         f"but dim {dim} of input {x.shape} has length {n}")
    if x.ndim == 0:
        return GetItem.apply(x, index=())
    # x[mesh]: the index on dim, an arange on every other axis, broadcast against each other
    mesh = tuple(idx if a == dim else
                 xp.arange(m).reshape((1,) * a + (m,) + (1,) * (idx.ndim - a - 1))
                 for a, m in enumerate(idx.shape))
    return GetItem.apply(x, index=mesh)
