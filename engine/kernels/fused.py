"""The fused Functions: the same ops as :mod:`engine.kernels.reference`, computed by kernels.

Each Function brings its arrays to C-contiguous rows and calls the kernel module of the
data's device: :mod:`engine.kernels.cpu` (Numba) for NumPy arrays, :mod:`engine.kernels.cuda`
(Numba CUDA) for CuPy arrays. Formulas are in the reference module's docstrings.

Softmax and log-softmax save only their output, so their backward is also written on
Tensors (the reference formula) and higher-order gradients work through them. The others
save intermediates (log Σ exp, μ and 1/σ, the probabilities), so they are
``once_differentiable``: for higher-order gradients use ``engine.use_fused(False)``.
"""

from __future__ import annotations

import numpy as np

from engine.function import Function
from engine.kernels import reference
from engine.ops.utils import normalize_axis, sum_to


def kernels(xp):
    """The kernel module serving arrays of module ``xp``."""
    if xp is np:
        from engine.kernels import cpu

        return cpu
    from engine.kernels import cuda

    return cuda


def _is_array_module(xp) -> bool:
    """False when backward runs on Tensors (``create_graph``), ``ctx.xp`` then being
    :mod:`engine.tensor_xp`."""
    return xp is np or getattr(xp, "__name__", "") == "cupy"


def _rows(xp, x, axis: int):
    """x with ``axis`` moved last, as C-contiguous rows (N, C)."""
    if axis != x.ndim - 1:
        x = xp.moveaxis(x, axis, -1)
    return xp.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _unrows(xp, y, shape: tuple, axis: int):
    """Inverse of :func:`_rows`: rows back to ``shape`` with the last axis at ``axis``."""
    moved = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    y = y.reshape(moved)
    return y if axis == len(shape) - 1 else xp.moveaxis(y, -1, axis)


class _SoftmaxBase(Function):
    log = False

    @classmethod
    def forward(cls, ctx, x, axis=-1):
        xp = ctx.xp
        ctx.axis = normalize_axis(axis, x.ndim, cls.__name__.lower())
        if x.size == 0:
            y = xp.empty_like(x)
        else:
            rows = _rows(xp, x, ctx.axis)
            y = _unrows(xp, kernels(xp).softmax_forward(rows, cls.log), x.shape, ctx.axis)
        ctx.save_for_backward(y)
        return y

    @classmethod
    def backward(cls, ctx, gy):
        (y,) = ctx.saved_tensors
        xp = ctx.xp
        if not _is_array_module(xp):          # on Tensors: the reference formula
            if cls.log:
                return reference.log_softmax_backward(xp, y, gy, ctx.axis)
            return reference.softmax_backward(y, gy, ctx.axis)
        if y.size == 0:
            return xp.zeros_like(y)
        gx = kernels(xp).softmax_backward(_rows(xp, y, ctx.axis), _rows(xp, gy, ctx.axis),
                                          cls.log)
        return _unrows(xp, gx, y.shape, ctx.axis)


class Softmax(_SoftmaxBase):
    """Fused softmax (formula: :class:`engine.kernels.reference.Softmax`)."""

    log = False


class LogSoftmax(_SoftmaxBase):
    """Fused log-softmax (formula: :class:`engine.kernels.reference.LogSoftmax`)."""

    log = True


class CrossEntropy(Function):
    """Fused log-softmax + NLL (formula: :class:`engine.kernels.reference.CrossEntropy`);
    saves the logits and log Σ exp per row."""

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        xp = ctx.xp
        x = xp.ascontiguousarray(x)
        target = xp.ascontiguousarray(target)
        loss, lse = kernels(xp).cross_entropy_forward(x, target, ignore_index,
                                                      label_smoothing)
        ctx.params = (ignore_index, label_smoothing, reduction)
        ctx.save_for_backward(x, lse, target)
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "mean":
            n_valid = int((target != ignore_index).sum())
            ctx.n_valid = n_valid
            total = total / x.dtype.type(n_valid) if n_valid else x.dtype.type("nan")
        return xp.asarray(total, dtype=x.dtype)

    @staticmethod
    def backward(ctx, gl):
        x, lse, target = ctx.saved_tensors
        xp = ctx.xp
        ignore_index, label_smoothing, reduction = ctx.params
        if reduction == "none":
            g = xp.ascontiguousarray(gl, dtype=x.dtype)
        else:
            scale = gl
            if reduction == "mean":
                scale = gl / x.dtype.type(ctx.n_valid) if ctx.n_valid else gl * 0
            g = xp.broadcast_to(scale.astype(x.dtype), target.shape).copy()
        gx = kernels(xp).cross_entropy_backward(x, lse, target, g, ignore_index,
                                                label_smoothing)
        return gx, None


