"""Elementwise arithmetic: + - * / ** exp log sqrt abs max min clip and casts. Each
docstring gives y = f(x) and the gradient rule, gy -> gx.

Binary ops broadcast like NumPy; their backward sums each gradient back to its input's
shape with :func:`sum_to`. Python scalars are NumPy "weak" scalars: ``float32 * 2.0`` stays
float32.
"""

from __future__ import annotations

import math

import numpy as np

from engine.function import Function
from engine.ops.utils import shape_of, sum_to


_NUMBERS = frozenset((int, float, bool))   # Function.apply makes NumPy scalars these


def _broadcast_error(op, a, b):
    return ValueError(
        f"{op}: shapes {tuple(shape_of(a))} and {tuple(shape_of(b))} cannot be broadcast together"
    )


class Add(Function):
    """y = a + b;  ga = gy,  gb = gy"""

    @staticmethod
    def forward(ctx, a, b):
        try:
            return a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None

    @staticmethod
    def backward(ctx, gy):
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(gy, ctx.input_shape(0)) if need_a else None,
                sum_to(gy, ctx.input_shape(1)) if need_b else None)


class Sub(Function):
    """y = a - b;  ga = gy,  gb = -gy"""

    @staticmethod
    def forward(ctx, a, b):
        try:
            return a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None

    @staticmethod
    def backward(ctx, gy):
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(gy, ctx.input_shape(0)) if need_a else None,
                sum_to(-gy, ctx.input_shape(1)) if need_b else None)


class Mul(Function):
    """y = a * b;  ga = gy * b,  gb = gy * a"""

    @staticmethod
    def forward(ctx, a, b):
        # a factor that is a Python number needs no gradient, so the other one is not kept
        # (as in PyTorch, where x[0] = x[0] * 2 then does not invalidate the saved x[0])
        ctx.save_for_backward(None if type(b) in _NUMBERS else a,
                              None if type(a) in _NUMBERS else b)
        try:
            return a * b
        except ValueError:
            raise _broadcast_error("mul", a, b) from None

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = sum_to(gy * b, ctx.input_shape(0)) if ctx.needs_input_grad[0] else None
        gb = sum_to(gy * a, ctx.input_shape(1)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  ga = gy / b,  gb = -gy * a / b² = -gy * y / b"""

    @staticmethod
    def forward(ctx, a, b):
        try:
            y = a / b
        except ValueError:
            raise _broadcast_error("div", a, b) from None
        ctx.save_for_backward(b, None if type(b) in _NUMBERS else y)
        return y

    @staticmethod
    def backward(ctx, gy):
        b, y = ctx.saved_tensors
        ga = sum_to(gy / b, ctx.input_shape(0)) if ctx.needs_input_grad[0] else None
        gb = sum_to(-gy * y / b, ctx.input_shape(1)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  gx = -gy"""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, gy):
        return -gy


class Pow(Function):
    """y = a ** b

    ga = gy * b * a ** (b - 1)   (0 where b == 0, as d(a**0)/da = 0)
    gb = gy * y * log(a)          (0 where a == 0 and b >= 0, as PyTorch)
    """

    @staticmethod
    def forward(ctx, a, b):
        try:
            y = a ** b
        except ValueError:
            raise _broadcast_error("pow", a, b) from None
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        xp = ctx.xp
        ga = gb = None
        if ctx.needs_input_grad[0]:
            if isinstance(b, (int, float)):
                ga = gy * 0.0 if b == 0 else gy * b * a ** (b - 1)
            else:
                ga = xp.where(b == 0, 0.0, gy * b * a ** (b - 1))
            ga = sum_to(ga, ctx.input_shape(0))
        if ctx.needs_input_grad[1]:
            if isinstance(a, (int, float)):
                gb = gy * y * (math.log(a) if a > 0 else (0.0 if a == 0 else math.nan))
            else:
                gb = xp.where(xp.logical_and(a == 0, b >= 0), 0.0, gy * y * xp.log(a))
            gb = sum_to(gb, ctx.input_shape(1))
        return ga, gb


