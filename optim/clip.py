"""Gradient clipping: by the global norm of all gradients, or elementwise by value.

Both replace each ``.grad`` with a new Tensor (never writing into the old array, which may
be shared), as PyTorch's in-place versions would leave it.
"""

from __future__ import annotations

import math

import numpy as np

from engine import backend
from engine.tensor import Tensor


def _grads(parameters) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def _norm(xp, g, norm_type: float):
    """‖g‖_p over all elements, as a 0-d array: max |g| for p = inf."""
    a = xp.abs(g)
    if math.isinf(norm_type):
        return a.max() if norm_type > 0 else a.min()
    if norm_type == 2.0:
        return xp.sqrt((a * a).sum())
    if norm_type == 1.0:
        return a.sum()
    if norm_type == 0.0:
        return (a != 0).sum().astype(a.dtype)
    return (a ** norm_type).sum() ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their total norm is at most ``max_norm``.

        N = ‖(‖g₁‖_p, ‖g₂‖_p, ...)‖_p          (the norm of all gradients as one vector)
        gᵢ ← gᵢ · min(max_norm / (N + 10⁻⁶), 1)

    Returns N (a 0-d Tensor on the first gradient's device, before clipping). With
    ``error_if_nonfinite`` a NaN or infinite N raises instead of scaling by it.
    """
    norm_type = float(norm_type)
    params = _grads(parameters)
    if not params:
        return Tensor(0.0)
    first = params[0].grad.data
    xp = backend.array_module(first)
    norms = [backend.to_device(_norm(backend.array_module(p.grad.data), p.grad.data,
                                     norm_type), backend.device_of(first))
             for p in params]
    total = _norm(xp, xp.stack(norms), norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
            f"non-finite ({float(total)}), so it cannot be clipped; pass "
            "error_if_nonfinite=False to scale the gradients by it anyway")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for p in params:
        g = p.grad.data
        c = backend.to_device(xp.asarray(coef), backend.device_of(g)).astype(g.dtype)
        with np.errstate(invalid="ignore"):        # inf · 0 when N is infinite, as PyTorch
            p.grad = Tensor._make(g * c, None, 0)
    return Tensor._make(xp.asarray(total), None, 0)


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    for p in _grads(parameters):
        g = p.grad.data
        p.grad = Tensor._make(backend.array_module(g).clip(g, -clip_value, clip_value),
                              None, 0)
