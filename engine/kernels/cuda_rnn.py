"""The LSTM step's pointwise part in array code: the CuPy path (NumPy works too).

The same functions, with the same in-place contract, as the Numba kernels of
:mod:`engine.kernels.cpu_rnn`, written with the array module's elementwise functions
(each a CuPy kernel on the GPU); the formulas are in :mod:`engine.ops.rnn`. The step's
matrix products stay on cuBLAS, called by the op.
"""

from __future__ import annotations


def _sigmoid_(xp, x) -> None:
    """x = σ(x), in place: 1 / (1 + e) for x ≥ 0 and e / (1 + e) below, e = exp(-|x|)
    (never overflows)."""
    e = xp.exp(-xp.abs(x))
    x[...] = xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def lstm_cell_forward(xp, a, ha, c, c_new, tc, h_new) -> None:
    """One step, in place: ``a`` (B, 4H) holds the input part of the pre-activations on
    entry and the gate activations i, f, g, o on exit; ``ha`` (B, 4H) is the recurrent
    part; ``c`` (B, H) the cell state; ``c_new``, ``tc = tanh(c_new)`` and ``h_new`` (B, H)
    are written."""
    H = c.shape[-1]
    a += ha
    _sigmoid_(xp, a[:, :2 * H])
    xp.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
    _sigmoid_(xp, a[:, 3 * H:])
    i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    xp.multiply(f, c, out=c_new)
    c_new += i * g
    xp.tanh(c_new, out=tc)
    xp.multiply(o, tc, out=h_new)


def lstm_cell_backward(xp, gh, gc, a, c, tc, ga, gc_prev) -> None:
    """One step back: from the upstream gradients ``gh`` of h' and ``gc`` of c' (B, H),
    the saved activations ``a`` (B, 4H), the cell state ``c`` before the step and
    ``tc = tanh(c')``, write the pre-activation gradient ``ga`` (B, 4H) and the gradient
    ``gc_prev`` (B, H) of c."""
    H = c.shape[-1]
    i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    gc_hat = gc + gh * o * (1.0 - tc * tc)
    xp.multiply(gc_hat * g, i * (1.0 - i), out=ga[:, :H])
    xp.multiply(gc_hat * c, f * (1.0 - f), out=ga[:, H:2 * H])
    xp.multiply(gc_hat * i, 1.0 - g * g, out=ga[:, 2 * H:3 * H])
    xp.multiply(gh * tc, o * (1.0 - o), out=ga[:, 3 * H:])
    xp.multiply(gc_hat, f, out=gc_prev)
