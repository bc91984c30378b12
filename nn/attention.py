"""Multi-head attention (PyTorch's ``nn.MultiheadAttention``) and its functional forms.

Scaled dot-product attention of queries Q (L, d), keys K (S, d) and values V (S, d_v)::

    A = softmax(Q Kᵀ / √d + M) V

with M the mask: 0 where a query may look at a key, -inf where it may not, or any float
added to the scores. The softmax, scale and masks run in the fused kernel
``engine.kernels.scaled_dot_product_attention`` (its reference twin spells the formula out).

Multi-head attention projects the inputs, splits the E features into h heads of
d = E/h, attends in each head, and joins and projects the result::

    Q = query W_qᵀ + b_q,  K = key W_kᵀ + b_k,  V = value W_vᵀ + b_v
    headᵢ = softmax(Qᵢ Kᵢᵀ / √d + M) Vᵢ,   i = 1..h     (Qᵢ: the i-th block of d features)
    out = [head₁, ..., head_h] W_oᵀ + b_o

with ``in_proj_weight`` = [W_q; W_k; W_v] stacked (3E, E), ``in_proj_bias`` = [b_q; b_k;
b_v], and ``out_proj`` the Linear (W_o, b_o).

Mask conventions (these differ between PyTorch's two functions, and are kept as PyTorch's):

- :func:`scaled_dot_product_attention`: a bool ``attn_mask`` is True where a query MAY
  attend (``torch.nn.functional.scaled_dot_product_attention``);
- :class:`MultiheadAttention` and :func:`multi_head_attention_forward`: a bool
  ``attn_mask`` is True where a query may NOT attend, a bool ``key_padding_mask`` (N, S)
  is True at padding keys (``torch.nn.MultiheadAttention``).

A float mask is added to the scores in both. A query whose keys are all masked attends
to nothing: its attention weights are 0 and its head outputs 0 (so the layer returns
``out_proj.bias`` there). PyTorch returns NaN for such rows; zeros keep a padded batch
trainable without NaN checks.
"""

from __future__ import annotations

import numpy as np

import engine
import nn.functional as F
from engine import backend
from engine.kernels import scaled_dot_product_attention as _sdpa_kernel
from engine.tensor import Tensor
from nn import init
from nn.linear import Linear
from nn.module import Module, empty_parameter

__all__ = ["MultiheadAttention", "scaled_dot_product_attention",
           "multi_head_attention_forward"]


# --------------------------------------------------------------------------- functional
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
    return _sdpa_kernel(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                        is_causal=is_causal, scale=scale)


def _mask(mask, like: Tensor):
    """A mask as a Tensor (bool or float) on ``like``'s device; None stays None."""
    if mask is None or isinstance(mask, Tensor):
        return mask
    xp = backend.array_module(like.data)
    return Tensor._make(xp.asarray(mask), None, 0)


def _keep_identity(fn, query, key, value):
    """``fn`` applied to each of query, key, value, once per distinct tensor, so that
    ``query is key`` (self-attention: one packed projection) survives the change."""
    q = fn(query)
    k = q if key is query else fn(key)
    v = k if value is key else (q if value is query else fn(value))
    return q, k, v


def _check_mask(name: str, mask: Tensor, dtype) -> None:
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise TypeError(f"multi_head_attention_forward: only bool and floating types of "
                        f"{name} are supported, got {mask.dtype}")
    if mask.dtype.kind == "f" and mask.dtype != dtype:
        raise TypeError(f"multi_head_attention_forward: {name} is {mask.dtype} but the "
                        f"query is {dtype}")


def _in_projection(query, key, value, E, in_proj_weight, in_proj_bias,
                   q_proj_weight=None, k_proj_weight=None, v_proj_weight=None):
    """Q, K, V = (query, key, value) W_{q,k,v}ᵀ + b_{q,k,v}; one matmul when they are the
    same tensor (self-attention), two when only key is value."""
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = in_proj_bias[:E], in_proj_bias[E:2 * E], in_proj_bias[2 * E:]
    if q_proj_weight is not None:                       # separate weights (kdim, vdim)
        return (F.linear(query, q_proj_weight, b_q), F.linear(key, k_proj_weight, b_k),
                F.linear(value, v_proj_weight, b_v))
    W = in_proj_weight
    if query is key and key is value:
        return engine.split(F.linear(query, W, in_proj_bias), 3, axis=-1)
    q = F.linear(query, W[:E], b_q)
    if key is value:
        b_kv = None if in_proj_bias is None else in_proj_bias[E:]
        k, v = engine.split(F.linear(key, W[E:], b_kv), 2, axis=-1)
        return q, k, v
    return q, F.linear(key, W[E:2 * E], b_k), F.linear(value, W[2 * E:], b_v)


