"""The fused ops on the CPU: Numba ``@njit`` kernels, parallel over rows, one pass per row.

The same functions as :mod:`engine.kernels.reference` (the formulas are there), for NumPy
arrays in float32 or float64. Each brings its arrays to C-contiguous rows (the layout
helpers at the end of :mod:`engine.kernels.reference`), runs a kernel compiled on first
use and kept in Numba's on-disk cache (``cache=True``), and saves what its backward needs:
the output, log Σ exp, μ and 1/σ, the probabilities. Attention keeps its matrix products on BLAS
(:mod:`engine.kernels.cpu_attention`). The building blocks (a vectorizing exp, row
reductions) and the floating-point flags are in :mod:`engine.kernels.cpu_math`. At the end,
Adam and AdamW's update as one pass per parameter (:func:`adam_step`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from engine import threads  # importing it also makes idle OpenMP threads sleep
from engine.kernels import cpu_attention
from engine.kernels.cpu_math import (
    JIT, JIT_SUM, PARALLEL, exp_shifted_sum, row_dot, row_max, row_sum, sum_exp_shifted, vexp,
)
from engine.kernels.cpu_embedding import embedding_backward  # noqa: F401
from engine.kernels.cpu_gru import (  # noqa: F401  (the GRU of engine.ops.rnn and .gru)
    gru_backward_steps, gru_cell_backward, gru_cell_forward, gru_forward_steps,
)
from engine.kernels.cpu_rnn import (  # noqa: F401  (the LSTM of engine.ops.rnn and .lstm)
    lstm_backward_steps, lstm_cell_backward, lstm_cell_forward, lstm_forward_steps,
)
from engine.kernels.reference import group_shape, grouped, heads, last_axes_rows, rows, unrows


# ---------------------------------------------------------------- softmax, log-softmax
@njit(**PARALLEL)
def _softmax_fwd(x, y, log):
    n, c = x.shape
    for i in prange(n):
        xr, yr = x[i], y[i]
        m = row_max(xr, c)
        if log:
            ls = np.log(sum_exp_shifted(xr, m, c))
            for j in range(c):
                yr[j] = (xr[j] - m) - ls
        else:
            inv = x.dtype.type(1) / exp_shifted_sum(xr, m, yr, c)
            for j in range(c):
                yr[j] *= inv


@njit(**PARALLEL)
def _softmax_bwd(y, gy, gx, log):
    n, c = y.shape
    for i in prange(n):
        yr, gr, out = y[i], gy[i], gx[i]
        if log:                                     # gx = gy - exp(y) Σ gy
            s = row_sum(gr, c)
            for j in range(c):
                out[j] = gr[j] - vexp(yr[j]) * s
        else:                                       # gx = y (gy - Σ gy y)
            d = row_dot(gr, yr, c)
            for j in range(c):
                out[j] = yr[j] * (gr[j] - d)


def softmax_forward(xp, x, axis: int, log: bool):
    """y = softmax(x) (or log-softmax) along ``axis``."""
    if x.size == 0:
        return np.empty_like(x)
    r = rows(np, x, axis)
    y = np.empty_like(r)
    _softmax_fwd(r, y, log)
    return unrows(np, y, x.shape, axis)


def softmax_backward(xp, y, gy, axis: int, log: bool):
    """gx from the saved output y and the upstream gy."""
    if y.size == 0:
        return np.zeros_like(y)
    r = rows(np, y, axis)
    gx = np.empty_like(r)
    _softmax_bwd(r, rows(np, gy, axis), gx, log)
    return unrows(np, gx, y.shape, axis)


# ---------------------------------------------------------------- cross-entropy
# Logits of fewer elements than this go through the serial builds: a parallel launch
# wakes Numba's sleeping threads, 75-95 µs measured where idle cores halt (a virtual
# machine), against about 5 µs for the whole pass over 128 x 10 logits on one thread.
# Serial and parallel builds are separate functions: Numba's on-disk cache keys compiled
# code by the function, not by its build options.
CROSS_ENTROPY_PARALLEL_MIN = 1 << 16


@njit(**JIT)
def _cross_entropy_fwd_row(xr, t, ignore_index, smoothing, c):
    """(the loss of row xr with target t, log Σ exp xr)."""
    one = xr.dtype.type(1)
    eps = xr.dtype.type(smoothing)
    m = row_max(xr, c)
    ls = np.log(sum_exp_shifted(xr, m, c))
    if t == ignore_index:
        return xr.dtype.type(0), m + ls
    li = (one - eps) * (ls - (xr[t] - m))               # -(1-ε) log p_t
    if smoothing != 0.0:                                # -(ε/C) Σ_c log p_c
        li += eps / c * (c * ls - (row_sum(xr, c) - c * m))
    return li, m + ls


@njit(**JIT)
def _cross_entropy_fwd_serial(x, target, ignore_index, smoothing, loss, lse):
    for i in range(x.shape[0]):
        loss[i], lse[i] = _cross_entropy_fwd_row(x[i], target[i], ignore_index, smoothing,
                                                 x.shape[1])


@njit(**PARALLEL)
def _cross_entropy_fwd(x, target, ignore_index, smoothing, loss, lse):
    for i in prange(x.shape[0]):
        loss[i], lse[i] = _cross_entropy_fwd_row(x[i], target[i], ignore_index, smoothing,
                                                 x.shape[1])


@njit(**JIT)
def _cross_entropy_bwd_row(xr, li, t, gi, ignore_index, smoothing, out, c):
    """out = gi (softmax(xr) - ε/C - (1-ε) onehot(t)), li = log Σ exp xr."""
    if t == ignore_index or gi == 0:
        out[:] = 0
        return
    off = xr.dtype.type(smoothing / c)
    for j in range(c):                                  # g (p - ε/C - (1-ε) onehot)
        out[j] = gi * (vexp(xr[j] - li) - off)
    out[t] -= gi * (xr.dtype.type(1) - xr.dtype.type(smoothing))


@njit(**JIT)
def _cross_entropy_bwd_serial(x, lse, target, g, ignore_index, smoothing, gx):
    for i in range(x.shape[0]):
        _cross_entropy_bwd_row(x[i], lse[i], target[i], g[i], ignore_index, smoothing,
                               gx[i], x.shape[1])


@njit(**PARALLEL)
def _cross_entropy_bwd(x, lse, target, g, ignore_index, smoothing, gx):
    for i in prange(x.shape[0]):
        _cross_entropy_bwd_row(x[i], lse[i], target[i], g[i], ignore_index, smoothing,
                               gx[i], x.shape[1])


def cross_entropy_forward(xp, x, target, ignore_index: int, smoothing: float):
    """Per-row losses ℓ (N,) (0 at ignored rows) of logits x (N, C); saves x and log Σ exp."""
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    loss = np.empty(n, dtype=x.dtype)
    lse = np.empty(n, dtype=x.dtype)
    kernel = (_cross_entropy_fwd if x.size >= CROSS_ENTROPY_PARALLEL_MIN
              else _cross_entropy_fwd_serial)
    kernel(x, np.ascontiguousarray(target), ignore_index, smoothing, loss, lse)
    return loss, (x, lse)


def cross_entropy_backward(xp, saved, target, g, ignore_index: int, smoothing: float):
    """gx = gᵢ (softmax(xᵢ) - (1-ε) onehot(tᵢ) - ε/C), g the upstream (N,) or one value."""
    x, lse = saved
    g = np.ascontiguousarray(np.broadcast_to(g, lse.shape), dtype=x.dtype)
    gx = np.empty_like(x)
    kernel = (_cross_entropy_bwd if x.size >= CROSS_ENTROPY_PARALLEL_MIN
              else _cross_entropy_bwd_serial)
    kernel(x, lse, np.ascontiguousarray(target), g, ignore_index, smoothing, gx)
    return gx


# ---------------------------------------------------------------- layer norm
@njit(**PARALLEL)
def _layer_norm_fwd(x, w, b, has_w, has_b, eps, y, mean, rstd):
    n, c = x.shape
    for i in prange(n):
        xr, yr = x[i], y[i]
        mu = x.dtype.type(row_sum(xr, c) / c)          # row scalars in the data's dtype:
        for j in range(c):                              # a float64 one would turn every
            yr[j] = xr[j] - mu                          # element op into float64
        r = x.dtype.type(1 / np.sqrt(row_dot(yr, yr, c) / c + eps))
        mean[i] = mu
        rstd[i] = r
        if has_w and has_b:
            for j in range(c):
                yr[j] = yr[j] * r * w[j] + b[j]
        elif has_w:
            for j in range(c):
                yr[j] = yr[j] * r * w[j]
        elif has_b:
            for j in range(c):
                yr[j] = yr[j] * r + b[j]
        else:
            for j in range(c):
                yr[j] = yr[j] * r


@njit(**JIT_SUM)
def _layer_norm_bwd_row(xr, gr, w, mu, r, out, gw, gb):
    """One row: gx into ``out``; gy ⊙ x̂ and gy added into ``gw`` and ``gb``."""
    c = xr.shape[0]
    sa = xr.dtype.type(0)
    sb = xr.dtype.type(0)
    for j in range(c):                  # g_x̂ = gy γ; Σ g_x̂ and Σ g_x̂ x̂ in one pass
        xh = (xr[j] - mu) * r
        g = gr[j] * w[j]
        sa += g
        sb += g * xh
        gw[j] += gr[j] * xh
        gb[j] += gr[j]
    a = sa / c                          # mean(g_x̂)
    b = sb / c                          # mean(g_x̂ x̂)
    for j in range(c):                  # gx = rstd (g_x̂ - mean(g_x̂) - x̂ mean(g_x̂ x̂))
        out[j] = r * ((gr[j] * w[j] - a) - (xr[j] - mu) * r * b)


@njit(**PARALLEL)
def _layer_norm_bwd(x, gy, w, mean, rstd, gx, gw_part, gb_part, chunks):
    n = x.shape[0]
    for k in prange(chunks):
        for i in range(k * n // chunks, (k + 1) * n // chunks):
            _layer_norm_bwd_row(x[i], gy[i], w, mean[i], rstd[i], gx[i], gw_part[k],
                                gb_part[k])


def layer_norm_forward(xp, x, weight, bias, n_axes: int, eps: float):
    """y over the last ``n_axes`` axes; saves the rows, γ, μ and 1/σ per row."""
    r = last_axes_rows(np, x, n_axes)
    n, c = r.shape
    w = None if weight is None else np.ascontiguousarray(weight).reshape(c)
    b = None if bias is None else np.ascontiguousarray(bias).reshape(c)
    y = np.empty_like(r)
    mean = np.empty(n, dtype=x.dtype)
    rstd = np.empty(n, dtype=x.dtype)
    if r.size:
        dummy = np.empty(0, dtype=x.dtype)
        _layer_norm_fwd(r, dummy if w is None else w, dummy if b is None else b,
                        w is not None, b is not None, x.dtype.type(eps), y, mean, rstd)
    return y.reshape(x.shape), (r, w, mean, rstd)


def layer_norm_backward(xp, saved, gy, n_axes: int, eps: float, needs: tuple):
    """gx, gγ, gβ (the last two shaped like the normalized axes, None where not needed)."""
    r, w, mean, rstd = saved
    n, c = r.shape
    g = np.ascontiguousarray(gy).reshape(r.shape)
    chunks = max(1, min(n, numba.get_num_threads()))     # one row chunk per thread
    gx = np.empty_like(r)
    gw_part = np.zeros((chunks, c), dtype=r.dtype)
    gb_part = np.zeros((chunks, c), dtype=r.dtype)
    if r.size:
        _layer_norm_bwd(r, g, np.ones(c, dtype=r.dtype) if w is None else w, mean, rstd, gx,
                        gw_part, gb_part, chunks)
    shape = gy.shape[gy.ndim - n_axes:]
    gw = gw_part.sum(axis=0).reshape(shape) if needs[1] else None
    gb = gb_part.sum(axis=0).reshape(shape) if needs[2] else None
    return gx.reshape(gy.shape), gw, gb


# ---------------------------------------------------------------- attention
def attention_forward(xp, q, k, v, bias, keep, causal: bool, drop, scale: float):
    """out = (P ⊙ D) V and P = softmax(scale Q Kᵀ + bias, masked), per head on BLAS and a
    kernel (:mod:`engine.kernels.cpu_attention`); saves the heads and P."""
    lead, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
    g, h = group_shape(lead, tq, tk)[:2]
    q4, k4, v4 = (heads(np, a, g, h) for a in (q, k, v))        # (G, H, T, D)
    out, p = cpu_attention.forward(q4, k4, v4, scale, grouped(np, bias, lead, tq, tk),
                                   grouped(np, keep, lead, tq, tk), causal,
                                   grouped(np, drop, lead, tq, tk))
    return out.reshape(lead + out.shape[-2:]), p.reshape(lead + (tq, tk)), (q4, k4, v4, p)


def attention_backward(xp, saved, gout, gp_weights, causal: bool, drop, scale: float,
                       needs: tuple):
    """gq, gk, gv (None where ``needs`` is False) and gS, from the saved heads and P."""
    q4, k4, v4, p = saved
    lead, (tq, tk) = gout.shape[:-2], p.shape[-2:]
    gq, gk, gv, gs = cpu_attention.backward(
        q4, k4, v4, p, heads(np, gout, *q4.shape[:2]), scale,
        grouped(np, drop, lead, tq, tk), causal,
        grouped(np, gp_weights, lead, tq, tk), needs)
    gq, gk, gv = (None if a is None else a.reshape(lead + a.shape[-2:]) for a in (gq, gk, gv))
    return gq, gk, gv, gs.reshape(lead + (tq, tk))


# ---------------------------------------------------------------- Adam, AdamW
# The literal update (:mod:`optim.adam`, docs/formulas.md F11) reads and writes each
# parameter-sized array a dozen times and allocates as many temporaries::
#
#     m ← β₁ m + (1 - β₁) g;  v ← β₂ v + (1 - β₂) g²;  θ ← θ - α m̂ / (√v̂ + ε)
#
# :func:`adam_step` does the same arithmetic element by element in one loop: read θ, g, m,
# v (and v_max), write θ, m, v (and v_max). Every operation is the literal one, in the same
# order, in the parameter's dtype (constants rounded to it first, as NumPy rounds a Python
# float against a float32 array), with no fused multiply-add or reassociation: the result
# equals the literal update bit for bit in float32 and float64.
#
# The loop is bound by memory traffic. A large parameter's elements are shared among the
# engine's worker pool (:func:`engine.threads.run_split`, one range per thread, at least
# ADAM_SPLIT elements each): an embedding's 1.3M-element update took 4 ms per step on one
# thread inside a training step (its arrays no longer in cache). Under OpenMP (Numba's
# prange) the same split was 2x slower as soon as another process held the second core;
# the pool's contention judge runs the update on the calling thread then.
DECAY_NONE, DECAY_L2, DECAY_DECOUPLED = 0, 1, 2
ADAM_SPLIT = 1 << 18


@njit(nogil=True, **JIT)
def _adam(p, g, m, v, v_max, amsgrad, maximize, decay_kind, wd, keep, lr, beta1,
          one_minus_beta1, beta2, one_minus_beta2, bc1, bc2, eps):
    """The literal update written per element, on 1-D arrays of one dtype."""
    for i in range(p.size):
        gi = -g[i] if maximize else g[i]
        th = p[i]
        if decay_kind == DECAY_L2:
            gi = gi + wd * th                          # g ← g + λ θ
        elif decay_kind == DECAY_DECOUPLED:
            th = th * keep                             # θ ← θ (1 - αλ)
        mi = m[i] * beta1 + one_minus_beta1 * gi      # m ← β₁ m + (1 - β₁) g
        vi = v[i] * beta2 + one_minus_beta2 * (gi * gi)   # v ← β₂ v + (1 - β₂) g²
        m[i] = mi
        v[i] = vi
        if amsgrad:                                    # v_max ← max(v_max, v), NaN kept
            vm = v_max[i]
            if vi > vm or vi != vi:
                vm = vi
            v_max[i] = vm
            vi = vm
        m_hat = mi / bc1                               # m̂ = m / (1 - β₁ᵗ)
        v_hat = vi / bc2                               # v̂ = v / (1 - β₂ᵗ)
        p[i] = th - lr * m_hat / (np.sqrt(v_hat) + eps)   # θ ← θ - α m̂ / (√v̂ + ε)


def adam_step(p, g, m, v, v_max, *, step: int, lr: float, beta1: float, beta2: float,
              eps: float, weight_decay: float, decoupled: bool, maximize: bool) -> None:
    """One Adam (``decoupled``: AdamW) step on C-contiguous NumPy arrays of one float dtype,
    in place: parameter ``p``, moments ``m``, ``v`` and, for amsgrad, ``v_max`` (else
    None); the gradient ``g`` (same shape and dtype, any layout) is only read. ``step``
    is t, this parameter's step count including this one."""
    f = p.dtype.type
    kind = DECAY_NONE if weight_decay == 0 else (DECAY_DECOUPLED if decoupled else DECAY_L2)
    flat = p.reshape(-1)
    arrays = (flat, np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1),
              flat if v_max is None else v_max.reshape(-1))
    scalars = (v_max is not None, bool(maximize), kind, f(weight_decay),
               f(1.0 - lr * weight_decay), f(lr), f(beta1), f(1.0 - beta1), f(beta2),
               f(1.0 - beta2), f(1.0 - beta1 ** step), f(1.0 - beta2 ** step), f(eps))

    def update(lo, hi):
        _adam(*(a[lo:hi] for a in arrays), *scalars)

    parts = min(threads.get_num_threads(), flat.size // ADAM_SPLIT)
    if parts < 2 or not threads.run_split(update, flat.size, parts):
        update(0, flat.size)
