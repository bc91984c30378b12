"""Scaled dot-product attention (a fused op): the Function, its masks, and its entries.

    out = softmax(Q Kᵀ · scale + M) V

with M the mask: 0 where a query may attend to a key, -inf where it may not, or any float
added to the scores. Masks arrive in several conventions (PyTorch's
``scaled_dot_product_attention`` marks with True the pairs that take part; its
``MultiheadAttention`` marks with True the pairs, and the padding keys, that do not);
:func:`attention_masks` turns them all into the two the Function takes: ``keep`` (bool,
True = may attend) and ``bias`` (float, added). :func:`attend` draws the dropout mask and
applies the Function; :func:`scaled_dot_product_attention` is the checked entry.
"""

from __future__ import annotations

import math

import numpy as np

from engine import backend, checks, kernels, random
from engine.function import Function
from engine.kernels import reference
from engine.ops.elementwise import astype
from engine.ops.utils import sum_to
from engine.tensor import Tensor


class Attention(Function):
    """out = (P ⊙ D) V,  P = softmax(scale · Q Kᵀ + bias, masked)  (scaled dot product)

    Masked scores (``keep`` False, or j > i under ``causal``) are -inf before the softmax;
    a row with every score masked gives P = 0, not NaN. D is the dropout mask divided by
    (1 - p) (None without dropout). With P̃ = P ⊙ D:
    gV = P̃ᵀ gout;  gP = (gout Vᵀ) ⊙ D (+ the gradient of the returned P);
    gS = P ⊙ (gP - Σⱼ gPⱼ Pⱼ);  gQ = scale · gS K;  gK = scale · gSᵀ Q;  gbias = gS
    (summed over broadcast axes). The fused kernels save P and are differentiable once;
    the reference saves Q, K, V and the bias and recomputes P, so it is differentiable again.

    docs/formulas.md, the Transformer.
    """

    ctx_arrays = ("drop",)

    @staticmethod
    def forward(ctx, q, k, v, bias, keep=None, causal=False, drop=None, scale=1.0,
                need_weights=False):
        ctx.impl = kernels.select(q)
        ctx.once_differentiable = ctx.impl is not reference
        out, p, saved = ctx.impl.attention_forward(ctx.xp, q, k, v, bias, keep, causal, drop,
                                                   scale)
        ctx.causal, ctx.drop, ctx.scale = causal, drop, scale
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.save_for_backward(*saved)
        return (out, p) if need_weights else out

    @staticmethod
    def backward(ctx, gout, gp_weights=None):
        gq, gk, gv, gs = ctx.impl.attention_backward(
            ctx.xp, ctx.saved_tensors, gout, gp_weights, ctx.causal, ctx.drop, ctx.scale,
            ctx.needs_input_grad)
        gbias = sum_to(gs, ctx.bias_shape) if ctx.needs_input_grad[3] else None
        return gq, gk, gv, gbias


