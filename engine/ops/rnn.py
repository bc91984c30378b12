"""Recurrent steps (docs/formulas.md, the LSTM): the LSTM, GRU and Elman RNN cells as their
formulas on engine ops, and the LSTM step also as one op.

Gates are stacked along the last axis of the pre-activations in PyTorch's order (the layout
of the weights is documented in :mod:`nn.rnn`): LSTM i, f, g, o (4H), GRU r, z, n (3H).
``xa = x W_ihᵀ + b_ih`` is the input part and ``ha = h W_hhᵀ + b_hh`` the recurrent part::

    LSTM   i = σ(xa_i + ha_i)   f = σ(xa_f + ha_f)   g = tanh(xa_g + ha_g)   o = σ(xa_o + ha_o)
           c' = f ⊙ c + i ⊙ g;   h' = o ⊙ tanh(c')
    GRU    r = σ(xa_r + ha_r)   z = σ(xa_z + ha_z)   n = tanh(xa_n + r ⊙ ha_n)
           h' = (1 - z) ⊙ n + z ⊙ h
    RNN    h' = tanh(xa + ha)   or   relu(xa + ha)

:func:`lstm_cell_reference`, :func:`gru_cell` and :func:`rnn_cell` write these literally
(differentiable to any order). :class:`LSTMCellFunction` is the LSTM step as one op with a
hand-written backward, its pointwise part a Numba kernel on the CPU
(:mod:`engine.kernels.cpu_rnn`) and array code on CuPy (:mod:`engine.kernels.cuda_rnn`);
:func:`lstm_cell` picks it or the literal formula with the switch every fused op uses
(:func:`engine.kernels.select`). Whole sequences: :func:`recurrent_sequence` for the GRU
and the RNN, :mod:`engine.ops.lstm` for the LSTM.
"""

from __future__ import annotations

from engine import kernels
from engine.function import Function
from engine.kernels import reference
from engine.ops.activation import relu, sigmoid, tanh
from engine.ops.join import chunk, stack
from engine.tensor import Tensor


class Unbind(Function):
    """(y₀, …, y_{T-1}) = (x[0], …, x[T-1]), the slices along the first axis (PyTorch's
    ``unbind``);  gx = stack(gy₀, …, gy_{T-1}).  The time steps of a sequence, with one
    gradient array for all of them (indexing each step would scatter into a full-size
    zero array per step)."""

    @staticmethod
    def forward(ctx, x):
        return tuple(x[t] for t in range(x.shape[0]))

    @staticmethod
    def backward(ctx, *gys):
        return ctx.xp.stack(gys, axis=0)


def unbind(x: Tensor) -> tuple:
    """The slices ``x[0], x[1], ...`` along the first axis, as a tuple of Tensors."""
    return Unbind.apply(x)


def gates(a: Tensor, n: int) -> tuple:
    """The n gate blocks of a (B, n·H) pre-activation, each (B, H): one op, n equal
    sections of the last axis."""
    return chunk(a, n, dim=-1)


