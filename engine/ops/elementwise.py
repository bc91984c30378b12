"""Elementwise arithmetic: + - * / **, maximum, minimum, clamp and casts. Each docstring
gives y = f(x) and the gradient rule, gy -> gx.

Binary ops broadcast like NumPy; their backward sums each gradient back to its input's
shape with :func:`sum_to`. Their operands are first cast to the dtype PyTorch gives the
result (:func:`engine.dtypes.result_type`; NumPy would often differ): float32 with an
int64 tensor, a 0-d float64 tensor or a Python float stays float32; float32 with float64
is float64, and the float32 operand's gradient comes back float32 through the cast. The
division of integers is true division, in the default float dtype.
"""

from __future__ import annotations

import math

import numpy as np

from engine import dtypes
from engine.function import Function
from engine.ops.utils import shape_of, sum_to
from engine.tensor import Tensor


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


class Clamp(Function):
    """y = min(max(x, lo), hi)   (lo, hi: tensors, numbers or None; y = hi where lo > hi)

    gx = gy where lo ≤ x ≤ hi (bounds included),  glo = gy where x < lo < hi,
    ghi = gy where x > hi or hi < lo   (PyTorch's rule), 0 elsewhere
    """

    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = ctx.xp
        ctx.save_for_backward(x, lo, hi)
        try:
            y = x if lo is None else xp.maximum(x, lo)
            y = y if hi is None else xp.minimum(y, hi)
        except ValueError:
            raise ValueError(f"clamp: input {x.shape}, min {shape_of(lo)} and max "
                             f"{shape_of(hi)} cannot be broadcast together") from None
        return y

    @staticmethod
    def backward(ctx, gy):
        x, lo, hi = ctx.saved_tensors
        xp = ctx.xp
        need_x, need_lo, need_hi = ctx.needs_input_grad
        gx = glo = ghi = None
        if need_x:
            inside = None
            if lo is not None:
                inside = x >= lo
            if hi is not None:
                inside = x <= hi if inside is None else xp.logical_and(inside, x <= hi)
            gx = gy if inside is None else sum_to(xp.where(inside, gy, 0.0),
                                                   ctx.input_shape(0))
        if need_lo:
            below = x < lo if hi is None else xp.logical_and(x < lo, lo < hi)
            glo = sum_to(xp.where(below, gy, 0.0), ctx.input_shape(1))
        if need_hi:
            above = x > hi if lo is None else xp.logical_or(x > hi, hi < lo)
            ghi = sum_to(xp.where(above, gy, 0.0), ctx.input_shape(2))
        return gx, glo, ghi


class Cast(Function):
    """y = x as another dtype;  gx = gy cast back"""

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.src = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return gy.astype(ctx.src)


def astype(x, dtype) -> Tensor:
    """Cast to ``dtype`` (differentiable between floating dtypes)."""
    return Cast.apply(x, dtype=np.dtype(dtype))


def _cast(v, dtype):
    """One operand in ``dtype``: a Tensor through the differentiable cast, an array by
    ``astype``; numbers stay numbers (NumPy keeps the array's dtype for them)."""
    if isinstance(v, Tensor):
        return v if v.data.dtype == dtype else Cast.apply(v, dtype=dtype)
    if hasattr(v, "ndim") and not isinstance(v, np.generic) and v.dtype != dtype:
        return v.astype(dtype)
    return v


def promote(a, b) -> tuple:
    """``a`` and ``b`` cast to the dtype PyTorch gives their result (see the module
    docstring); as they are when no cast is needed, the common case, checked first."""
    if isinstance(a, Tensor):
        da = a.data.dtype
        if isinstance(b, Tensor):
            if b.data.dtype is da or b.data.dtype == da:
                return a, b
        elif (type(b) is float and da.kind == "f") or (type(b) is int and da.kind in "fiu"):
            return a, b
    elif isinstance(b, Tensor):
        kind = b.data.dtype.kind
        if (type(a) is float and kind == "f") or (type(a) is int and kind in "fiu"):
            return a, b
    return promote_all(a, b)


def promote_all(*operands) -> tuple:
    """Any number of operands (None for an absent one) cast to their result dtype."""
    dtype = dtypes.result_type(*(v for v in operands if v is not None))
    return tuple(None if v is None else _cast(v, dtype) for v in operands)


def _no_bool(op: str, *operands, hint: str = "") -> None:
    if all(getattr(v, "dtype", None) == np.bool_ for v in operands):
        raise RuntimeError(f"{op}: not supported on bool tensors (as in PyTorch){hint}")


_MASK_HINT = "; to invert a mask use ~ or logical_not()"


def add(input, other, *, alpha=1) -> Tensor:
    """input + alpha · other (broadcasting)."""
    if alpha != 1:
        other = mul(other, alpha)
    return Add.apply(*promote(input, other))


def sub(input, other, *, alpha=1) -> Tensor:
    """input - alpha · other (broadcasting)."""
    if alpha != 1:
        other = mul(other, alpha)
    a, b = promote(input, other)
    _no_bool("sub", a, b, hint=_MASK_HINT)
    return Sub.apply(a, b)


def mul(input, other) -> Tensor:
    """input * other (broadcasting)."""
    return Mul.apply(*promote(input, other))


def div(input, other) -> Tensor:
    """input / other (broadcasting): true division, so integers give the default float
    dtype."""
    a, b = promote(input, other)
    if any(isinstance(v, (Tensor, np.ndarray)) and v.dtype.kind != "f" for v in (a, b)):
        default = dtypes.get_default_dtype()
        a, b = _cast(a, default), _cast(b, default)
    return Div.apply(a, b)


def neg(input) -> Tensor:
    """-x."""
    _no_bool("neg", input, hint=_MASK_HINT)
    return Neg.apply(input)


def pow(input, exponent) -> Tensor:
    """input ** exponent; either may be a Tensor or a number."""
    a, b = promote(input, exponent)
    _no_bool("pow", a, b)
    return Pow.apply(a, b)


def maximum(input, other) -> Tensor:
    """Elementwise max (ties share the gradient)."""
    return Maximum.apply(*promote(input, other))


def minimum(input, other) -> Tensor:
    """Elementwise min (ties share the gradient)."""
    return Minimum.apply(*promote(input, other))


def clamp(input, min=None, max=None) -> Tensor:
    """Clamp to [min, max]; each bound a number, a tensor (broadcasting) or None."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    x, lo, hi = promote_all(input, min, max)
    return Clamp.apply(x, lo, hi)


clip = clamp


def widen_half(x):
    """A float16 tensor cast to float32 (differentiably); anything else, None included, as
    it is. The fused ops compute half-precision data in float32, as PyTorch does: float16
    reaches only 65504, so exp, sums of squares and normalizers would overflow."""
    return x if x is None or x.dtype != np.float16 else astype(x, np.float32)
