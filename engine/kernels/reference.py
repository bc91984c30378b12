"""The reference implementation of the fused ops: each formula written literally in array code.

The oracle the Numba kernels are tested against, and what ``engine.use_fused(False)`` runs.
Every function takes the array module ``xp`` first and works on NumPy and CuPy arrays alike.
The forwards of cross-entropy, layer norm and attention also return what their backward
needs (``saved``); here that is the op's inputs, and every backward recomputes its
intermediates from them with ``xp`` functions, so that under ``create_graph=True`` (``xp``
the Tensor namespace, the saved inputs Tensors) the same formula runs on Tensors and is
differentiated again (softmax saves its output, a function of the input). The formulas and
where the classic texts get them wrong: docs/formulas.md. At the end, the helpers that bring
arrays to the layouts the CPU and CUDA kernels work on (rows along one axis, attention
grouped by head), for both.
"""

from __future__ import annotations

import math

from engine import backend


# ---------------------------------------------------------------- softmax, log-softmax
def log_softmax(xp, x, axis: int):
    """x - m - log Σ exp(x - m) along ``axis``, m the max (arrays or Tensors)."""
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_forward(xp, x, axis: int, log: bool):
    """yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m), m = maxⱼ xⱼ (or its log, xᵢ - m - log Σⱼ ...)."""
    if x.size == 0:                     # an empty result, also over an empty axis
        return xp.empty_like(x)
    if log:
        return log_softmax(xp, x, axis)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(xp, y, gy, axis: int, log: bool):
    """softmax: gx = y ⊙ (gy - Σⱼ gyⱼ yⱼ) (the Jacobian diag(y) - y yᵀ applied to gy);
    log-softmax: gx = gy - exp(y) ⊙ Σⱼ gyⱼ (softmax = exp(y))."""
    if log:
        return gy - xp.exp(y) * gy.sum(axis=axis, keepdims=True)
    return y * (gy - (gy * y).sum(axis=axis, keepdims=True))


# ---------------------------------------------------------------- cross-entropy
def cross_entropy_forward(xp, x, target, ignore_index: int, smoothing: float):
    """Per-row losses of logits x (N, C) at class indices t (N,), label smoothing ε:

    log pᵢ = log_softmax(xᵢ);  ℓᵢ = -(1 - ε) log pᵢ,tᵢ - (ε / C) Σ_c log pᵢc
    (0 where tᵢ is ``ignore_index``). Returns ℓ (N,) and ``(x,)``.
    """
    c = x.shape[1]
    valid = target != ignore_index
    logp = log_softmax(xp, x, 1)
    picked = xp.take_along_axis(logp, xp.where(valid, target, 0)[:, None], axis=1)[:, 0]
    loss = -(1.0 - smoothing) * picked
    if smoothing:
        loss = loss - (smoothing / c) * logp.sum(axis=1)
    return xp.where(valid, loss, x.dtype.type(0)), (x,)


def target_distribution(target, num_classes: int, dtype, ignore_index: int,
                        smoothing: float):
    """wᵢ = ((1 - ε) onehot(tᵢ) + ε / C) · [tᵢ ≠ ignore_index], (N, C): the loss is
    ℓᵢ = -⟨wᵢ, log pᵢ⟩. An array of the target's module (a constant, also under
    ``create_graph``)."""
    xp = backend.array_module(target)
    valid = target != ignore_index
    w = xp.zeros((target.shape[0], num_classes), dtype=dtype)
    rows = xp.arange(target.shape[0])
    w[rows[valid], target[valid]] = 1.0 - smoothing
    w += smoothing / num_classes
    w *= valid[:, None]
    return w


def cross_entropy_backward(xp, saved, target, g, ignore_index: int, smoothing: float):
    """gxᵢ = gᵢ · (pᵢ Σ_c wᵢc - wᵢ) (softmax minus target, the classic "ŷ - y"), with
    wᵢ from :func:`target_distribution` and g the upstream gradient of ℓ, (N,) or one
    value for every row."""
    (x,) = saved
    w = target_distribution(target, x.shape[1], x.dtype, ignore_index, smoothing)
    p = xp.exp(log_softmax(xp, x, 1))
    return (p * w.sum(axis=1, keepdims=True) - w) * g.reshape(g.shape + (1,))


