"""The LSTM over a whole sequence (one layer, one direction) as one op, and its literal twin.

With x (T, B, I), the initial state h₀, c₀ (B, H), W_ih (4H, I), W_hh (4H, H) and the
biases (4H) (gates i, f, g, o; the step's formulas are in :mod:`engine.ops.rnn`)::

    XA = X W_ihᵀ + b_ih + b_hh                 (T·B, 4H): ONE matmul for all steps
    for t = 0 … T-1 (T-1 … 0 when reverse):
        a_t = XA_t + h_{t-1} W_hhᵀ             one matmul per step
        (h_t, c_t) = the LSTM step from a_t and c_{t-1}
    output = (h_0 … h_{T-1}),  h_n = h_last,  c_n = c_last

Backward, with GA_t = ∂L/∂a_t (B, 4H) and H_prev the states h_{t-1} each step started from:

    for t back over the steps:   gh_t = gout_t + GA_{t+1} W_hh   (the step after it)
        (GA_t, gc_{t-1}) = the LSTM step's backward from gh_t and gc_t
    gW_hh = GAᵀ H_prev    gW_ih = GAᵀ X    gb_ih = gb_hh = Σ_t,b GA    gX = GA W_ih
    gh₀ = GA_first W_hh   gc₀ = gc before the first step

so only the recurrence loops over time; the weight, bias and input gradients are each one
matrix product (or one sum) over all T·B rows.

:func:`lstm_sequence_reference` is the literal twin on engine ops (one op per formula,
differentiable to any order), for learners and gradient checks; :class:`LSTMSequence` is
the one op, working on raw arrays: the step's pointwise part is a Numba kernel on the CPU
and array code on CuPy (:func:`engine.kernels.select`); on the CPU the whole loop over the
steps is one Numba kernel per range of the batch's rows, the ranges side by side on the
worker pool (:func:`engine.kernels.cpu_rnn.lstm_forward_steps`, the same values as the
loop written here, which runs on CuPy); and it saves the gate activations,
the cell states and tanh(c) for its backward. :func:`lstm_sequence` picks one as every
fused op does (``engine.use_fused``).
"""

from __future__ import annotations

import contextlib

import numpy as np

from engine import kernels, threads
from engine.function import Function
from engine.ops.rnn import fusable, lstm_cell_reference, unbind
from engine.ops.join import stack
from engine.tensor import Tensor


