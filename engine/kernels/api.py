"""The fused ops as users call them: argument checks, masks, dropout, then one dispatch.

Each function checks its arguments (errors name the op, shapes, dtypes and devices), brings
them to the form the kernels take, and calls :func:`engine.kernels.switch.implementation`
to pick the reference Function or the fused one (Numba on the CPU, Numba CUDA on the GPU).
"""

from __future__ import annotations

import math

import numpy as np

from engine import backend, random
from engine.kernels import reference
from engine.kernels.switch import implementation
from engine.ops.shape import reshape, transpose
from engine.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _fused():
    """The fused Functions (imported on first use: the kernels load Numba)."""
    from engine.kernels import fused

    return fused


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _as_tensor(x, op: str, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) or backend.is_cuda_array(x):
        return Tensor._make(x, None, 0)
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}")


def _check_float(op: str, name: str, x) -> None:
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floating point, got {x.dtype} "
                        f"of shape {tuple(x.shape)}")


def _same_device(op: str, ref, name: str, other):
    """``other`` (an array) on the device of ``ref``, or an error naming both devices."""
    if backend.device_of(ref) != backend.device_of(other):
        raise RuntimeError(f"{op}: {name} is on {backend.device_of(other)} but the input is "
                           f"on {backend.device_of(ref)}")
    return other


# ---------------------------------------------------------------- softmax, log-softmax
def softmax(x, axis: int = -1) -> Tensor:
    """Softmax along ``axis``: yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m), m the max (see
    :class:`engine.kernels.reference.Softmax`)."""
    x = _as_tensor(x, "softmax", "x")
    if implementation(x.data) == "reference":
        return reference.Softmax.apply(x, axis=axis)
    return _fused().Softmax.apply(x, axis=axis)


def log_softmax(x, axis: int = -1) -> Tensor:
    """Log-softmax along ``axis``: yᵢ = xᵢ - m - log Σⱼ exp(xⱼ - m)."""
    x = _as_tensor(x, "log_softmax", "x")
    if implementation(x.data) == "reference":
        return reference.LogSoftmax.apply(x, axis=axis)
    return _fused().LogSoftmax.apply(x, axis=axis)


