"""The LSTM and GRU steps' pointwise part in array code: the CuPy path (NumPy works too).

The same functions, with the same in-place contract, as the Numba kernels of
:mod:`engine.kernels.cpu_rnn` and :mod:`engine.kernels.cpu_gru`, written with the array
module's elementwise functions (each a CuPy kernel on the GPU); the formulas are in
:mod:`engine.ops.rnn` and :mod:`engine.ops.gru`. The steps' matrix products stay on
cuBLAS, called by the ops.
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


def gru_cell_forward(xp, a, ha, b_hh, h, hn, h_new) -> None:
    """One GRU step, in place: ``a`` (B, 3H) holds xa = x W_ihᵀ + b_ih on entry and the
    gate activations r, z, n on exit; ``ha = h W_hhᵀ`` (B, 3H) without its bias ``b_hh``
    (3H); ``h`` (B, H) the state; ``hn = ha_n + b_hn`` and ``h_new`` (B, H) are written."""
    H = h.shape[-1]
    a[:, :2 * H] += ha[:, :2 * H] + b_hh[:2 * H]
    _sigmoid_(xp, a[:, :2 * H])
    xp.add(ha[:, 2 * H:], b_hh[2 * H:], out=hn)
    a[:, 2 * H:] += a[:, :H] * hn
    xp.tanh(a[:, 2 * H:], out=a[:, 2 * H:])
    z, n = a[:, H:2 * H], a[:, 2 * H:]
    xp.subtract(h, n, out=h_new)
    h_new *= z
    h_new += n


def lstm_forward_steps(*arrays, reverse: bool) -> bool:
    """No whole-recurrence kernel here: False, and the op runs its step loop, each step's
    product on cuBLAS and its pointwise part in the functions above (so do the three
    below)."""
    return False


lstm_backward_steps = gru_forward_steps = gru_backward_steps = lstm_forward_steps


def gru_cell_backward(xp, gh, a, hn, h, gxa, gha, gh_direct) -> None:
    """One GRU step back from the upstream gradient ``gh`` of h' (B, H), the saved
    activations ``a`` (B, 3H), ``hn`` and the state ``h`` before the step: writes the
    gradients ``gxa`` and ``gha`` (B, 3H) of the input and recurrent pre-activations and
    ``gh_direct = gh ⊙ z``."""
    H = h.shape[-1]
    r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
    gn = gh * (1.0 - z) * (1.0 - n * n)
    gxa[:, 2 * H:] = gn
    xp.multiply(gn, r, out=gha[:, 2 * H:])
    gxa[:, :H] = gn * hn * r * (1.0 - r)
    gxa[:, H:2 * H] = gh * (h - n) * z * (1.0 - z)
    gha[:, :2 * H] = gxa[:, :2 * H]
    xp.multiply(gh, z, out=gh_direct)
