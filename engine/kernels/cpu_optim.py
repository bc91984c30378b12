"""Adam and AdamW on the CPU: one Numba pass per parameter, no temporaries.

The literal update (:mod:`optim.adam`, docs/formulas.md F11) reads and writes each
parameter-sized array a dozen times and allocates as many temporaries::

    m ← β₁ m + (1 - β₁) g;  v ← β₂ v + (1 - β₂) g²;  θ ← θ - α m̂ / (√v̂ + ε)

:func:`adam_step` does the same arithmetic element by element in one loop: read θ, g, m,
v (and v_max), write θ, m, v (and v_max). Every operation is the literal one, in the same
order, in the parameter's dtype (constants rounded to it first, as NumPy rounds a Python
float against a float32 array), with no fused multiply-add or reassociation: the result
equals the literal update bit for bit in float32 and float64.

The loop runs on the calling thread: it is bound by memory traffic (about 40 GB/s on one
core), and splitting a 1.3M-element parameter over two threads was 2x slower, not faster,
as soon as another process held the second core.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.kernels.cpu_math import JIT

DECAY_NONE, DECAY_L2, DECAY_DECOUPLED = 0, 1, 2


@njit(nogil=True, **JIT)
def _adam(p, g, m, v, v_max, amsgrad, maximize, decay_kind, wd, keep, lr, beta1,
          one_minus_beta1, beta2, one_minus_beta2, bc1, bc2, eps):
    """The literal update written per element, on 1-D arrays of one dtype."""
    for i in range(p.size):
        gi = -g[i] if maximize else g[i]
        th = p[i]
        if decay_kind == DECAY_L2:
            gi = gi + wd * th                          # g ← g + λ θ
        elif decay_kind == DECAY_DECOUPLED:
            th = th * keep                             # θ ← θ (1 - αλ)
        mi = m[i] * beta1 + one_minus_beta1 * gi      # m ← β₁ m + (1 - β₁) g
        vi = v[i] * beta2 + one_minus_beta2 * (gi * gi)   # v ← β₂ v + (1 - β₂) g²
        m[i] = mi
        v[i] = vi
        if amsgrad:                                    # v_max ← max(v_max, v), NaN kept
            vm = v_max[i]
            if vi > vm or vi != vi:
                vm = vi
            v_max[i] = vm
            vi = vm
        m_hat = mi / bc1                               # m̂ = m / (1 - β₁ᵗ)
        v_hat = vi / bc2                               # v̂ = v / (1 - β₂ᵗ)
        p[i] = th - lr * m_hat / (np.sqrt(v_hat) + eps)   # θ ← θ - α m̂ / (√v̂ + ε)


def adam_step(p, g, m, v, v_max, *, step: int, lr: float, beta1: float, beta2: float,
              eps: float, weight_decay: float, decoupled: bool, maximize: bool) -> None:
    """One Adam (``decoupled``: AdamW) step on C-contiguous NumPy arrays of one float dtype,
    in place: parameter ``p``, moments ``m``, ``v`` and, for amsgrad, ``v_max`` (else
    None); the gradient ``g`` (same shape and dtype, any layout) is only read. ``step``
    is t, this parameter's step count including this one."""
    f = p.dtype.type
    kind = DECAY_NONE if weight_decay == 0 else (DECAY_DECOUPLED if decoupled else DECAY_L2)
    flat = p.reshape(-1)
    _adam(flat, np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1),
          flat if v_max is None else v_max.reshape(-1), v_max is not None, bool(maximize),
          kind, f(weight_decay), f(1.0 - lr * weight_decay), f(lr), f(beta1), f(1.0 - beta1),
          f(beta2), f(1.0 - beta2), f(1.0 - beta1 ** step), f(1.0 - beta2 ** step), f(eps))