def multi_head_attention_forward(
        query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
        in_proj_weight: Tensor | None, in_proj_bias: Tensor | None, bias_k, bias_v,
        add_zero_attn: bool, dropout_p: float, out_proj_weight: Tensor,
        out_proj_bias: Tensor | None, training: bool = True, key_padding_mask=None,
        need_weights: bool = True, attn_mask=None, use_separate_proj_weight: bool = False,
        q_proj_weight=None, k_proj_weight=None, v_proj_weight=None, static_k=None,
        static_v=None, average_attn_weights: bool = True, is_causal: bool = False):
    """Multi-head attention on time-major inputs, PyTorch's ``F.multi_head_attention_forward``.

    ``query`` (L, N, E), ``key`` (S, N, E_k), ``value`` (S, N, E_v), or unbatched (L, E),
    (S, E_k), (S, E_v). ``key_padding_mask`` (N, S) (or (S,)): bool True at keys to
    ignore, or float added. ``attn_mask`` (L, S) or (N·num_heads, L, S) (or
    (num_heads, L, S) unbatched): bool True where attention is NOT allowed, or float
    added. ``is_causal`` with no ``attn_mask``: query i sees keys j ≤ i (PyTorch raises
    there instead; with an ``attn_mask`` it is only a hint and the mask is used, as
    PyTorch's weight-returning path does).

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
    batched = query.ndim == 3
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{op}: query, key and value must all be 3-D (seq, batch, feature) "
                         f"or all 2-D (unbatched), got {query.shape}, {key.shape} and "
                         f"{value.shape}")
    key_padding_mask = _mask(key_padding_mask, query)
    attn_mask = _mask(attn_mask, query)
    if not batched:      # (L, E) -> (L, 1, E); a 3-D attn_mask (h, L, S) is (N·h, L, S)
        query, key, value = _keep_identity(lambda t: t.reshape(t.shape[0], 1, t.shape[1]),
                                           query, key, value)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.reshape(1, -1)   # (S,) -> (1, S)
    L, N, E = query.shape
    S = key.shape[0]
    if E != embed_dim_to_check:
        raise ValueError(f"{op}: expected query with embed_dim {embed_dim_to_check}, got "
                         f"query of shape {query.shape}")
    if E % num_heads:
        raise ValueError(f"{op}: embed_dim {E} is not divisible by num_heads {num_heads}")
    if key.shape[:2] != (S, N) or value.shape[:2] != (S, N):
        raise ValueError(f"{op}: key {key.shape} and value {value.shape} must share "
                         f"(seq, batch) = ({S}, {N}) with batch matching query {query.shape}")
    hd = E // num_heads
    if use_separate_proj_weight:
        q, k, v = _in_projection(query, key, value, E, None, in_proj_bias,
                                 q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        q, k, v = _in_projection(query, key, value, E, in_proj_weight, in_proj_bias)
    # (T, N, E) -> (T, N, h, d) -> (N, h, T, d): each head a batch entry of the kernel
    q = q.reshape(L, N, num_heads, hd).transpose(1, 2, 0, 3)
    k = k.reshape(S, N, num_heads, hd).transpose(1, 2, 0, 3)
    v = v.reshape(S, N, num_heads, hd).transpose(1, 2, 0, 3)

    if attn_mask is not None:
        _check_mask("attn_mask", attn_mask, query.dtype)
        if attn_mask.ndim == 2:
            if attn_mask.shape != (L, S):
                raise ValueError(f"{op}: the shape of the 2-D attn_mask is {attn_mask.shape},"
                                 f" but should be {(L, S)}")
        elif attn_mask.ndim == 3:
            if attn_mask.shape != (N * num_heads, L, S):
                raise ValueError(f"{op}: the shape of the 3-D attn_mask is {attn_mask.shape},"
                                 f" but should be {(N * num_heads, L, S)}")
            attn_mask = attn_mask.reshape(N, num_heads, L, S)
        else:
            raise ValueError(f"{op}: attn_mask must be 2-D or 3-D, got {attn_mask.shape}")
        if attn_mask.dtype == np.bool_:   # True = not allowed -> the kernel's True = allowed
            attn_mask = engine.logical_not(attn_mask)
        is_causal = False                 # the mask is what counts; the flag is a hint
    if key_padding_mask is not None:
        _check_mask("key_padding_mask", key_padding_mask, query.dtype)
        if key_padding_mask.shape != (N, S):
            raise ValueError(f"{op}: expected key_padding_mask of shape {(N, S)}, got "
                             f"{key_padding_mask.shape}")
    res = _sdpa_kernel(q, k, v, attn_mask=attn_mask,
                       dropout_p=dropout_p if training else 0.0, is_causal=is_causal,
                       key_padding_mask=key_padding_mask, need_weights=need_weights)
    out, weights = res if need_weights else (res, None)
    out = out.transpose(2, 0, 1, 3).reshape(L, N, E)        # (N, h, L, d) -> (L, N, E)
    out = F.linear(out, out_proj_weight, out_proj_bias)
    if weights is not None and average_attn_weights:
        weights = weights.mean(axis=1)                       # (N, h, L, S) -> (N, L, S)
    if not batched:
        out = out.reshape(L, E)
        if weights is not None:
            weights = weights.reshape(weights.shape[1:])
    return out, weights


# --------------------------------------------------------------------------- module
class MultiheadAttention(Module):
    """Multi-head attention with PyTorch's parameters, defaults and initialization.

    Parameters: ``in_proj_weight`` (3E, E) holding W_q, W_k, W_v stacked (or, when
    ``kdim``/``vdim`` differ from E, ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim),
    ``v_proj_weight`` (E, vdim)), ``in_proj_bias`` (3E), ``out_proj.weight`` (E, E),
    ``out_proj.bias`` (E). Initialization as PyTorch: Xavier-uniform in-projection, zero
    biases, ``out_proj.weight`` as a Linear's.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` with inputs (L, N, E) or, with
    ``batch_first``, (N, L, E), or unbatched (L, E); masks as
    :func:`multi_head_attention_forward` (bool True = NOT allowed / padding). Returns
    ``(attn_output, attn_weights or None)``; see the module docstring for fully masked
    rows (zeros, where PyTorch gives NaN).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 bias: bool = True, add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, "
                             f"got {embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible "
                             f"by num_heads {num_heads}")
        if add_bias_kv or add_zero_attn:
            raise ValueError("MultiheadAttention: add_bias_kv=True and add_zero_attn=True "
                             "are not supported (they append learned or zero key/value "
                             "rows); concatenate such rows to key and value yourself")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must lie in [0, 1], got {dropout}")
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty_parameter((3 * embed_dim, embed_dim), dtype)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = empty_parameter((embed_dim, embed_dim), dtype)
            self.k_proj_weight = empty_parameter((embed_dim, self.kdim), dtype)
            self.v_proj_weight = empty_parameter((embed_dim, self.vdim), dtype)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = empty_parameter((3 * embed_dim,), dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self._reset_parameters()
        if device is not None:
            self.to(device)

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None,
                need_weights: bool = True, attn_mask=None, average_attn_weights: bool = True,
                is_causal: bool = False):
        if self.batch_first and query.ndim == 3:
            q, k, v = _keep_identity(lambda t: t.swapaxes(0, 1), query, key, value)
        else:
            q, k, v = query, key, value
        out, weights = multi_head_attention_forward(
            q, k, v, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            None, None, False, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, average_attn_weights=average_attn_weights,
            is_causal=is_causal)
        if self.batch_first and query.ndim == 3:
            out = out.swapaxes(0, 1)                                  # (L, N, E) -> (N, L, E)
        return out, weights

    def extra_repr(self) -> str:
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if not self._qkv_same_embed_dim:
            s += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.batch_first:
            s += ", batch_first=True"
        return s

