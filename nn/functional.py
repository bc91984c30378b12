"""The stateless form of every layer, with PyTorch's names and arguments (``dim``, not
``axis``): ``import nn.functional as F; F.linear(x, W, b)``.

Ops with a formula of their own (linear, embedding, batch norm, conv, pooling) are engine
``Function``s whose forward and backward sit together; the rest compose engine ops.
"""

from __future__ import annotations

import warnings

import numpy as np

import engine
from engine import backend, kernels
from engine.function import Function
from engine.ops.indexing import scatter_add
from engine.tensor import Tensor
from nn.conv import conv2d
from nn.pooling import avg_pool2d, max_pool2d

__all__ = [
    "linear", "relu", "gelu", "tanh", "sigmoid", "leaky_relu", "softmax", "log_softmax",
    "dropout", "embedding", "layer_norm", "batch_norm", "conv2d", "max_pool2d",
    "avg_pool2d", "flatten", "pad",
]


def _check_float(op: str, **tensors) -> None:
    """All given tensors share one floating dtype (NumPy would silently upcast)."""
    dts = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dts.values())) > 1:
        desc = ", ".join(f"{n} {dt}" for n, dt in dts.items())
        raise TypeError(f"{op}: expected one floating dtype, got {desc}")


# ----------------------------------------------------------------------------- linear
class Linear(Function):
    """y = x Wᵀ + b  over the last axis of x (any leading axes, flattened to M rows)

    gx = gy W,   gW = gyᵀ x,   gb = Σ_rows gy
    """

    @staticmethod
    def forward(ctx, x, W, b=None):
        if x.shape[-1:] != W.shape[1:]:
            raise ValueError(f"linear: input {x.shape} does not fit weight {W.shape} "
                             f"(last axis {x.shape[-1:]} vs in_features {W.shape[1]})")
        ctx.x_shape = x.shape
        ctx.save_for_backward(x, W)
        x2 = x.reshape(-1, W.shape[1])                     # (..., in) -> (M, in)
        y = x2 @ W.swapaxes(-1, -2)                         # (M, out)
        if b is not None:
            y = y + b
        return y.reshape(x.shape[:-1] + (W.shape[0],))

    @staticmethod
    def backward(ctx, gy):
        x, W = ctx.saved_tensors
        out_f, in_f = W.shape
        gy2 = gy.reshape(-1, out_f)                         # (..., out) -> (M, out)
        gx = gW = gb = None
        if ctx.needs_input_grad[0]:
            gx = (gy2 @ W).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            gW = gy2.swapaxes(-1, -2) @ x.reshape(-1, in_f)
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            gb = gy2.sum(axis=0)
        return (gx, gW, gb)[:len(ctx.needs_input_grad)]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b, with W of shape (out_features, in_features)."""
    _check_float("linear", input=input, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"linear: bias {bias.shape} does not fit weight {weight.shape}")
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


# ----------------------------------------------------------------------------- activations
def relu(input: Tensor) -> Tensor:
    """max(x, 0)."""
    return engine.relu(input)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x·Φ(x) (exact, erf) or its tanh approximation (``approximate='tanh'``)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return engine.gelu(input, approximate=approximate)


def tanh(input: Tensor) -> Tensor:
    """tanh(x)."""
    return engine.tanh(input)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + e^(-x))."""
    return engine.sigmoid(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope·x."""
    return engine.leaky_relu(input, negative_slope)


def _implicit_softmax_dim(ndim: int, op: str) -> int:
    warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the "
                  "call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """e^(xᵢ) / Σⱼ e^(xⱼ) along ``dim`` (with dim=None PyTorch's legacy choice: 0 for 0-,
    1- and 3-d inputs, else 1, with a warning)."""
    if dim is None:
        dim = _implicit_softmax_dim(input.ndim, "softmax")
    return engine.softmax(input, dim)


def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """xᵢ - log Σⱼ e^(xⱼ) along ``dim`` (dim=None as in :func:`softmax`)."""
    if dim is None:
        dim = _implicit_softmax_dim(input.ndim, "log_softmax")
    return engine.log_softmax(input, dim)


# ----------------------------------------------------------------------------- dropout
def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: y = x ⊙ m / (1 - p),  mᵢ ~ Bernoulli(1 - p);  gx = gy ⊙ m / (1 - p).

    E[y] = x, so evaluation (``training=False``) is the identity. The mask is drawn on the
    host by the engine generator (same seed, same mask on every device); p = 1 gives zeros.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    dt = input.dtype if input.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    keep = engine.default_generator().random(input.shape, dtype=dt) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = (keep * scale).astype(input.dtype)
    mask = Tensor._make(backend.to_device(mask, input.device), None, 0)
    return input * mask


# ----------------------------------------------------------------------------- embedding
class Embedding(Function):
    """y[..., :] = W[idx[...], :]  (a row lookup)

    gW[r] = Σ_{positions p with idx[p] = r} gy[p]  (scatter-add; repeated indices add up),
    except the ``padding_idx`` row, which gets no gradient; with ``scale_grad_by_freq``
    each contribution is divided by how often its index occurs in ``idx``.
    """

    @staticmethod
    def forward(ctx, W, idx, padding_idx=None, scale_grad_by_freq=False):
        ctx.idx, ctx.num = idx, W.shape[0]
        ctx.padding_idx, ctx.scale = padding_idx, scale_grad_by_freq
        return W[idx]

    @staticmethod
    def backward(ctx, gy):
        xp, idx = ctx.xp, ctx.idx
        keep = None
        if ctx.padding_idx is not None:
            keep = (idx != ctx.padding_idx)[..., None]
        if ctx.scale:
            counts = backend.array_module(idx).bincount(idx.ravel(), minlength=ctx.num)
            inv = (1.0 / counts[idx])[..., None]
            keep = inv if keep is None else keep * inv
        if keep is not None:
            gy = gy * keep.astype(gy.dtype)
        shape = (ctx.num,) + tuple(gy.shape[idx.ndim:])
        if isinstance(gy, Tensor):
            return engine.index_add(gy, idx, shape), None
        gW = xp.zeros(shape, dtype=gy.dtype)
        scatter_add(gW, (idx,), gy)
        return gW, None


def _index_array(op: str, input, num: int):
    idx = input.data if isinstance(input, Tensor) else input
    if not hasattr(idx, "dtype"):
        idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer tensor, got {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(f"{op}: index out of range: indices span [{int(idx.min())}, "
                         f"{int(idx.max())}] for a table of {num} rows")
    return idx


def embedding(input, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False) -> Tensor:
    """Rows ``weight[input]``: (…) integer indices -> (…, embedding_dim).

    ``padding_idx``: that row receives no gradient. ``max_norm``: rows looked up whose
    ``norm_type``-norm exceeds it are first rescaled to that norm, in place in ``weight``.
    """
    num = weight.shape[0]
    idx = _index_array("embedding", input, num)
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within the "
                             f"{num} rows of weight")
        padding_idx %= num
    if max_norm is not None:
        _embedding_renorm_(weight, idx, max_norm, norm_type)
    return Embedding.apply(weight, idx, padding_idx=padding_idx,
                           scale_grad_by_freq=scale_grad_by_freq)


def _embedding_renorm_(weight: Tensor, idx, max_norm: float, norm_type: float) -> None:
    """W[r] *= max_norm / (‖W[r]‖ + 1e-7) for the looked-up rows whose norm is too large."""
    xp = backend.array_module(weight.data)
    rows = xp.unique(idx.ravel())
    sel = weight.data[rows]
    norms = (xp.abs(sel) ** norm_type).sum(axis=-1) ** (1.0 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(sel.dtype)
    weight.data[rows] = sel * scale[:, None]


# ----------------------------------------------------------------------------- normalization
def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = (x - μ) / √(σ² + ε) · γ + β over the trailing ``normalized_shape`` axes
    (biased σ²). Runs the engine's layer-norm kernel (fused, or the literal reference
    under ``engine.use_fused(False)``), which checks the shapes and dtypes."""
    return kernels.layer_norm(input, normalized_shape, weight, bias, eps)


class BatchNorm(Function):
    """Batch normalization over every axis but the channel axis 1, with batch statistics.

    μ = mean(x),  σ² = mean((x - μ)²),  x̂ = (x - μ) / √(σ² + ε),  y = γ x̂ + β

    gβ = Σ gy,  gγ = Σ gy ⊙ x̂,  g_x̂ = gy ⊙ γ,
    gx = (g_x̂ - mean(g_x̂) - x̂ ⊙ mean(g_x̂ ⊙ x̂)) / √(σ² + ε)

    (sums and means over the reduced axes). Backward recomputes μ, σ² and x̂ from the
    saved input, so it is itself differentiable.
    """

    @staticmethod
    def forward(ctx, x, w=None, b=None, eps=1e-5):
        xp = ctx.xp
        ctx.axes = (0,) + tuple(range(2, x.ndim))
        ctx.cshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)    # (C,) -> (1, C, 1, ...)
        ctx.eps = eps
        ctx.save_for_backward(x, w)
        mu = x.mean(axis=ctx.axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=ctx.axes, keepdims=True)
        y = (x - mu) / xp.sqrt(var + eps)
        if w is not None:
            y = y * w.reshape(ctx.cshape)
        if b is not None:
            y = y + b.reshape(ctx.cshape)
        return y

    @staticmethod
    def backward(ctx, gy):
        xp, axes = ctx.xp, ctx.axes
        x, w = ctx.saved_tensors
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        inv_std = 1.0 / xp.sqrt((xc * xc).mean(axis=axes, keepdims=True) + ctx.eps)
        xhat = xc * inv_std
        need = ctx.needs_input_grad
        gx = gw = gb = None
        g_xhat = gy if w is None else gy * w.reshape(ctx.cshape)
        if need[0]:
            gx = (g_xhat - g_xhat.mean(axis=axes, keepdims=True)
                  - xhat * (g_xhat * xhat).mean(axis=axes, keepdims=True)) * inv_std
        if len(need) > 1 and need[1]:
            gw = (gy * xhat).sum(axis=axes)
        if len(need) > 2 and need[2]:
            gb = gy.sum(axis=axes)
        return (gx, gw, gb)[:len(need)]


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch norm of an (N, C, ...) input, as ``torch.nn.functional.batch_norm``.

    training: normalize with the batch's μ and biased σ², and (when given) update the running
    statistics in place:  r_μ ← (1 - m) r_μ + m μ,  r_σ² ← (1 - m) r_σ² + m σ² n/(n - 1)
    with n the number of values per channel (the unbiased variance, as PyTorch).
    eval: y = (x - r_μ) / √(r_σ² + ε) · γ + β.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, ...), got "
                         f"{input.shape}")
    _check_float("batch_norm", input=input, weight=weight, bias=bias)
    C = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: {name} of shape {t.shape} does not fit the "
                             f"{C} channels of input {input.shape}")
    cshape = (1, C) + (1,) * (input.ndim - 2)
    if training:
        n = input.size // C
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"input size {tuple(input.shape)}")
        args = [input] + [t for t in (weight, bias) if t is not None]
        if weight is None and bias is not None:
            args = [input, None, bias]
        y = BatchNorm.apply(*args, eps=eps)
        if running_mean is not None and running_var is not None:
            x = input.data
            axes = (0,) + tuple(range(2, x.ndim))
            mu = x.mean(axis=axes)
            var_unbiased = x.var(axis=axes, ddof=1)
            m = float(momentum)
            running_mean.data[...] = (1.0 - m) * running_mean.data + m * mu
            running_var.data[...] = (1.0 - m) * running_var.data + m * var_unbiased
        return y
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when "
                         "training=False")
    scale = 1.0 / engine.sqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return input * scale.reshape(cshape) + shift.reshape(cshape)


