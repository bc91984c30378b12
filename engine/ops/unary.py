"""Elementwise functions of one tensor: exp, log, sqrt, abs, sin, cos. Each docstring
gives y = f(x) and the gradient rule, gy -> gx.

Integer and bool tensors are computed in the default float dtype, as PyTorch does (NumPy
would give float64); ``abs`` keeps integers.
"""

from __future__ import annotations

from engine import checks, dtypes
from engine.function import Function
from engine.ops.elementwise import astype
from engine.tensor import Tensor


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


class Sin(Function):
    """y = sin(x);  gx = gy * cos(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.sin(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * ctx.xp.cos(x)


class Cos(Function):
    """y = cos(x);  gx = -gy * sin(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.cos(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return -gy * ctx.xp.sin(x)


def _floating(op: str, x) -> Tensor:
    """``x`` as a Tensor, cast to the default float dtype if it holds integers or bools."""
    x = checks.tensor(op, "input", x)
    return x if x.dtype.kind == "f" else astype(x, dtypes.get_default_dtype())


def exp(input) -> Tensor:
    """e^x."""
    return Exp.apply(_floating("exp", input))


def log(input) -> Tensor:
    """Natural logarithm."""
    return Log.apply(_floating("log", input))


def sqrt(input) -> Tensor:
    """√x."""
    return Sqrt.apply(_floating("sqrt", input))


def abs(input) -> Tensor:
    """|x| (integers stay integers)."""
    return Abs.apply(checks.tensor("abs", "input", input))


def sin(input) -> Tensor:
    """sin x (radians)."""
    return Sin.apply(_floating("sin", input))


def cos(input) -> Tensor:
    """cos x (radians)."""
    return Cos.apply(_floating("cos", input))
