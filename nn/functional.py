"""The stateless form of every layer, with PyTorch's names and arguments (``dim``, not
``axis``): ``import nn.functional as F; F.linear(x, W, b)``.

Each function handles PyTorch's signature and makes one call to the engine, where the op
lives (:mod:`engine.ops`: its Function, formula and checks); a function whose signature is
PyTorch's already is the engine's own. Multi-head attention composes engine ops: the
projections, the attention of :mod:`engine.ops.attention`, the output projection. The
losses (``F.cross_entropy``, ``F.mse_loss``, ...) are the functions of :mod:`losses`.
"""

from __future__ import annotations

import warnings

import numpy as np

import engine
from engine import backend, random
from engine.ops.activation import relu, sigmoid, tanh
from engine.ops.attention import attend, attention_masks
from engine.ops.conv import conv2d
from engine.ops.embedding import Embedding, embedding  # noqa: F401  (the Function's old home)
from engine.ops.linalg import Linear, linear  # noqa: F401
from engine.ops.norm import BatchNorm, batch_norm, layer_norm  # noqa: F401
from engine.ops.pool import avg_pool2d, max_pool2d
from engine.ops.utils import numpy_names
from engine.tensor import Tensor
from losses.classification import (  # noqa: F401  (PyTorch's F.cross_entropy, ...)
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, nll_loss,
)
from losses.regression import huber_loss, l1_loss, mse_loss, smooth_l1_loss  # noqa: F401

__all__ = [
    "linear", "relu", "gelu", "tanh", "sigmoid", "leaky_relu", "softmax", "log_softmax",
    "dropout", "embedding", "layer_norm", "batch_norm", "conv2d", "max_pool2d",
    "avg_pool2d", "flatten", "pad", "scaled_dot_product_attention",
    "multi_head_attention_forward",
]


# ----------------------------------------------------------------------------- activations
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x·Φ(x) (exact, erf) or its tanh approximation (``approximate='tanh'``)."""
    return engine.gelu(input, approximate=approximate)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope·x."""
    return engine.leaky_relu(input, negative_slope)


def _implicit_softmax_dim(ndim: int, op: str) -> int:
    warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the "
                  "call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


@numpy_names
def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """e^(xᵢ) / Σⱼ e^(xⱼ) along ``dim`` (with dim=None PyTorch's legacy choice: 0 for 0-,
    1- and 3-d inputs, else 1, with a warning)."""
    if dim is None:
        dim = _implicit_softmax_dim(input.ndim, "softmax")
    return engine.softmax(input, dim)


@numpy_names
def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """xᵢ - log Σⱼ e^(xⱼ) along ``dim`` (dim=None as in :func:`softmax`)."""
    if dim is None:
        dim = _implicit_softmax_dim(input.ndim, "log_softmax")
    return engine.log_softmax(input, dim)


