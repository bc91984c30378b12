"""Activation functions. Each docstring gives y = f(x) and the gradient rule, gy -> gx.

The logistic sigmoid, tanh, ReLU and its leaky form, GELU (and the error function it is
built on) and softplus, computed so that no input overflows (docs/formulas.md, F8 the
neuron and its activations).

Softmax and log-softmax along one axis (F7) are fused ops: each Function's forward and
backward call the implementation :func:`engine.kernels.select` picks (the Numba kernels, or
the literal formula under ``engine.use_fused(False)``). Both save only their output, so
under ``create_graph`` the backward runs the reference formula on Tensors and is
differentiated again, whichever implementation ran the forward.
"""

from __future__ import annotations

import math

import numpy as np

from engine import backend, checks, kernels
from engine.function import Function
from engine.kernels import reference
from engine.ops.elementwise import astype, widen_half
from engine.ops.utils import normalize_axis, numpy_names
from engine.tensor import Tensor


class Tanh(Function):
    """y = tanh(x);  gx = gy * (1 - y²)"""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (1.0 - y * y)


def stable_sigmoid(xp, x):
    """σ(x) as 1/(1+e) for x ≥ 0 and e/(1+e) for x < 0, e = exp(-|x|): never overflows."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Sigmoid(Function):
    """y = σ(x) = 1 / (1 + e^(-x));  gx = gy * y * (1 - y)

    Computed as 1/(1+e) for x ≥ 0 and e/(1+e) for x < 0 with e = exp(-|x|): no overflow.
    """

    @staticmethod
    def forward(ctx, x):
        y = stable_sigmoid(ctx.xp, x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y * (1.0 - y)


class ReLU(Function):
    """y = max(x, 0);  gx = gy where x > 0, else 0 (0 at x = 0, as PyTorch)

    The mask x > 0 is y > 0, so only y is saved. On NumPy float arrays Numba kernels do
    the forward shared among threads (:func:`engine.kernels.cpu_pool.relu_forward`) and
    the backward's select in one pass (:func:`engine.kernels.cpu_pool.relu_backward`),
    several times faster than NumPy's ``where``.
    """

    @staticmethod
    def forward(ctx, x):
        if kernels.cpu_fused(x):
            from engine.kernels import cpu_pool       # loads Numba on first use

            y = cpu_pool.relu_forward(x)
        else:
            y = ctx.xp.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        if kernels.cpu_fused(y):
            from engine.kernels import cpu_pool       # loads Numba on first use

            return cpu_pool.relu_backward(y, gy)
        return ctx.xp.where(y > 0, gy, 0.0)


class LeakyReLU(Function):
    """y = x if x > 0 else s·x;  gx = gy if x > 0 else s·gy"""

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.slope = negative_slope
        ctx.save_for_backward(x)
        return ctx.xp.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return ctx.xp.where(x > 0, gy, gy * ctx.slope)


class Erf(Function):
    """y = erf(x);  gx = gy * 2/√π · exp(-x²)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.erf(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * (2.0 / math.sqrt(math.pi)) * ctx.xp.exp(-x * x)


class GELU(Function):
    """Gaussian error linear unit, y = x·Φ(x).

    exact ('none'):  Φ(x) = ½(1 + erf(x/√2));   gx = gy·(Φ(x) + x·φ(x)),  φ(x) = e^(-x²/2)/√(2π)
    'tanh':  y = ½x(1 + t),  t = tanh(u),  u = √(2/π)(x + 0.044715x³)
             gx = gy·(½(1 + t) + ½x(1 - t²)·√(2/π)(1 + 3·0.044715x²))
    """

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        if approximate == "tanh":
            u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1.0 + ctx.xp.tanh(u))
        return 0.5 * x * (1.0 + backend.erf(x * (1.0 / math.sqrt(2.0))))

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        if ctx.approximate == "tanh":
            k = math.sqrt(2.0 / math.pi)
            t = xp.tanh(k * (x + 0.044715 * x * x * x))
            dy = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * x * x)
            return gy * dy
        erf = getattr(xp, "erf", backend.erf)      # NumPy and CuPy have no erf
        cdf = 0.5 * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
        pdf = xp.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
        return gy * (cdf + x * pdf)


class Softplus(Function):
    """y = log(1 + e^(βx))/β, and y = x where βx > threshold (PyTorch's form)

    gx = gy · σ(βx), and gy where βx > threshold.
    """

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        xp = ctx.xp
        ctx.beta, ctx.threshold = beta, threshold
        ctx.save_for_backward(x)
        bx = x * beta
        stable = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
        return xp.where(bx > threshold, x, stable)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        bx = x * ctx.beta
        return xp.where(bx > ctx.threshold, gy, gy * stable_sigmoid(xp, bx))


class Softmax(Function):
    """yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = y ⊙ (gy - Σⱼ gyⱼ yⱼ)   (the Jacobian diag(y) - y yᵀ applied to gy)

    docs/formulas.md, F7 softmax.
    """

    log = False
    op = "softmax"

    @classmethod
    def forward(cls, ctx, x, axis=-1):
        ctx.axis = normalize_axis(axis, x.ndim, cls.op)
        ctx.impl = kernels.select(x)
        y = ctx.impl.softmax_forward(ctx.xp, x, ctx.axis, cls.log)
        ctx.save_for_backward(y)
        return y

    @classmethod
    def backward(cls, ctx, gy):
        (y,) = ctx.saved_tensors
        impl = reference if isinstance(gy, Tensor) else ctx.impl
        return impl.softmax_backward(ctx.xp, y, gy, ctx.axis, cls.log)


class LogSoftmax(Softmax):
    """yᵢ = xᵢ - m - log Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = gy - exp(y) ⊙ Σⱼ gyⱼ   (softmax = exp(y))
    """

    log = True
    op = "log_softmax"


def tanh(x):
    """Hyperbolic tangent."""
    return Tanh.apply(x)


def sigmoid(x):
    """Logistic sigmoid 1/(1 + e^(-x))."""
    return Sigmoid.apply(x)


def relu(x):
    """max(x, 0)."""
    return ReLU.apply(x)


def leaky_relu(x, negative_slope: float = 0.01):
    """x if x > 0 else negative_slope·x."""
    return LeakyReLU.apply(x, negative_slope=negative_slope)


def erf(x):
    """Error function."""
    return Erf.apply(x)


def gelu(x, approximate: str = "none"):
    """GELU, exact (``'none'``, erf form) or ``'tanh'`` approximation, as PyTorch."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)


def softplus(x, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + e^(βx))/β, linear where βx > threshold."""
    return Softplus.apply(x, beta=beta, threshold=threshold)


@numpy_names
def softmax(input, dim: int = -1) -> Tensor:
    """Softmax along ``dim``: yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m), m the max (float16
    computed in float32)."""
    x = checks.tensor("softmax", "input", input)
    if x.dtype == np.float16:
        return astype(softmax(widen_half(x), dim), np.float16)
    return Softmax.apply(x, axis=dim)


@numpy_names
def log_softmax(input, dim: int = -1) -> Tensor:
    """Log-softmax along ``dim``: yᵢ = xᵢ - m - log Σⱼ exp(xⱼ - m) (float16 computed in
    float32)."""
    x = checks.tensor("log_softmax", "input", input)
    if x.dtype == np.float16:
        return astype(log_softmax(widen_half(x), dim), np.float16)
    return LogSoftmax.apply(x, axis=dim)
