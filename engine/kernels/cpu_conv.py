"""2-D convolution on the CPU: col2im and the layouts as Numba kernels, the products on BLAS.

The same steps as the literal array code of :mod:`engine.kernels.conv_reference` (the
formulas are in :mod:`engine.ops.conv`), for NumPy arrays in float32 or float64, without
its transposing copies and its one scatter per kernel tap:

- im2col is NumPy's strided copy of the literal code's window view of the padded input,
  which writes the columns (C·kh·kw, N·Ho·Wo) faster than the Numba loops tried (2.0 ms
  against 2.7 ms and more for the 64 -> 128 layer of a CNN at 16 x 16, batch 32: the rows
  are short, 16 values, and NumPy copies them with vector moves); a large copy is shared
  among threads by input channel (NumPy lets go of the GIL while it copies);
- the product per group is one GEMM over the whole batch, (O/g, K) × (K, N·Ho·Wo), shared
  among threads by :func:`engine.threads.matmul`;
- the (O, N·Ho·Wo) result goes to (N, O, Ho, Wo) with the bias added in the same pass, and
  backward brings gy the other way, summing the bias gradient as it copies;
- col2im adds the column gradients onto the input, one (image, channel) plane per task
  (no two tasks write the same element, so no atomics), straight into the plane: each
  tap's range of rows and columns inside it is computed up front, so the inner loop tests
  no bounds and there is no padded plane to crop (1.8x faster than adding into a padded
  copy and cropping it, for the 64 -> 128 layer of a CNN at 16 x 16, batch 32).

``geo`` is :class:`engine.ops.conv.ConvGeometry` (read by attribute).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine import threads
from engine.kernels.conv_reference import pad_hw, windows
from engine.kernels.cpu_math import PARALLEL

# A copy of at least this many elements per thread is shared among threads.
SPLIT_COPY = 1 << 20


@njit(**PARALLEL)
def _col2im(gcols, gx, kh, kw, sh, sw, dh, dw, top, left, ho, wo):
    """gx[s, c] = Σ_{a,b} (column gradients of tap (a, b) placed at rows i·sh + a·dh - top,
    columns j·sw + b·dw - left), one plane per task. Each tap's rows i and columns j that
    land inside the plane are worked out before its loops (i ≥ ⌈(top - a·dh) / sh⌉ and
    i·sh + a·dh - top < H, likewise for j), so the inner loop has no bounds to test and,
    at stride 1, adds contiguous runs."""
    n, c, h, w = gx.shape
    hw = ho * wo
    for t in prange(n * c):
        s, ci = t // c, t % c
        plane = gx[s, ci]
        plane[:] = 0
        for a in range(kh):
            i_lo = max(0, (top - a * dh + sh - 1) // sh)
            i_hi = min(ho, (h - 1 + top - a * dh) // sh + 1)
            for b in range(kw):
                j_lo = max(0, (left - b * dw + sw - 1) // sw)
                j_hi = min(wo, (w - 1 + left - b * dw) // sw + 1)
                src = gcols[(ci * kh + a) * kw + b]
                v0 = b * dw - left
                for i in range(i_lo, i_hi):
                    row = plane[i * sh + a * dh - top]
                    o = s * hw + i * wo
                    if sw == 1:
                        for j in range(j_lo, j_hi):
                            row[v0 + j] += src[o + j]
                    else:
                        for j in range(j_lo, j_hi):
                            row[v0 + j * sw] += src[o + j]


@njit(**PARALLEL)
def _from_matrix(ym, bias, has_bias, y):
    """y[s, o, :] = ym[o, s·HW:(s+1)·HW] (+ b[o])."""
    n, o, hw = y.shape
    for t in prange(n * o):
        s, oc = t // o, t % o
        src, dst = ym[oc, s * hw:(s + 1) * hw], y[s, oc]
        if has_bias:
            bo = bias[oc]
            for p in range(hw):
                dst[p] = src[p] + bo
        else:
            dst[:] = src


@njit(**dict(PARALLEL, fastmath={"reassoc", "contract"}))
def _to_matrix(gy, gym, gb):
    """gym[o, s·HW:(s+1)·HW] = gy[s, o, :] and gb[o] = Σ_{s,p} gy[s, o, p]."""
    n, o, hw = gy.shape
    for oc in prange(o):
        acc = gy.dtype.type(0)
        for s in range(n):
            src, dst = gy[s, oc], gym[oc, s * hw:(s + 1) * hw]
            for p in range(hw):
                v = src[p]
                dst[p] = v
                acc += v
        gb[oc] = acc


def im2col(x, geo):
    """(N, C, H, W) -> cols (g, C/g·kh·kw, N·Ho·Wo), row (c, a, b), column (n, i, j)."""
    n, c = x.shape[:2]
    kh, kw = geo.kernel
    win = windows(pad_hw(x, geo.pads), geo.kernel, geo.stride, geo.dilation, geo.out_hw)
    win = win.transpose(1, 4, 5, 0, 2, 3)                       # (C, kh, kw, N, Ho, Wo)
    cols = np.empty(win.shape, dtype=x.dtype)

    def copy(lo, hi):
        cols[lo:hi] = win[lo:hi]

    parts = min(threads.get_num_threads(), cols.size // SPLIT_COPY, c)
    if parts < 2 or not threads.run_split(copy, c, parts):
        copy(0, c)
    return cols.reshape(geo.groups, c // geo.groups * kh * kw, n * geo.out_hw[0]
                        * geo.out_hw[1])


def _launch_geometry(geo):
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    return kh, kw, sh, sw, dh, dw, geo.pads[0], geo.pads[2]


def _weight_matrix(W, groups: int):
    """(O, C/g, kh, kw) -> (g, O/g, C/g·kh·kw)."""
    return W.reshape(groups, W.shape[0] // groups, -1)


def conv_from_cols(cols, W, b, n: int, geo):
    """y = W · cols per group (+ b): (g, O/g, K) × (g, K, M) -> (N, O, Ho, Wo)."""
    o = W.shape[0]
    wm = _weight_matrix(W, geo.groups)
    ym = threads.matmul(wm[0], cols[0]) if geo.groups == 1 else threads.matmul(wm, cols)
    hw = geo.out_hw[0] * geo.out_hw[1]
    y = np.empty((n, o) + tuple(geo.out_hw), dtype=cols.dtype)
    _from_matrix(ym.reshape(o, n * hw), b if b is not None else np.empty(0, cols.dtype),
                 b is not None, y.reshape(n, o, hw))
    return y


def conv_forward(x, W, b, geo):
    """(y, cols): the convolution and the columns its backward multiplies by."""
    cols = im2col(x, geo)
    return conv_from_cols(cols, W, b, x.shape[0], geo), cols


def _gy_matrix(gy, groups: int):
    """(N, O, Ho, Wo) -> gym (g, O/g, N·Ho·Wo), and the bias gradient Σ_{n,i,j} gy (O,)."""
    n, o, ho, wo = gy.shape
    gym = np.empty((o, n * ho * wo), dtype=gy.dtype)
    gb = np.empty(o, dtype=gy.dtype)
    _to_matrix(np.ascontiguousarray(gy).reshape(n, o, ho * wo), gym, gb)
    return gym.reshape(groups, o // groups, -1), gb


def _grad_weight(cols, gym, w_shape):
    """gW = gym · colsᵀ per group, computed as (cols · gymᵀ)ᵀ: with the long N·Ho·Wo axis
    inner to both, BLAS runs this orientation faster."""
    gw_t = threads.matmul(cols, gym.transpose(0, 2, 1))         # (g, K, O/g)
    return np.ascontiguousarray(gw_t.transpose(0, 2, 1)).reshape(w_shape)


def _grad_input(gym, W, n: int, geo):
    """gx = col2im(Wᵀ · gym) per group."""
    g, (_, cg, kh, kw) = geo.groups, W.shape
    wt = _weight_matrix(W, g).transpose(0, 2, 1)                 # (g, K, O/g)
    gcols = threads.matmul(wt[0], gym[0]) if g == 1 else threads.matmul(wt, gym)
    gx = np.empty((n, cg * g) + tuple(geo.in_hw), dtype=gym.dtype)
    _col2im(gcols.reshape(cg * g * kh * kw, -1), gx, *_launch_geometry(geo), *geo.out_hw)
    return gx


def conv_backward(gy, W, cols, geo, need_x: bool, need_w: bool, need_b: bool):
    """(gx, gW, gb) of y = W · cols(x) + b, each None unless needed."""
    gym, gb = _gy_matrix(gy, geo.groups)
    gx = _grad_input(gym, W, gy.shape[0], geo) if need_x else None
    gW = _grad_weight(cols, gym, W.shape) if need_w else None
    return gx, gW, (gb if need_b else None)


def conv_transpose(gy, W, geo):
    """gx = col2im(Wᵀ · gy): the convolution's adjoint applied to gy."""
    return _grad_input(_gy_matrix(gy, geo.groups)[0], W, gy.shape[0], geo)


def conv_weight_grad(x, gy, w_shape, geo):
    """gW = gy · cols(x)ᵀ."""
    return _grad_weight(im2col(x, geo), _gy_matrix(gy, geo.groups)[0], w_shape)