class Exp(Function):
    """y = exp(x);  gx = gy * y"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y


class Log(Function):
    """y = log(x);  gx = gy / x"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / x


class Sqrt(Function):
    """y = √x;  gx = gy / (2y)"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy / (2.0 * y)


class Abs(Function):
    """y = |x|;  gx = gy * sign(x)   (0 at x = 0, as PyTorch)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * ctx.xp.sign(x)


class Maximum(Function):
    """y = max(a, b);  ga = gy where a > b,  gb = gy where b > a;  ties split gy in half"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return ctx.xp.maximum(a, b)
        except ValueError:
            raise _broadcast_error("maximum", a, b) from None

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return _select_grads(ctx, gy, a, b, ctx.xp.greater)


class Minimum(Function):
    """y = min(a, b);  ga = gy where a < b,  gb = gy where b < a;  ties split gy in half"""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return ctx.xp.minimum(a, b)
        except ValueError:
            raise _broadcast_error("minimum", a, b) from None

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return _select_grads(ctx, gy, a, b, ctx.xp.less)


def _select_grads(ctx, gy, a, b, wins):
    """Gradients of max/min: the winner takes gy, a tie gives each half."""
    xp = ctx.xp
    half = gy * 0.5
    ga = gb = None
    if ctx.needs_input_grad[0]:
        ga = sum_to(xp.where(wins(a, b), gy, xp.where(a == b, half, 0.0)),
                    ctx.input_shape(0))
    if ctx.needs_input_grad[1]:
        gb = sum_to(xp.where(wins(b, a), gy, xp.where(a == b, half, 0.0)),
                    ctx.input_shape(1))
    return ga, gb


class Clip(Function):
    """y = min(max(x, lo), hi);  gx = gy where lo ≤ x ≤ hi, else 0 (bounds included)"""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        if lo is None and hi is None:
            return x.copy()
        return ctx.xp.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        if ctx.lo is not None:
            gy = xp.where(x >= ctx.lo, gy, 0.0)
        if ctx.hi is not None:
            gy = xp.where(x <= ctx.hi, gy, 0.0)
        return gy


class Cast(Function):
    """y = x as another dtype;  gx = gy cast back"""

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.src = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return gy.astype(ctx.src)


def add(a, b):
    """a + b (broadcasting)."""
    return Add.apply(a, b)


def sub(a, b):
    """a - b (broadcasting)."""
    return Sub.apply(a, b)


def mul(a, b):
    """a * b (broadcasting)."""
    return Mul.apply(a, b)


def div(a, b):
    """a / b (broadcasting)."""
    return Div.apply(a, b)


def neg(x):
    """-x."""
    return Neg.apply(x)


def pow(a, b):
    """a ** b; either may be a Tensor or a scalar."""
    return Pow.apply(a, b)


def exp(x):
    """e^x."""
    return Exp.apply(x)


def log(x):
    """Natural logarithm."""
    return Log.apply(x)


def sqrt(x):
    """√x."""
    return Sqrt.apply(x)


def abs(x):
    """|x|."""
    return Abs.apply(x)


def maximum(a, b):
    """Elementwise max (ties share the gradient)."""
    return Maximum.apply(a, b)


def minimum(a, b):
    """Elementwise min (ties share the gradient)."""
    return Minimum.apply(a, b)


def clip(x, min=None, max=None):
    """Clamp to [min, max] (scalars; either may be None)."""
    return Clip.apply(x, lo=min, hi=max)


def astype(x, dtype):
    """Cast to ``dtype`` (differentiable between floating dtypes)."""
    return Cast.apply(x, dtype=np.dtype(dtype))


def widen_half(x):
    """A float16 tensor cast to float32 (differentiably); anything else, None included, as
    it is. The fused ops compute half-precision data in float32, as PyTorch does: float16
    reaches only 65504, so exp, sums of squares and normalizers would overflow."""
    return x if x is None or x.dtype != np.float16 else astype(x, np.float32)
