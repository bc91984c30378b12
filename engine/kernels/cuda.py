"""Numba CUDA kernels of the fused ops, launched on CuPy arrays.

The same functions as :mod:`engine.kernels.cpu`, for arrays on the GPU: one thread block
per row, each thread striding over the row, reductions (max, sums) through shared memory.
Kernels are compiled per dtype (float32 and float64, computing in that dtype) and launched
on CuPy's current stream; CuPy arrays reach them through ``__cuda_array_interface__``.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before ``numba.cuda`` is
imported) the same kernels run on NumPy arrays on the host, so they are tested on machines
without a GPU. Every simulated thread is a Python thread, so the simulator gets tiny blocks.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

from engine import backend

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
MAX_THREADS = 256                      # threads per block, and the shared reduction buffer
SIMULATOR_THREADS = 4                  # the simulator's blocks (each thread costs a thread)


def threads_for(c: int) -> int:
    """Threads per block for rows of length ``c``: a power of two, up to the cap."""
    cap = SIMULATOR_THREADS if SIMULATOR else MAX_THREADS
    t = 1 if SIMULATOR else 32
    while t < c and t < cap:
        t *= 2
    return t


@cuda.jit(device=True)
def _block_sum(buf, v):
    """Σ of ``v`` over the block (tree reduction in shared ``buf``)."""
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if t < s:
            buf[t] += buf[t + s]
        cuda.syncthreads()
        s //= 2
    r = buf[0]
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def _block_max(buf, v):
    """max of ``v`` over the block (a NaN makes the row NaN downstream, as on the CPU)."""
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if t < s and buf[t + s] > buf[t]:
            buf[t] = buf[t + s]
        cuda.syncthreads()
        s //= 2
    r = buf[0]
    cuda.syncthreads()
    return r


@functools.lru_cache(maxsize=None)
def _kernels(dtype: np.dtype) -> SimpleNamespace:
    """The kernels for one floating dtype (compiled on first launch)."""
    ft = numba.from_dtype(dtype)
    ninf = -math.inf

    @cuda.jit
    def softmax_fwd(x, y, log):
        i, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        buf = cuda.shared.array(MAX_THREADS, dtype=ft)
        c = x.shape[1]
        m = ft(ninf)
        for j in range(t, c, nt):
            if x[i, j] > m:
                m = x[i, j]
        m = _block_max(buf, m)
        s = ft(0)
        for j in range(t, c, nt):
            s += math.exp(x[i, j] - m)
        s = _block_sum(buf, s)
        if log:
            ls = math.log(s)
            for j in range(t, c, nt):
                y[i, j] = (x[i, j] - m) - ls
        else:
            inv = ft(1) / s
            for j in range(t, c, nt):
                y[i, j] = math.exp(x[i, j] - m) * inv

    @cuda.jit
    def softmax_bwd(y, gy, gx, log):
        i, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        buf = cuda.shared.array(MAX_THREADS, dtype=ft)
        c = y.shape[1]
        s = ft(0)
        for j in range(t, c, nt):
            s += gy[i, j] if log else gy[i, j] * y[i, j]
        s = _block_sum(buf, s)
        for j in range(t, c, nt):
            if log:                                     # gx = gy - exp(y) Σ gy
                gx[i, j] = gy[i, j] - math.exp(y[i, j]) * s
            else:                                       # gx = y (gy - Σ gy y)
                gx[i, j] = y[i, j] * (gy[i, j] - s)

    @cuda.jit
    def cross_entropy_fwd(x, target, ignore_index, smoothing, loss, lse):
        i, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        buf = cuda.shared.array(MAX_THREADS, dtype=ft)
        c = x.shape[1]
        m = ft(ninf)
        for j in range(t, c, nt):
            if x[i, j] > m:
                m = x[i, j]
        m = _block_max(buf, m)
        s = ft(0)
        sx = ft(0)
        for j in range(t, c, nt):
            s += math.exp(x[i, j] - m)
            sx += x[i, j] - m
        s = _block_sum(buf, s)
        sx = _block_sum(buf, sx)
        if t == 0:
            ls = math.log(s)
            lse[i] = m + ls
            k = target[i]
            if k == ignore_index:
                loss[i] = 0
            else:
                eps = ft(smoothing)
                li = (ft(1) - eps) * (ls - (x[i, k] - m))     # -(1-ε) log p_t
                li += eps / ft(c) * (ft(c) * ls - sx)          # -(ε/C) Σ_c log p_c
                loss[i] = li

    @cuda.jit
    def cross_entropy_bwd(x, lse, target, g, ignore_index, smoothing, gx):
        i, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        c = x.shape[1]
        k = target[i]
        gi = g[i]
        off = ft(smoothing) / ft(c)
        hit = ft(1) - ft(smoothing)
        for j in range(t, c, nt):                      # g (p - ε/C - (1-ε) onehot)
            if k == ignore_index or gi == 0:
                gx[i, j] = 0
            else:
                v = math.exp(x[i, j] - lse[i]) - off
                if j == k:
                    v -= hit
                gx[i, j] = gi * v

    @cuda.jit
    def layer_norm_fwd(x, w, b, has_w, has_b, eps, y, mean, rstd):
        i, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        buf = cuda.shared.array(MAX_THREADS, dtype=ft)
        c = x.shape[1]
        s = ft(0)
        for j in range(t, c, nt):
            s += x[i, j]
        mu = _block_sum(buf, s) / ft(c)
        s = ft(0)
        for j in range(t, c, nt):
            d = x[i, j] - mu
            s += d * d
        r = ft(1) / math.sqrt(_block_sum(buf, s) / ft(c) + ft(eps))
        if t == 0:
            mean[i] = mu
            rstd[i] = r
        for j in range(t, c, nt):
            v = (x[i, j] - mu) * r
            if has_w:
                v *= w[j]
            if has_b:
                v += b[j]
            y[i, j] = v

    @cuda.jit
    def layer_norm_bwd_rows(x, gy, w, has_w, mean, rstd, gx):
        i, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        buf = cuda.shared.array(MAX_THREADS, dtype=ft)
        c = x.shape[1]
        mu, r = mean[i], rstd[i]
        sa = ft(0)
        sb = ft(0)
        for j in range(t, c, nt):
            gg = gy[i, j] * w[j] if has_w else gy[i, j]
            sa += gg
            sb += gg * (x[i, j] - mu) * r
        a = _block_sum(buf, sa) / ft(c)                 # mean(g_x̂)
        bb = _block_sum(buf, sb) / ft(c)                # mean(g_x̂ x̂)
        for j in range(t, c, nt):
            gg = gy[i, j] * w[j] if has_w else gy[i, j]
            gx[i, j] = r * ((gg - a) - (x[i, j] - mu) * r * bb)

    @cuda.jit
    def layer_norm_bwd_cols(x, gy, mean, rstd, gw_part, gb_part, rows_per_chunk):
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        k = cuda.blockIdx.y
        n, c = x.shape
        if j < c:
            sw = ft(0)
            sb = ft(0)
            for i in range(k * rows_per_chunk, min(n, (k + 1) * rows_per_chunk)):
                sw += gy[i, j] * (x[i, j] - mean[i]) * rstd[i]
                sb += gy[i, j]
            gw_part[k, j] = sw
            gb_part[k, j] = sb

    @cuda.jit
    def attention_probs(s, scale, bias, has_bias, keep, has_keep, causal):
        r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        buf = cuda.shared.array(MAX_THREADS, dtype=ft)
        nh, tq, tk = s.shape[1], s.shape[2], s.shape[3]
        g, h, i = r // (nh * tq), (r // tq) % nh, r % tq
        n = min(tk, i + 1) if causal else tk          # keys j < n may take part
        m = ft(ninf)
        for j in range(t, n, nt):
            v = s[g, h, i, j] * ft(scale)
            if has_bias:
                v += bias[g, h, i, j]
            if has_keep and not keep[g, h, i, j]:
                v = ft(ninf)
            s[g, h, i, j] = v
            if v > m:
                m = v
        m = _block_max(buf, m)
        if m == ninf:                                 # every key masked: P = 0, no NaN
            for j in range(t, tk, nt):
                s[g, h, i, j] = 0
            return
        z = ft(0)
        for j in range(t, n, nt):
            e = math.exp(s[g, h, i, j] - m)
            s[g, h, i, j] = e
            z += e
        inv = ft(1) / _block_sum(buf, z)
        for j in range(t, tk, nt):
            s[g, h, i, j] = s[g, h, i, j] * inv if j < n else ft(0)

    @cuda.jit
    def attention_grad_scores(p, gp, drop, has_drop, causal):
        r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        buf = cuda.shared.array(MAX_THREADS, dtype=ft)
        nh, tq, tk = p.shape[1], p.shape[2], p.shape[3]
        g, h, i = r // (nh * tq), (r // tq) % nh, r % tq
        n = min(tk, i + 1) if causal else tk
        d = ft(0)
        for j in range(t, n, nt):
            if has_drop:
                gp[g, h, i, j] *= drop[g, h, i, j]
            d += gp[g, h, i, j] * p[g, h, i, j]
        d = _block_sum(buf, d)
        for j in range(t, tk, nt):
            gp[g, h, i, j] = p[g, h, i, j] * (gp[g, h, i, j] - d) if j < n else ft(0)

    return SimpleNamespace(
        softmax_fwd=softmax_fwd, softmax_bwd=softmax_bwd,
        cross_entropy_fwd=cross_entropy_fwd, cross_entropy_bwd=cross_entropy_bwd,
        layer_norm_fwd=layer_norm_fwd, layer_norm_bwd_rows=layer_norm_bwd_rows,
        layer_norm_bwd_cols=layer_norm_bwd_cols, attention_probs=attention_probs,
        attention_grad_scores=attention_grad_scores,
    )


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


def _xp(x):
    return backend.array_module(x)


def _dense(x):
    """A C-contiguous copy of a (possibly broadcast) view: kernels index it directly."""
    return _xp(x).ascontiguousarray(x)


# ---------------------------------------------------------------- the kernel-module API
def softmax_forward(x, log: bool):
    """y = softmax(x) (or log-softmax) along the last axis of the 2-D C-contiguous x."""
    y = _xp(x).empty_like(x)
    _launch(_kernels(x.dtype).softmax_fwd, x.shape[0], threads_for(x.shape[1]), x, y, log)
    return y


def softmax_backward(y, gy, log: bool):
    """gx from the saved output y and the upstream gy (2-D, C-contiguous)."""
    gx = _xp(y).empty_like(y)
    _launch(_kernels(y.dtype).softmax_bwd, y.shape[0], threads_for(y.shape[1]),
            y, _dense(gy), gx, log)
    return gx


def cross_entropy_forward(x, target, ignore_index: int, label_smoothing: float):
    """Per-row losses ℓ (N,) (0 at ignored rows) and log Σ exp (N,) of logits x (N, C)."""
    xp = _xp(x)
    n = x.shape[0]
    loss = xp.empty(n, dtype=x.dtype)
    lse = xp.empty(n, dtype=x.dtype)
    if n:
        _launch(_kernels(x.dtype).cross_entropy_fwd, n, threads_for(x.shape[1]),
                x, target, ignore_index, label_smoothing, loss, lse)
    return loss, lse


def cross_entropy_backward(x, lse, target, g, ignore_index: int, label_smoothing: float):
    """gx = gᵢ (softmax(xᵢ) - (1-ε) onehot(tᵢ) - ε/C), gᵢ the per-row upstream (N,)."""
    gx = _xp(x).empty_like(x)
    if x.shape[0]:
        _launch(_kernels(x.dtype).cross_entropy_bwd, x.shape[0], threads_for(x.shape[1]),
                x, lse, target, _dense(g), ignore_index, label_smoothing, gx)
    return gx


def layer_norm_forward(x, w, b, eps: float):
    """y, μ (N,), 1/σ (N,) for rows x (N, C); w, b (C,) or None."""
    xp = _xp(x)
    n, c = x.shape
    y = xp.empty_like(x)
    mean = xp.empty(n, dtype=x.dtype)
    rstd = xp.empty(n, dtype=x.dtype)
    dummy = xp.zeros(1, dtype=x.dtype)
    _launch(_kernels(x.dtype).layer_norm_fwd, n, threads_for(c), x,
            dummy if w is None else w, dummy if b is None else b,
            w is not None, b is not None, eps, y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(x, gy, w, mean, rstd):
    """gx (N, C), gγ (C,), gβ (C,) from the saved rows, μ and 1/σ."""
    xp = _xp(x)
    n, c = x.shape
    k = _kernels(x.dtype)
    gy = _dense(gy)
    gx = xp.empty_like(x)
    dummy = xp.zeros(1, dtype=x.dtype)
    _launch(k.layer_norm_bwd_rows, n, threads_for(c), x, gy,
            dummy if w is None else w, w is not None, mean, rstd, gx)
    chunks = min(n, 2 if SIMULATOR else 64)           # partial column sums, then one sum
    rows = -(-n // chunks)
    gw_part = xp.empty((chunks, c), dtype=x.dtype)
    gb_part = xp.empty((chunks, c), dtype=x.dtype)
    t = threads_for(c)
    _launch(k.layer_norm_bwd_cols, (-(-c // t), chunks), t, x, gy, mean, rstd,
            gw_part, gb_part, rows)
    return gx, gw_part.sum(axis=0), gb_part.sum(axis=0)


def attention_forward(q, k, v, scale: float, bias, keep, causal: bool, drop):
    """out = (P ⊙ D) V and P = softmax(scale Q Kᵀ + bias, masked): the products on cuBLAS,
    the rest in one kernel pass over the scores (shapes as in
    :func:`engine.kernels.cpu.attention_forward`)."""
    xp = _xp(q)
    p = xp.matmul(q, k.swapaxes(-1, -2))                       # (G, H, Tq, Tk)
    if p.size:
        rows = p.shape[0] * p.shape[1] * p.shape[2]
        dummy_f = xp.zeros((1, 1, 1, 1), dtype=p.dtype)
        dummy_b = xp.ones((1, 1, 1, 1), dtype=np.bool_)
        _launch(_kernels(p.dtype).attention_probs, rows, threads_for(p.shape[3]), p, scale,
                dummy_f if bias is None else _dense(bias), bias is not None,
                dummy_b if keep is None else _dense(keep), keep is not None, causal)
    out = xp.matmul(p if drop is None else p * drop, v)
    return out, p


def attention_backward(q, k, v, p, gout, scale: float, drop, causal: bool, gp_extra,
                       needs: tuple):
    """gq, gk, gv (None where ``needs`` is False) and gS (see
    :func:`engine.kernels.cpu.attention_backward`)."""
    xp = _xp(q)
    gv = xp.matmul((p if drop is None else p * drop).swapaxes(-1, -2), gout) \
        if needs[2] else None
    gs = xp.matmul(gout, v.swapaxes(-1, -2))                   # gP
    if gp_extra is not None:
        if drop is not None:
            gs *= drop
            drop = None
        gs += gp_extra
    if gs.size:
        rows = p.shape[0] * p.shape[1] * p.shape[2]
        dummy = xp.zeros((1, 1, 1, 1), dtype=p.dtype)
        _launch(_kernels(p.dtype).attention_grad_scores, rows, threads_for(p.shape[3]), p,
                gs, dummy if drop is None else _dense(drop), drop is not None, causal)
    gq = xp.matmul(gs, k) * q.dtype.type(scale) if needs[0] else None
    gk = xp.matmul(gs.swapaxes(-1, -2), q) * q.dtype.type(scale) if needs[1] else None
    return gq, gk, gv, gs
