"""2-D convolution by im2col (``torch.nn.functional.conv2d``), and the geometry helpers
that pooling shares (windows, padding, cropping).

im2col, written literally: pad x, take the view ``win[n, c, i, j, a, b] = xpad[n, c,
i·s + a·d, j·s + b·d]`` with stride tricks (no copy), lay it out as a matrix of
(C/g·kh·kw) rows × (N·Ho·Wo) columns per group (one copy), and multiply the weight
matrix (O/g) × (C/g·kh·kw) by it: one matmul per group. The backward multiplies by the
transposes and scatters the column gradients back onto the input, one strided add per
kernel offset (col2im).

Double backward works too: the two halves of the backward (to the input and to the
weight) are Functions themselves, each with the other and the forward as its backward.
"""

from __future__ import annotations

from typing import NamedTuple

from engine import backend, checks
from engine.function import Function
from engine.tensor import Tensor


def out_size(n: int, k: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    """Output length along one axis: ⌊(n + lo + hi - d(k - 1) - 1) / s⌋ + 1."""
    return (n + lo + hi - dilation * (k - 1) - 1) // stride + 1


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


class ConvGeometry(NamedTuple):
    """Everything but the tensors: stride, (top, bottom, left, right) padding, dilation,
    groups, kernel size, input (H, W) and output (Ho, Wo)."""

    stride: tuple
    pads: tuple
    dilation: tuple
    groups: int
    kernel: tuple
    in_hw: tuple
    out_hw: tuple


def _im2col(x, geo: ConvGeometry):
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


def _from_matrix(ym, n: int, geo: ConvGeometry):
    """(g, O/g, N·Ho·Wo) -> (N, O, Ho, Wo), contiguous."""
    g, og = ym.shape[:2]
    ym = ym.reshape((g, og, n) + geo.out_hw).transpose(2, 0, 1, 3, 4)
    return backend.array_module(ym).ascontiguousarray(ym).reshape((n, g * og) + geo.out_hw)


def _to_matrix(gy, geo: ConvGeometry):
    """(N, O, Ho, Wo) -> (g, O/g, N·Ho·Wo), the layout of the product W · cols."""
    n, o = gy.shape[:2]
    g = geo.groups
    gy = gy.reshape((n, g, o // g) + geo.out_hw).transpose(1, 2, 0, 3, 4)
    return gy.reshape(g, o // g, -1)


def _conv_from_cols(cols, W, n, geo: ConvGeometry):
    """y = W · cols per group: (g, O/g, K) × (g, K, M) -> (N, O, Ho, Wo)."""
    return _from_matrix(_weight_matrix(W, geo.groups) @ cols, n, geo)


def conv_raw(x, W, geo: ConvGeometry):
    return _conv_from_cols(_im2col(x, geo), W, x.shape[0], geo)


def grad_input_raw(gy, W, geo: ConvGeometry):
    """gx = col2im(Wᵀ · gy) (the transpose of the convolution applied to gy)."""
    n, g = gy.shape[0], geo.groups
    _, cg, kh, kw = W.shape
    gcols = _weight_matrix(W, g).transpose(0, 2, 1) @ _to_matrix(gy, geo)   # (g, K, M)
    gcols = gcols.reshape((g, cg, kh, kw, n) + geo.out_hw)
    gcols = gcols.transpose(4, 0, 1, 5, 6, 2, 3)               # (N, g, C/g, Ho, Wo, kh, kw)
    padded = (geo.in_hw[0] + geo.pads[0] + geo.pads[1], geo.in_hw[1] + geo.pads[2]
              + geo.pads[3])
    gx = col2im(gcols, padded, geo.stride, geo.dilation)      # (N, g, C/g, Hp, Wp)
    gx = gx.reshape((n, g * cg) + padded)
    return crop_hw(gx, geo.pads, geo.in_hw)


def grad_weight_raw(cols, gy, w_shape, geo: ConvGeometry):
    """gW = gy · colsᵀ per group, computed as (cols · gyᵀ)ᵀ: with the long N·Ho·Wo axis
    inner to both, BLAS runs this orientation several times faster."""
    gw_t = cols @ _to_matrix(gy, geo).transpose(0, 2, 1)       # (g, K, O/g)
    return gw_t.transpose(0, 2, 1).reshape(w_shape)


class Conv2dFunction(Function):
    """y[n, o] = b[o] + Σ_{c ∈ group(o), a, b'} W[o, c, a, b'] · xpad[n, c, i·s + a·d, j·s + b'·d]

    As matrices per group: Y = W cols(x) + b;  gW = gY cols(x)ᵀ,  gx = col2im(Wᵀ gY),
    gb = Σ_{n,i,j} gy.
    """

    @staticmethod
    def forward(ctx, x, W, b=None, geo=None):
        ctx.geo = geo
        cols = _im2col(x, geo)
        ctx.save_for_backward(x, W, cols)
        y = _conv_from_cols(cols, W, x.shape[0], geo)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, W, cols = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx = gW = gb = None
        if isinstance(gy, Tensor):                            # building a graph
            if need[0]:
                gx = ConvGradInput.apply(gy, W, geo=ctx.geo)
            if need[1]:
                gW = ConvGradWeight.apply(x, gy, w_shape=W.shape, geo=ctx.geo)
        else:
            if need[0]:
                gx = grad_input_raw(gy, W, ctx.geo)
            if need[1]:
                gW = grad_weight_raw(cols, gy, W.shape, ctx.geo)
        if len(need) > 2 and need[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return (gx, gW, gb)[:len(need)]


class ConvGradInput(Function):
    """gx = convᵀ(gy; W), linear in each of gy and W.

    With upstream h (shaped like x): g_gy = conv(h; W),  g_W = ConvGradWeight(h, gy).
    """

    @staticmethod
    def forward(ctx, gy, W, geo=None):
        ctx.geo = geo
        ctx.save_for_backward(gy, W)
        return grad_input_raw(gy, W, geo)

    @staticmethod
    def backward(ctx, h):
        gy, W = ctx.saved_tensors
        need = ctx.needs_input_grad
        g_gy = g_w = None
        if isinstance(h, Tensor):
            if need[0]:
                g_gy = Conv2dFunction.apply(h, W, geo=ctx.geo)
            if need[1]:
                g_w = ConvGradWeight.apply(h, gy, w_shape=W.shape, geo=ctx.geo)
        else:
            cols = _im2col(h, ctx.geo)
            if need[0]:
                g_gy = _conv_from_cols(cols, W, h.shape[0], ctx.geo)
            if need[1]:
                g_w = grad_weight_raw(cols, gy, W.shape, ctx.geo)
        return g_gy, g_w


class ConvGradWeight(Function):
    """gW = gyᵀ cols(x), linear in each of x and gy.

    With upstream H (shaped like W): g_x = convᵀ(gy; H),  g_gy = conv(x; H).
    """

    @staticmethod
    def forward(ctx, x, gy, w_shape=None, geo=None):
        ctx.geo = geo
        ctx.save_for_backward(x, gy)
        return grad_weight_raw(_im2col(x, geo), gy, w_shape, geo)

    @staticmethod
    def backward(ctx, H):
        x, gy = ctx.saved_tensors
        need = ctx.needs_input_grad
        g_x = g_gy = None
        if isinstance(H, Tensor):
            if need[0]:
                g_x = ConvGradInput.apply(gy, H, geo=ctx.geo)
            if need[1]:
                g_gy = Conv2dFunction.apply(x, H, geo=ctx.geo)
        else:
            if need[0]:
                g_x = grad_input_raw(gy, H, ctx.geo)
            if need[1]:
                g_gy = conv_raw(x, H, ctx.geo)
        return g_x, g_gy


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) (or unbatched (C, H, W)) ``input`` with
    ``weight`` (O, C/groups, kh, kw), as ``torch.nn.functional.conv2d``.

    ``padding``: int, pair, 'valid' (none) or 'same' (output size = input size, stride 1;
    an odd total is split with the extra row/column at the bottom/right, as PyTorch).
    Output size per axis: ⌊(n + 2p - d(k - 1) - 1) / s⌋ + 1.
    """
    op = "conv2d"
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (out, in/groups, kh, kw), got "
                         f"{weight.shape}")
    checks.image(op, input)
    checks.same_dtype(op, input=input, weight=weight, bias=bias)
    unbatched = input.ndim == 3
    if unbatched:
        input = input.reshape((1,) + input.shape)
    n, c, h, w = input.shape
    o, cg, kh, kw = weight.shape
    if not isinstance(groups, int) or groups < 1 or c % groups or o % groups:
        raise ValueError(f"{op}: groups={groups} must divide in_channels {c} and "
                         f"out_channels {o}")
    if cg * groups != c:
        raise ValueError(f"{op}: input {tuple(input.shape)} has {c} channels but weight "
                         f"{weight.shape} expects {cg * groups} (= {cg} × groups {groups})")
    if bias is not None and tuple(bias.shape) != (o,):
        raise ValueError(f"{op}: bias {bias.shape} does not fit {o} output channels")
    stride = checks.pair(op, "stride", stride)
    dilation = checks.pair(op, "dilation", dilation)
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive")
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride {stride})")
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            raise ValueError(f"{op}: padding must be 'valid', 'same', an int or a pair, "
                             f"got {padding!r}")
    else:
        ph, pw = checks.pair(op, "padding", padding)
        if ph < 0 or pw < 0:
            raise ValueError(f"{op}: negative padding {padding}")
        pads = (ph, ph, pw, pw)
    ho = out_size(h, kh, stride[0], pads[0], pads[1], dilation[0])
    wo = out_size(w, kw, stride[1], pads[2], pads[3], dilation[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"{op}: input {tuple(input.shape)} (padded by {pads}) is smaller "
                         f"than the dilated kernel {(kh, kw)} (dilation {dilation})")
    geo = ConvGeometry(stride, pads, dilation, groups, (kh, kw), (h, w), (ho, wo))
    args = (input, weight) if bias is None else (input, weight, bias)
    y = Conv2dFunction.apply(*args, geo=geo)
    return y.reshape(y.shape[1:]) if unbatched else y
