"""The reference forms of the fused ops: each formula written literally in array code.

These are the oracle the Numba kernels are tested against and what ``engine.use_fused(False)``
runs. They work on NumPy and CuPy arrays alike (``ctx.xp``), and every backward recomputes
what it needs from the saved inputs and outputs with ``ctx.xp`` functions, so under
``create_graph=True`` the same formula runs on Tensors and is differentiated again.
"""

from __future__ import annotations

from engine.function import Function
from engine.ops.utils import normalize_axis, sum_to


# ---------------------------------------------------------------- softmax, log-softmax
class Softmax(Function):
    """yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = y ⊙ (gy - Σⱼ gyⱼ yⱼ)   (the Jacobian diag(y) - y yᵀ applied to gy)
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        ctx.axis = normalize_axis(axis, x.ndim, "softmax")
        e = xp.exp(x - x.max(axis=ctx.axis, keepdims=True))
        y = e / e.sum(axis=ctx.axis, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return softmax_backward(y, gy, ctx.axis)


class LogSoftmax(Function):
    """yᵢ = xᵢ - m - log Σⱼ exp(xⱼ - m),  m = maxⱼ xⱼ

    gx = gy - exp(y) ⊙ Σⱼ gyⱼ   (softmax = exp(y))
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = normalize_axis(axis, x.ndim, "log_softmax")
        y = log_softmax_array(ctx.xp, x, ctx.axis)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return log_softmax_backward(ctx.xp, y, gy, ctx.axis)


