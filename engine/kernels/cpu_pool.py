"""Max pooling and ReLU on the CPU: Numba kernels that route a gradient by what the forward
kept (the index of each window's maximum, the sign of ReLU's output).

The same functions as :mod:`engine.kernels.pool_reference` (max pooling) for NumPy arrays
in float32 or float64, one (image, channel) plane per parallel task:

- the forward visits each window's taps inside the input (the padding never wins) and keeps
  the flat index h·W + w of the maximum in its plane, as PyTorch's CPU kernel does: the
  first maximum, a NaN always taking over, and the window's first element when every
  value is -inf. These indices are what ``return_indices`` gives;
- the backward adds each gy at its index (one plane per task: no two tasks write the same
  element), and the gather, its adjoint, reads x at the indices.

ReLU's forward on a large contiguous array is max(x, 0) shared among threads (NumPy's
``maximum`` runs on one; NaN stays NaN and -0 gives 0, as there). Its backward is
gx = gy where y > 0, else 0 (what ``where(y > 0, gy, 0)`` gives, gy
= ±inf or NaN included) in one pass that vectorizes: NumPy's ``where`` on a computed mask
takes about 8 ns an element, this kernel well under one.

``geo`` is :class:`engine.ops.pool.PoolGeometry` (read by attribute).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu_math import JIT, PARALLEL

# Below this many elements ReLU runs on the calling thread: a parallel launch
# costs about 3 µs, the pass over 64K float32 elements about 7 µs (measured).
PARALLEL_MIN = 1 << 16


@njit(**PARALLEL)
def _max_fwd(x, y, idx, planes, h, w, ho, wo, kh, kw, sh, sw, dh, dw, top, left):
    """x (P·H·W), y and idx (P·Ho·Wo): the planes flattened."""
    ninf = x.dtype.type(-np.inf)
    for p in prange(planes):
        xb, yb = p * h * w, p * ho * wo
        best = np.empty(wo, dtype=x.dtype)            # one output row, kept apart from y
        arg = np.empty(wo, dtype=np.int64)            # so that the loops vectorize
        for i in range(ho):
            r0 = i * sh - top
            a0 = (dh - 1 - r0) // dh if r0 < 0 else 0          # the taps inside the input
            a1 = max(a0, min(kh, (h - r0 + dh - 1) // dh))
            for j in range(wo):
                c0 = j * sw - left
                b0 = (dw - 1 - c0) // dw if c0 < 0 else 0
                best[j] = ninf
                arg[j] = (r0 + a0 * dh) * w + c0 + b0 * dw     # the window's first element
            for a in range(a0, a1):
                row = (r0 + a * dh) * w
                for b in range(kw):
                    off = b * dw - left
                    # every output of the row, those whose tap lies in the padding masked
                    # (a loop over the valid range alone runs 4x slower: it does not vectorize)
                    for j in range(wo):
                        c = j * sw + off
                        inside = (c >= 0) & (c < w)
                        k = row + (c if inside else 0)
                        v = x[xb + k]
                        cur = best[j]
                        take = ((v > cur) | (v != v)) & inside
                        best[j] = v if take else cur
                        arg[j] = k if take else arg[j]
            for j in range(wo):
                y[yb + i * wo + j] = best[j]
                idx[yb + i * wo + j] = arg[j]


@njit(**JIT)
def _keep_max(best, k, v, kv):
    """(best, k) after the tap of value v at index kv: v wins when it is larger or NaN (the
    first max, and a NaN wins, as in PyTorch's kernel)."""
    take = (v > best) | (v != v)
    return (v if take else best), (kv if take else k)


@njit(**PARALLEL)
def _max_fwd_2x2(x, y, idx, planes, h, w, ho, wo):
    """:func:`_max_fwd` for 2 x 2 windows at stride 2 without padding (``MaxPool2d(2)``):
    the four taps in the same order, no tap to mask, strides known to the compiler (2.2x
    faster than the general kernel on a CNN's 32 x 32 planes)."""
    for p in prange(planes):
        xb, yb = p * h * w, p * ho * wo
        for i in range(ho):
            o = yb + i * wo
            for j in range(wo):
                k = 2 * i * w + 2 * j                           # the window's first tap
                best, arg = x[xb + k], k
                best, arg = _keep_max(best, arg, x[xb + k + 1], k + 1)
                best, arg = _keep_max(best, arg, x[xb + k + w], k + w)
                best, arg = _keep_max(best, arg, x[xb + k + w + 1], k + w + 1)
                y[o + j] = best
                idx[o + j] = arg


@njit(**PARALLEL)
def _max_scatter(gy, idx, gx):
    planes, q = gy.shape
    for p in prange(planes):
        g, gr, ir = gx[p], gy[p], idx[p]
        g[:] = 0
        for k in range(q):
            g[ir[k]] += gr[k]


@njit(**PARALLEL)
def _max_gather(x, idx, y):
    planes, q = y.shape
    for p in prange(planes):
        xr, ir, yr = x[p], idx[p], y[p]
        for k in range(q):
            yr[k] = xr[ir[k]]


def max_pool_forward(x, geo):
    """y = max over each window, and the flat index of the maximum in its plane (int64)."""
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    shape = x.shape[:-2] + tuple(geo.out_hw)
    y = np.empty(shape, dtype=x.dtype)
    idx = np.empty(shape, dtype=np.int64)
    (h, w), (ho, wo) = x.shape[-2:], geo.out_hw
    flat = (np.ascontiguousarray(x).reshape(-1), y.reshape(-1), idx.reshape(-1),
            y.size // (ho * wo), h, w, ho, wo)
    # no padding also means no window of ceil_mode's past the input (its extra is padding)
    if (kh, kw, sh, sw, dh, dw) == (2, 2, 2, 2, 1, 1) and not any(geo.pads):
        _max_fwd_2x2(*flat)
    else:
        _max_fwd(*flat, kh, kw, sh, sw, dh, dw, geo.pads[0], geo.pads[2])
    return y, idx


def max_pool_scatter(gy, idx, geo):
    """gx: each gy added at its index (the adjoint of :func:`max_pool_gather`)."""
    gx = np.empty(gy.shape[:-2] + tuple(geo.in_hw), dtype=gy.dtype)
    q = idx.shape[-2] * idx.shape[-1]
    _max_scatter(np.ascontiguousarray(gy).reshape(-1, q), idx.reshape(-1, q),
                 gx.reshape(-1, gx.shape[-2] * gx.shape[-1]))
    return gx


def max_pool_gather(x, idx, geo):
    """y = x at each window's index (linear in x)."""
    y = np.empty(idx.shape, dtype=x.dtype)
    q = idx.shape[-2] * idx.shape[-1]
    _max_gather(np.ascontiguousarray(x).reshape(-1, x.shape[-2] * x.shape[-1]),
                idx.reshape(-1, q), y.reshape(-1, q))
    return y


def max_pool_indices(idx, geo):
    """The flat index h·W + w in its input plane of each window's maximum (int64): a copy
    of ``idx``, so that a write into it cannot reroute the gradient backward routes by it."""
    return idx.copy()


# ----------------------------------------------------------------------------- ReLU
@njit(**PARALLEL)
def _relu_fwd_parallel(x, y):
    zero = y.dtype.type(0)
    for k in prange(x.size):
        v = x[k]
        y[k] = v if v > zero or v != v else zero


def relu_forward(x):
    """y = max(x, 0): NumPy's ``maximum`` for a small or non-contiguous array, else one
    pass shared among threads."""
    if x.size < PARALLEL_MIN or not x.flags.c_contiguous:
        return np.maximum(x, 0)
    y = np.empty(x.shape, dtype=x.dtype)
    _relu_fwd_parallel(x.reshape(-1), y.reshape(-1))
    return y


@njit(**JIT)
def _relu_bwd(y, gy, gx):
    zero = gx.dtype.type(0)
    for k in range(y.size):
        gx[k] = gy[k] if y[k] > 0 else zero


@njit(**PARALLEL)
def _relu_bwd_parallel(y, gy, gx):
    zero = gx.dtype.type(0)
    for k in prange(y.size):
        gx[k] = gy[k] if y[k] > 0 else zero


def relu_backward(y, gy):
    """gx = gy where y > 0, else 0 (y: ReLU's output; gy of y's shape or broadcast to it)."""
    gy = np.ascontiguousarray(np.broadcast_to(gy, y.shape), dtype=y.dtype)
    flat = np.ascontiguousarray(y).reshape(-1)
    gx = np.empty(y.shape, dtype=y.dtype)
    if flat.size < PARALLEL_MIN:
        _relu_bwd(flat, gy.reshape(-1), gx.reshape(-1))
    else:
        _relu_bwd_parallel(flat, gy.reshape(-1), gx.reshape(-1))
    return gx
