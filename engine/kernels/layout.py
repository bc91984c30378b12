"""How the fused kernels see their arrays: rows along one axis, attention grouped by head.

The CPU and CUDA kernels work on C-contiguous 2-D rows (softmax, cross-entropy, layer norm)
and on attention arrays of four axes (G, H, T, ·); these helpers bring an op's arrays to
that layout and back, copying only what is not already laid out so.
"""

from __future__ import annotations

import math


def rows(xp, x, axis: int):
    """x with ``axis`` moved last, as C-contiguous rows (N, C)."""
    if axis != x.ndim - 1:
        x = xp.moveaxis(x, axis, -1)
    return xp.ascontiguousarray(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])


def unrows(xp, y, shape: tuple, axis: int):
    """Inverse of :func:`rows`: rows back to ``shape`` with the last axis at ``axis``."""
    moved = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    y = y.reshape(moved)
    return y if axis == len(shape) - 1 else xp.moveaxis(y, -1, axis)


def last_axes_rows(xp, x, n_axes: int):
    """x as C-contiguous rows (N, K) over its last ``n_axes`` axes (K their product)."""
    lead = x.ndim - n_axes
    return xp.ascontiguousarray(x).reshape(math.prod(x.shape[:lead]),
                                           math.prod(x.shape[lead:]))


def group_shape(lead: tuple, tq: int, tk: int) -> tuple:
    """(G, H, Tq, Tk): the leading axes folded into G = lead[0] and H = the rest, so that a
    (B, 1, ..., 1, Tk) key-padding mask stays a view (stride 0 over H)."""
    g = lead[0] if lead else 1
    return (g, math.prod(lead[1:]), tq, tk)


def grouped(xp, a, lead: tuple, tq: int, tk: int):
    """``a`` broadcast to lead + (Tq, Tk), viewed as (G, H, Tq, Tk) (None stays None)."""
    if a is None:
        return None
    return xp.broadcast_to(a, lead + (tq, tk)).reshape(group_shape(lead, tq, tk))


def heads(xp, a, g: int, h: int):
    """(..., T, D) -> (G, H, T, D), C-contiguous."""
    return xp.ascontiguousarray(a).reshape((g, h) + a.shape[-2:])
