"""Attention on the CPU: per head, Q Kᵀ on BLAS, one kernel pass, P V on BLAS.

Per head (Tq × Tk scores, a few hundred KB: they stay in cache from one step to the next):
Q Kᵀ on BLAS, then scale, bias, masks and softmax in one pass (a Numba kernel), then P V on
BLAS. Heads are shared among threads (:func:`engine.threads.run_split`), each running BLAS
on one thread, the way PyTorch's CPU attention works: BLAS's own thread pool, called 64
times on small matrices, spins and stalls as soon as the cores are shared. With a causal
mask the queries go in blocks, each multiplied only with the keys it can see (j ≤ i): the
products shrink to about 5/8 of the full ones with four blocks.

Arrays have four axes (G, H, T, ·) (:func:`engine.kernels.reference.grouped`); the formulas
are in :mod:`engine.kernels.reference`.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
from numba import njit

from engine import threads
from engine.kernels.cpu_math import (
    GEMM, JIT, NO_TRANS, ROW_MAJOR, TRANS, exp_shifted_sum_inplace, row_dot, row_max,
)


@njit(nogil=True, **JIT)
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
        m = row_max(row, n)                           # NaN entries skipped
        if m == ninf:              # every key masked: P = 0, no NaN (NaN if a score is)
            fill = s.dtype.type(0)
            for j in range(n):
                if row[j] != row[j]:
                    fill = row[j]
            row[:] = fill
            continue
        inv = s.dtype.type(1) / exp_shifted_sum_inplace(row, m, n)   # NaN if a score is
        for j in range(n):
            row[j] *= inv
        for j in range(n, tk):                        # a NaN row is NaN everywhere
            row[j] = 0 if inv == inv else inv


@njit(nogil=True, **JIT)
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
        d = row_dot(gr, pr, n)
        for j in range(n):
            gr[j] = pr[j] * (gr[j] - d)
        for j in range(n, tk):                        # P = 0 there; a NaN row stays NaN
            gr[j] = 0 if d == d else d


# ---------------------------------------------------------------- heads as Numba loops
# The per-head loops of forward and backward below, for a range of heads, in Numba with
# BLAS called from inside (cpu_math.GEMM): in Python each head cost a dozen calls holding
# the GIL, and two threads taking turns on it ran the heads little faster than one. Same
# products, same kernels, same order as the Python loops (which stay for the rare cases:
# no OpenBLAS, a causal mask over non-finite values), so the same values (but for the last
# bits of a block of one query row, which NumPy multiplies with a matrix-vector routine).
@njit(nogil=True, **JIT)
def _times_mask(p, d, i0, m, n, scratch):
    """scratch[:m, :n] = (P ⊙ D)[i0:i0 + m, :n] of one head; returns scratch's first row,
    the start of the block for BLAS (rows as far apart as in P)."""
    for i in range(m):
        for j in range(n):
            scratch[i, j] = p[i0 + i, j] * d[i0 + i, j]
    return scratch[0]


@njit(nogil=True, **JIT)
def _forward_heads(gemm, q, k, v, p, out, scale, bias, has_bias, keep, has_keep, drop,
                   has_drop, causal, blocks, lo, hi):
    nh, d, dv, tk = q.shape[1], q.shape[3], v.shape[3], p.shape[3]
    one, zero = p.dtype.type(1), p.dtype.type(0)
    scratch = np.empty((p.shape[2] if has_drop else 1, tk), dtype=p.dtype)
    for r in range(lo, hi):
        g, h = r // nh, r % nh
        b = bias[g, h] if has_bias else bias[0, 0]
        kp = keep[g, h] if has_keep else keep[0, 0]
        for x in range(blocks.shape[0]):
            i0, i1, n = blocks[x, 0], blocks[x, 1], blocks[x, 2]
            m = i1 - i0
            gemm(ROW_MAJOR, NO_TRANS, TRANS, m, n, d, one, q[g, h, i0].ctypes.data, d,
                 k[g, h, 0].ctypes.data, d, zero, p[g, h, i0].ctypes.data, tk)  # Q Kᵀ
            _head_probs(p[g, h], i0, i1, n, scale, b, has_bias, kp, has_keep, causal)
            a = p[g, h, i0]
            if has_drop:                                                       # P ⊙ D
                a = _times_mask(p[g, h], drop[g, h], i0, m, n, scratch)
            gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, dv, n, one, a.ctypes.data, tk,
                 v[g, h, 0].ctypes.data, dv, zero, out[g, h, i0].ctypes.data, dv)  # · V


@njit(nogil=True, **JIT)
def _add_part(target, part, n, width):
    """target[:n] += the product in ``part`` (n × width, rows ``width`` apart)."""
    flat = part.reshape(-1)
    for i in range(n):
        for j in range(width):
            target[i, j] += flat[i * width + j]


@njit(nogil=True, **JIT)
def _backward_heads(gemm, q, k, v, p, gout, gs, gq, gk, gv, sc, drop, has_drop, extra,
                    has_extra, causal, blocks, lo, hi):
    nh, d, dv, tk = q.shape[1], q.shape[3], v.shape[3], p.shape[3]
    one, zero = p.dtype.type(1), p.dtype.type(0)
    scratch = np.empty((p.shape[2] if has_drop else 1, tk), dtype=p.dtype)
    part = np.empty((tk, max(d, dv)), dtype=p.dtype)     # a product added to gK or gV
    for r in range(lo, hi):
        g, h = r // nh, r % nh
        dh = drop[g, h] if has_drop else drop[0, 0]
        for x in range(blocks.shape[0]):
            i0, i1, n = blocks[x, 0], blocks[x, 1], blocks[x, 2]
            m = i1 - i0
            gemm(ROW_MAJOR, NO_TRANS, TRANS, m, n, dv, one, gout[g, h, i0].ctypes.data, dv,
                 v[g, h, 0].ctypes.data, dv, zero, gs[g, h, i0].ctypes.data, tk)  # gP
            if gv.shape[0]:                                           # gV += (P ⊙ D)ᵀ gout
                a = p[g, h, i0]
                if has_drop:
                    a = _times_mask(p[g, h], dh, i0, m, n, scratch)
                gemm(ROW_MAJOR, TRANS, NO_TRANS, n, dv, m, one, a.ctypes.data, tk,
                     gout[g, h, i0].ctypes.data, dv, zero, part.ctypes.data, dv)
                _add_part(gv[g, h], part, n, dv)
            dropped = has_drop
            if has_extra:                                             # gP ⊙ D + gP_extra
                for i in range(i0, i1):
                    for j in range(n):
                        if has_drop:
                            gs[g, h, i, j] *= dh[i, j]
                        gs[g, h, i, j] += extra[g, h, i, j]
                dropped = False
            _head_grad_scores(p[g, h], gs[g, h], i0, i1, n, dh, dropped, causal)
            if gq.shape[0]:                                           # gQ = scale gS K
                gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, d, n, one, gs[g, h, i0].ctypes.data,
                     tk, k[g, h, 0].ctypes.data, d, zero, gq[g, h, i0].ctypes.data, d)
                for i in range(i0, i1):
                    for j in range(d):
                        gq[g, h, i, j] *= sc
            if gk.shape[0]:                                           # gK += gSᵀ Q
                gemm(ROW_MAJOR, TRANS, NO_TRANS, n, d, m, one, gs[g, h, i0].ctypes.data, tk,
                     q[g, h, i0].ctypes.data, d, zero, part.ctypes.data, d)
                _add_part(gk[g, h], part, n, d)
        if gk.shape[0]:
            for i in range(gk.shape[2]):
                for j in range(d):
                    gk[g, h, i, j] *= sc


def _numba_heads(heads: tuple, others: tuple) -> bool:
    """Whether the Numba loops serve these arrays: a BLAS for their dtype, one dtype, no
    empty axis in q, k, v (the first three ``heads``), every one of ``heads`` C-contiguous
    (the products take rows to be one after another); ``others`` may be None."""
    q, k, v = heads[:3]
    return (q.dtype in GEMM and min(q.shape[2:] + k.shape[2:] + v.shape[3:]) > 0
            and all(a.flags.c_contiguous and a.dtype == q.dtype for a in heads)
            and all(a is None or a.dtype == q.dtype for a in others))


def _or_dummy(a, dtype):
    """(a, True), or a (1, 1, 1, 1) stand-in and False for an absent array."""
    return (a, True) if a is not None else (np.zeros((1, 1, 1, 1), dtype=dtype), False)


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


def forward(q, k, v, scale: float, bias, keep, causal: bool, drop):
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
    # P V over the keys a block sees: a NaN or inf value past them must still give NaN
    hidden_bad = causal and not np.isfinite(v).all()

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
                if hidden_bad and n < tk:               # 0 · NaN = NaN, as in P V
                    out[g, h, i0:i1, ~np.isfinite(v[g, h, n:]).all(axis=0)] = np.nan

    if not hidden_bad and _numba_heads((q, k, v, p, out), (drop,)):
        args = (GEMM[q.dtype], q, k, v, p, out, scale, *_or_dummy(bias, q.dtype),
                *_or_dummy(keep, np.bool_), *_or_dummy(drop, q.dtype), causal,
                np.array(blocks, dtype=np.int64).reshape(-1, 3))
        _over_heads(lambda lo, hi: _forward_heads(*args, lo, hi), ng * nh, tq * tk)
    else:
        _over_heads(heads, ng * nh, tq * tk)
    return out, p


def backward(q, k, v, p, gout, scale: float, drop, causal: bool, gp_extra, needs: tuple):
    """gq, gk, gv (None where ``needs`` is False) and gS, per head (shapes as in
    :func:`forward`; ``gp_extra`` is the gradient of the returned P, or None).

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

    if _numba_heads((q, k, v, p, gout, gs), (drop, gp_extra)):
        none = np.empty((0, 0, 0, 0), dtype=q.dtype)          # a gradient not asked for
        args = (GEMM[q.dtype], q, k, v, p, gout, gs, none if gq is None else gq,
                none if gk is None else gk, none if gv is None else gv, sc,
                *_or_dummy(drop, q.dtype), *_or_dummy(gp_extra, q.dtype), causal,
                np.array(blocks, dtype=np.int64).reshape(-1, 3))
        _over_heads(lambda lo, hi: _backward_heads(*args, lo, hi), ng * nh, tq * tk)
    else:
        _over_heads(heads, ng * nh, tq * tk)
    return gq, gk, gv, gs


def _over_heads(work, n_heads: int, head_size: int) -> None:
    """Run ``work(lo, hi)`` over every head on ``numba.get_num_threads()`` threads; inline
    when the work is small or BLAS cannot be held to one thread per worker; BLAS on one
    thread either way.

    The threads claim heads a few at a time (about 8 claims per thread) from a shared
    counter instead of taking fixed ranges: on a machine whose cores are shared, a worker
    the scheduler starts late finds the heads already done by the others, rather than
    making them wait for its half. So such a split is not judged for contention (its CPU
    share is low even when the cores are idle: a late worker finds few heads left)."""
    n_threads = min(numba.get_num_threads(), n_heads)
    if n_threads < 2 or n_heads * head_size < 1 << 15:
        with threads.blas_threads(1):
            work(0, n_heads)
        return
    chunk = max(1, n_heads // (8 * n_threads))
    counter = itertools.count()         # next() on it is atomic: each chunk claimed once

    def claim(_lo: int, _hi: int) -> None:
        r = next(counter) * chunk
        while r < n_heads:
            work(r, min(r + chunk, n_heads))
            r = next(counter) * chunk

    if not threads.run_split(claim, n_threads, n_threads, judged=False):
        with threads.blas_threads(1):
            claim(0, n_heads)
