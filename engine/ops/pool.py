"""2-D max and average pooling (``torch.nn.functional.max_pool2d`` / ``avg_pool2d``): the
geometry, the Functions and the choice of implementation.

A pooling window at output (i, j) reads the kernel taps (a, b) of the padded input:
``xpad[…, i·sh + a·dh, j·sw + b·dw]``. Output size per axis:
⌊(n + 2p - d(k - 1) - 1 + (s - 1 if ceil_mode)) / s⌋ + 1, one less when ceil_mode would
start the last window in the right padding (PyTorch's rule); the windows that ceil_mode
adds past the padding see -inf (max) or nothing (average).

The array code is in :mod:`engine.kernels`: the literal version
(:mod:`engine.kernels.pool_reference`, NumPy and CuPy) and, for max pooling, the Numba
kernels (:mod:`engine.kernels.cpu_pool`, NumPy float32 and float64, the default on the
CPU); ``engine.use_fused(False)`` selects the literal one.
"""

from __future__ import annotations

from typing import NamedTuple

from engine import backend, checks, kernels
from engine.function import Function
from engine.kernels import pool_reference
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


def select(x):
    """The max-pooling array code that serves ``x``: :mod:`engine.kernels.cpu_pool` (Numba)
    where :func:`engine.kernels.cpu_fused` says so, else
    :mod:`engine.kernels.pool_reference`. The two keep each window's maximum in their own
    form (a flat index, a tap), so backward uses the module its forward used."""
    if kernels.cpu_fused(x):
        from engine.kernels import cpu_pool       # loads Numba on first use

        return cpu_pool
    return pool_reference


# ----------------------------------------------------------------------------- max pooling
class MaxPool2dFunction(Function):
    """y[…, i, j] = max_{a,b} xpad[…, i·sh + a·dh, j·sw + b·dw]  (xpad padded with -inf)

    gx = gy routed to the element that held each max (the first one on ties, as PyTorch);
    overlapping windows add up. With a list ``kept``, forward appends that element's index
    to it (what ``return_indices`` gives, without a second pass over x).
    """

    ctx_arrays = ("arg",)

    @staticmethod
    def forward(ctx, x, geo=None, kept=None):
        ctx.geo, ctx.impl = geo, select(x)
        y, ctx.arg = ctx.impl.max_pool_forward(x, geo)
        if kept is not None:
            kept.append(ctx.impl.max_pool_indices(ctx.arg, geo))
        return y

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return MaxPoolScatter.apply(gy, arg=ctx.arg, geo=ctx.geo, impl=ctx.impl)
        return ctx.impl.max_pool_scatter(gy, ctx.arg, ctx.geo)


class MaxPoolScatter(Function):
    """gx = scatter of gy to the argmax taps;  its adjoint gathers: g_gy = h at the taps"""

    ctx_arrays = ("arg",)

    @staticmethod
    def forward(ctx, gy, arg=None, geo=None, impl=None):
        ctx.arg, ctx.geo, ctx.impl = arg, geo, impl
        return impl.max_pool_scatter(gy, arg, geo)

    @staticmethod
    def backward(ctx, h):
        if isinstance(h, Tensor):
            return MaxPoolGather.apply(h, arg=ctx.arg, geo=ctx.geo, impl=ctx.impl)
        return ctx.impl.max_pool_gather(h, ctx.arg, ctx.geo)


class MaxPoolGather(Function):
    """y = x at fixed argmax taps;  gx = scatter of gy to those taps"""

    ctx_arrays = ("arg",)

    @staticmethod
    def forward(ctx, x, arg=None, geo=None, impl=None):
        ctx.arg, ctx.geo, ctx.impl = arg, geo, impl
        return impl.max_pool_gather(x, arg, geo)

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return MaxPoolScatter.apply(gy, arg=ctx.arg, geo=ctx.geo, impl=ctx.impl)
        return ctx.impl.max_pool_scatter(gy, ctx.arg, ctx.geo)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over (dilated) windows of (N, C, H, W) or (C, H, W) ``input``; ``stride``
    defaults to ``kernel_size``; implicit padding is -inf. With ``return_indices`` also the
    flat index h·W + w of each max in its input plane (int64)."""
    checks.image("max_pool2d", input)
    geo = _geometry("max_pool2d", input.shape, kernel_size, stride, padding, dilation,
                    ceil_mode)
    if not return_indices:
        return MaxPool2dFunction.apply(input, geo=geo)
    kept = []
    y = MaxPool2dFunction.apply(input, geo=geo, kept=kept)
    return y, Tensor._make(kept[0], None, 0)


# ----------------------------------------------------------------------------- average pooling
class AvgPool2dFunction(Function):
    """y[…, i, j] = (1 / D[i, j]) Σ_{a,b} xpad[…, i·sh + a, j·sw + b]  (xpad zero-padded)

    gx = each gy[…, i, j] / D[i, j] spread over its window (overlaps add up). D is the
    window size, or its part inside the input when ``count_include_pad=False``.
    """

    ctx_arrays = ("divisor",)

    @staticmethod
    def forward(ctx, x, geo=None, divisor=None):
        ctx.geo, ctx.divisor = geo, divisor
        return pool_reference.avg_pool_sum(x, geo, divisor)

    @staticmethod
    def backward(ctx, gy):
        if isinstance(gy, Tensor):
            return AvgPoolSpread.apply(gy, geo=ctx.geo, divisor=ctx.divisor)
        return pool_reference.avg_pool_spread(gy, ctx.geo, ctx.divisor)


class AvgPoolSpread(Function):
    """gx = gy / D spread over the windows (the adjoint of average pooling, itself linear);
    its adjoint is average pooling again."""

    ctx_arrays = ("divisor",)

    @staticmethod
    def forward(ctx, gy, geo=None, divisor=None):
        ctx.geo, ctx.divisor = geo, divisor
        return pool_reference.avg_pool_spread(gy, geo, divisor)

    @staticmethod
    def backward(ctx, h):
        if isinstance(h, Tensor):
            return AvgPool2dFunction.apply(h, geo=ctx.geo, divisor=ctx.divisor)
        return pool_reference.avg_pool_sum(h, ctx.geo, ctx.divisor)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over windows of (N, C, H, W) or (C, H, W) ``input``; ``stride`` defaults to
    ``kernel_size``; zero padding counted in the mean unless ``count_include_pad=False``."""
    checks.image("avg_pool2d", input)
    geo = _geometry("avg_pool2d", input.shape, kernel_size, stride, padding, 1, ceil_mode)
    divisor = pool_reference.avg_divisor(geo, count_include_pad, divisor_override,
                                         input.dtype)
    if not isinstance(divisor, float):
        divisor = backend.to_device(divisor, input.device)
    return AvgPool2dFunction.apply(input, geo=geo, divisor=divisor)
