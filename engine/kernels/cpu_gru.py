"""The GRU step's pointwise part on the CPU: Numba kernels over the rows of a batch.

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

from numba import njit, prange

from engine.kernels.cpu_math import JIT, JIT_FMA, PARALLEL
from engine.kernels.cpu_rnn import PARALLEL_MIN, vsigmoid, vtanh


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