def log_softmax_array(xp, x, axis: int):
    """x - m - log Σ exp(x - m) along ``axis`` (arrays or Tensors)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_backward(y, gy, axis: int):
    """gx = y ⊙ (gy - Σ gy y)."""
    return y * (gy - (gy * y).sum(axis=axis, keepdims=True))


def log_softmax_backward(xp, y, gy, axis: int):
    """gx = gy - exp(y) ⊙ Σ gy."""
    return gy - xp.exp(y) * gy.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------- cross-entropy
def cross_entropy_weights(xp, target, num_classes: int, dtype, ignore_index: int,
                          label_smoothing: float, reduction: str):
    """The target distribution w (N, C), scaled by the reduction, and the valid-row count.

    wᵢ = ((1 - ε) onehot(tᵢ) + ε / C) · [tᵢ ≠ ignore_index] · r,  r = 1/n_valid for 'mean'
    (1 otherwise), so that the loss is Σᵢ -⟨wᵢ, log pᵢ⟩ and its gradient pᵢ Σ_c wᵢc - wᵢ.
    """
    valid = target != ignore_index
    n_valid = int(valid.sum())
    w = xp.zeros((target.shape[0], num_classes), dtype=dtype)
    rows = xp.arange(target.shape[0])
    w[rows[valid], target[valid]] = 1.0 - label_smoothing
    w += label_smoothing / num_classes
    w *= valid[:, None]
    if reduction == "mean" and n_valid:     # every row ignored: loss NaN, gradient 0
        w *= 1.0 / n_valid
    return w, valid, n_valid


class CrossEntropy(Function):
    """Cross-entropy of logits x (N, C) with class indices t (N,), label smoothing ε.

    log pᵢ = log_softmax(xᵢ);  ℓᵢ = -(1 - ε) log pᵢ,tᵢ - (ε / C) Σ_c log pᵢc  (0 where tᵢ is
    ignore_index); 'mean' divides Σᵢ ℓᵢ by the number of rows not ignored.

    With wᵢ the target distribution above (see ``cross_entropy_weights``):
    gxᵢ = gℓᵢ · (pᵢ Σ_c wᵢc - wᵢ)   (softmax minus target, the classic "ŷ - y")
    """

    @staticmethod
    def forward(ctx, x, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        xp = ctx.xp
        n, c = x.shape
        w, valid, n_valid = cross_entropy_weights(
            xp, target, c, x.dtype, ignore_index, label_smoothing, reduction)
        logp = log_softmax_array(xp, x, 1)
        picked = xp.take_along_axis(logp, xp.where(valid, target, 0)[:, None], axis=1)[:, 0]
        loss = -(1.0 - label_smoothing) * picked
        if label_smoothing:
            loss = loss - (label_smoothing / c) * logp.sum(axis=1)
        loss = xp.where(valid, loss, x.dtype.type(0))
        ctx.weights = w
        ctx.reduction = reduction
        ctx.save_for_backward(x)
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "mean":
            total = total / x.dtype.type(n_valid) if n_valid else x.dtype.type("nan")
        return xp.asarray(total, dtype=x.dtype)

    @staticmethod
    def backward(ctx, gl):
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        w = ctx.weights
        p = xp.exp(log_softmax_array(xp, x, 1))
        g = gl.reshape(gl.shape + (1,)) if ctx.reduction == "none" else gl
        gx = (p * w.sum(axis=1, keepdims=True) - w) * g
        return gx, None


# ---------------------------------------------------------------- layer norm
def layer_norm_stats(xp, x, axes: tuple, eps: float):
    """μ = mean(x), rstd = 1 / √(mean((x - μ)²) + eps), x̂ = (x - μ) · rstd over ``axes``."""
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    return mean, rstd, xc * rstd


class LayerNorm(Function):
    """y = x̂ ⊙ γ + β,  x̂ = (x - μ) / √(σ² + eps), μ and σ² (biased) over the last axes.

    g_x̂ = gy ⊙ γ;  gx = rstd · (g_x̂ - mean(g_x̂) - x̂ ⊙ mean(g_x̂ ⊙ x̂));
    gγ = Σ_rows gy ⊙ x̂;  gβ = Σ_rows gy
    """

    @staticmethod
    def forward(ctx, x, weight, bias, n_axes=1, eps=1e-5):
        xp = ctx.xp
        ctx.axes = tuple(range(x.ndim - n_axes, x.ndim))
        ctx.eps = eps
        _, _, xhat = layer_norm_stats(xp, x, ctx.axes, eps)
        y = xhat
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        axes = ctx.axes
        _, rstd, xhat = layer_norm_stats(ctx.xp, x, axes, ctx.eps)
        lead = tuple(range(x.ndim - len(axes)))
        g_xhat = gy * weight if weight is not None else gy
        gx = rstd * (g_xhat - g_xhat.mean(axis=axes, keepdims=True)
                     - xhat * (g_xhat * xhat).mean(axis=axes, keepdims=True))
        gw = (gy * xhat).sum(axis=lead) if ctx.needs_input_grad[1] else None
        gb = gy.sum(axis=lead) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


# ---------------------------------------------------------------- attention
def attention_probs(xp, q, k, bias, allowed, scale: float):
    """P = softmax(S) with S = scale · Q Kᵀ + bias, entries not ``allowed`` at -inf.

    A row with every entry masked gives P = 0 (no NaN): its max is taken as 0, so every
    exp(S - m) is 0, and the normalizer 0 is replaced by 1.
    """
    s = (q @ k.swapaxes(-1, -2)) * scale
    if bias is not None:
        s = s + bias
    if allowed is not None:
        s = xp.where(allowed, s, float("-inf"))
    m = s.max(axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    e = xp.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return e / xp.where(z > 0, z, 1.0)


class Attention(Function):
    """out = dropout(P) V,  P = softmax(scale · Q Kᵀ + bias, masked)  (scaled dot product)

    Masked scores (``keep`` False, or j > i under ``causal``) are -inf before the softmax;
    a row with every score masked gives P = 0 (see :func:`attention_probs`).
    With D the dropout mask already divided by (1 - p) (all ones without dropout),
    P̃ = P ⊙ D:  gV = P̃ᵀ gout;  gP = (gout Vᵀ) ⊙ D (+ the gradient of the returned P);
    gS = P ⊙ (gP - Σⱼ gPⱼ Pⱼ);  gQ = scale · gS K;  gK = scale · gSᵀ Q;  gbias = gS
    (summed over broadcast axes).
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, keep=None, causal=False, drop=None, scale=1.0,
                need_weights=False):
        xp = ctx.xp
        allowed = keep
        if causal:      # query i attends to keys j <= i (top-left aligned, as PyTorch)
            tq, tk = q.shape[-2], k.shape[-2]
            tril = xp.arange(tk)[None, :] <= xp.arange(tq)[:, None]
            allowed = tril if keep is None else keep & tril
        p = attention_probs(xp, q, k, bias, allowed, scale)
        pd = p * drop if drop is not None else p
        out = pd @ v
        ctx.allowed, ctx.drop, ctx.scale = allowed, drop, scale
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.save_for_backward(q, k, v, bias)
        return (out, p) if need_weights else out

    @staticmethod
    def backward(ctx, gout, gp_weights=None):
        q, k, v, bias = ctx.saved_tensors
        xp, scale, drop = ctx.xp, ctx.scale, ctx.drop
        p = attention_probs(xp, q, k, bias, ctx.allowed, scale)
        pd = p * drop if drop is not None else p
        gv = pd.swapaxes(-1, -2) @ gout if ctx.needs_input_grad[2] else None
        gp = gout @ v.swapaxes(-1, -2)
        if drop is not None:
            gp = gp * drop
        if gp_weights is not None:
            gp = gp + gp_weights
        gs = p * (gp - (gp * p).sum(axis=-1, keepdims=True))
        gq = (gs @ k) * scale if ctx.needs_input_grad[0] else None
        gk = (gs.swapaxes(-1, -2) @ q) * scale if ctx.needs_input_grad[1] else None
        gbias = sum_to(gs, ctx.bias_shape) if ctx.needs_input_grad[3] else None
        return gq, gk, gv, gbias