# ---------------------------------------------------------------- layer norm
def layer_norm_stats(xp, x, axes: tuple, eps: float):
    """μ = mean(x), rstd = 1 / √(mean((x - μ)²) + eps), x̂ = (x - μ) · rstd over ``axes``."""
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    return mean, rstd, xc * rstd


def layer_norm_forward(xp, x, weight, bias, n_axes: int, eps: float):
    """y = x̂ ⊙ γ + β,  x̂ = (x - μ) / √(σ² + eps), μ and σ² (biased) over the last
    ``n_axes`` axes; γ, β (the normalized shape) or None. Returns y and ``(x, γ)``."""
    if x.size == 0:                     # nothing to normalize (and no mean of nothing)
        return xp.empty_like(x), (x, weight)
    _, _, xhat = layer_norm_stats(xp, x, tuple(range(x.ndim - n_axes, x.ndim)), eps)
    y = xhat
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, (x, weight)


def layer_norm_backward(xp, saved, gy, n_axes: int, eps: float, needs: tuple):
    """g_x̂ = gy ⊙ γ;  gx = rstd · (g_x̂ - mean(g_x̂) - x̂ ⊙ mean(g_x̂ ⊙ x̂));
    gγ = Σ_rows gy ⊙ x̂;  gβ = Σ_rows gy  (None where ``needs`` is False)."""
    x, weight = saved
    axes = tuple(range(x.ndim - n_axes, x.ndim))
    lead = tuple(range(x.ndim - n_axes))
    if x.size == 0:                     # empty gradients, or sums of nothing: zeros
        return (gy * 0.0, (gy * 0.0).sum(axis=lead) if needs[1] else None,
                gy.sum(axis=lead) if needs[2] else None)
    _, rstd, xhat = layer_norm_stats(xp, x, axes, eps)
    g_xhat = gy * weight if weight is not None else gy
    gx = rstd * (g_xhat - g_xhat.mean(axis=axes, keepdims=True)
                 - xhat * (g_xhat * xhat).mean(axis=axes, keepdims=True))
    gw = (gy * xhat).sum(axis=lead) if needs[1] else None
    gb = gy.sum(axis=lead) if needs[2] else None
    return gx, gw, gb


# ---------------------------------------------------------------- attention
def attention_allowed(xp, keep, causal: bool, tq: int, tk: int):
    """Where a query may attend: ``keep`` (bool, or None for everywhere), and under
    ``causal`` only keys j ≤ i (top-left aligned, as PyTorch)."""
    if not causal:
        return keep
    tril = xp.arange(tk)[None, :] <= xp.arange(tq)[:, None]
    return tril if keep is None else keep & tril


