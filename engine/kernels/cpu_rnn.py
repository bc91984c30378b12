"""The LSTM step's pointwise part on the CPU: Numba kernels over the rows of a batch; and
the whole recurrence, forward and backward, as Numba loops that call BLAS for each step's
product, over ranges of the batch's rows (the end of this module).

The matrix products of a step (``h W_hhᵀ``, ``ga W_hh``) stay on BLAS; these kernels do
everything else of a step in one call: the gate nonlinearities, the cell update, and in
backward the gate gradients (formulas in :mod:`engine.ops.rnn`). The same functions on any
array module (the CuPy path) are in :mod:`engine.kernels.cuda_rnn`.

σ and tanh are written so that a loop of them vectorizes (``np.tanh`` in Numba is a scalar
libm call per element): σ(x) = 1 / (1 + exp(-x)) on :func:`~engine.kernels.cpu_math.vexp`,
and tanh as Cephes computes it, an odd polynomial for |x| ≤ 0.625 (no cancellation near 0)
and 1 - 2 / (exp(2|x|) + 1) above, both within a few ulp of ``np.tanh``. (In float64
LLVM leaves the tanh loops scalar, judging the vector form not worth it; float32, the
training dtype, vectorizes throughout.)

Each loop reads and writes few enough distinct arrays that LLVM's run-time overlap checks
stay within its limit (beyond it the loop is left scalar), which is why a step is several
short passes over a row rather than one. Rows are independent: large batches run them in
parallel, small ones in the calling thread (a parallel region costs more than it saves
there, and more still when the cores are shared).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from engine import threads
from engine.kernels.cpu_math import GEMM, JIT, JIT_FMA, PARALLEL, product, vexp

PARALLEL_MIN = 1 << 16      # elements of a (B, 4H) gate array from which rows go parallel


# ---------------------------------------------------------------- σ and tanh that vectorize
@njit(**JIT_FMA)
def _sigmoid32(x):
    return np.float32(1) / (np.float32(1) + vexp(-x))


@njit(**JIT_FMA)
def _sigmoid64(x):
    return 1.0 / (1.0 + vexp(-x))


@njit(**JIT_FMA)
def _tanh32(x):
    """Cephes' tanhf: x + x³ P(x²) for |x| ≤ 0.625, else ±(1 - 2 / (exp(2|x|) + 1)),
    both as ``base + num / den`` so that one division serves either branch."""
    z = abs(x)
    one = np.float32(1)
    sign = one if x >= np.float32(0) else -one
    s = x * x
    p = np.float32(-5.70498872745e-3)
    p = p * s + np.float32(2.06390887954e-2)
    p = p * s + np.float32(-5.37397155531e-2)
    p = p * s + np.float32(1.33314422036e-1)
    p = p * s + np.float32(-3.33332819422e-1)
    big = z > np.float32(0.625)
    base = sign if big else x
    num = np.float32(-2) * sign if big else p * s * x
    den = vexp(z + z) + one if big else one
    return base + num / den


@njit(**JIT_FMA)
def _tanh64(x):
    """Cephes' tanh: x + x³ P(x²) / Q(x²) for |x| ≤ 0.625, else ±(1 - 2 / (exp(2|x|) + 1)),
    both as ``base + num / den`` so that one division serves either branch."""
    z = abs(x)
    sign = 1.0 if x >= 0.0 else -1.0
    s = x * x
    p = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s \
        - 1.61468768441708447952e3
    q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s \
        + 4.84406305325125486048e3
    big = z > 0.625
    base = sign if big else x
    num = -2.0 * sign if big else x * s * p
    den = vexp(z + z) + 1.0 if big else q
    return base + num / den


def vsigmoid(x):
    """σ(x) for a float32 or float64 scalar inside Numba code (vectorizes)."""
    return 1.0 / (1.0 + np.exp(-x))


def vtanh(x):
    """tanh(x) for a float32 or float64 scalar inside Numba code (vectorizes)."""
    return np.tanh(x)


@overload(vsigmoid, jit_options=JIT)
def _vsigmoid_overload(x):
    if x == types.float32:
        return lambda x: _sigmoid32(x)
    if x == types.float64:
        return lambda x: _sigmoid64(x)
    return None


@overload(vtanh, jit_options=JIT)
def _vtanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    if x == types.float64:
        return lambda x: _tanh64(x)
    return None


# ---------------------------------------------------------------- one row of a step
@njit(**JIT_FMA)
def _forward_row(a, ha, c, c_new, tc, h_new, n):
    """a[:4n] = [σ, σ, tanh, σ](a + ha); c' = f c + i g; tc = tanh(c'); h' = o tc."""
    for j in range(2 * n):
        a[j] = vsigmoid(a[j] + ha[j])
    for j in range(n):              # indices k n + j, not range(k n, ...): a loop index
        k = 2 * n + j               # that may be negative (wrapped around, as in Python)
        a[k] = vtanh(a[k] + ha[k])  # does not vectorize
    for j in range(n):
        k = 3 * n + j
        a[k] = vsigmoid(a[k] + ha[k])
    for j in range(n):
        c_new[j] = a[n + j] * c[j] + a[j] * a[2 * n + j]
    for j in range(n):
        t = vtanh(c_new[j])
        tc[j] = t
        h_new[j] = a[3 * n + j] * t


