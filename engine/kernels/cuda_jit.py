"""The Numba CUDA kernels of the fused ops, compiled per dtype.

One thread block per row, each thread striding over the row, reductions (max, sums) through
shared memory; the formulas are those of :mod:`engine.kernels.reference`. Kernels are
compiled per dtype (float32 and float64, computing in that dtype) on first launch, and
launched by :mod:`engine.kernels.cuda`. Under Numba's CUDA simulator (``SIMULATOR``) they
run on host arrays, every simulated thread a Python thread, so blocks are tiny there.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numba
import numpy as np
from numba import cuda

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
    """max of ``v`` over the block; NaN if some thread's ``v`` is NaN (as NumPy's max)."""
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if t < s and (buf[t + s] > buf[t] or buf[t + s] != buf[t + s]):
            buf[t] = buf[t + s]
        cuda.syncthreads()
        s //= 2
    r = buf[0]
    cuda.syncthreads()
    return r


@functools.lru_cache(maxsize=None)
def compiled(dtype: np.dtype) -> SimpleNamespace:
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
            if v > m or v != v:                       # a NaN score makes the max NaN
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
        inv = ft(1) / _block_sum(buf, z)              # NaN for a row with a NaN score
        tail = ft(0) if inv == inv else inv           # a NaN row is NaN everywhere
        for j in range(t, tk, nt):
            s[g, h, i, j] = s[g, h, i, j] * inv if j < n else tail

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
        tail = ft(0) if d == d else d                 # P = 0 there; a NaN row stays NaN
        for j in range(t, tk, nt):
            gp[g, h, i, j] = p[g, h, i, j] * (gp[g, h, i, j] - d) if j < n else tail

    return SimpleNamespace(
        softmax_fwd=softmax_fwd, softmax_bwd=softmax_bwd,
        cross_entropy_fwd=cross_entropy_fwd, cross_entropy_bwd=cross_entropy_bwd,
        layer_norm_fwd=layer_norm_fwd, layer_norm_bwd_rows=layer_norm_bwd_rows,
        layer_norm_bwd_cols=layer_norm_bwd_cols, attention_probs=attention_probs,
        attention_grad_scores=attention_grad_scores,
    )
