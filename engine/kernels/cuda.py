"""The fused ops on the GPU: Numba CUDA kernels launched on CuPy arrays.

The same functions as :mod:`engine.kernels.reference` (the formulas are there), for CuPy
arrays: each brings its arrays to rows (the layout helpers at the end of
:mod:`engine.kernels.reference`), launches a kernel of :mod:`engine.kernels.cuda_jit` on
CuPy's current stream (CuPy arrays reach Numba through ``__cuda_array_interface__``), keeps
matrix products on cuBLAS, and saves what its backward needs. Under Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, set before ``numba.cuda`` is imported) the same
kernels run on NumPy arrays on the host, so they are tested on machines without a GPU.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from engine import backend
from engine.kernels.cuda_jit import SIMULATOR, compiled, threads_for
from engine.kernels.cuda_rnn import (  # noqa: F401  (the LSTM and GRU steps)
    gru_backward_steps, gru_cell_backward, gru_cell_forward, gru_forward_steps,
    lstm_backward_steps, lstm_cell_backward, lstm_cell_forward, lstm_forward_steps,
)
from engine.kernels.reference import group_shape, grouped, heads, last_axes_rows, rows, unrows


def _launch(kernel, grid, threads, *args) -> None:
    """Launch on CuPy's current stream (or in the simulator, on host arrays)."""
    if SIMULATOR:       # host arrays, copied back after the launch unless read-only
        args = [cuda.In(a) if isinstance(a, np.ndarray) and not a.flags.writeable else a
                for a in args]
        kernel[grid, threads](*args)
        return
    cp = backend.cupy_module()
    stream = cuda.external_stream(cp.cuda.get_current_stream().ptr)
    args = [cuda.as_cuda_array(a, sync=False) if backend.is_cuda_array(a) else a
            for a in args]
    kernel[grid, threads, stream](*args)


# ---------------------------------------------------------------- softmax, log-softmax
def softmax_forward(xp, x, axis: int, log: bool):
    """y = softmax(x) (or log-softmax) along ``axis``."""
    if x.size == 0:
        return xp.empty_like(x)
    r = rows(xp, x, axis)
    y = xp.empty_like(r)
    _launch(compiled(x.dtype).softmax_fwd, r.shape[0], threads_for(r.shape[1]), r, y, log)
    return unrows(xp, y, x.shape, axis)


def softmax_backward(xp, y, gy, axis: int, log: bool):
    """gx from the saved output y and the upstream gy."""
    if y.size == 0:
        return xp.zeros_like(y)
    r = rows(xp, y, axis)
    gx = xp.empty_like(r)
    _launch(compiled(y.dtype).softmax_bwd, r.shape[0], threads_for(r.shape[1]),
            r, rows(xp, gy, axis), gx, log)
    return unrows(xp, gx, y.shape, axis)


# ---------------------------------------------------------------- cross-entropy
def cross_entropy_forward(xp, x, target, ignore_index: int, smoothing: float):
    """Per-row losses ℓ (N,) (0 at ignored rows) of logits x (N, C); saves x and log Σ exp."""
    x = xp.ascontiguousarray(x)
    n = x.shape[0]
    loss = xp.empty(n, dtype=x.dtype)
    lse = xp.empty(n, dtype=x.dtype)
    if n:
        _launch(compiled(x.dtype).cross_entropy_fwd, n, threads_for(x.shape[1]),
                x, xp.ascontiguousarray(target), ignore_index, smoothing, loss, lse)
    return loss, (x, lse)


def cross_entropy_backward(xp, saved, target, g, ignore_index: int, smoothing: float):
    """gx = gᵢ (softmax(xᵢ) - (1-ε) onehot(tᵢ) - ε/C), g the upstream (N,) or one value."""
    x, lse = saved
    gx = xp.empty_like(x)
    if x.shape[0]:
        g = xp.ascontiguousarray(xp.broadcast_to(g, lse.shape), dtype=x.dtype)
        _launch(compiled(x.dtype).cross_entropy_bwd, x.shape[0], threads_for(x.shape[1]),
                x, lse, xp.ascontiguousarray(target), g, ignore_index, smoothing, gx)
    return gx


# ---------------------------------------------------------------- layer norm
def layer_norm_forward(xp, x, weight, bias, n_axes: int, eps: float):
    """y over the last ``n_axes`` axes; saves the rows, γ, μ and 1/σ per row."""
    r = last_axes_rows(xp, x, n_axes)
    n, c = r.shape
    w = None if weight is None else xp.ascontiguousarray(weight).reshape(c)
    b = None if bias is None else xp.ascontiguousarray(bias).reshape(c)
    y = xp.empty_like(r)
    mean = xp.empty(n, dtype=x.dtype)
    rstd = xp.empty(n, dtype=x.dtype)
    if r.size:
        dummy = xp.zeros(1, dtype=x.dtype)
        _launch(compiled(x.dtype).layer_norm_fwd, n, threads_for(c), r,
                dummy if w is None else w, dummy if b is None else b,
                w is not None, b is not None, eps, y, mean, rstd)
    return y.reshape(x.shape), (r, w, mean, rstd)