# ---------------------------------------------------------------- cross-entropy
def cross_entropy(logits, target, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``logits`` (N, C) with class indices ``target`` (N,), fused with
    the log-softmax; PyTorch's semantics.

    ℓᵢ = -(1 - ε) log pᵢ,tᵢ - (ε / C) Σ_c log pᵢc with p = softmax(logits), ε the label
    smoothing; rows whose target is ``ignore_index`` give 0. ``reduction``: 'mean' (Σ ℓᵢ
    over the number of rows not ignored; NaN when every row is ignored, as in PyTorch),
    'sum', or 'none' (the (N,) losses). Also takes (C,) logits with a 0-d target and
    (N, C, d₁, ...) logits with (N, d₁, ...) targets, as PyTorch does.
    """
    op = "cross_entropy"
    x = _as_tensor(logits, op, "logits")
    _check_float(op, "logits", x)
    t = _data(target)
    if not (isinstance(t, np.ndarray) or backend.is_cuda_array(t)):
        t = backend.array_module(x.data).asarray(t)      # a list: on the logits' device
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got {t.dtype} of "
                        f"shape {tuple(t.shape)}")
    t = _same_device(op, x.data, "target", t)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must lie in [0, 1], got {label_smoothing}")
    if x.ndim == 1:
        expected = ()
    elif x.ndim >= 2:
        expected = (x.shape[0],) + x.shape[2:]
    else:
        expected = None
    if expected is None or t.shape != expected:
        raise ValueError(f"{op}: logits of shape {x.shape} need a target of shape "
                         f"{expected}, got {tuple(t.shape)}")
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    out_shape = t.shape
    if x.ndim == 1:                                 # (C,) -> (1, C)
        x = reshape(x, (1, c))
    elif x.ndim > 2:                                # (N, C, d...) -> (N·d..., C)
        x = reshape(transpose(x, (0,) + tuple(range(2, x.ndim)) + (1,)), (-1, c))
    t = t.reshape(-1).astype(np.int64, copy=False)
    valid = t != ignore_index
    if t.size and bool(valid.any()):
        lo, hi = int(t[valid].min()), int(t[valid].max())
        if lo < 0 or hi >= c:
            raise IndexError(f"{op}: target values must lie in [0, {c}) or equal "
                             f"ignore_index={ignore_index}, got range [{lo}, {hi}] for "
                             f"logits of shape {tuple(x.shape)}")
    params = dict(ignore_index=int(ignore_index), label_smoothing=float(label_smoothing),
                  reduction=reduction)
    if implementation(x.data) == "reference":
        loss = reference.CrossEntropy.apply(x, t, **params)
    else:
        loss = _fused().CrossEntropy.apply(x, t, **params)
    if reduction == "none" and loss.shape != out_shape:
        loss = reshape(loss, out_shape)
    return loss


# ---------------------------------------------------------------- layer norm
def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the last ``len(normalized_shape)`` axes (as
    ``torch.nn.functional.layer_norm``): y = (x - μ) / √(σ² + eps) ⊙ weight + bias, with
    μ and the biased σ² taken over those axes. The fused kernel saves μ and 1/√(σ² + eps)."""
    op = "layer_norm"
    x = _as_tensor(x, op, "x")
    _check_float(op, "x", x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(int(n) for n in normalized_shape)
    k = len(shape)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"{op}: normalized_shape {shape} does not match the last axes of "
                         f"an input of shape {x.shape}")
    if not eps > 0:
        raise ValueError(f"{op}: eps must be positive, got {eps}")
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            p = _as_tensor(p, op, name)
            if p.shape != shape:
                raise ValueError(f"{op}: {name} of shape {p.shape} does not match "
                                 f"normalized_shape {shape}")
            if p.dtype != x.dtype:
                raise TypeError(f"{op}: {name} is {p.dtype} but the input is {x.dtype}")
            _same_device(op, x.data, name, p.data)
        params.append(p)
    impl = implementation(x.data)
    cls = reference.LayerNorm if impl == "reference" else _fused().LayerNorm
    return cls.apply(x, params[0], params[1], n_axes=k, eps=float(eps))


# ---------------------------------------------------------------- attention
def _mask_array(op: str, name: str, mask, q):
    m = _data(mask)
    if not (isinstance(m, np.ndarray) or backend.is_cuda_array(m)):
        m = backend.array_module(q).asarray(m)           # a list: on the input's device
    return _same_device(op, q, name, m)


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None, key_padding_mask=None,
                                 need_weights: bool = False):
    """softmax(Q Kᵀ · scale + mask) V, with the masks, scale and softmax fused.

    ``q`` (..., Tq, D), ``k`` (..., Tk, D), ``v`` (..., Tk, Dv), same leading axes.
    ``attn_mask`` broadcastable to (..., Tq, Tk): bool, True where a query may attend to a
    key (PyTorch's ``scaled_dot_product_attention`` convention), or float, added to the
    scores (it receives a gradient when it requires one). ``key_padding_mask`` (B, Tk):
    bool, True at padding keys (or float, added), broadcast as (B, 1, ..., 1, Tk).
    ``is_causal``: query i sees keys j ≤ i (may be combined with the masks). ``scale``
    defaults to 1/√D. ``dropout_p``: inverted dropout on the probabilities, drawn from the
    engine's generator. A query whose keys are all masked gets probabilities 0 and an
    output row of 0 (never NaN). Returns ``out`` (..., Tq, Dv), or ``(out, probs)`` when
    ``need_weights`` (``probs`` (..., Tq, Tk) before dropout).
    """
    op = "scaled_dot_product_attention"
    q = _as_tensor(q, op, "q")
    k = _as_tensor(k, op, "k")
    v = _as_tensor(v, op, "v")
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_float(op, name, t)
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} needs at least 2 axes, got shape {t.shape}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{op}: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, "
                        f"{v.dtype}")
    for name, t in (("k", k), ("v", v)):
        _same_device(op, q.data, name, t.data)
    if (q.shape[:-2] != k.shape[:-2] or k.shape[:-1] != v.shape[:-1]
            or q.shape[-1] != k.shape[-1]):
        raise ValueError(f"{op}: expected q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) "
                         f"with the same leading axes, got q {q.shape}, k {k.shape}, "
                         f"v {v.shape}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must lie in [0, 1], got {dropout_p}")
    lead, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
    scores = lead + (tq, tk)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    xp = backend.array_module(q.data)
    keep = None
    bias = None
    for name, mask in (("attn_mask", attn_mask), ("key_padding_mask", key_padding_mask)):
        if mask is None:
            continue
        m = _mask_array(op, name, mask, q.data)
        if name == "key_padding_mask":
            if m.ndim != 2 or len(lead) < 1 or m.shape != (lead[0], tk):
                raise ValueError(f"{op}: key_padding_mask must be (B, Tk) = "
                                 f"{(lead[0] if lead else None, tk)}, got {tuple(m.shape)}")
            m = m.reshape((lead[0],) + (1,) * (len(lead) - 1) + (1, tk))  # (B, 1.., 1, Tk)
            if m.dtype == bool:
                m = ~m
        try:
            np.broadcast_shapes(tuple(m.shape), scores)
        except ValueError:
            raise ValueError(f"{op}: {name} of shape {tuple(m.shape)} cannot be broadcast "
                             f"to the scores {scores}") from None
        if m.dtype == bool:
            keep = m if keep is None else xp.logical_and(keep, m)
        elif m.dtype.kind == "f":
            term = mask if (isinstance(mask, Tensor) and name == "attn_mask") else \
                Tensor._make(m.astype(q.dtype, copy=False), None, 0)
            if term.dtype != q.dtype:
                raise TypeError(f"{op}: {name} is {term.dtype} but q is {q.dtype}")
            bias = term if bias is None else bias + term
        else:
            raise TypeError(f"{op}: {name} must be bool or floating point, got {m.dtype}")
    drop = None
    if dropout_p > 0.0:
        u = random.default_generator().random(scores, dtype=np.float32)
        keep_drop = u >= np.float32(dropout_p)
        factor = 0.0 if dropout_p >= 1.0 else 1.0 / (1.0 - dropout_p)
        drop = backend.to_device((keep_drop * q.dtype.type(factor)).astype(q.dtype),
                                 backend.device_of(q.data))
    params = dict(keep=keep, causal=bool(is_causal), drop=drop, scale=scale,
                  need_weights=bool(need_weights))
    impl = implementation(q.data)
    cls = reference.Attention if impl == "reference" else _fused().Attention
    return cls.apply(q, k, v, bias, **params)
