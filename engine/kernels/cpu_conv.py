"""2-D convolution on the CPU: one image at a time, im2col as a NumPy copy or a Numba kernel,
col2im as a Numba kernel, the products on BLAS, the images shared among the worker pool's
threads.

The same functions as the literal array code of :mod:`engine.kernels.conv_reference` (the
formulas are in :mod:`engine.ops.conv`), for NumPy arrays in float32 or float64, without
its padded copy of the batch, its transposing copies and its one scatter per kernel tap.
Per image s:

- im2col copies the window view of x[s] into the columns cols[s] (C·kh·kw, Ho·Wo); with
  padding, x[s] is first copied into the middle of a zeroed buffer of the thread, whose
  border stays zero (twice as fast here as a Numba loop writing the columns row by row:
  the rows are short, 16 values at 16 x 16, and NumPy copies them with vector moves).
  When the output is as wide as the input at stride 1 (3 x 3 padded by 1, ...), a Numba
  kernel copies each tap's rows as one run instead (2.4x faster);
- y[s] = W · cols[s] + b: the product writes the image's (O, Ho·Wo) block of the (N, O, Ho,
  Wo) output itself, so there is no (O, N·Ho·Wo) matrix to transpose into it. With one
  group the bias rides in the product, y[s] = [W b] · [cols[s]; 1] (cols[s] ends in a
  row of ones), and the backward's gWᵀ product gives gb as its last row: no pass over y
  for the bias, none over gy for its gradient (1.7 ms of the CNN's 32 ms step); with
  groups the bias is added while the block is in cache;
- backward reads gy[s] as the (O, Ho·Wo) matrix it is: gWᵀ += cols[s] · gy[s]ᵀ,
  gb += Σ_p gy[s], and gx[s] = col2im(Wᵀ · gy[s]), the column gradients of one image
  (C·kh·kw × Ho·Wo) added onto its planes while they are in cache. col2im computes each
  tap's range of rows and columns inside the plane up front, so the inner loop tests no
  bounds and there is no padded plane to crop; at the same width it adds each tap's rows
  as one run (5x faster).

The images are split into one consecutive range per thread (:func:`engine.threads.run_split`,
BLAS on one thread in each); each thread sums its own gW and gb, added up at the end. The
columns are kept as (N, C·kh·kw, Ho·Wo) for the backward.

``geo`` is :class:`engine.ops.conv.ConvGeometry` (read by attribute).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine import threads
from engine.kernels.conv_reference import windows
from engine.kernels.cpu_math import JIT

# Serial kernels that let go of the GIL: the pool's threads run them side by side.
NOGIL = dict(JIT, nogil=True)
# im2col alone is shared among threads only when each writes at least this many elements.
SPLIT_COPY = 1 << 20


@njit(**NOGIL)
def _tap_range(pad, a, dil, stride, size, out):
    """[lo, hi) of the output rows (or columns) i whose tap a lands inside the input:
    0 ≤ i·stride + a·dil - pad < size, i.e. ⌈(pad - a·dil) / stride⌉ ≤ i ≤
    ⌊(size - 1 + pad - a·dil) / stride⌋, within [0, out); empty as lo == hi."""
    lo = min(max(0, (pad - a * dil + stride - 1) // stride), out)
    return lo, max(min(out, (size - 1 + pad - a * dil) // stride + 1), lo)


@njit(**NOGIL)
def _col2im_image(gcols, gx, c, h, w, kh, kw, sh, sw, dh, dw, top, left, ho, wo):
    """gx[c] = Σ_{a,b} (column gradients of tap (a, b) placed at rows i·sh + a·dh - top,
    columns j·sw + b·dw - left), for one image, both flat (C·kh·kw·Ho·Wo and C·H·W: flat
    indices run 1.5x faster here than rows taken as views). Each tap's rows i and columns j
    that land inside the plane are worked out before its loops (:func:`_tap_range`), so
    the inner loop has no bounds to test and, at stride 1, adds contiguous runs."""
    hw = ho * wo
    gx[:] = 0
    for ci in range(c):
        for a in range(kh):
            i_lo, i_hi = _tap_range(top, a, dh, sh, h, ho)
            for b in range(kw):
                j_lo, j_hi = _tap_range(left, b, dw, sw, w, wo)
                src = ((ci * kh + a) * kw + b) * hw
                for i in range(i_lo, i_hi):
                    o = src + i * wo
                    d = (ci * h + i * sh + a * dh - top) * w + b * dw - left
                    if sw == 1:
                        for j in range(j_lo, j_hi):
                            gx[d + j] += gcols[o + j]
                    else:
                        for j in range(j_lo, j_hi):
                            gx[d + j * sw] += gcols[o + j]


# ---------------------------------------------------------------- rows as one run
# When the output is as wide as the input at stride 1 and dilation 1 (a 'same' width, as in
# 3 x 3 convolutions padded by 1), tap (a, b) maps column j of output row i to column
# j + b - left of input row i + a - top, so the flat index moves by the same amount for
# every element: the tap's rows are one run in the columns and one run in the plane. The
# kernels below copy or add each tap as one run of Ho·W values, where the per-row loops
# above run 16 values at a time on a CNN's 16 x 16 planes (there 5x faster for col2im,
# 2.4x for im2col). A run also covers the columns of the tap that fall outside the plane;
# im2col writes zeros there afterwards, col2im zeroes them in the column gradients first.


@njit(**NOGIL)
def _copy_run(dst, src):
    for k in range(dst.size):
        dst[k] = src[k]


@njit(**NOGIL)
def _add_run(dst, src):
    for k in range(dst.size):
        dst[k] += src[k]


@njit(**NOGIL)
def _outside_columns(cols, base, i_lo, i_hi, j_lo, j_hi, w):
    """cols[base + i·W + j] = 0 for the rows i in [i_lo, i_hi) and columns j outside
    [j_lo, j_hi)."""
    zero = cols.dtype.type(0)
    for i in range(i_lo, i_hi):
        for j in range(j_lo):
            cols[base + i * w + j] = zero
        for j in range(j_hi, w):
            cols[base + i * w + j] = zero


@njit(**NOGIL)
def _im2col_runs(x, cols, c, h, w, kh, kw, top, left, ho):
    """cols (C·kh·kw·Ho·W) of one image x (C·H·W), both flat, for Wo = W at stride 1."""
    plane = ho * w
    for ci in range(c):
        for a in range(kh):
            i_lo, i_hi = _tap_range(top, a, 1, 1, h, ho)
            for b in range(kw):
                j_lo, j_hi = _tap_range(left, b, 1, 1, w, w)
                base = ((ci * kh + a) * kw + b) * plane
                if i_lo == i_hi or j_lo == j_hi:
                    cols[base:base + plane] = 0
                    continue
                lo, hi = base + i_lo * w + j_lo, base + (i_hi - 1) * w + j_hi
                cols[base:lo] = 0
                cols[hi:base + plane] = 0
                shift = ci * h * w + (a - top) * w + (b - left) - base
                _copy_run(cols[lo:hi], x[lo + shift:hi + shift])
                _outside_columns(cols, base, i_lo, i_hi, j_lo, j_hi, w)


@njit(**NOGIL)
def _col2im_runs(gcols, gx, c, h, w, kh, kw, top, left, ho):
    """gx (C·H·W) from the column gradients gcols (C·kh·kw·Ho·W) of one image, both flat,
    for Wo = W at stride 1; gcols' entries outside the plane are zeroed on the way."""
    plane = ho * w
    gx[:] = 0
    for ci in range(c):
        for a in range(kh):
            i_lo, i_hi = _tap_range(top, a, 1, 1, h, ho)
            for b in range(kw):
                j_lo, j_hi = _tap_range(left, b, 1, 1, w, w)
                if i_lo == i_hi or j_lo == j_hi:
                    continue
                base = ((ci * kh + a) * kw + b) * plane
                _outside_columns(gcols, base, i_lo, i_hi, j_lo, j_hi, w)
                lo, hi = base + i_lo * w + j_lo, base + (i_hi - 1) * w + j_hi
                shift = ci * h * w + (a - top) * w + (b - left) - base
                _add_run(gx[lo + shift:hi + shift], gcols[lo:hi])