# ----------------------------------------------------------------------------- dropout
def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: y = x ⊙ m / (1 - p),  mᵢ ~ Bernoulli(1 - p);  gx = gy ⊙ m / (1 - p)
    (docs/formulas.md, F13 regularization).

    E[y] = x, so evaluation (``training=False``) is the identity. The mask comes from
    :func:`engine.random.dropout_mask`, drawn on the data's device (same seed, same mask
    there); p = 1 gives zeros.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    mask = random.dropout_mask(input.shape, p, input.dtype, input.device)
    return input * Tensor._make(mask, None, 0)


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
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(Q Kᵀ · scale + M) V over the last two axes (PyTorch's functional form).

    ``query`` (..., L, d), ``key`` (..., S, d), ``value`` (..., S, d_v). ``attn_mask``
    broadcastable to (..., L, S): bool, True where a query takes part in attention with a
    key, or float, added to the scores. ``is_causal``: query i sees keys j ≤ i. ``scale``
    defaults to 1/√d. ``dropout_p`` drops attention probabilities (always, as PyTorch's
    function: pass 0 in evaluation). Fully masked rows give 0, not NaN.
    """
    return engine.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                               dropout_p=dropout_p, is_causal=is_causal,
                                               scale=scale)


def multi_head_attention_forward(
        query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
        in_proj_weight: Tensor | None, in_proj_bias: Tensor | None, bias_k, bias_v,
        add_zero_attn: bool, dropout_p: float, out_proj_weight: Tensor,
        out_proj_bias: Tensor | None, training: bool = True, key_padding_mask=None,
        need_weights: bool = True, attn_mask=None, use_separate_proj_weight: bool = False,
        q_proj_weight=None, k_proj_weight=None, v_proj_weight=None, static_k=None,
        static_v=None, average_attn_weights: bool = True, is_causal: bool = False):
    """Multi-head attention on time-major inputs, PyTorch's ``F.multi_head_attention_forward``::

        Q, K, V = query W_qᵀ + b_q,  key W_kᵀ + b_k,  value W_vᵀ + b_v
        headᵢ = softmax(Qᵢ Kᵢᵀ / √d + M) Vᵢ        (Qᵢ: the i-th block of d = E/h features)
        out = [head₁, ..., head_h] W_oᵀ + b_o

    ``query`` (L, N, E), ``key`` (S, N, E_k), ``value`` (S, N, E_v), or unbatched (L, E),
    (S, E_k), (S, E_v). ``in_proj_weight`` = [W_q; W_k; W_v] (3E, E) (or the three
    ``*_proj_weight`` with ``use_separate_proj_weight``), ``in_proj_bias`` = [b_q; b_k;
    b_v]. ``key_padding_mask`` (N, S) (or (S,)): bool True at keys to ignore, or float
    added. ``attn_mask`` (L, S) or (N·num_heads, L, S) (or (num_heads, L, S) unbatched):
    bool True where attention is NOT allowed, or float added. Masks given as arrays or
    lists are taken to the query's device. ``is_causal`` with no ``attn_mask``: query i
    sees keys j ≤ i (PyTorch raises there instead; with an ``attn_mask`` it is only a hint
    and the mask is used, as PyTorch's weight-returning path does).

    Returns ``(attn_output (L, N, E), attn_weights)``; the weights are (N, L, S) averaged
    over heads, (N, num_heads, L, S) when not ``average_attn_weights``, or None when not
    ``need_weights``. They are the probabilities before dropout (PyTorch returns them
    after dropout).
    """
    op = "multi_head_attention_forward"
    if bias_k is not None or bias_v is not None or add_zero_attn:
        raise ValueError(f"{op}: add_bias_kv (bias_k, bias_v) and add_zero_attn are not "
                         "supported; build the extra key/value rows explicitly instead")
    if static_k is not None or static_v is not None:
        raise ValueError(f"{op}: static_k and static_v are not supported")
    batched = _check_attention_inputs(op, query, key, value, embed_dim_to_check, num_heads)
    if not batched:                                      # (T, E) -> (T, 1, E)
        query, key, value = _keep_identity(lambda t: t.reshape(t.shape[0], 1, t.shape[1]),
                                           query, key, value)
    L, N, E = query.shape
    S, h = key.shape[0], num_heads
    keep, bias = _head_masks(op, query, (N, h, L, S), attn_mask, key_padding_mask, batched)
    is_causal = is_causal and attn_mask is None          # with a mask, the flag is a hint
    if use_separate_proj_weight:
        in_proj_weight = (q_proj_weight, k_proj_weight, v_proj_weight)
    # Q, K, V = query W_qᵀ + b_q,  key W_kᵀ + b_k,  value W_vᵀ + b_v
    q, k, v = _in_projection(query, key, value, E, in_proj_weight, in_proj_bias)
    # headᵢ = softmax(Qᵢ Kᵢᵀ / √d + M) Vᵢ, every head a batch entry: (N, h, T, d)
    res = attend(_split_heads(q, h), _split_heads(k, h), _split_heads(v, h), keep, bias,
                 is_causal, dropout_p if training else 0.0, need_weights=need_weights)
    heads, weights = res if need_weights else (res, None)
    # out = [head₁, ..., head_h] W_oᵀ + b_o,  (L, N, E)
    out = linear(_merge_heads(heads), out_proj_weight, out_proj_bias)
    if weights is not None and average_attn_weights:
        weights = weights.mean(dim=1)                    # (N, h, L, S) -> (N, L, S)
    if not batched:
        out = out.reshape(L, E)
        weights = None if weights is None else weights.reshape(weights.shape[1:])
    return out, weights


def _check_attention_inputs(op: str, query, key, value, embed_dim: int, num_heads: int):
    """Shapes of query (L, N, E), key (S, N, E_k), value (S, N, E_v), or all unbatched;
    returns whether they are batched."""
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{op}: query, key and value must all be 3-D (seq, batch, feature) "
                         f"or all 2-D (unbatched), got {query.shape}, {key.shape} and "
                         f"{value.shape}")
    batched = query.ndim == 3
    E = query.shape[-1]
    if E != embed_dim:
        raise ValueError(f"{op}: expected query with embed_dim {embed_dim}, got query of "
                         f"shape {query.shape}")
    if E % num_heads:
        raise ValueError(f"{op}: embed_dim {E} is not divisible by num_heads {num_heads}")
    lead = key.shape[:2] if batched else key.shape[:1]
    if key.shape[:-1] != lead or value.shape[:-1] != lead or \
            (batched and key.shape[1] != query.shape[1]):
        raise ValueError(f"{op}: key {key.shape} and value {value.shape} must share "
                         f"(seq, batch) = {lead} with batch matching query {query.shape}")
    return batched


def _keep_identity(fn, query, key, value):
    """``fn`` applied to each of query, key, value, once per distinct tensor, so that
    ``query is key`` (self-attention: one packed projection) survives the change."""
    q = fn(query)
    k = q if key is query else fn(key)
    v = k if value is key else (q if value is query else fn(value))
    return q, k, v


def _head_masks(op: str, query: Tensor, scores: tuple, attn_mask, key_padding_mask,
                batched: bool):
    """``(keep, bias)`` over the scores (N, h, L, S) from MultiheadAttention's masks (bool
    True = NOT allowed / padding), taken to the query's device first."""
    N, h, L, S = scores
    key_padding_mask, attn_mask = (_on_device(m, query) for m in (key_padding_mask, attn_mask))
    if key_padding_mask is not None and not batched:
        key_padding_mask = key_padding_mask.reshape(1, -1)            # (S,) -> (1, S)
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if attn_mask.shape != (L, S):
                raise ValueError(f"{op}: the shape of the 2-D attn_mask is "
                                 f"{attn_mask.shape}, but should be {(L, S)}")
        elif attn_mask.ndim == 3:
            if attn_mask.shape != (N * h, L, S):
                raise ValueError(f"{op}: the shape of the 3-D attn_mask is "
                                 f"{attn_mask.shape}, but should be {(N * h, L, S)}")
            attn_mask = attn_mask.reshape(N, h, L, S)
        else:
            raise ValueError(f"{op}: attn_mask must be 2-D or 3-D, got {attn_mask.shape}")
    return attention_masks(op, query, scores, attn_mask, key_padding_mask,
                           attn_mask_marks="masked")


def _on_device(mask, like: Tensor):
    """A mask as a Tensor on ``like``'s device: host arrays and lists are copied there, so
    a layer on the GPU takes a mask built with NumPy. None stays None."""
    if mask is None or isinstance(mask, Tensor):
        return mask
    return Tensor._make(backend.array_module(like.data).asarray(mask), None, 0)


def _in_projection(query, key, value, E: int, weight, bias):
    """Q, K, V = (query, key, value) W_{q,k,v}ᵀ + b_{q,k,v}, with ``weight`` the stacked
    [W_q; W_k; W_v] (3E, E), or three separate weights (key and value of other widths):
    one matmul when query, key and value are one tensor (self-attention), two when only
    key is value."""
    b_q = b_k = b_v = None
    if bias is not None:
        b_q, b_k, b_v = bias[:E], bias[E:2 * E], bias[2 * E:]
    if isinstance(weight, tuple):
        return (linear(query, weight[0], b_q), linear(key, weight[1], b_k),
                linear(value, weight[2], b_v))
    if query is key and key is value:
        return engine.chunk(linear(query, weight, bias), 3, dim=-1)
    q = linear(query, weight[:E], b_q)
    if key is value:
        kv = linear(key, weight[E:], None if bias is None else bias[E:])
        return (q,) + engine.chunk(kv, 2, dim=-1)
    return q, linear(key, weight[E:2 * E], b_k), linear(value, weight[2 * E:], b_v)


def _split_heads(x: Tensor, h: int) -> Tensor:
    """(T, N, E) -> (N, h, T, d): each head a batch entry of the attention."""
    T, N, E = x.shape
    return x.reshape(T, N, h, E // h).permute(1, 2, 0, 3)


def _merge_heads(x: Tensor) -> Tensor:
    """(N, h, T, d) -> (T, N, h·d): the heads side by side again."""
    N, h, T, d = x.shape
    return x.permute(2, 0, 1, 3).reshape(T, N, h * d)