def lstm_sequence_reference(x: Tensor, h0: Tensor, c0: Tensor, W_ih: Tensor, W_hh: Tensor,
                            b_ih: Tensor | None = None, b_hh: Tensor | None = None,
                            reverse: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """The LSTM over x (T, B, I) from (h₀, c₀) written literally on engine ops; returns
    the states at every step (T, B, H) and the last (h_n, c_n)."""
    T, B, n_in = x.shape
    xa = x.reshape(T * B, n_in) @ W_ih.T                    # (T·B, 4H): one matmul
    for b in (b_ih, b_hh):
        if b is not None:
            xa = xa + b
    steps = unbind(xa.reshape(T, B, xa.shape[-1]))          # T × (B, 4H)
    W_hh_T = W_hh.T                                         # (H, 4H)
    h, c = h0, c0
    hs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h, c = lstm_cell_reference(steps[t], h @ W_hh_T, c)
        hs[t] = h
    return stack(hs, dim=0), h, c


def products(xp, rows: int, W):
    """(matmul, step_matmul, context) for a sequence op's products. On NumPy arrays the
    whole-sequence products go through :func:`engine.threads.matmul` (BLAS on one thread,
    a large product shared among the engine's threads), and so do the per-step products
    (``rows`` × W) when large enough to share; smaller ones, a hundred per sequence, call
    BLAS directly inside the context, which holds it at one thread. On CuPy: xp.matmul."""
    if xp is not np:
        return xp.matmul, xp.matmul, contextlib.nullcontext()
    small = rows * W.size < threads.SPLIT_FLOPS                 # 2·rows·|W| flops: no split
    return threads.matmul, np.matmul if small else threads.matmul, threads.blas_threads(1)


def states_before(xp, out, h0, reverse: bool):
    """H_prev (T·B, H): the state h_{t-1} each step t started from, h₀ for the first step
    taken (the last row block when ``reverse``); the factor of gW_hh = GAᵀ H_prev."""
    h_prev = xp.empty_like(out)
    if reverse:
        h_prev[:-1], h_prev[-1] = out[1:], h0
    else:
        h_prev[1:], h_prev[0] = out[:-1], h0
    return h_prev.reshape(-1, out.shape[-1])


class LSTMSequence(Function):
    """(x, h₀, c₀, W_ih, W_hh, b_ih, b_hh) -> (output, h_n, c_n): one layer and direction
    of an LSTM over a whole sequence (formulas in the module docstring).

    First-order only (its backward uses the saved gate activations); under
    ``create_graph`` use :func:`lstm_sequence_reference` (``engine.use_fused(False)``).
    """

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, c0, W_ih, W_hh, b_ih=None, b_hh=None, reverse=False):
        xp = ctx.xp
        ctx.impl = impl = kernels.select(x)       # backward runs the same implementation
        T, B, n_in = x.shape
        H = W_hh.shape[1]
        x2 = x.reshape(T * B, n_in)                          # (T·B, I)
        matmul, step_matmul, one_blas_thread = products(xp, B, W_hh)
        act = matmul(x2, W_ih.T)                             # (T·B, 4H): XA, then [i,f,g,o]
        for b in (b_ih, b_hh):
            if b is not None:
                act += b
        act = act.reshape(T, B, 4 * H)
        c_all, tanh_c, out = (xp.empty((T, B, H), dtype=x.dtype) for _ in range(3))
        ha = xp.empty((B, 4 * H), dtype=x.dtype)
        W_hh_T = xp.ascontiguousarray(W_hh.T)                # (H, 4H): BLAS runs it 20% faster
        h, c = xp.ascontiguousarray(h0), xp.ascontiguousarray(c0)
        order = range(T - 1, -1, -1) if reverse else range(T)
        with one_blas_thread:
            if impl.lstm_forward_steps(act, h, c, W_hh_T, c_all, tanh_c, out,
                                       reverse=reverse):
                h, c = (out[order[-1]], c_all[order[-1]]) if T else (h, c)
            else:
                for t in order:
                    step_matmul(h, W_hh_T, out=ha)
                    impl.lstm_cell_forward(xp, act[t], ha, c, c_all[t], tanh_c[t], out[t])
                    h, c = out[t], c_all[t]
        ctx.reverse = reverse
        # x itself when x2 is a view of it, else the copy x2 (a (B, T, I) batch-first
        # input): reshaping x again in backward would copy it again
        ctx.save_for_backward(x if x.flags.c_contiguous else x2, h0, c0, W_ih, W_hh, act,
                              c_all, tanh_c, out)
        return out, h.copy(), c.copy()

    @staticmethod
    def backward(ctx, gout, gh_n, gc_n):
        xp = ctx.xp
        x2, h0, c0, W_ih, W_hh, act, c_all, tanh_c, out = ctx.saved_tensors
        impl = ctx.impl
        needs = ctx.needs_input_grad
        T, B, H4 = act.shape
        ga = xp.empty_like(act)                              # (T, B, 4H): GA
        gc = xp.array(gc_n, dtype=act.dtype, order="C")      # a copy: it is overwritten
        gc_prev, gh = xp.empty_like(gc), xp.empty_like(gc)
        c0 = xp.ascontiguousarray(c0)
        order = range(T) if ctx.reverse else range(T - 1, -1, -1)
        first = order[-1]                                    # the step the forward took first
        step = 1 if ctx.reverse else -1                      # from t to the step before it
        matmul, step_matmul, one_blas_thread = products(xp, B, W_hh)
        with one_blas_thread:
            if impl.lstm_backward_steps(gout, gh_n, gc, act, c0, c_all, tanh_c, W_hh, ga,
                                        gc_prev, reverse=ctx.reverse):
                gc = gc_prev
            else:
                for k, t in enumerate(order):
                    if k == 0:
                        gh[...] = gh_n
                    else:
                        step_matmul(ga[t - step], W_hh, out=gh)  # (B, 4H) @ (4H, H)
                    gh += gout[t]
                    c_before = c0 if t == first else c_all[t + step]
                    impl.lstm_cell_backward(xp, gh, gc, act[t], c_before, tanh_c[t], ga[t],
                                            gc_prev)
                    gc, gc_prev = gc_prev, gc
            gh0 = step_matmul(ga[first], W_hh) if needs[1] else None
        ga2 = ga.reshape(T * B, H4)                          # (T·B, 4H)
        gx = matmul(ga2, W_ih).reshape(T, B, -1) if needs[0] else None
        gW_ih = matmul(ga2.T, x2.reshape(T * B, -1)) if needs[3] else None
        gW_hh = (matmul(ga2.T, states_before(xp, out, h0, ctx.reverse))
                 if needs[4] else None)
        gb = ga2.sum(axis=0) if needs[5] or needs[6] else None
        return gx, gh0, gc if needs[2] else None, gW_ih, gW_hh, gb, gb


def lstm_sequence(x: Tensor, h0: Tensor, c0: Tensor, W_ih: Tensor, W_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None,
                  reverse: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer in one direction over x (T, B, I) from (h₀, c₀) (B, H); returns
    ``(output (T, B, H), h_n, c_n)``. One op (:class:`LSTMSequence`) where the fused
    kernels serve the inputs, the literal twin (:func:`lstm_sequence_reference`) otherwise."""
    if fusable(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
        return LSTMSequence.apply(x, h0, c0, W_ih, W_hh, b_ih, b_hh, reverse=reverse)
    return lstm_sequence_reference(x, h0, c0, W_ih, W_hh, b_ih, b_hh, reverse)