def _runs(geo) -> bool:
    """Whether the row-run kernels serve this geometry: stride 1, dilation 1, Wo = W."""
    return (geo.stride == (1, 1) and geo.dilation == (1, 1)
            and geo.out_hw[1] == geo.in_hw[1])


def _col2im_writer(c: int, geo):
    """A function ``col2im(gcols, gx)`` on one image's flat arrays (C·kh·kw·Ho·Wo and
    C·H·W) for ``c`` input channels: :func:`_col2im_runs` where the geometry allows (it
    overwrites gcols' entries outside the plane), else :func:`_col2im_image`."""
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    (h, w), (top, left) = geo.in_hw, (geo.pads[0], geo.pads[2])
    if _runs(geo):
        return lambda gcols, gx: _col2im_runs(gcols, gx, c, h, w, kh, kw, top, left,
                                              geo.out_hw[0])
    return lambda gcols, gx: _col2im_image(gcols, gx, c, h, w, kh, kw, sh, sw, dh, dw, top,
                                           left, *geo.out_hw)


def _per_image(work, n: int, size: int, per_thread: int | None = None) -> None:
    """Run ``work(lo, hi)`` over the images ``range(n)``: one range per thread of the pool
    when each gets at least ``per_thread`` of the work's ``size`` (flops by default), else
    (or when the pool is busy or paused) all on the calling thread, BLAS on one thread."""
    parts = min(threads.get_num_threads(), n, size // (per_thread or threads.SPLIT_FLOPS))
    if parts < 2 or not threads.run_split(work, n, parts):
        with threads.blas_threads(1):
            work(0, n)


def _grouped(W, groups: int):
    """(O, C/g, kh, kw) -> (g, O/g, C/g·kh·kw), or the 2-D (O, C·kh·kw) for one group."""
    wm = W.reshape(groups, W.shape[0] // groups, -1)
    return wm[0] if groups == 1 else wm


def _image_matrix(a, groups: int):
    """(rows, cols) of one image -> (g, rows/g, cols), or itself for one group."""
    return a if groups == 1 else a.reshape(groups, a.shape[0] // groups, a.shape[1])


def _columns_writer(x, cols, geo):
    """A function ``put(s)`` that writes cols[s] from x[s]: each tap as one run
    (:func:`_im2col_runs`) where the geometry allows, else the window view of the image
    (C, kh, kw, Ho, Wo) copied by NumPy (vector moves along the rows, the GIL let go). With
    padding, the view is of a zeroed buffer of the calling thread (one per writer) whose
    middle takes x[s] and whose border stays zero."""
    c, (kh, kw), (top, bottom, left, right) = x.shape[1], geo.kernel, geo.pads
    (h, w), (ho, wo) = geo.in_hw, geo.out_hw
    k = c * kh * kw                             # cols' rows of taps (a row of ones may follow)
    if _runs(geo) and x.flags.c_contiguous:
        def put_runs(s):
            _im2col_runs(x[s].reshape(-1), cols[s, :k].reshape(-1), c, h, w, kh, kw, top,
                         left, ho)
        return put_runs

    def window_view(image):                                     # (C, kh, kw, Ho, Wo)
        return windows(image, geo.kernel, geo.stride, geo.dilation,
                       geo.out_hw).transpose(0, 3, 4, 1, 2)

    if not any(geo.pads):
        def put(s):
            cols[s, :k].reshape(c, kh, kw, ho, wo)[...] = window_view(x[s])
        return put

    xpad = np.zeros((c, h + top + bottom, w + left + right), dtype=x.dtype)
    win = window_view(xpad)

    def put_padded(s):
        xpad[:, top:top + h, left:left + w] = x[s]
        cols[s, :k].reshape(c, kh, kw, ho, wo)[...] = win
    return put_padded


def _empty_columns(x, geo, ones: bool = False):
    """cols (N, C·kh·kw, Ho·Wo), uninitialised; with ``ones`` one more row, of ones: the
    input the bias multiplies (see :func:`_forward`)."""
    kh, kw = geo.kernel
    k = x.shape[1] * kh * kw
    cols = np.empty((x.shape[0], k + ones, geo.out_hw[0] * geo.out_hw[1]), dtype=x.dtype)
    if ones:
        cols[:, k] = 1
    return cols


def im2col(x, geo):
    """(N, C, H, W) -> cols (N, C·kh·kw, Ho·Wo), row (c, a, b), column (i, j) per image."""
    cols = _empty_columns(x, geo)

    def work(lo, hi):
        put = _columns_writer(x, cols, geo)
        for s in range(lo, hi):
            put(s)

    _per_image(work, x.shape[0], cols.size, SPLIT_COPY)
    return cols


def _forward(x, cols, W, b, n: int, geo):
    """y[s] = W · cols[s] (+ b) per image, the columns first built from x[s] when x is
    given. When cols ends in a row of ones (one group), the bias is the last column of the
    matrix the product multiplies by, [W b] · [cols; 1], and needs no pass of its own."""
    o, g = W.shape[0], geo.groups
    hw = geo.out_hw[0] * geo.out_hw[1]
    folded = _bias_folded(cols, W, geo)
    wm = np.concatenate([W.reshape(o, -1), b.reshape(o, 1)], axis=1) if folded else \
        _grouped(W, g)
    y = np.empty((n, o) + tuple(geo.out_hw), dtype=cols.dtype)
    ym = y.reshape(n, o, hw)
    bias = None if b is None or folded else b.reshape(o, 1)

    def work(lo, hi):
        put = None if x is None else _columns_writer(x, cols, geo)
        for s in range(lo, hi):
            if put is not None:
                put(s)
            np.matmul(wm, _image_matrix(cols[s], g), out=_image_matrix(ym[s], g))
            if bias is not None:
                ym[s] += bias

    _per_image(work, n, 2 * W.size * hw * n)
    return y


def conv_from_cols(cols, W, b, n: int, geo):
    """y = W · cols per image and group (+ b) -> (N, O, Ho, Wo)."""
    return _forward(None, cols, W, b, n, geo)


def _bias_folded(cols, W, geo) -> bool:
    """Whether cols ends in the bias's row of ones (:func:`conv_forward` with a bias and
    one group)."""
    return geo.groups == 1 and cols.shape[1] == W[0].size + 1


def conv_forward(x, W, b, geo):
    """(y, cols): the convolution and the columns its backward multiplies by (with the
    bias's row of ones when there is a bias and one group)."""
    cols = _empty_columns(x, geo, ones=b is not None and geo.groups == 1)
    return _forward(x, cols, W, b, x.shape[0], geo), cols


def _backward(gy, W, cols, geo, need_x: bool, need_w: bool, need_b: bool):
    """gx[s] = col2im(Wᵀ · gy[s]),  gW = Σ_s gy[s] · cols[s]ᵀ,  gb = Σ_{s,p} gy[s, :, p]
    (those asked for), gW and gb summed per thread and then over the threads. gW is
    summed as gWᵀ = Σ_s cols[s] · gy[s]ᵀ: BLAS runs that orientation 10% faster here.
    When cols ends in the bias's row of ones, that product's last row is gb."""
    n, o, ho, wo = gy.shape
    g, (_, cg, kh, kw) = geo.groups, W.shape
    gym = np.ascontiguousarray(gy).reshape(n, o, ho * wo)
    wt = _grouped(W, g).swapaxes(-1, -2)                         # (g, C/g·kh·kw, O/g)
    gx = np.empty((n, cg * g) + tuple(geo.in_hw), dtype=gy.dtype) if need_x else None
    col2im = _col2im_writer(cg * g, geo)
    folded = need_w and _bias_folded(cols, W, geo)              # gb: the last row of gWᵀ
    sum_b = need_b and not folded
    sums = []

    def work(lo, hi):
        rows = wt.shape[-2] + folded
        gw_t = np.zeros(wt.shape[:-2] + (rows, o // g), dtype=gy.dtype) if need_w else None
        gw_s = np.empty_like(gw_t) if need_w else None
        gb = np.zeros(o, dtype=gy.dtype) if sum_b else None
        gcols = np.empty((cg * g * kh * kw, ho * wo), dtype=gy.dtype) if need_x else None
        for s in range(lo, hi):
            gy_s = _image_matrix(gym[s], g)                     # (g, O/g, Ho·Wo)
            if need_w:                                          # the first image: gWᵀ itself
                np.matmul(_image_matrix(cols[s], g), gy_s.swapaxes(-1, -2),
                          out=gw_t if s == lo else gw_s)
                if s > lo:
                    gw_t += gw_s
            if sum_b:
                gb += gym[s].sum(axis=1)
            if need_x:
                np.matmul(wt, gy_s, out=_image_matrix(gcols, g))
                col2im(gcols.reshape(-1), gx[s].reshape(-1))
        sums.append((gw_t, gb))

    _per_image(work, n, 2 * W.size * ho * wo * n * (need_x + need_w))
    gW = gb = None
    if need_w:
        gw_t = sum(s[0] for s in sums)
        if folded:
            gb, gw_t = gw_t[-1].copy(), gw_t[:-1]
        gW = np.ascontiguousarray(gw_t.swapaxes(-1, -2)).reshape(W.shape)
    if sum_b:
        gb = sum(s[1] for s in sums)
    return gx, gW, gb if need_b else None


def conv_backward(gy, W, cols, geo, need_x: bool, need_w: bool, need_b: bool):
    """(gx, gW, gb) of y = W · cols(x) + b, each None unless needed."""
    return _backward(gy, W, cols, geo, need_x, need_w, need_b)


def conv_transpose(gy, W, geo):
    """gx = col2im(Wᵀ · gy): the convolution's adjoint applied to gy."""
    return _backward(gy, W, None, geo, True, False, False)[0]


def conv_weight_grad(x, gy, w_shape, geo):
    """gW = gy · cols(x)ᵀ."""
    W = np.empty(w_shape, dtype=gy.dtype)
    return _backward(gy, W, im2col(x, geo), geo, False, True, False)[1]
