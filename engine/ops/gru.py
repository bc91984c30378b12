"""The GRU over a whole sequence (one layer, one direction) as one op, beside its literal twin.

With x (T, B, I), h₀ (B, H), W_ih (3H, I), W_hh (3H, H) and the biases (3H) (gates r, z,
n in PyTorch's order; the literal step is :func:`engine.ops.rnn.gru_cell`)::

    XA = X W_ihᵀ + b_ih                        (T·B, 3H): ONE matmul for all steps
    for t over the steps (backwards when reverse):
        ha = h_{t-1} W_hhᵀ + b_hh              one matmul per step
        r = σ(xa_r + ha_r)   z = σ(xa_z + ha_z)   n = tanh(xa_n + r ⊙ ha_n)
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

Backward, with gh_t the gradient reaching h_t (from the output and from step t+1):

    gn = gh ⊙ (1 - z) ⊙ (1 - n²)    gr = gn ⊙ ha_n ⊙ r(1 - r)    gz = gh ⊙ (h_{t-1} - n) ⊙ z(1 - z)
    GX_t = [gr, gz, gn]  (of XA)    GH_t = [gr, gz, gn ⊙ r]  (of ha)
    gh_{t-1} = gh ⊙ z + GH_t W_hh
    gW_ih = GXᵀ X   gb_ih = Σ GX   gX = GX W_ih   gW_hh = GHᵀ H_prev   gb_hh = Σ GH

so only the recurrence loops over time; the weight, bias and input gradients are single
products (or sums) over all T·B rows. :func:`gru_sequence` picks the op
(:class:`GRUSequence`, its pointwise part a Numba kernel on the CPU,
:mod:`engine.kernels.cpu_gru`, array code on CuPy) or the literal per-step formulas
(:func:`engine.ops.rnn.recurrent_sequence`) as every fused op does.
"""

from __future__ import annotations


from engine import kernels
from engine.function import Function
from engine.ops.lstm import products, states_before
from engine.ops.rnn import fusable, recurrent_sequence
from engine.tensor import Tensor


class GRUSequence(Function):
    """(x, h₀, W_ih, W_hh, b_ih, b_hh) -> (output, h_n): one GRU layer and direction over
    a whole sequence (formulas in the module docstring). First-order only (its backward
    uses the saved gate activations); under ``create_graph`` use the literal twin
    (``engine.use_fused(False)``)."""

    once_differentiable = True

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih=None, b_hh=None, reverse=False):
        xp = ctx.xp
        ctx.impl = impl = kernels.select(x)       # backward runs the same implementation
        T, B, n_in = x.shape
        H = W_hh.shape[1]
        x2 = x.reshape(T * B, n_in)                          # (T·B, I)
        matmul, step_matmul, one_blas_thread = products(xp, B, W_hh)
        act = matmul(x2, W_ih.T)                             # (T·B, 3H): XA, then [r,z,n]
        if b_ih is not None:
            act += b_ih
        act = act.reshape(T, B, 3 * H)
        b_hh = xp.zeros(3 * H, dtype=x.dtype) if b_hh is None else \
            xp.ascontiguousarray(b_hh)
        hn, out = xp.empty((T, B, H), dtype=x.dtype), xp.empty((T, B, H), dtype=x.dtype)
        ha = xp.empty((B, 3 * H), dtype=x.dtype)
        W_hh_T = xp.ascontiguousarray(W_hh.T)                # (H, 3H): BLAS runs it 20% faster
        h = xp.ascontiguousarray(h0)
        order = range(T - 1, -1, -1) if reverse else range(T)
        with one_blas_thread:
            if impl.gru_forward_steps(act, h, b_hh, W_hh_T, hn, out, reverse=reverse):
                h = out[order[-1]] if T else h
            else:
                for t in order:
                    step_matmul(h, W_hh_T, out=ha)
                    impl.gru_cell_forward(xp, act[t], ha, b_hh, h, hn[t], out[t])
                    h = out[t]
        ctx.reverse = reverse
        ctx.save_for_backward(x if x.flags.c_contiguous else x2, h0, W_ih, W_hh, act, hn,
                              out)
        return out, h.copy()

    @staticmethod
    def backward(ctx, gout, gh_n):
        xp = ctx.xp
        x2, h0, W_ih, W_hh, act, hn, out = ctx.saved_tensors
        impl = ctx.impl
        needs = ctx.needs_input_grad
        T, B, H3 = act.shape
        gxa, gha = xp.empty_like(act), xp.empty_like(act)   # (T, B, 3H): GX and GH
        gh = xp.empty((B, H3 // 3), dtype=act.dtype)
        gh_direct = xp.empty_like(gh)
        h0c = xp.ascontiguousarray(h0)
        order = range(T) if ctx.reverse else range(T - 1, -1, -1)
        first = order[-1]                                    # the step the forward took first
        step = 1 if ctx.reverse else -1                      # from t to the step before it
        matmul, step_matmul, one_blas_thread = products(xp, B, W_hh)
        with one_blas_thread:
            if not impl.gru_backward_steps(gout, gh_n, act, hn, h0c, out, W_hh, gxa, gha,
                                           gh_direct, reverse=ctx.reverse):
                for k, t in enumerate(order):
                    if k == 0:
                        gh[...] = gh_n
                    else:
                        step_matmul(gha[t - step], W_hh, out=gh)  # (B, 3H) @ (3H, H)
                        gh += gh_direct
                    gh += gout[t]
                    h_before = h0c if t == first else out[t + step]
                    impl.gru_cell_backward(xp, gh, act[t], hn[t], h_before, gxa[t], gha[t],
                                           gh_direct)
            gh0 = gh_direct + step_matmul(gha[first], W_hh) if needs[1] else None
        gx2, gh2 = gxa.reshape(T * B, H3), gha.reshape(T * B, H3)
        gx = matmul(gx2, W_ih).reshape(T, B, -1) if needs[0] else None
        gW_ih = matmul(gx2.T, x2.reshape(T * B, -1)) if needs[2] else None
        gW_hh = (matmul(gh2.T, states_before(xp, out, h0, ctx.reverse))
                 if needs[3] else None)
        gb_ih = gx2.sum(axis=0) if needs[4] else None
        gb_hh = gh2.sum(axis=0) if needs[5] else None
        return gx, gh0, gW_ih, gW_hh, gb_ih, gb_hh


def gru_sequence(x: Tensor, h0: Tensor, W_ih: Tensor, W_hh: Tensor,
                 b_ih: Tensor | None = None, b_hh: Tensor | None = None,
                 reverse: bool = False) -> tuple[Tensor, Tensor]:
    """One GRU layer in one direction over x (T, B, I) from h₀ (B, H); returns
    ``(output (T, B, H), h_n)``. One op (:class:`GRUSequence`) where the fused kernels
    serve the inputs, the literal per-step formulas otherwise."""
    if fusable(x, h0, W_ih, W_hh, b_ih, b_hh):
        return GRUSequence.apply(x, h0, W_ih, W_hh, b_ih, b_hh, reverse=reverse)
    return recurrent_sequence(x, h0, W_ih, W_hh, b_ih, b_hh, reverse, "GRU")
