"""2-D max and average pooling, written literally in array code (NumPy or CuPy).

A pooling window at output (i, j) reads the kernel taps (a, b) of the padded input:
``xpad[…, i·sh + a·dh, j·sw + b·dw]``. For each tap the values over all outputs are one
strided slice of ``xpad`` (``geo.taps()``), so forwards and backwards are a loop over the
kh·kw taps of whole-array operations (no copy of the windows). Max pooling keeps, per
output, the tap ``arg`` that held the maximum.

This is the reference the Numba kernels of :mod:`engine.kernels.cpu_pool` are tested
against, and the code that runs under ``engine.use_fused(False)``, on CuPy arrays and for
other dtypes. ``geo`` is :class:`engine.ops.pool.PoolGeometry`.
"""

from __future__ import annotations

import numpy as np

from engine import backend
from engine.kernels.conv_reference import crop_hw, pad_hw


# ----------------------------------------------------------------------------- max pooling
def max_pool_forward(x, geo):
    """y = max over each window's taps inside the input and arg = the tap that holds it
    (the first max, and a NaN wins as in PyTorch's kernel: update when v > best or v is
    NaN). A tap in the padding is never chosen, also where the window holds only -inf."""
    xp = backend.array_module(x)
    xpad = pad_hw(x, geo.pads, -np.inf)
    inside = pad_hw(xp.ones(geo.in_hw, dtype=bool), geo.pads, False)
    y = arg = seen = None
    for k, idx in geo.taps():
        v, here = xpad[idx], inside[idx]
        if y is None:
            y, arg, seen = v.copy(), xp.zeros(v.shape, dtype=np.int64), here
            continue
        upd = here & (~seen | (v > y) | xp.isnan(v))
        y = xp.where(upd, v, y)
        arg = xp.where(upd, k, arg)
        seen = seen | here
    return y, arg


def max_pool_gather(x, arg, geo):
    """y = xpad at each window's tap ``arg`` (linear in x)."""
    xp = backend.array_module(x)
    xpad = pad_hw(x, geo.pads)
    y = xp.zeros(x.shape[:-2] + geo.out_hw, dtype=x.dtype)
    for k, idx in geo.taps():
        y = xp.where(arg == k, xpad[idx], y)
    return y


def max_pool_scatter(gy, arg, geo):
    """gx: each gy added at its window's tap ``arg`` (the adjoint of :func:`max_pool_gather`)."""
    xp = backend.array_module(gy)
    g = xp.zeros(gy.shape[:-2] + geo.padded_hw, dtype=gy.dtype)
    for k, idx in geo.taps():
        g[idx] += xp.where(arg == k, gy, 0)
    return crop_hw(g, geo.pads, geo.in_hw)


def max_pool_indices(arg, geo):
    """The flat index h·W + w in its input plane of each window's tap ``arg`` (int64)."""
    xp = backend.array_module(arg)
    kw, (sh, sw), (dh, dw) = geo.kernel[1], geo.stride, geo.dilation
    rows = xp.arange(geo.out_hw[0]).reshape(-1, 1) * sh - geo.pads[0]
    cols = xp.arange(geo.out_hw[1]).reshape(1, -1) * sw - geo.pads[2]
    h = rows + (arg // kw) * dh
    w = cols + (arg % kw) * dw
    return (h * geo.in_hw[1] + w).astype(np.int64)


# ----------------------------------------------------------------------------- average pooling
def avg_divisor(geo, count_include_pad: bool, divisor_override, dtype):
    """How many elements each window averages: the window sums of a mask that is 1 on the
    input (and on the declared padding when ``count_include_pad``), 0 on the ceil_mode
    extra; or ``divisor_override``."""
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must be non-zero")
        return float(divisor_override)
    h, w = geo.in_hw
    mask = np.zeros(geo.padded_hw)
    if count_include_pad:
        mask[:h + 2 * geo.pads[0], :w + 2 * geo.pads[2]] = 1
    else:
        mask[geo.pads[0]:geo.pads[0] + h, geo.pads[2]:geo.pads[2] + w] = 1
    count = np.zeros(geo.out_hw)
    for _, idx in geo.taps():
        count += mask[idx]
    return count.astype(dtype)


def avg_pool_sum(x, geo, divisor):
    """y = (1 / D) Σ over each window of the zero-padded x."""
    xp = backend.array_module(x)
    xpad = pad_hw(x, geo.pads)
    y = xp.zeros(x.shape[:-2] + geo.out_hw, dtype=x.dtype)
    for _, idx in geo.taps():
        y += xpad[idx]
    return y / divisor


def avg_pool_spread(gy, geo, divisor):
    """gx: each gy / D spread over its window (the adjoint of :func:`avg_pool_sum`)."""
    xp = backend.array_module(gy)
    g = xp.zeros(gy.shape[:-2] + geo.padded_hw, dtype=gy.dtype)
    gd = gy / divisor
    for _, idx in geo.taps():
        g[idx] += gd
    return crop_hw(g, geo.pads, geo.in_hw)
