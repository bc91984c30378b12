"""The LSTM step (docs/formulas.md, the LSTM): the gate formulas twice, as engine ops and
as one op.

The four gates are stacked along the last axis of the pre-activations in the order i, f,
g, o (PyTorch's layout, documented in :mod:`nn.rnn`). One step, with a = xa + ha (B, 4H)::

    i = σ(a_i)    f = σ(a_f)    g = tanh(a_g)    o = σ(a_o)
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

:func:`lstm_cell_reference` writes it literally on engine ops (about ten ops per step,
differentiable to any order); :class:`LSTMCellFunction` is the same formulas as one op with
a hand-written backward (one op per step, first-order only). :func:`lstm_cell` picks one
with the switch every fused op uses (:func:`engine.kernels.select`); tests check that both
agree.
"""

from __future__ import annotations

from engine import kernels
from engine.function import Function
from engine.kernels import reference
from engine.ops.activation import sigmoid, tanh
from engine.ops.join import chunk
from engine.tensor import Tensor


def lstm_cell_reference(xa: Tensor, ha: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The LSTM step written literally: ``a = xa + ha`` (both (B, 4H) pre-activations,
    biases included), then the gates i, f, g, o and the new state ``(h', c')``."""
    a = xa.reshape(ha.shape) + ha                          # (B, 4H)
    a_i, a_f, a_g, a_o = chunk(a, 4, dim=-1)              # each (B, H)
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
              (σ(x) computed as ½(1 + tanh(x/2)), the same function in one tanh pass)
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
        H = c.shape[-1]
        a = xa.reshape(ha.shape) + ha                      # (B, 4H), a fresh array
        sig = (slice(0, 2 * H), slice(3 * H, 4 * H))       # columns of the σ gates i, f, o
        # σ(x) = ½(1 + tanh(x/2)): one tanh pass over all four gates, no overflow
        for s in sig:
            a[..., s] *= 0.5
        act = xp.tanh(a, out=a)                            # [i, f, g, o] activations
        for s in sig:
            act[..., s] += 1.0
            act[..., s] *= 0.5
        i, f, g, o = (act[..., k * H:(k + 1) * H] for k in range(4))
        c_new = f * c + i * g
        t = xp.tanh(c_new)
        h_new = o * t
        ctx.xa_shape = xa.shape
        ctx.save_for_backward(act, c, t)
        return h_new, c_new

    @staticmethod
    def backward(ctx, gh, gc_new):
        act, c, t = ctx.saved_tensors
        H = c.shape[-1]
        i, f, g, o = (act[..., k * H:(k + 1) * H] for k in range(4))
        gc_hat = gc_new + gh * o * (1.0 - t * t)
        ga = ctx.xp.empty_like(act)
        ga[..., :H] = gc_hat * g * i * (1.0 - i)
        ga[..., H:2 * H] = gc_hat * c * f * (1.0 - f)
        ga[..., 2 * H:3 * H] = gc_hat * i * (1.0 - g * g)
        ga[..., 3 * H:] = gh * t * o * (1.0 - o)
        gc = gc_hat * f if ctx.needs_input_grad[2] else None
        return ga.reshape(ctx.xa_shape), ga, gc


def lstm_cell(xa: Tensor, ha: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from the gate pre-activations ``xa + ha`` (B, 4H) and the cell state
    ``c`` (B, H); returns ``(h', c')``. One op (:class:`LSTMCellFunction`) where
    :func:`engine.kernels.select` picks a fused implementation, the literal formula
    (:func:`lstm_cell_reference`) where it picks the reference."""
    if kernels.select(xa.data, ha.data, c.data) is reference:
        return lstm_cell_reference(xa, ha, c)
    return LSTMCellFunction.apply(xa, ha, c)
