"""Numba CPU kernels of the fused ops: parallel over rows, one pass over memory per row.

Every kernel works on C-contiguous 2-D arrays of rows (the caller reshapes), in float32 or
float64, compiled on first use and kept in Numba's on-disk cache (``cache=True``).

Two things make them as fast as hand-written C here:

- ``np.exp`` inside ``@njit`` compiles to a scalar libm call per element; :func:`vexp` is
  exp written so a loop of it vectorizes (range reduction x = k ln 2 + r, a polynomial for
  exp(r), 2ᵏ built from its bits), accurate to about 1 ulp, with exp(-inf) = 0,
  exp(large) = inf, NaN kept and gradual underflow to subnormals.
- No ``fastmath`` beyond two flags that leave inf and NaN alone: ``contract`` (fused
  multiply-add) in :func:`vexp`, and ``reassoc`` in the row sums only (:func:`_row_sum`,
  :func:`_row_dot`), which lets LLVM add in SIMD lanes. Full fastmath would let LLVM drop
  inf/NaN handling (and the rounding trick in :func:`vexp`). The row max, which LLVM
  vectorizes only under no-NaN assumptions, keeps eight partial maxima by hand
  (:func:`_row_max`). Flags are per function: a callee without them keeps exact IEEE
  semantics (Numba passes a caller's flags on only to callees that set none, so every
  helper here sets its own).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

# Numba runs its parallel loops on OpenMP threads. With the default wait policy idle
# threads spin, and on a machine with more runnable threads than cores (BLAS threads,
# PyTorch's pool, other processes) a spinning pool turns a 20 µs kernel into 20 ms. Idle
# threads sleep instead unless the user chose otherwise (read when the pool starts).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402

# error_model="numpy": x / 0 gives inf or NaN as in NumPy (no Python ZeroDivisionError,
# whose check also stops a loop with a division from vectorizing).
_JIT = dict(cache=True, fastmath=False, error_model="numpy")
_PAR = dict(_JIT, parallel=True)
# Contraction of a * b + c into one fused multiply-add: no effect on inf or NaN handling.
_JIT_FMA = dict(_JIT, fastmath={"contract"})
# Sums that LLVM may reassociate, i.e. add in SIMD lanes (as NumPy's sum does): 10x faster
# than a strict left-to-right chain, and a sum holding inf or NaN gives the same inf/NaN.
_JIT_SUM = dict(_JIT, fastmath={"reassoc", "contract"})


# ---------------------------------------------------------------- exp that vectorizes
@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32 as a float32 (an LLVM bitcast: vectorizes, unlike ldexp)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32))
                               if args[0].type.width > 32 else args[0], ir.FloatType())
    return types.float32(bits), codegen


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret an int64 as a float64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.sext(args[0], ir.IntType(64))
                               if args[0].type.width < 64 else args[0], ir.DoubleType())
    return types.float64(bits), codegen


@njit(**_JIT_FMA)
def _exp32(x):
    """exp for float32: x = k ln2 + r, |r| ≤ ln2/2, exp(r) by Cephes' expf polynomial."""
    xc = x if x > np.float32(-104.0) else np.float32(-104.0)    # exp(-104) rounds to 0
    xc = xc if xc < np.float32(89.0) else np.float32(89.0)      # exp(89) rounds to inf
    magic = np.float32(12582912.0)                              # 1.5 · 2²³: round to int
    k = (xc * np.float32(1.4426950408889634) + magic) - magic
    r = (xc - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    ki = np.int32(k)
    k1 = ki >> 1                      # 2ᵏ as 2^k1 · 2^k2: both normal, so subnormal
    k2 = ki - k1                      # results are rounded once, correctly
    y = (p * _float32_from_bits((k1 + 127) << 23)) * _float32_from_bits((k2 + 127) << 23)
    return y if x == x else x         # NaN stays NaN


@njit(**_JIT_FMA)
def _exp64(x):
    """exp for float64: x = k ln2 + r, exp(r) by Cephes' Padé form 1 + 2 r P / (Q - r P)."""
    xc = x if x > -746.0 else -746.0
    xc = xc if xc < 710.0 else 710.0
    magic = 6755399441055744.0                                  # 1.5 · 2⁵²
    k = (xc * 1.4426950408889634 + magic) - magic
    r = (xc - k * 6.93145751953125e-1) - k * 1.42860682030941723212e-6
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
          + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
    p = 1.0 + 2.0 * (px / (qx - px))
    ki = np.int64(k)
    k1 = ki >> 1
    k2 = ki - k1
    y = (p * _float64_from_bits((k1 + 1023) << 52)) * _float64_from_bits((k2 + 1023) << 52)
    return y if x == x else x


def vexp(x):
    """exp(x) for a float32 or float64 scalar inside Numba code (see the module docstring)."""
    return np.exp(x)


@overload(vexp, jit_options=_JIT)
def _vexp_overload(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    if x == types.float64:
        return lambda x: _exp64(x)
    return None


# ---------------------------------------------------------------- row reductions
@njit(**_JIT)
def _row_max(x, n):
    """max of x[:n], eight partial maxima (NaN-safe: a NaN row stays NaN downstream)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x.dtype.type(-np.inf)
    j = 0
    while j + 8 <= n:
        v0, v1, v2, v3 = x[j], x[j + 1], x[j + 2], x[j + 3]
        v4, v5, v6, v7 = x[j + 4], x[j + 5], x[j + 6], x[j + 7]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        m4 = v4 if v4 > m4 else m4
        m5 = v5 if v5 > m5 else m5
        m6 = v6 if v6 > m6 else m6
        m7 = v7 if v7 > m7 else m7
        j += 8
    while j < n:
        v0 = x[j]
        m0 = v0 if v0 > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@njit(**_JIT_SUM)
def _row_sum(x, n):
    """Σ x[:n] (summed in SIMD lanes: the order differs from a left-to-right sum)."""
    s = x.dtype.type(0)
    for j in range(n):
        s += x[j]
    return s


@njit(**_JIT_SUM)
def _row_dot(x, y, n):
    """Σ x[:n] y[:n] (SIMD lanes)."""
    s = x.dtype.type(0)
    for j in range(n):
        s += x[j] * y[j]
    return s


@njit(**_JIT_SUM)
def _exp_shifted_sum(x, m, out, n):
    """out[:n] = exp(x[:n] - m); returns Σ out[:n] (one pass; out and x distinct: LLVM
    vectorizes after a run-time check that they do not overlap)."""
    s = x.dtype.type(0)
    for j in range(n):
        e = vexp(x[j] - m)
        out[j] = e
        s += e
    return s


@njit(**_JIT_SUM)
def _sum_exp_shifted(x, m, n):
    """Σ exp(x[:n] - m) (nothing stored)."""
    s = x.dtype.type(0)
    for j in range(n):
        s += vexp(x[j] - m)
    return s


@njit(**_JIT_SUM)
def _exp_shifted_sum_inplace(x, m, n):
    """x[:n] = exp(x[:n] - m); returns Σ x[:n]."""
    s = x.dtype.type(0)
    for j in range(n):
        e = vexp(x[j] - m)
        x[j] = e
        s += e
    return s


# ---------------------------------------------------------------- softmax, log-softmax
@njit(**_PAR)
def _softmax_fwd(x, y, log):
    n, c = x.shape
    for i in prange(n):
        xr, yr = x[i], y[i]
        m = _row_max(xr, c)
        if log:
            ls = np.log(_sum_exp_shifted(xr, m, c))
            for j in range(c):
                yr[j] = (xr[j] - m) - ls
        else:
            inv = x.dtype.type(1) / _exp_shifted_sum(xr, m, yr, c)
            for j in range(c):
                yr[j] *= inv


@njit(**_PAR)
def _softmax_bwd(y, gy, gx, log):
    n, c = y.shape
    for i in prange(n):
        yr, gr, out = y[i], gy[i], gx[i]
        if log:                                     # gx = gy - exp(y) Σ gy
            s = _row_sum(gr, c)
            for j in range(c):
                out[j] = gr[j] - vexp(yr[j]) * s
        else:                                       # gx = y (gy - Σ gy y)
            d = _row_dot(gr, yr, c)
            for j in range(c):
                out[j] = yr[j] * (gr[j] - d)


def softmax_forward(x, log: bool):
    """y = softmax(x) (or log-softmax) along the last axis of the 2-D C-contiguous x."""
    y = np.empty_like(x)
    _softmax_fwd(x, y, log)
    return y


def softmax_backward(y, gy, log: bool):
    """gx from the saved output y and the upstream gy (2-D, C-contiguous)."""
    gx = np.empty_like(y)
    _softmax_bwd(y, gy, gx, log)
    return gx


# ---------------------------------------------------------------- cross-entropy
@njit(**_PAR)
def _cross_entropy_fwd(x, target, ignore_index, smoothing, loss, lse):
    n, c = x.shape
    one = x.dtype.type(1)
    eps = x.dtype.type(smoothing)
    for i in prange(n):
        xr = x[i]
        m = _row_max(xr, c)
        ls = np.log(_sum_exp_shifted(xr, m, c))
        lse[i] = m + ls
        t = target[i]
        if t == ignore_index:
            loss[i] = 0
            continue
        li = (one - eps) * (ls - (xr[t] - m))           # -(1-ε) log p_t
        if smoothing != 0.0:                            # -(ε/C) Σ_c log p_c
            li += eps / c * (c * ls - (_row_sum(xr, c) - c * m))
        loss[i] = li


@njit(**_PAR)
def _cross_entropy_bwd(x, lse, target, g, ignore_index, smoothing, gx):
    n, c = x.shape
    one = x.dtype.type(1)
    off = x.dtype.type(smoothing / c)
    for i in prange(n):
        xr, out = x[i], gx[i]
        t = target[i]
        gi = g[i]
        if t == ignore_index or gi == 0:
            out[:] = 0
            continue
        li = lse[i]
        for j in range(c):                             # g (p - ε/C - (1-ε) onehot)
            out[j] = gi * (vexp(xr[j] - li) - off)
        out[t] -= gi * (one - x.dtype.type(smoothing))


def cross_entropy_forward(x, target, ignore_index: int, label_smoothing: float):
    """Per-row losses ℓ (N,) (0 at ignored rows) and log Σ exp (N,) of logits x (N, C)."""
    n = x.shape[0]
    loss = np.empty(n, dtype=x.dtype)
    lse = np.empty(n, dtype=x.dtype)
    _cross_entropy_fwd(x, target, ignore_index, label_smoothing, loss, lse)
    return loss, lse


def cross_entropy_backward(x, lse, target, g, ignore_index: int, label_smoothing: float):
    """gx = gᵢ (softmax(xᵢ) - (1-ε) onehot(tᵢ) - ε/C), gᵢ the per-row upstream (N,)."""
    gx = np.empty_like(x)
    _cross_entropy_bwd(x, lse, target, g, ignore_index, label_smoothing, gx)
    return gx


# ---------------------------------------------------------------- layer norm
@njit(**_PAR)
def _layer_norm_fwd(x, w, b, has_w, has_b, eps, y, mean, rstd):
    n, c = x.shape
    for i in prange(n):
        xr, yr = x[i], y[i]
        mu = x.dtype.type(_row_sum(xr, c) / c)          # row scalars in the data's dtype:
        for j in range(c):                              # a float64 one would turn every
            yr[j] = xr[j] - mu                          # element op into float64
        r = x.dtype.type(1 / np.sqrt(_row_dot(yr, yr, c) / c + eps))
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


@njit(**_JIT_SUM)
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


@njit(**_PAR)
def _layer_norm_bwd(x, gy, w, mean, rstd, gx, gw_part, gb_part, chunks):
    n = x.shape[0]
    for k in prange(chunks):
        for i in range(k * n // chunks, (k + 1) * n // chunks):
            _layer_norm_bwd_row(x[i], gy[i], w, mean[i], rstd[i], gx[i], gw_part[k],
                                gb_part[k])


def layer_norm_forward(x, w, b, eps: float):
    """y, μ (N,), 1/σ (N,) for rows x (N, C); w, b (C,) or None."""
    n, c = x.shape
    y = np.empty_like(x)
    mean = np.empty(n, dtype=x.dtype)
    rstd = np.empty(n, dtype=x.dtype)
    dummy = np.empty(0, dtype=x.dtype)
    _layer_norm_fwd(x, dummy if w is None else w, dummy if b is None else b,
                    w is not None, b is not None, x.dtype.type(eps), y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(x, gy, w, mean, rstd):
    """gx (N, C), gγ (C,), gβ (C,) from the saved rows, μ and 1/σ."""
    n, c = x.shape
    chunks = _chunks(n)
    gx = np.empty_like(x)
    gw_part = np.zeros((chunks, c), dtype=x.dtype)
    gb_part = np.zeros((chunks, c), dtype=x.dtype)
    _layer_norm_bwd(x, gy, np.ones(c, dtype=x.dtype) if w is None else w, mean, rstd, gx,
                    gw_part, gb_part, chunks)
    return gx, gw_part.sum(axis=0), gb_part.sum(axis=0)


# ---------------------------------------------------------------- attention
# Per head (Tq × Tk scores, a few hundred KB: they stay in cache from one step to the
# next): Q Kᵀ on BLAS, then scale, bias, masks and softmax in one pass (a Numba kernel),
# then P V on BLAS. Heads are shared among threads of a pool, each running BLAS on one
# thread, the way PyTorch's CPU attention works: BLAS's own thread pool, called 64 times
# on small matrices, spins and stalls as soon as the cores are shared. With a causal mask
# the queries go in blocks, each multiplied only with the keys it can see (j ≤ i): the
# products shrink to about 5/8 of the full ones with four blocks.
@njit(nogil=True, **_JIT)
def _head_probs(s, i0, i1, nk, scale, bias, has_bias, keep, has_keep, causal):
    """Rows i0:i1 of one head's scores ``s`` (Tq, Tk; keys :nk computed) become
    probabilities (the whole head is passed so that its rows are known contiguous)."""
    tk = s.shape[1]
    ninf = s.dtype.type(-np.inf)
    sc = s.dtype.type(scale)
    for i in range(i0, i1):
        row = s[i]
        n = min(nk, i + 1) if causal else nk          # keys j < n may take part
        for j in range(n):
            row[j] *= sc
        if has_bias:
            br = bias[i]
            for j in range(n):
                row[j] += br[j]
        if has_keep:
            kr = keep[i]
            for j in range(n):
                row[j] = row[j] if kr[j] else ninf
        m = _row_max(row, n)
        if m == ninf:                                 # every key masked: P = 0, no NaN
            row[:] = 0
            continue
        inv = s.dtype.type(1) / _exp_shifted_sum_inplace(row, m, n)
        for j in range(n):
            row[j] *= inv
        for j in range(n, tk):
            row[j] = 0


@njit(nogil=True, **_JIT)
def _head_grad_scores(p, gp, i0, i1, nk, drop, has_drop, causal):
    """Rows i0:i1 of one head: gp = ∂L/∂P becomes gS = P ⊙ (gP̃ - Σⱼ gP̃ⱼ Pⱼ), gP̃ = gP ⊙ D."""
    tk = p.shape[1]
    for i in range(i0, i1):
        pr, gr = p[i], gp[i]
        n = min(nk, i + 1) if causal else nk
        if has_drop:
            dr = drop[i]
            for j in range(n):
                gr[j] *= dr[j]
        d = _row_dot(gr, pr, n)
        for j in range(n):
            gr[j] = pr[j] * (gr[j] - d)
        for j in range(n, tk):
            gr[j] = 0


def _blocks(tq: int, tk: int, causal: bool) -> list:
    """(i0, i1, n): query rows i0:i1 need keys :n."""
    if not causal:
        return [(0, tq, tk)]
    nb = min(4, tq)
    edges = [tq * b // nb for b in range(nb + 1)]
    return [(edges[b], edges[b + 1], min(tk, edges[b + 1])) for b in range(nb)
            if edges[b + 1] > edges[b]]


def _head(a, g: int, h: int):
    """Head (g, h) of a (G, H, Tq, Tk) array, or None."""
    return None if a is None else a[g, h]


def attention_forward(q, k, v, scale: float, bias, keep, causal: bool, drop):
    """out = (P ⊙ D) V and P = softmax(scale Q Kᵀ + bias, masked), per head.

    q (G, H, Tq, D), k (G, H, Tk, D), v (G, H, Tk, Dv); ``bias`` (float), ``keep`` (bool,
    True = takes part) and ``drop`` (the dropout mask over 1 - p) are (G, H, Tq, Tk)
    arrays or views (broadcast ones included), or None.
    """
    ng, nh, tq, tk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    p = np.empty((ng, nh, tq, tk), dtype=q.dtype)
    out = np.empty((ng, nh, tq, v.shape[3]), dtype=q.dtype)
    dummy_f = np.zeros((1, 1), dtype=q.dtype)
    dummy_b = np.ones((1, 1), dtype=np.bool_)
    blocks = _blocks(tq, tk, causal)

    def heads(lo: int, hi: int) -> None:
        for r in range(lo, hi):
            g, h = divmod(r, nh)
            b, kp = _head(bias, g, h), _head(keep, g, h)
            for i0, i1, n in blocks:
                pb = p[g, h, i0:i1, :n]
                np.matmul(q[g, h, i0:i1], k[g, h, :n].T, out=pb)
                _head_probs(p[g, h], i0, i1, n, scale, dummy_f if b is None else b,
                            b is not None, dummy_b if kp is None else kp, kp is not None,
                            causal)
                if drop is not None:
                    pb = pb * drop[g, h, i0:i1, :n]
                np.matmul(pb, v[g, h, :n], out=out[g, h, i0:i1])

    _over_heads(heads, ng * nh, tq * tk)
    return out, p


def attention_backward(q, k, v, p, gout, scale: float, drop, causal: bool, gp_extra,
                       needs: tuple):
    """gq, gk, gv (None where ``needs`` is False) and gS, per head (shapes as in
    :func:`attention_forward`; ``gp_extra`` is the gradient of the returned P, or None).

    gV = (P ⊙ D)ᵀ gout;  gP = (gout Vᵀ) ⊙ D + gp_extra;  gS = P ⊙ (gP - Σⱼ gPⱼ Pⱼ);
    gQ = scale · gS K;  gK = scale · gSᵀ Q
    """
    ng, nh, tq, tk = p.shape
    gs = np.empty_like(p)
    gq = np.empty_like(q) if needs[0] else None
    gk = np.zeros_like(k) if needs[1] else None
    gv = np.zeros_like(v) if needs[2] else None
    dummy = np.zeros((1, 1), dtype=q.dtype)
    sc = q.dtype.type(scale)
    blocks = _blocks(tq, tk, causal)

    def heads(lo: int, hi: int) -> None:
        for r in range(lo, hi):
            g, h = divmod(r, nh)
            dh = _head(drop, g, h)
            for i0, i1, n in blocks:
                pb, gsb = p[g, h, i0:i1, :n], gs[g, h, i0:i1, :n]
                db = None if dh is None else dh[i0:i1, :n]
                go = gout[g, h, i0:i1]
                np.matmul(go, v[g, h, :n].T, out=gsb)             # gP
                if gv is not None:
                    gv[g, h, :n] += (pb if db is None else pb * db).T @ go
                if gp_extra is not None:
                    if db is not None:
                        gsb *= db
                    gsb += gp_extra[g, h, i0:i1, :n]
                    db = None
                _head_grad_scores(p[g, h], gs[g, h], i0, i1, n,
                                  dummy if db is None else dh, db is not None, causal)
                if gq is not None:
                    np.matmul(gsb, k[g, h, :n], out=gq[g, h, i0:i1])
                    gq[g, h, i0:i1] *= sc
                if gk is not None:
                    gk[g, h, :n] += gsb.T @ q[g, h, i0:i1]
            if gk is not None:
                gk[g, h] *= sc

    _over_heads(heads, ng * nh, tq * tk)
    return gq, gk, gv, gs


_POOL = None        # (pid, workers, ThreadPoolExecutor)


def _over_heads(work, n_heads: int, head_size: int) -> None:
    """Run ``work(lo, hi)`` over head ranges on ``numba.get_num_threads()`` threads, BLAS
    held to one thread meanwhile; inline when the work is small or BLAS cannot be held."""
    global _POOL
    threads = min(numba.get_num_threads(), n_heads)
    if threads < 2 or n_heads * head_size < 1 << 15:
        work(0, n_heads)
        return
    with _blas_single_thread() as held:
        if not held:
            work(0, n_heads)
            return
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < threads - 1:
            # a new pool after a fork too: the parent's worker threads do not exist here
            _POOL = (os.getpid(), threads - 1,
                     ThreadPoolExecutor(threads - 1, thread_name_prefix="xpgrad-attention"))
        bounds = [n_heads * t // threads for t in range(threads + 1)]
        futures = [_POOL[2].submit(work, bounds[t], bounds[t + 1])
                   for t in range(1, threads)]
        try:
            work(bounds[0], bounds[1])
        finally:
            wait(futures)             # BLAS threads are restored only once all are done
        for f in futures:
            f.result()


_BLAS = {"lock": threading.Lock(), "depth": 0, "saved": 1, "calls": None}


def _openblas_thread_calls():
    """(get, set) for the number of threads of NumPy's OpenBLAS, or () when not found."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)       # already loaded by NumPy: the same library
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_"), ("openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                return get, put
    return ()


@contextlib.contextmanager
def _blas_single_thread():
    """Hold NumPy's OpenBLAS to one thread (nested and thread-safe); yields False, doing
    nothing, when NumPy uses another BLAS."""
    with _BLAS["lock"]:
        if _BLAS["calls"] is None:
            _BLAS["calls"] = _openblas_thread_calls()
        calls = _BLAS["calls"]
        if calls:
            if _BLAS["depth"] == 0:
                _BLAS["saved"] = calls[0]()
                calls[1](1)
            _BLAS["depth"] += 1
    try:
        yield bool(calls)
    finally:
        if calls:
            with _BLAS["lock"]:
                _BLAS["depth"] -= 1
                if _BLAS["depth"] == 0:
                    calls[1](_BLAS["saved"])




def _chunks(n: int) -> int:
    """Row chunks for kernels that keep per-chunk scratch (one per thread)."""
    return max(1, min(n, numba.get_num_threads()))