# ----------------------------------------------------------------------------- shapes
def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` into one."""
    return engine.flatten(input, start_dim, end_dim)


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad with PyTorch's ordering: ``pad = (left, right)`` for the last axis, then
    ``(top, bottom)`` for the one before, and so on (last axis first).

    Modes: 'constant' (``value``, default 0), 'reflect' (mirror without the edge),
    'replicate' (repeat the edge), 'circular' (wrap around). Negative amounts crop. The
    non-constant modes gather by an index map, so their gradient scatter-adds back.
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding length {len(pad)} must be even and at most "
                         f"2 × {input.ndim} (the input's axes) for input {input.shape}")
    k = len(pad) // 2
    widths = [(0, 0)] * (input.ndim - k) + [
        (pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    crop = tuple(slice(max(-lo, 0), n - max(-hi, 0))
                 for (lo, hi), n in zip(widths, input.shape))
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        input = input[crop]
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if mode == "constant":
        return engine.pad(input, widths, value=0.0 if value is None else value)
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(mode)
    if np_mode is None:
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or "
                         f"'circular', got {mode!r}")
    if value not in (None, 0, 0.0):
        raise ValueError(f"pad: value is only used with mode='constant', got mode={mode!r}")
    xp = backend.array_module(input.data)
    index = []
    for axis, ((lo, hi), n) in enumerate(zip(widths, input.shape)):
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the "
                             f"size {n} of axis {axis} of input {input.shape}")
        if mode == "circular" and (lo > n or hi > n):
            raise ValueError(f"pad: circular padding ({lo}, {hi}) must not exceed the size "
                             f"{n} of axis {axis} of input {input.shape}")
        index.append(xp.asarray(np.pad(np.arange(n), (lo, hi), mode=np_mode)))
    return input[xp.ix_(*index)]


# ----------------------------------------------------------------------------- attention
# defined beside MultiheadAttention; imported last, once everything above exists
from nn.attention import multi_head_attention_forward, scaled_dot_product_attention  # noqa: E402

__all__ += ["scaled_dot_product_attention", "multi_head_attention_forward"]
