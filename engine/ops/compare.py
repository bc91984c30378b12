"""Comparisons, ``where``, ``one_hot``: results carry no gradient (except ``where``'s
value arguments)."""

from __future__ import annotations

import numpy as np

from engine import backend, dtypes
from engine.function import Function, _check_devices
from engine.ops.elementwise import promote
from engine.ops.utils import shape_of, sum_to
from engine.tensor import Tensor


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _compare(op: str, a, b):
    a, b = _data(a), _data(b)
    xp = _check_devices(op, (a, b))
    try:
        out = getattr(xp, op)(a, b)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {tuple(shape_of(a))} and {tuple(shape_of(b))} cannot be broadcast "
            "together"
        ) from None
    return Tensor._make(xp.asarray(out), None, 0)


def equal(a, b) -> Tensor:
    """a == b, elementwise (bool, no gradient)."""
    return _compare("equal", a, b)


def not_equal(a, b) -> Tensor:
    """a != b, elementwise (bool, no gradient)."""
    return _compare("not_equal", a, b)


def less(a, b) -> Tensor:
    """a < b, elementwise (bool, no gradient)."""
    return _compare("less", a, b)


def less_equal(a, b) -> Tensor:
    """a <= b, elementwise (bool, no gradient)."""
    return _compare("less_equal", a, b)


def greater(a, b) -> Tensor:
    """a > b, elementwise (bool, no gradient)."""
    return _compare("greater", a, b)


def greater_equal(a, b) -> Tensor:
    """a >= b, elementwise (bool, no gradient)."""
    return _compare("greater_equal", a, b)


def logical_and(a, b) -> Tensor:
    """a & b for bool tensors."""
    return _compare("logical_and", a, b)


def logical_or(a, b) -> Tensor:
    """a | b for bool tensors."""
    return _compare("logical_or", a, b)


def logical_not(x) -> Tensor:
    """~x for bool tensors."""
    x = _data(x)
    return Tensor._make(backend.array_module(x).logical_not(x), None, 0)


def isfinite(x) -> Tensor:
    """True where x is neither inf nor NaN."""
    x = _data(x)
    return Tensor._make(backend.array_module(x).isfinite(x), None, 0)


def isnan(x) -> Tensor:
    """True where x is NaN."""
    x = _data(x)
    return Tensor._make(backend.array_module(x).isnan(x), None, 0)


def sign(x) -> Tensor:
    """-1, 0 or 1 (no gradient: its derivative is 0 almost everywhere)."""
    x = _data(x)
    return Tensor._make(backend.array_module(x).sign(x), None, 0)


class Where(Function):
    """y = a where cond else b;  ga = gy where cond else 0,  gb = gy where not cond else 0"""

    @staticmethod
    def forward(ctx, cond, a, b):
        if cond.dtype != bool:
            raise TypeError(f"where: condition must be bool, got {cond.dtype}")
        ctx.save_for_backward(cond)
        try:
            return ctx.xp.where(cond, a, b)
        except ValueError:
            raise ValueError(
                f"where: shapes {tuple(cond.shape)}, {tuple(shape_of(a))} and "
                f"{tuple(shape_of(b))} cannot be broadcast together"
            ) from None

    @staticmethod
    def backward(ctx, gy):
        (cond,) = ctx.saved_tensors
        xp = ctx.xp
        need_a, need_b = ctx.needs_input_grad[1:]
        ga = sum_to(xp.where(cond, gy, 0.0), ctx.input_shape(1)) if need_a else None
        gb = sum_to(xp.where(cond, 0.0, gy), ctx.input_shape(2)) if need_b else None
        return None, ga, gb


def where(condition, input, other) -> Tensor:
    """``input`` where ``condition`` holds, else ``other`` (broadcasting); either may be a
    number. The result's dtype is PyTorch's promotion of the two (two Python floats give
    the default float dtype)."""
    tensors = [v for v in (input, other, condition) if isinstance(v, Tensor)]
    xp = backend.array_module(tensors[0].data) if tensors else np
    if not isinstance(condition, Tensor):
        condition = Tensor._make(xp.asarray(condition), None, 0)
    a, b = promote(input, other)
    if not hasattr(a, "dtype") and not hasattr(b, "dtype"):     # two numbers
        a = xp.asarray(a, dtype=dtypes.result_type(a, b))
    return Where.apply(condition, a, b)


def one_hot(indices, num_classes: int = -1, dtype=None) -> Tensor:
    """``(..., C)`` with a 1 at each index (int64 unless ``dtype``; no gradient)."""
    idx = _data(indices)
    xp = backend.array_module(idx)
    idx = xp.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, got {idx.dtype}")
    if num_classes < 0:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(
            f"one_hot: indices must lie in [0, {num_classes}), got range "
            f"[{int(idx.min())}, {int(idx.max())}]"
        )
    # out[..., c] = (idx == c); put_along_axis would need CuPy 14
    out = (idx[..., None] == xp.arange(num_classes)).astype(dtype or xp.int64)
    return Tensor._make(out, None, 0)


eq, ne, lt, le, gt, ge = equal, not_equal, less, less_equal, greater, greater_equal