# --------------------------------------------------------------------------- LSTM
def lstm_cell_reference(xa: Tensor, ha: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The LSTM step written literally: ``a = xa + ha`` (both (B, 4H) pre-activations,
    biases included), then the gates i, f, g, o and the new state ``(h', c')``."""
    a = xa.reshape(ha.shape) + ha                          # (B, 4H)
    a_i, a_f, a_g, a_o = gates(a, 4)                       # each (B, H)
    i = sigmoid(a_i)
    f = sigmoid(a_f)
    g = tanh(a_g)
    o = sigmoid(a_o)
    c_new = f * c + i * g
    h_new = o * tanh(c_new)
    return h_new, c_new


class LSTMCellFunction(Function):
    """The LSTM step as one op: (xa, ha, c) -> (h', c'), with a = xa + ha (B, 4H).

    Forward:  i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
              c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')
    Backward (gh', gc' the incoming gradients, t = tanh(c')):
              gĉ   = gc' + gh' ⊙ o ⊙ (1 - t²)        total gradient reaching c'
              ga_i = gĉ ⊙ g ⊙ i(1 - i)
              ga_f = gĉ ⊙ c ⊙ f(1 - f)
              ga_g = gĉ ⊙ i ⊙ (1 - g²)
              ga_o = gh' ⊙ t ⊙ o(1 - o)
              gxa = gha = ga = [ga_i, ga_f, ga_g, ga_o];   gc = gĉ ⊙ f
    The backward uses the saved gate activations (not inputs or outputs of the op), so
    the op is first-order only; :func:`lstm_cell_reference` serves higher orders.
    """

    once_differentiable = True

    @staticmethod
    def forward(ctx, xa, ha, c):
        xp = ctx.xp
        ctx.impl = impl = kernels.select(xa, ha, c)
        a = xa.reshape(ha.shape).copy()                    # (B, 4H): becomes [i, f, g, o]
        c = xp.ascontiguousarray(c)
        c_new, t, h_new = (xp.empty(c.shape, dtype=c.dtype) for _ in range(3))
        impl.lstm_cell_forward(xp, a, xp.ascontiguousarray(ha), c, c_new, t, h_new)
        ctx.xa_shape = xa.shape
        ctx.save_for_backward(a, c, t)
        return h_new, c_new

    @staticmethod
    def backward(ctx, gh, gc_new):
        xp = ctx.xp
        a, c, t = ctx.saved_tensors
        ga = xp.empty_like(a)
        gc = xp.empty_like(c)
        ctx.impl.lstm_cell_backward(xp, xp.ascontiguousarray(gh), xp.ascontiguousarray(gc_new),
                                    a, c, t, ga, gc)
        return ga.reshape(ctx.xa_shape), ga, gc if ctx.needs_input_grad[2] else None


def fusable(*tensors) -> bool:
    """True when the fused kernels serve these Tensors (None entries ignored): the switch
    is on, the dtypes are float32 or float64 and all the same."""
    arrays = [t.data for t in tensors if t is not None]
    if kernels.select(*arrays) is reference:
        return False
    return all(a.dtype == arrays[0].dtype for a in arrays)


def lstm_cell(xa: Tensor, ha: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from the gate pre-activations ``xa + ha`` (B, 4H) and the cell state
    ``c`` (B, H); returns ``(h', c')``. One op (:class:`LSTMCellFunction`) where the fused
    kernels serve the inputs (:func:`fusable`), the literal formula
    (:func:`lstm_cell_reference`) otherwise."""
    if fusable(xa, ha, c):
        return LSTMCellFunction.apply(xa, ha, c)
    return lstm_cell_reference(xa, ha, c)


# --------------------------------------------------------------------------- GRU, RNN
def gru_cell(xa: Tensor, ha: Tensor, h: Tensor) -> Tensor:
    """The GRU step: ``xa`` and ``ha`` (B, 3H) the input and recurrent pre-activations,
    each with its own bias (b_hn sits inside r ⊙ (·)), ``h`` (B, H); returns h'."""
    xa_r, xa_z, xa_n = gates(xa, 3)
    ha_r, ha_z, ha_n = gates(ha, 3)
    r = sigmoid(xa_r + ha_r)
    z = sigmoid(xa_z + ha_z)
    n = tanh(xa_n + r * ha_n)
    return (1.0 - z) * n + z * h


def rnn_cell(xa: Tensor, ha: Tensor, nonlinearity: str = "tanh") -> Tensor:
    """The Elman RNN step: h' = tanh(xa + ha) (or relu), xa and ha (B, H) with biases."""
    a = xa + ha
    return tanh(a) if nonlinearity == "tanh" else relu(a)


def recurrent_sequence(x: Tensor, h0: Tensor, W_ih: Tensor, W_hh: Tensor,
                       b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool,
                       mode: str) -> tuple[Tensor, Tensor]:
    """A GRU (``mode='GRU'``) or Elman RNN (``'RNN_TANH'``, ``'RNN_RELU'``) layer in one
    direction over x (T, B, I) from h₀ (B, H), literally on engine ops; returns the states
    at every step (T, B, H) and the last one. ``x W_ihᵀ + b_ih`` for all steps is one
    matmul, then each step one matmul ``h W_hhᵀ + b_hh`` and the cell's formula."""
    T, B, n_in = x.shape
    xa = x.reshape(T * B, n_in) @ W_ih.T                    # (T·B, G·H): one matmul
    if b_ih is not None:
        xa = xa + b_ih
    steps = unbind(xa.reshape(T, B, xa.shape[-1]))          # T × (B, G·H)
    W_hh_T = W_hh.T                                         # (H, G·H)
    h = h0
    hs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        ha = h @ W_hh_T
        if b_hh is not None:
            ha = ha + b_hh
        if mode == "GRU":
            h = gru_cell(steps[t], ha, h)
        else:
            h = rnn_cell(steps[t], ha, "tanh" if mode == "RNN_TANH" else "relu")
        hs[t] = h
    return stack(hs, dim=0), h