def layer_norm_backward(xp, saved, gy, n_axes: int, eps: float, needs: tuple):
    """gx, gγ, gβ (the last two shaped like the normalized axes, None where not needed):
    gx per row, then partial column sums for gγ and gβ, then one sum."""
    r, w, mean, rstd = saved
    n, c = r.shape
    gx = xp.empty_like(r)
    gw = gb = xp.zeros(c, dtype=r.dtype)
    if r.size:
        k = compiled(r.dtype)
        g = xp.ascontiguousarray(gy).reshape(r.shape)
        dummy = xp.zeros(1, dtype=r.dtype)
        _launch(k.layer_norm_bwd_rows, n, threads_for(c), r, g,
                dummy if w is None else w, w is not None, mean, rstd, gx)
        chunks = min(n, 2 if SIMULATOR else 64)
        gw_part = xp.empty((chunks, c), dtype=r.dtype)
        gb_part = xp.empty((chunks, c), dtype=r.dtype)
        t = threads_for(c)
        _launch(k.layer_norm_bwd_cols, (-(-c // t), chunks), t, r, g, mean, rstd,
                gw_part, gb_part, -(-n // chunks))
        gw, gb = gw_part.sum(axis=0), gb_part.sum(axis=0)
    shape = gy.shape[gy.ndim - n_axes:]
    return (gx.reshape(gy.shape), gw.reshape(shape) if needs[1] else None,
            gb.reshape(shape) if needs[2] else None)


# ---------------------------------------------------------------- attention
def attention_forward(xp, q, k, v, bias, keep, causal: bool, drop, scale: float):
    """out = (P ⊙ D) V and P = softmax(scale Q Kᵀ + bias, masked): the products on cuBLAS,
    the rest in one kernel pass over the scores; saves the heads and P."""
    lead, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
    g, h = group_shape(lead, tq, tk)[:2]
    q4, k4, v4 = (heads(xp, a, g, h) for a in (q, k, v))        # (G, H, T, D)
    p = xp.matmul(q4, k4.swapaxes(-1, -2))                           # (G, H, Tq, Tk)
    if p.size:
        bias4 = grouped(xp, bias, lead, tq, tk)
        keep4 = grouped(xp, keep, lead, tq, tk)
        _launch(compiled(p.dtype).attention_probs, g * h * tq, threads_for(tk), p, scale,
                xp.zeros((1, 1, 1, 1), dtype=p.dtype) if bias4 is None else _dense(bias4),
                bias4 is not None,
                xp.ones((1, 1, 1, 1), dtype=np.bool_) if keep4 is None else _dense(keep4),
                keep4 is not None, causal)
    drop4 = grouped(xp, drop, lead, tq, tk)
    out = xp.matmul(p if drop4 is None else p * drop4, v4)
    return out.reshape(lead + out.shape[-2:]), p.reshape(lead + (tq, tk)), (q4, k4, v4, p)


def attention_backward(xp, saved, gout, gp_weights, causal: bool, drop, scale: float,
                       needs: tuple):
    """gq, gk, gv (None where ``needs`` is False) and gS, from the saved heads and P:
    gV = (P ⊙ D)ᵀ gout;  gP = (gout Vᵀ) ⊙ D + gp_weights;  gS = P ⊙ (gP - Σⱼ gPⱼ Pⱼ);
    gQ = scale · gS K;  gK = scale · gSᵀ Q."""
    q4, k4, v4, p = saved
    lead, (g, h, tq, tk) = gout.shape[:-2], p.shape
    gout4 = heads(xp, gout, g, h)
    drop4 = grouped(xp, drop, lead, tq, tk)
    gv = xp.matmul((p if drop4 is None else p * drop4).swapaxes(-1, -2), gout4) \
        if needs[2] else None
    gs = xp.matmul(gout4, v4.swapaxes(-1, -2))                       # gP
    if gp_weights is not None:
        if drop4 is not None:
            gs *= drop4
            drop4 = None
        gs += grouped(xp, gp_weights, lead, tq, tk)
    if gs.size:
        _launch(compiled(p.dtype).attention_grad_scores, g * h * tq, threads_for(tk), p, gs,
                xp.zeros((1, 1, 1, 1), dtype=p.dtype) if drop4 is None else _dense(drop4),
                drop4 is not None, causal)
    sc = q4.dtype.type(scale)
    gq = xp.matmul(gs, k4) * sc if needs[0] else None
    gk = xp.matmul(gs.swapaxes(-1, -2), q4) * sc if needs[1] else None
    gq, gk, gv = (None if a is None else a.reshape(lead + a.shape[-2:]) for a in (gq, gk, gv))
    return gq, gk, gv, gs.reshape(lead + (tq, tk))


def _dense(x):
    """A C-contiguous copy of a (possibly broadcast) view: kernels index it directly."""
    return backend.array_module(x).ascontiguousarray(x)
