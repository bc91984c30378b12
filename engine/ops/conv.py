"""2-D convolution (``torch.nn.functional.conv2d``): the geometry, the Functions and the
choice of implementation.

y = W · cols(x) + b per group, with cols(x) the im2col matrix of x (one column per output
position, one row per input channel and kernel tap). The array code is in
:mod:`engine.kernels`: the literal version (:mod:`engine.kernels.conv_reference`, NumPy
and CuPy) and the Numba kernels (:mod:`engine.kernels.cpu_conv`, NumPy float32 and
float64, the default on the CPU); ``engine.use_fused(False)`` selects the literal one.

Double backward works too: the two halves of the backward (to the input and to the
weight) are Functions themselves, each with the other and the forward as its backward.
"""

from __future__ import annotations

from typing import NamedTuple

from engine import checks, kernels
from engine.function import Function
from engine.kernels import conv_reference
from engine.tensor import Tensor


def out_size(n: int, k: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    """Output length along one axis: ⌊(n + lo + hi - d(k - 1) - 1) / s⌋ + 1."""
    return (n + lo + hi - dilation * (k - 1) - 1) // stride + 1


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


def select(x):
    """The array code that serves ``x``: :mod:`engine.kernels.cpu_conv` (Numba) for a NumPy
    float32 or float64 array while the fused kernels are on in this thread, else
    :mod:`engine.kernels.conv_reference`."""
    if kernels.cpu_fused(x):
        from engine.kernels import cpu_conv       # loads Numba on first use

        return cpu_conv
    return conv_reference


class Conv2dFunction(Function):
    """y[n, o] = b[o] + Σ_{c ∈ group(o), a, b'} W[o, c, a, b'] · xpad[n, c, i·s + a·d, j·s + b'·d]

    As matrices per group: Y = W cols(x) + b;  gW = gY cols(x)ᵀ,  gx = col2im(Wᵀ gY),
    gb = Σ_{n,i,j} gy.
    """

    @staticmethod
    def forward(ctx, x, W, b=None, geo=None):
        ctx.geo, ctx.impl = geo, select(x)
        y, cols = ctx.impl.conv_forward(x, W, b, geo)
        ctx.save_for_backward(x, W, cols)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, W, cols = ctx.saved_tensors
        need = ctx.needs_input_grad
        need_b = len(need) > 2 and need[2]
        if isinstance(gy, Tensor):                            # building a graph
            gx = gW = None
            if need[0]:
                gx = ConvGradInput.apply(gy, W, geo=ctx.geo)
            if need[1]:
                gW = ConvGradWeight.apply(x, gy, w_shape=W.shape, geo=ctx.geo)
            gb = gy.sum(axis=(0, 2, 3)) if need_b else None
        else:
            gx, gW, gb = ctx.impl.conv_backward(gy, W, cols, ctx.geo, need[0], need[1],
                                                need_b)
        return (gx, gW, gb)[:len(need)]


class ConvGradInput(Function):
    """gx = convᵀ(gy; W), linear in each of gy and W.

    With upstream h (shaped like x): g_gy = conv(h; W),  g_W = ConvGradWeight(h, gy).
    """

    @staticmethod
    def forward(ctx, gy, W, geo=None):
        ctx.geo = geo
        ctx.save_for_backward(gy, W)
        return select(gy).conv_transpose(gy, W, geo)

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
            impl = select(h)
            cols = impl.im2col(h, ctx.geo)
            if need[0]:
                g_gy = impl.conv_from_cols(cols, W, None, h.shape[0], ctx.geo)
            if need[1]:
                g_w = impl.conv_backward(gy, W, cols, ctx.geo, False, True, False)[1]
        return g_gy, g_w


class ConvGradWeight(Function):
    """gW = gyᵀ cols(x), linear in each of x and gy.

    With upstream H (shaped like W): g_x = convᵀ(gy; H),  g_gy = conv(x; H).
    """

    @staticmethod
    def forward(ctx, x, gy, w_shape=None, geo=None):
        ctx.geo = geo
        ctx.save_for_backward(x, gy)
        return select(x).conv_weight_grad(x, gy, w_shape, geo)

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
            impl = select(H)
            if need[0]:
                g_x = impl.conv_transpose(gy, H, ctx.geo)
            if need[1]:
                g_gy = impl.conv_forward(x, H, None, ctx.geo)[0]
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
