"""2-D max and average pooling (``torch.nn.functional.max_pool2d`` / ``avg_pool2d``).

A pooling window at output (i, j) reads the kernel taps (a, b) of the padded input:
``xpad[…, i·sh + a·dh, j·sw + b·dw]``. For each tap the values over all outputs are one
strided slice of ``xpad``, so both forwards and backwards are a loop over the kh·kw taps
of whole-array operations (no copy of the windows).

Output size per axis: ⌊(n + 2p - d(k - 1) - 1 + (s - 1 if ceil_mode)) / s⌋ + 1, one less
when ceil_mode would start the last window in the right padding (PyTorch's rule); the
windows that ceil_mode adds past the padding see -inf (max) or nothing (average).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine import backend, checks
from engine.function import Function
from engine.ops.conv import crop_hw, pad_hw
from engine.tensor import Tensor


class PoolGeometry(NamedTuple):
    """kernel, stride, dilation, (top, bottom, left, right) padding (bottom/right include
    the ceil_mode extra), input (H, W), output (Ho, Wo)."""

    kernel: tuple
    stride: tuple
    dilation: tuple
    pads: tuple
    in_hw: tuple
    out_hw: tuple

    @property
    def padded_hw(self) -> tuple:
        return (self.in_hw[0] + self.pads[0] + self.pads[1],
                self.in_hw[1] + self.pads[2] + self.pads[3])

    def taps(self):
        """(k, index) per kernel tap, index selecting that tap's values for every output."""
        (kh, kw), (sh, sw), (dh, dw), (ho, wo) = (self.kernel, self.stride, self.dilation,
                                                  self.out_hw)
        for a in range(kh):
            for b in range(kw):
                yield a * kw + b, (Ellipsis,
                                   slice(a * dh, a * dh + sh * (ho - 1) + 1, sh),
                                   slice(b * dw, b * dw + sw * (wo - 1) + 1, sw))


def _pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _geometry(op: str, x_shape, kernel_size, stride, padding, dilation,
              ceil_mode: bool) -> PoolGeometry:
    kernel = checks.pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None or stride == () or stride == [] else \
        checks.pair(op, "stride", stride)
    pad = checks.pair(op, "padding", padding)
    dil = checks.pair(op, "dilation", dilation)
    if min(kernel) < 1 or min(stride) < 1 or min(dil) < 1 or min(pad) < 0:
        raise ValueError(f"{op}: kernel_size {kernel}, stride {stride} and dilation {dil} "
                         f"must be positive and padding {pad} non-negative")
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{op}: pad should be at most half of kernel size, but got "
                         f"pad={pad} and kernel_size={kernel}")
    h, w = x_shape[-2:]
    out, pads = [], []
    for n, k, s, p, d in zip((h, w), kernel, stride, pad, dil):
        o = _pool_out(n, k, s, p, d, ceil_mode)
        if o < 1:
            raise ValueError(f"{op}: input {tuple(x_shape)} is too small for kernel_size "
                             f"{kernel} (padding {pad}, dilation {dil})")
        extra = max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
        out.append(o)
        pads += [p, p + extra]
    return PoolGeometry(kernel, stride, dil, tuple(pads), (h, w), tuple(out))


# ----------------------------------------------------------------------------- max pooling
def _max_select(x, geo: PoolGeometry):
    """y = max over each window and arg = the tap that holds it (the first max, and a NaN
    wins as in PyTorch's kernel: update when v > best or v is NaN)."""
    xp = backend.array_module(x)
    xpad = pad_hw(x, geo.pads, -np.inf)
    y = arg = None
    for k, idx in geo.taps():
        v = xpad[idx]
        if y is None:
            y, arg = v.copy(), xp.zeros(v.shape, dtype=np.int64)
            continue
        upd = (v > y) | xp.isnan(v)
        y = xp.where(upd, v, y)
        arg = xp.where(upd, k, arg)
    return y, arg


def _max_gather(x, arg, geo: PoolGeometry):
    """y = xpad at each window's tap ``arg`` (linear in x)."""
    xp = backend.array_module(x)
    xpad = pad_hw(x, geo.pads)
    y = xp.zeros(x.shape[:-2] + geo.out_hw, dtype=x.dtype)
    for k, idx in geo.taps():
        y = xp.where(arg == k, xpad[idx], y)
    return y


def _max_scatter(gy, arg, geo: PoolGeometry):
    """gx: each gy added at its window's tap ``arg`` (the adjoint of :func:`_max_gather`)."""
    xp = backend.array_module(gy)
    g = xp.zeros(gy.shape[:-2] + geo.padded_hw, dtype=gy.dtype)
    for k, idx in geo.taps():
        g[idx] += xp.where(arg == k, gy, 0)
    return crop_hw(g, geo.pads, geo.in_hw)


class MaxPool2dFunction(Function):
    """y[…, i, j] = max_{a,b} xpad[…, i·sh + a·dh, j·sw + b·dw]  (xpad padded with -inf)

    gx = gy routed to the element that held each max (the first one on ties, as PyTorch);
    overlapping windows add up.
    """

    ctx_arrays = ("arg",)

    @staticmethod
    def forward(ctx, x, geo=None):
        ctx.geo = geo
        y, ctx.arg = _max_select(x, geo)
        return y

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return MaxPoolScatter.apply(gy, arg=ctx.arg, geo=ctx.geo)
        return _max_scatter(gy, ctx.arg, ctx.geo)