@njit(**JIT_FMA)
def _backward_row(gh, gc, a, c, tc, ga, gc_prev, n):
    """gĉ = gc + gh o (1 - tc²); ga = [gĉ g i(1-i), gĉ c f(1-f), gĉ i (1-g²),
    gh tc o(1-o)]; gc_prev = gĉ f (gĉ kept in gc_prev between the passes)."""
    one = a.dtype.type(1)
    for j in range(n):
        t = tc[j]
        gc_prev[j] = gc[j] + gh[j] * a[3 * n + j] * (one - t * t)
    for j in range(n):
        o = a[3 * n + j]
        ga[3 * n + j] = gh[j] * tc[j] * o * (one - o)
    for j in range(n):
        i = a[j]
        g = a[2 * n + j]
        ga[j] = gc_prev[j] * g * i * (one - i)
        ga[2 * n + j] = gc_prev[j] * i * (one - g * g)
    for j in range(n):
        f = a[n + j]
        ga[n + j] = gc_prev[j] * c[j] * f * (one - f)
        gc_prev[j] = gc_prev[j] * f


# ---------------------------------------------------------------- a step over the batch
# Serial and parallel builds are separate functions: Numba's on-disk cache keys compiled
# code by the function, not by its build options.
@njit(**JIT)
def _forward_serial(a, ha, c, c_new, tc, h_new):
    for b in range(a.shape[0]):
        _forward_row(a[b], ha[b], c[b], c_new[b], tc[b], h_new[b], c.shape[1])


@njit(**PARALLEL)
def _forward_parallel(a, ha, c, c_new, tc, h_new):
    for b in prange(a.shape[0]):
        _forward_row(a[b], ha[b], c[b], c_new[b], tc[b], h_new[b], c.shape[1])


@njit(**JIT)
def _backward_serial(gh, gc, a, c, tc, ga, gc_prev):
    for b in range(a.shape[0]):
        _backward_row(gh[b], gc[b], a[b], c[b], tc[b], ga[b], gc_prev[b], c.shape[1])


@njit(**PARALLEL)
def _backward_parallel(gh, gc, a, c, tc, ga, gc_prev):
    for b in prange(a.shape[0]):
        _backward_row(gh[b], gc[b], a[b], c[b], tc[b], ga[b], gc_prev[b], c.shape[1])


def lstm_cell_forward(xp, a, ha, c, c_new, tc, h_new) -> None:
    """One step, in place: ``a`` (B, 4H) holds the input part of the pre-activations on
    entry and the gate activations i, f, g, o on exit; ``ha`` (B, 4H) is the recurrent
    part; ``c`` (B, H) the cell state; ``c_new``, ``tc = tanh(c_new)`` and ``h_new`` (B, H)
    are written. Every array C-contiguous, of one dtype, none overlapping another."""
    kernel = _forward_parallel if a.size >= PARALLEL_MIN else _forward_serial
    kernel(a, ha, c, c_new, tc, h_new)


def lstm_cell_backward(xp, gh, gc, a, c, tc, ga, gc_prev) -> None:
    """One step back: from the upstream gradients ``gh`` of h' and ``gc`` of c' (B, H),
    the saved activations ``a`` (B, 4H), the cell state ``c`` before the step and
    ``tc = tanh(c')``, write the pre-activation gradient ``ga`` (B, 4H) and the gradient
    ``gc_prev`` (B, H) of c. Arrays C-contiguous, ``gc_prev`` distinct from the inputs."""
    kernel = _backward_parallel if a.size >= PARALLEL_MIN else _backward_serial
    kernel(gh, gc, a, c, tc, ga, gc_prev)


# ---------------------------------------------------------------- the whole recurrence
# The step loop in Python hands each step's product to BLAS and its pointwise part to a
# kernel, a few µs of Python each, and one thread does all rows. The kernels below run the
# whole loop for a range of the batch's rows, calling NumPy's OpenBLAS (cblas_?gemm, passed
# in as a ctypes function) for each step's product: the rows of a batch are independent
# sequences, so the ranges run side by side on the worker pool, the loop's only hand-off
# being the one split for the whole sequence. The forward loop of the LSTM classifier
# benchmark (100 steps, batch 64, H 64): 4.9 ms in Python, 2.7 ms as two ranges. The values
# are the Python loop's, bit for bit: the same products and the same row kernels.
SPLIT_ROWS = 8                # rows of the batch at least per range of the pool


