"""The GRU step's pointwise part on the CPU: Numba kernels over the rows of a batch; and
the whole recurrence as Numba loops that call BLAS for each step's product (the end of
this module).

As for the LSTM (:mod:`engine.kernels.cpu_rnn`, whose vectorizing σ and tanh these use),
the step's matrix products stay on BLAS and one call does the rest of a step; formulas in
:mod:`engine.ops.gru`, the same functions for CuPy in :mod:`engine.kernels.cuda_rnn`. With
the gates r, z, n in the blocks of a (B, 3H) row::

    forward    r, z = σ(xa + ha + b_hh)    hn = ha_n + b_hn    n = tanh(xa_n + r hn)
               h' = n + z (h - n)
    backward   gn = gh (1 - z) (1 - n²)    gr = gn hn r (1 - r)    gz = gh (h - n) z (1 - z)
               gxa = [gr, gz, gn]    gha = [gr, gz, gn r]    gh_direct = gh z

Short passes over a row keep each loop's run-time overlap checks within LLVM's limit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu_math import GEMM, JIT, JIT_FMA, PARALLEL, product
from engine.kernels.cpu_rnn import PARALLEL_MIN, fits, over_rows, vsigmoid, vtanh


@njit(**JIT_FMA)
def _forward_row(a, ha, bh, h, hn, h_new, n):
    for j in range(2 * n):
        a[j] = vsigmoid(a[j] + ha[j] + bh[j])
    for j in range(n):
        k = 2 * n + j
        v = ha[k] + bh[k]
        hn[j] = v
        a[k] = vtanh(a[k] + a[j] * v)
    for j in range(n):
        c = a[2 * n + j]
        h_new[j] = c + a[n + j] * (h[j] - c)


@njit(**JIT_FMA)
def _backward_row(gh, a, hn, h, gxa, gha, gh_direct, n):
    one = a.dtype.type(1)
    for j in range(n):
        c, z, r = a[2 * n + j], a[n + j], a[j]
        g = gh[j] * (one - z) * (one - c * c)
        gxa[2 * n + j] = g
        gha[2 * n + j] = g * r
    for j in range(n):
        c, z, r = a[2 * n + j], a[n + j], a[j]
        g = gh[j] * (one - z) * (one - c * c) * hn[j] * r * (one - r)
        gxa[j] = g
        gha[j] = g
    for j in range(n):
        c, z = a[2 * n + j], a[n + j]
        g = gh[j] * (h[j] - c) * z * (one - z)
        gxa[n + j] = g
        gha[n + j] = g
    for j in range(n):
        gh_direct[j] = gh[j] * a[n + j]


@njit(**JIT)
def _forward_serial(a, ha, bh, h, hn, h_new):
    for b in range(a.shape[0]):
        _forward_row(a[b], ha[b], bh, h[b], hn[b], h_new[b], h.shape[1])


@njit(**PARALLEL)
def _forward_parallel(a, ha, bh, h, hn, h_new):
    for b in prange(a.shape[0]):
        _forward_row(a[b], ha[b], bh, h[b], hn[b], h_new[b], h.shape[1])


@njit(**JIT)
def _backward_serial(gh, a, hn, h, gxa, gha, gh_direct):
    for b in range(a.shape[0]):
        _backward_row(gh[b], a[b], hn[b], h[b], gxa[b], gha[b], gh_direct[b], h.shape[1])


@njit(**PARALLEL)
def _backward_parallel(gh, a, hn, h, gxa, gha, gh_direct):
    for b in prange(a.shape[0]):
        _backward_row(gh[b], a[b], hn[b], h[b], gxa[b], gha[b], gh_direct[b], h.shape[1])


def gru_cell_forward(xp, a, ha, b_hh, h, hn, h_new) -> None:
    """One step, in place: ``a`` (B, 3H) holds xa = x W_ihᵀ + b_ih on entry and the gate
    activations r, z, n on exit; ``ha = h W_hhᵀ`` (B, 3H) without its bias ``b_hh`` (3H);
    ``h`` (B, H) the state; ``hn = ha_n + b_hn`` (kept for backward) and ``h_new`` (B, H)
    are written. Every array C-contiguous, of one dtype, none overlapping another."""
    kernel = _forward_parallel if a.size >= PARALLEL_MIN else _forward_serial
    kernel(a, ha, b_hh, h, hn, h_new)


def gru_cell_backward(xp, gh, a, hn, h, gxa, gha, gh_direct) -> None:
    """One step back from the upstream gradient ``gh`` of h' (B, H), the saved activations
    ``a`` (B, 3H), ``hn`` and the state ``h`` before the step: writes the gradients of the
    input and recurrent pre-activations ``gxa`` and ``gha`` (B, 3H), and ``gh_direct``
    = gh ⊙ z, the part of h's gradient that bypasses W_hh."""
    kernel = _backward_parallel if a.size >= PARALLEL_MIN else _backward_serial
    kernel(gh, a, hn, h, gxa, gha, gh_direct)