class LayerNorm(Function):
    """Fused layer norm (formula: :class:`engine.kernels.reference.LayerNorm`); saves the
    input, γ, μ and 1/√(σ² + eps) per row."""

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, weight, bias, n_axes=1, eps=1e-5):
        xp = ctx.xp
        k = int(np.prod(x.shape[x.ndim - n_axes:]))
        rows = xp.ascontiguousarray(x).reshape(-1, k)
        w = None if weight is None else xp.ascontiguousarray(weight).reshape(k)
        b = None if bias is None else xp.ascontiguousarray(bias).reshape(k)
        if rows.size == 0:
            y = xp.empty_like(rows)
            mean = rstd = xp.empty(0, dtype=x.dtype)
        else:
            y, mean, rstd = kernels(xp).layer_norm_forward(rows, w, b, eps)
        ctx.shapes = (x.shape, None if weight is None else weight.shape)
        ctx.save_for_backward(rows, w, mean, rstd)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, gy):
        rows, w, mean, rstd = ctx.saved_tensors
        xp = ctx.xp
        x_shape, w_shape = ctx.shapes
        g = xp.ascontiguousarray(gy).reshape(rows.shape)
        if rows.size == 0:
            gx = xp.zeros_like(rows)
            gw = gb = xp.zeros(rows.shape[1], dtype=rows.dtype)
        else:
            gx, gw, gb = kernels(xp).layer_norm_backward(rows, g, w, mean, rstd)
        gw = gw.reshape(w_shape) if ctx.needs_input_grad[1] else None
        gb = gb.reshape(w_shape if w_shape is not None else x_shape[len(x_shape) - 1:]) \
            if ctx.needs_input_grad[2] else None
        return gx.reshape(x_shape), gw, gb


def _group_shape(lead: tuple, tq: int, tk: int) -> tuple:
    """(G, H, Tq, Tk): the leading axes folded into G = lead[0] and H = the rest, so that a
    (B, 1, ..., 1, Tk) key-padding mask stays a view (stride 0 over H)."""
    g = lead[0] if lead else 1
    h = int(np.prod(lead[1:])) if len(lead) > 1 else 1
    return (g, h, tq, tk)


def _grouped(xp, a, lead: tuple, tq: int, tk: int):
    """``a`` broadcast to lead + (Tq, Tk), viewed as (G, H, Tq, Tk) (None stays None)."""
    if a is None:
        return None
    return xp.broadcast_to(a, lead + (tq, tk)).reshape(_group_shape(lead, tq, tk))


class Attention(Function):
    """Fused scaled dot-product attention (formula:
    :class:`engine.kernels.reference.Attention`): the matrix products on BLAS (cuBLAS on
    the GPU), scale, bias, masks and softmax in one kernel pass over the scores; saves the
    probabilities."""

    once_differentiable = True

    @staticmethod
    def forward(ctx, q, k, v, bias, keep=None, causal=False, drop=None, scale=1.0,
                need_weights=False):
        xp = ctx.xp
        lead, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
        g, h = _group_shape(lead, tq, tk)[:2]
        q4, k4, v4 = (xp.ascontiguousarray(a).reshape((g, h) + a.shape[-2:])
                      for a in (q, k, v))                         # (G, H, T, D)
        out, p = kernels(xp).attention_forward(
            q4, k4, v4, scale, _grouped(xp, bias, lead, tq, tk),
            _grouped(xp, keep, lead, tq, tk), causal, _grouped(xp, drop, lead, tq, tk))
        ctx.params = (lead, causal, scale, None if bias is None else bias.shape)
        ctx.drop = drop
        ctx.save_for_backward(q4, k4, v4, p)
        out = out.reshape(lead + out.shape[-2:])
        return (out, p.reshape(lead + (tq, tk))) if need_weights else out

    @staticmethod
    def backward(ctx, gout, gp_weights=None):
        q4, k4, v4, p = ctx.saved_tensors
        xp = ctx.xp
        lead, causal, scale, bias_shape = ctx.params
        tq, tk = p.shape[-2:]
        gout4 = xp.ascontiguousarray(gout).reshape(q4.shape[:2] + gout.shape[-2:])
        gq, gk, gv, gs = kernels(xp).attention_backward(
            q4, k4, v4, p, gout4, scale, _grouped(xp, ctx.drop, lead, tq, tk), causal,
            _grouped(xp, gp_weights, lead, tq, tk), tuple(ctx.needs_input_grad[:3]))
        gq, gk, gv = (None if a is None else a.reshape(lead + a.shape[-2:])
                      for a in (gq, gk, gv))
        gbias = sum_to(gs.reshape(lead + (tq, tk)), bias_shape) \
            if ctx.needs_input_grad[3] else None
        return gq, gk, gv, gbias