def attention_probs(xp, q, k, bias, allowed, scale: float):
    """P = softmax(S) with S = scale · Q Kᵀ + bias, entries not ``allowed`` at -inf.

    A row with every entry masked gives P = 0 (no NaN): its max is taken as 0, so every
    exp(S - m) is 0, and the normalizer 0 is replaced by 1. A NaN among the entries that
    take part makes the whole row NaN (its normalizer is NaN), as in softmax.
    """
    s = (q @ k.swapaxes(-1, -2)) * scale
    if bias is not None:
        s = s + bias
    if s.shape[-1] == 0:                # no keys: empty rows of P, and P V = 0
        return s
    if allowed is not None:
        s = xp.where(allowed, s, float("-inf"))
    m = xp.max(s, axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    e = xp.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return e / xp.where(z == 0, 1.0, z)


def attention_forward(xp, q, k, v, bias, keep, causal: bool, drop, scale: float):
    """out = (P ⊙ D) V,  P = softmax(scale · Q Kᵀ + bias, masked)  (scaled dot product)

    q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv); ``bias`` (float) and ``keep`` (bool,
    True = may attend) broadcast to the scores (..., Tq, Tk), or None; D the dropout mask
    already divided by (1 - p), or None. Masked scores (``keep`` False, or j > i under
    ``causal``) are -inf before the softmax. Returns out, P and ``(q, k, v, bias, allowed)``.
    """
    allowed = attention_allowed(xp, keep, causal, q.shape[-2], k.shape[-2])
    p = attention_probs(xp, q, k, bias, allowed, scale)
    pd = p * drop if drop is not None else p
    return pd @ v, p, (q, k, v, bias, allowed)


def attention_backward(xp, saved, gout, gp_weights, causal: bool, drop, scale: float,
                       needs: tuple):
    """With P̃ = P ⊙ D:  gV = P̃ᵀ gout;  gP = (gout Vᵀ) ⊙ D (+ the gradient of the returned
    P);  gS = P ⊙ (gP - Σⱼ gPⱼ Pⱼ);  gQ = scale · gS K;  gK = scale · gSᵀ Q.
    Returns gq, gk, gv (None where ``needs`` is False) and gS, the gradient of the scores
    (of the bias before it is summed over broadcast axes)."""
    q, k, v, bias, allowed = saved
    p = attention_probs(xp, q, k, bias, allowed, scale)
    pd = p * drop if drop is not None else p
    gv = pd.swapaxes(-1, -2) @ gout if needs[2] else None
    gp = gout @ v.swapaxes(-1, -2)
    if drop is not None:
        gp = gp * drop
    if gp_weights is not None:
        gp = gp + gp_weights
    gs = p * (gp - (gp * p).sum(axis=-1, keepdims=True))
    gq = (gs @ k) * scale if needs[0] else None
    gk = (gs.swapaxes(-1, -2) @ q) * scale if needs[1] else None
    return gq, gk, gv, gs


# ---------------------------------------------------------------- layouts of the kernels
# How the CPU and CUDA kernels see their arrays: C-contiguous 2-D rows (softmax,
# cross-entropy, layer norm) and attention arrays of four axes (G, H, T, ·). These bring an
# op's arrays to that layout and back, copying only what is not already laid out so.
def rows(xp, x, axis: int):
    """x with ``axis`` moved last, as C-contiguous rows (N, C)."""
    if axis != x.ndim - 1:
        x = xp.moveaxis(x, axis, -1)
    return xp.ascontiguousarray(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])


def unrows(xp, y, shape: tuple, axis: int):
    """Inverse of :func:`rows`: rows back to ``shape`` with the last axis at ``axis``."""
    moved = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    y = y.reshape(moved)
    return y if axis == len(shape) - 1 else xp.moveaxis(y, -1, axis)


def last_axes_rows(xp, x, n_axes: int):
    """x as C-contiguous rows (N, K) over its last ``n_axes`` axes (K their product)."""
    lead = x.ndim - n_axes
    return xp.ascontiguousarray(x).reshape(math.prod(x.shape[:lead]),
                                           math.prod(x.shape[lead:]))


def group_shape(lead: tuple, tq: int, tk: int) -> tuple:
    """(G, H, Tq, Tk): the leading axes folded into G = lead[0] and H = the rest, so that a
    (B, 1, ..., 1, Tk) key-padding mask stays a view (stride 0 over H)."""
    g = lead[0] if lead else 1
    return (g, math.prod(lead[1:]), tq, tk)


def grouped(xp, a, lead: tuple, tq: int, tk: int):
    """``a`` broadcast to lead + (Tq, Tk), viewed as (G, H, Tq, Tk) (None stays None)."""
    if a is None:
        return None
    return xp.broadcast_to(a, lead + (tq, tk)).reshape(group_shape(lead, tq, tk))


def heads(xp, a, g: int, h: int):
    """(..., T, D) -> (G, H, T, D), C-contiguous."""
    return xp.ascontiguousarray(a).reshape((g, h) + a.shape[-2:])
