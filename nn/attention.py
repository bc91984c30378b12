"""Multi-head attention (PyTorch's ``nn.MultiheadAttention``) and its functional forms.

Scaled dot-product attention of queries Q (L, d), keys K (S, d) and values V (S, d_v)::

    A = softmax(Q Kᵀ / √d + M) V

with M the mask: 0 where a query may look at a key, -inf where it may not, or any float
added to the scores (docs/formulas.md, the Transformer). The op is
:mod:`engine.ops.attention` (one Function: the softmax, scale and masks fused, or the
literal formula under ``engine.use_fused(False)``); the functional forms are
``nn.functional.scaled_dot_product_attention`` and
``nn.functional.multi_head_attention_forward``.

Multi-head attention projects the inputs, splits the E features into h heads of
d = E/h, attends in each head, and joins and projects the result::

    Q = query W_qᵀ + b_q,  K = key W_kᵀ + b_k,  V = value W_vᵀ + b_v
    headᵢ = softmax(Qᵢ Kᵢᵀ / √d + M) Vᵢ,   i = 1..h     (Qᵢ: the i-th block of d features)
    out = [head₁, ..., head_h] W_oᵀ + b_o

with ``in_proj_weight`` = [W_q; W_k; W_v] stacked (3E, E), ``in_proj_bias`` = [b_q; b_k;
b_v], and ``out_proj`` the Linear (W_o, b_o).

Mask conventions (these differ between PyTorch's two functions, and are kept as PyTorch's):

- ``scaled_dot_product_attention``: a bool ``attn_mask`` is True where a query MAY
  attend (``torch.nn.functional.scaled_dot_product_attention``);
- :class:`MultiheadAttention` and ``multi_head_attention_forward``: a bool ``attn_mask``
  is True where a query may NOT attend, a bool ``key_padding_mask`` (N, S) is True at
  padding keys (``torch.nn.MultiheadAttention``).

Both reach :func:`engine.ops.attention.attention_masks`, the one place where a bool mask is
inverted.

A float mask is added to the scores in both. A query whose keys are all masked attends
to nothing: its attention weights are 0 and its head outputs 0 (so the layer returns
``out_proj.bias`` there). PyTorch returns NaN for such rows; zeros keep a padded batch
trainable without NaN checks.
"""

from __future__ import annotations

import nn.functional as F
from engine.tensor import Tensor
from nn import init
from nn.functional import _keep_identity
from nn.linear import Linear
from nn.module import Module, empty_parameter

__all__ = ["MultiheadAttention"]


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
    ``nn.functional.multi_head_attention_forward`` (bool True = NOT allowed / padding).
    Returns ``(attn_output, attn_weights or None)``; see the module docstring for fully
    masked rows (zeros, where PyTorch gives NaN).
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
        out, weights = F.multi_head_attention_forward(
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