def attention_masks(op: str, q: Tensor, scores: tuple, attn_mask=None, key_padding_mask=None,
                    attn_mask_marks: str = "allowed"):
    """``(keep, bias)`` for the scores of shape ``scores`` (..., Tq, Tk), either None.

    ``attn_mask`` broadcasts to the scores; ``key_padding_mask`` (B, Tk) is broadcast as
    (B, 1, ..., 1, Tk). Either may be a Tensor, an array or a list, bool or float. A bool
    mask marks the pairs that take part (``attn_mask_marks='allowed'``) or those that do
    not (``'masked'``; a key-padding mask always does); this is the one place where such a
    mask is inverted, and bool masks are combined into ``keep``. Float masks are added up
    into ``bias``: a float Tensor must have the query's dtype or be float32 (PyTorch's
    "float" mask, taken to the query's dtype); an ``attn_mask`` Tensor keeps its graph (it
    may be learned). A float array or list is converted to the query's dtype.
    """
    keep = bias = None
    lead, tk = scores[:-2], scores[-1]
    for name, mask, marks in (("attn_mask", attn_mask, attn_mask_marks),
                              ("key_padding_mask", key_padding_mask, "masked")):
        if mask is None:
            continue
        m = checks.array_on(op, name, mask, q)
        if name == "key_padding_mask":
            if m.ndim != 2 or len(lead) < 1 or m.shape != (lead[0], tk):
                raise ValueError(f"{op}: expected key_padding_mask of shape "
                                 f"{(lead[0] if lead else None, tk)}, got {tuple(m.shape)}")
            m = m.reshape((lead[0],) + (1,) * (len(lead) - 1) + (1, tk))  # (B, 1.., 1, Tk)
        try:
            np.broadcast_shapes(tuple(m.shape), scores)
        except ValueError:
            raise ValueError(f"{op}: {name} of shape {tuple(m.shape)} cannot be broadcast "
                             f"to the scores {scores}") from None
        if m.dtype == np.bool_:
            allowed = m if marks == "allowed" else ~m
            keep = allowed if keep is None else backend.array_module(m).logical_and(
                keep, allowed)
        elif m.dtype.kind == "f":
            if isinstance(mask, Tensor) and m.dtype != np.float32:
                checks.dtype_of(op, name, mask, q.dtype, like="query")
            if isinstance(mask, Tensor) and name == "attn_mask":
                term = mask if mask.dtype == q.dtype else astype(mask, q.dtype)
            else:                                    # an array or a list: in q's dtype
                term = Tensor._make(m.astype(q.dtype, copy=False), None, 0)
            bias = term if bias is None else bias + term
        else:
            raise TypeError(f"{op}: only bool and floating types of {name} are supported, "
                            f"got {m.dtype}")
    return keep, bias


def attend(q: Tensor, k: Tensor, v: Tensor, keep=None, bias=None, causal: bool = False,
           dropout_p: float = 0.0, scale=None, need_weights: bool = False):
    """softmax(Q Kᵀ · scale + bias, masked) V with masks already in the form of
    :func:`attention_masks` and arguments already checked (what the entries call).

    ``scale`` defaults to 1/√D (1 for D = 0, where every score QKᵀ is an empty sum, 0).
    ``dropout_p``: inverted dropout on the probabilities, the mask drawn as ``nn.Dropout``
    draws its own (:func:`engine.random.dropout_mask`). Returns ``out``, or
    ``(out, probs)`` when ``need_weights`` (``probs`` before dropout).
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    scale = float(scale)
    drop = None
    if dropout_p > 0.0:
        scores = q.shape[:-2] + (q.shape[-2], k.shape[-2])
        drop = random.dropout_mask(scores, dropout_p, q.dtype, q.device)
    return Attention.apply(q, k, v, bias, keep=keep, causal=bool(causal), drop=drop,
                           scale=scale, need_weights=bool(need_weights))


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

    NaN: a NaN in q, k or a float mask makes NaN the rows of the scores it reaches, and
    a NaN score among the keys a query attends to makes that query's probabilities and
    output NaN; a NaN (or inf) in v reaches every output row through P V (0 · NaN =
    NaN). Masked scores never take part: a query whose keys are all masked gives 0 even
    when its scores are NaN, where PyTorch gives NaN. Every path (fused CPU and CUDA
    kernels, reference) gives the same outputs; under ``is_causal`` the CPU kernel's
    backward skips the keys a query cannot see, so a NaN reaches fewer gradient entries
    there than through the reference's full products.
    """
    op = "scaled_dot_product_attention"
    q, k, v = (checks.tensor(op, name, t) for name, t in (("q", q), ("k", k), ("v", v)))
    for name, t in (("q", q), ("k", k), ("v", v)):
        checks.floating(op, name, t)
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} needs at least 2 axes, got shape {t.shape}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{op}: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, "
                        f"{v.dtype}")
    for name, t in (("k", k), ("v", v)):
        checks.array_on(op, name, t, q)
    if (q.shape[:-2] != k.shape[:-2] or k.shape[:-1] != v.shape[:-1]
            or q.shape[-1] != k.shape[-1]):
        raise ValueError(f"{op}: expected q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) "
                         f"with the same leading axes, got q {q.shape}, k {k.shape}, "
                         f"v {v.shape}")
    checks.unit_interval(op, "dropout_p", dropout_p)
    scores = q.shape[:-2] + (q.shape[-2], k.shape[-2])
    keep, bias = attention_masks(op, q, scores, attn_mask, key_padding_mask)
    return attend(q, k, v, keep, bias, is_causal, dropout_p, scale, need_weights)