# ---------------------------------------------------------------- the whole recurrence
# As for the LSTM (the end of :mod:`engine.kernels.cpu_rnn`): the step loops in Numba,
# calling BLAS for each step's product, over ranges of the batch's rows on the pool; the
# same values as the Python loops of :mod:`engine.ops.gru`, bit for bit.
@njit(nogil=True, **JIT)
def _forward_steps(gemm, act, h0, b_hh, W_hh_T, hn, out, ha, lo, hi, reverse):
    steps, n = act.shape[0], h0.shape[1]
    for k in range(steps):
        t = steps - 1 - k if reverse else k
        h = h0[lo:hi] if k == 0 else out[t + 1 if reverse else t - 1, lo:hi]
        product(gemm, h, W_hh_T, ha)                                 # h_{t-1} W_hhᵀ
        for b in range(hi - lo):
            _forward_row(act[t, lo + b], ha[b], b_hh, h[b], hn[t, lo + b], out[t, lo + b],
                         n)


@njit(nogil=True, **JIT)
def _backward_steps(gemm, gout, gh_n, act, hn, h0, out, W_hh, gxa, gha, gh_direct, lo, hi,
                    reverse):
    steps, n = act.shape[0], h0.shape[1]
    gh = np.empty((hi - lo, n), dtype=act.dtype)
    direct = np.empty((hi - lo, n), dtype=act.dtype)
    for k in range(steps):
        t = k if reverse else steps - 1 - k
        if k == 0:
            gh[:] = gh_n[lo:hi]
        else:
            product(gemm, gha[t - 1 if reverse else t + 1, lo:hi], W_hh, gh)
            gh += direct
        gh += gout[t, lo:hi]
        h = h0[lo:hi] if k == steps - 1 else out[t + 1 if reverse else t - 1, lo:hi]
        for b in range(hi - lo):
            _backward_row(gh[b], act[t, lo + b], hn[t, lo + b], h[b], gxa[t, lo + b],
                          gha[t, lo + b], direct[b], n)
    gh_direct[lo:hi] = direct


def gru_forward_steps(act, h0, b_hh, W_hh_T, hn, out, reverse: bool) -> bool:
    """All steps of the forward loop (:mod:`engine.ops.gru`) on C-contiguous arrays:
    ``act`` (T, B, 3H) holds XA + b_ih on entry and the gates on exit; hn and out (T, B, H)
    are written. False, doing nothing, where the kernels do not serve the arrays
    (:func:`~engine.kernels.cpu_rnn.fits`)."""
    gemm = GEMM.get(act.dtype)
    if not fits(gemm, act, h0, b_hh, W_hh_T, hn, out):
        return False

    def run(lo, hi):
        ha = np.empty((hi - lo, act.shape[2]), dtype=act.dtype)
        _forward_steps(gemm, act, h0, b_hh, W_hh_T, hn, out, ha, lo, hi, reverse)

    over_rows(run, act.shape[1])
    return True


def gru_backward_steps(gout, gh_n, act, hn, h0, out, W_hh, gxa, gha, gh_direct,
                       reverse: bool) -> bool:
    """All steps of the backward loop on C-contiguous arrays: GX and GH (T, B, 3H) into
    ``gxa`` and ``gha``, and gh ⊙ z of the first step taken into ``gh_direct`` (B, H).
    False, doing nothing, where the kernels do not serve the arrays
    (:func:`~engine.kernels.cpu_rnn.fits`)."""
    gemm = GEMM.get(act.dtype)
    gout, gh_n, W_hh = (np.ascontiguousarray(a) for a in (gout, gh_n, W_hh))  # read only
    if not fits(gemm, act, gout, gh_n, hn, h0, out, W_hh, gxa, gha, gh_direct):
        return False
    over_rows(lambda lo, hi: _backward_steps(gemm, gout, gh_n, act, hn, h0, out, W_hh, gxa,
                                             gha, gh_direct, lo, hi, reverse), act.shape[1])
    return True