class MaxPoolScatter(Function):
    """gx = scatter of gy to the argmax taps;  its adjoint gathers: g_gy = h at the taps"""

    ctx_arrays = ("arg",)

    @staticmethod
    def forward(ctx, gy, arg=None, geo=None):
        ctx.arg, ctx.geo = arg, geo
        return _max_scatter(gy, arg, geo)

    @staticmethod
    def backward(ctx, h):
        if isinstance(h, Tensor):
            return MaxPoolGather.apply(h, arg=ctx.arg, geo=ctx.geo)
        return _max_gather(h, ctx.arg, ctx.geo)


class MaxPoolGather(Function):
    """y = x at fixed argmax taps;  gx = scatter of gy to those taps"""

    ctx_arrays = ("arg",)

    @staticmethod
    def forward(ctx, x, arg=None, geo=None):
        ctx.arg, ctx.geo = arg, geo
        return _max_gather(x, arg, geo)

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return MaxPoolScatter.apply(gy, arg=ctx.arg, geo=ctx.geo)
        return _max_scatter(gy, ctx.arg, ctx.geo)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over (dilated) windows of (N, C, H, W) or (C, H, W) ``input``; ``stride``
    defaults to ``kernel_size``; implicit padding is -inf. With ``return_indices`` also the
    flat index h·W + w of each max in its input plane (int64)."""
    checks.image("max_pool2d", input)
    geo = _geometry("max_pool2d", input.shape, kernel_size, stride, padding, dilation,
                    ceil_mode)
    y = MaxPool2dFunction.apply(input, geo=geo)
    if not return_indices:
        return y
    xp = backend.array_module(input.data)
    _, arg = _max_select(input.data, geo)
    kw, (sh, sw), (dh, dw) = geo.kernel[1], geo.stride, geo.dilation
    rows = xp.arange(geo.out_hw[0]).reshape(-1, 1) * sh - geo.pads[0]
    cols = xp.arange(geo.out_hw[1]).reshape(1, -1) * sw - geo.pads[2]
    h = rows + (arg // kw) * dh
    w = cols + (arg % kw) * dw
    return y, Tensor._make((h * geo.in_hw[1] + w).astype(np.int64), None, 0)


# ----------------------------------------------------------------------------- average pooling
def _divisor(geo: PoolGeometry, count_include_pad: bool, divisor_override, dtype):
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


def _avg_sum(x, geo: PoolGeometry, divisor):
    xp = backend.array_module(x)
    xpad = pad_hw(x, geo.pads)
    y = xp.zeros(x.shape[:-2] + geo.out_hw, dtype=x.dtype)
    for _, idx in geo.taps():
        y += xpad[idx]
    return y / divisor


def _avg_spread(gy, geo: PoolGeometry, divisor):
    xp = backend.array_module(gy)
    g = xp.zeros(gy.shape[:-2] + geo.padded_hw, dtype=gy.dtype)
    gd = gy / divisor
    for _, idx in geo.taps():
        g[idx] += gd
    return crop_hw(g, geo.pads, geo.in_hw)


class AvgPool2dFunction(Function):
    """y[…, i, j] = (1 / D[i, j]) Σ_{a,b} xpad[…, i·sh + a, j·sw + b]  (xpad zero-padded)

    gx = each gy[…, i, j] / D[i, j] spread over its window (overlaps add up). D is the
    window size, or its part inside the input when ``count_include_pad=False``.
    """

    ctx_arrays = ("divisor",)

    @staticmethod
    def forward(ctx, x, geo=None, divisor=None):
        ctx.geo, ctx.divisor = geo, divisor
        return _avg_sum(x, geo, divisor)

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return AvgPoolSpread.apply(gy, geo=ctx.geo, divisor=ctx.divisor)
        return _avg_spread(gy, ctx.geo, ctx.divisor)


class AvgPoolSpread(Function):
    """gx = gy / D spread over the windows (the adjoint of average pooling, itself linear);
    its adjoint is average pooling again."""

    ctx_arrays = ("divisor",)

    @staticmethod
    def forward(ctx, gy, geo=None, divisor=None):
        ctx.geo, ctx.divisor = geo, divisor
        return _avg_spread(gy, geo, divisor)

    @staticmethod
    def backward(ctx, h):
        if isinstance(h, Tensor):
            return AvgPool2dFunction.apply(h, geo=ctx.geo, divisor=ctx.divisor)
        return _avg_sum(h, ctx.geo, ctx.divisor)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over windows of (N, C, H, W) or (C, H, W) ``input``; ``stride`` defaults to
    ``kernel_size``; zero padding counted in the mean unless ``count_include_pad=False``."""
    checks.image("avg_pool2d", input)
    geo = _geometry("avg_pool2d", input.shape, kernel_size, stride, padding, 1, ceil_mode)
    divisor = _divisor(geo, count_include_pad, divisor_override, input.dtype)
    if not isinstance(divisor, float):
        divisor = backend.to_device(divisor, input.device)
    return AvgPool2dFunction.apply(input, geo=geo, divisor=divisor)
