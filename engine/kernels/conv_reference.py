"""2-D convolution by im2col, written literally in array code (NumPy or CuPy), and the
window helpers that pooling shares (windows, padding, cropping).

im2col: pad x, take the view ``win[n, c, i, j, a, b] = xpad[n, c, i·s + a·d, j·s + b·d]``
with stride tricks (no copy), lay it out as a matrix of (C/g·kh·kw) rows × (N·Ho·Wo)
columns per group (one copy), and multiply the weight matrix (O/g) × (C/g·kh·kw) by it:
one matmul per group over the whole batch. The backward multiplies by the transposes and
scatters the column gradients back onto the input, one strided add per kernel offset
(col2im).

This is the reference the Numba kernels of :mod:`engine.kernels.cpu_conv` are tested
against (same functions, same results), and the code that runs under
``engine.use_fused(False)``, on CuPy arrays and for other dtypes. ``geo`` is
:class:`engine.ops.conv.ConvGeometry` (read by attribute).
"""

from __future__ import annotations

from engine import backend


def windows(xpad, kernel, stride, dilation, out_hw):
    """The (…, Ho, Wo, kh, kw) view win[…, i, j, a, b] = xpad[…, i·sh + a·dh, j·sw + b·dw]
    of the last two axes of ``xpad`` (stride tricks: no copy)."""
    xp = backend.array_module(xpad)
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    sH, sW = xpad.strides[-2:]
    return xp.lib.stride_tricks.as_strided(
        xpad, shape=xpad.shape[:-2] + (ho, wo, kh, kw),
        strides=xpad.strides[:-2] + (sH * sh, sW * sw, sH * dh, sW * dw))


def col2im(gwin, padded_hw, stride, dilation):
    """The adjoint of :func:`windows`: gxpad[…, i·sh + a·dh, j·sw + b·dw] += gwin[…, i, j, a, b],
    as one strided add per kernel offset (a, b)."""
    xp = backend.array_module(gwin)
    ho, wo, kh, kw = gwin.shape[-4:]
    (sh, sw), (dh, dw) = stride, dilation
    g = xp.zeros(gwin.shape[:-4] + tuple(padded_hw), dtype=gwin.dtype)
    for a in range(kh):
        for b in range(kw):
            g[..., a * dh:a * dh + sh * (ho - 1) + 1:sh,
              b * dw:b * dw + sw * (wo - 1) + 1:sw] += gwin[..., a, b]
    return g


def pad_hw(x, pads, value=0.0):
    """Pad the last two axes by (top, bottom, left, right) with a constant."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    xp = backend.array_module(x)
    width = ((0, 0),) * (x.ndim - 2) + ((top, bottom), (left, right))
    return xp.pad(x, width, mode="constant", constant_values=value)


def crop_hw(g, pads, hw):
    """The interior of a padded gradient (the adjoint of :func:`pad_hw`)."""
    top, _, left, _ = pads
    if not any(pads):
        return g
    return g[..., top:top + hw[0], left:left + hw[1]]


def im2col(x, geo):
    """(N, C, H, W) -> cols (g, C/g·kh·kw, N·Ho·Wo): one column per output position, one
    row per (channel, tap) of a group (a copy, made once per forward)."""
    n, c = x.shape[:2]
    g = geo.groups
    win = windows(pad_hw(x, geo.pads), geo.kernel, geo.stride, geo.dilation, geo.out_hw)
    win = win.reshape((n, g, c // g) + win.shape[2:])        # (N, g, C/g, Ho, Wo, kh, kw)
    win = win.transpose(1, 2, 5, 6, 0, 3, 4)                  # (g, C/g, kh, kw, N, Ho, Wo)
    return win.reshape(g, (c // g) * geo.kernel[0] * geo.kernel[1], -1)


def _weight_matrix(W, groups: int):
    """(O, C/g, kh, kw) -> (g, O/g, C/g·kh·kw)."""
    return W.reshape(groups, W.shape[0] // groups, -1)


def _from_matrix(ym, n: int, geo):
    """(g, O/g, N·Ho·Wo) -> (N, O, Ho, Wo), contiguous."""
    g, og = ym.shape[:2]
    ym = ym.reshape((g, og, n) + tuple(geo.out_hw)).transpose(2, 0, 1, 3, 4)
    return backend.array_module(ym).ascontiguousarray(ym).reshape((n, g * og)
                                                                   + tuple(geo.out_hw))


def _to_matrix(gy, geo):
    """(N, O, Ho, Wo) -> (g, O/g, N·Ho·Wo), the layout of the product W · cols."""
    n, o = gy.shape[:2]
    g = geo.groups
    gy = gy.reshape((n, g, o // g) + tuple(geo.out_hw)).transpose(1, 2, 0, 3, 4)
    return gy.reshape(g, o // g, -1)


def conv_from_cols(cols, W, b, n: int, geo):
    """y = W · cols per group (+ b): (g, O/g, K) × (g, K, M) -> (N, O, Ho, Wo)."""
    y = _from_matrix(_weight_matrix(W, geo.groups) @ cols, n, geo)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv_forward(x, W, b, geo):
    """(y, cols): the convolution and the columns its backward multiplies by."""
    cols = im2col(x, geo)
    return conv_from_cols(cols, W, b, x.shape[0], geo), cols


def conv_transpose(gy, W, geo):
    """gx = col2im(Wᵀ · gy) (the transpose of the convolution applied to gy)."""
    n, g = gy.shape[0], geo.groups
    _, cg, kh, kw = W.shape
    gcols = _weight_matrix(W, g).transpose(0, 2, 1) @ _to_matrix(gy, geo)   # (g, K, M)
    gcols = gcols.reshape((g, cg, kh, kw, n) + tuple(geo.out_hw))
    gcols = gcols.transpose(4, 0, 1, 5, 6, 2, 3)               # (N, g, C/g, Ho, Wo, kh, kw)
    padded = (geo.in_hw[0] + geo.pads[0] + geo.pads[1], geo.in_hw[1] + geo.pads[2]
              + geo.pads[3])
    gx = col2im(gcols, padded, geo.stride, geo.dilation)      # (N, g, C/g, Hp, Wp)
    gx = gx.reshape((n, g * cg) + padded)
    return crop_hw(gx, geo.pads, geo.in_hw)


def _grad_weight(cols, gy, w_shape, geo):
    """gW = gy · colsᵀ per group, computed as (cols · gyᵀ)ᵀ: with the long N·Ho·Wo axis
    inner to both, BLAS runs this orientation several times faster."""
    gw_t = cols @ _to_matrix(gy, geo).transpose(0, 2, 1)       # (g, K, O/g)
    return gw_t.transpose(0, 2, 1).reshape(w_shape)


def conv_weight_grad(x, gy, w_shape, geo):
    """gW = gy · cols(x)ᵀ."""
    return _grad_weight(im2col(x, geo), gy, w_shape, geo)


def conv_backward(gy, W, cols, geo, need_x: bool, need_w: bool, need_b: bool):
    """(gx, gW, gb) of y = W · cols(x) + b, each None unless needed:
    gx = col2im(Wᵀ gy),  gW = gy colsᵀ,  gb = Σ_{n,i,j} gy."""
    gx = conv_transpose(gy, W, geo) if need_x else None
    gW = _grad_weight(cols, gy, W.shape, geo) if need_w else None
    gb = gy.sum(axis=(0, 2, 3)) if need_b else None
    return gx, gW, gb