@njit(nogil=True, **JIT)
def _forward_steps(gemm, act, h0, c0, W_hh_T, c_all, tanh_c, out, ha, lo, hi, reverse):
    """The forward loop over all steps for the batch rows [lo, hi) (``ha``: scratch of
    hi - lo rows)."""
    steps, n = act.shape[0], c0.shape[1]
    for k in range(steps):
        t = steps - 1 - k if reverse else k
        before = t + 1 if reverse else t - 1
        h = h0[lo:hi] if k == 0 else out[before, lo:hi]
        c = c0[lo:hi] if k == 0 else c_all[before, lo:hi]
        product(gemm, h, W_hh_T, ha)                            # h_{t-1} W_hhᵀ
        for b in range(hi - lo):
            _forward_row(act[t, lo + b], ha[b], c[b], c_all[t, lo + b], tanh_c[t, lo + b],
                         out[t, lo + b], n)


@njit(nogil=True, **JIT)
def _backward_steps(gemm, gout, gh_n, gc_n, act, c0, c_all, tanh_c, W_hh, ga, gc0, lo, hi,
                    reverse):
    """The backward loop over all steps for the batch rows [lo, hi): GA into ``ga``, the
    gradient of c₀ into ``gc0``."""
    steps, n = act.shape[0], c0.shape[1]
    gh = np.empty((hi - lo, n), dtype=act.dtype)
    gc, gc_prev = gc_n[lo:hi].copy(), np.empty((hi - lo, n), dtype=act.dtype)
    for k in range(steps):
        t = k if reverse else steps - 1 - k
        if k == 0:
            gh[:] = gh_n[lo:hi]
        else:
            product(gemm, ga[t - 1 if reverse else t + 1, lo:hi], W_hh, gh)
        gh += gout[t, lo:hi]
        c = c0[lo:hi] if k == steps - 1 else c_all[t + 1 if reverse else t - 1, lo:hi]
        for b in range(hi - lo):
            _backward_row(gh[b], gc[b], act[t, lo + b], c[b], tanh_c[t, lo + b],
                          ga[t, lo + b], gc_prev[b], n)
        gc, gc_prev = gc_prev, gc
    gc0[lo:hi] = gc


def fits(gemm, *arrays) -> bool:
    """Whether the recurrence kernels serve these arrays: a BLAS for their dtype, one
    dtype, every array C-contiguous (the products take rows to be one after another)."""
    return gemm is not None and all(a.dtype == arrays[0].dtype and a.flags.c_contiguous
                                    for a in arrays)


def over_rows(run, batch: int) -> None:
    """``run(lo, hi)`` over the batch's rows: ranges of at least SPLIT_ROWS rows on the
    pool, or all rows on the calling thread (BLAS held to one thread either way)."""
    parts = min(threads.get_num_threads(), batch // SPLIT_ROWS)
    if parts < 2 or not threads.run_split(run, batch, parts):
        with threads.blas_threads(1):
            run(0, batch)


def lstm_forward_steps(act, h0, c0, W_hh_T, c_all, tanh_c, out, reverse: bool) -> bool:
    """All steps of the forward loop (:mod:`engine.ops.lstm`) on C-contiguous arrays:
    ``act`` (T, B, 4H) holds XA on entry and the gates on exit; c_all, tanh_c and out
    (T, B, H) are written. False, doing nothing, where the kernels do not serve the
    arrays (:func:`fits`)."""
    gemm = GEMM.get(act.dtype)
    if not fits(gemm, act, h0, c0, W_hh_T, c_all, tanh_c, out):
        return False

    def run(lo, hi):
        ha = np.empty((hi - lo, act.shape[2]), dtype=act.dtype)
        _forward_steps(gemm, act, h0, c0, W_hh_T, c_all, tanh_c, out, ha, lo, hi, reverse)

    over_rows(run, act.shape[1])
    return True


def lstm_backward_steps(gout, gh_n, gc_n, act, c0, c_all, tanh_c, W_hh, ga, gc0,
                        reverse: bool) -> bool:
    """All steps of the backward loop on C-contiguous arrays: GA (T, B, 4H) into ``ga``,
    the gradient of c₀ (B, H) into ``gc0``. False, doing nothing, where the kernels do not
    serve the arrays (:func:`fits`)."""
    gemm = GEMM.get(act.dtype)
    gout, gh_n, W_hh = (np.ascontiguousarray(a) for a in (gout, gh_n, W_hh))  # read only
    if not fits(gemm, act, gout, gh_n, gc_n, c0, c_all, tanh_c, W_hh, ga, gc0):
        return False
    over_rows(lambda lo, hi: _backward_steps(gemm, gout, gh_n, gc_n, act, c0, c_all, tanh_c,
                                              W_hh, ga, gc0, lo, hi, reverse), act.shape[1])
    return True
