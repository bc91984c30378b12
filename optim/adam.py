"""Adam and AdamW, written as the textbook formulas (docs/formulas.md, F11 Adam, with
its ε).

:func:`_literal_step` is the update on whole arrays, NumPy or CuPy. On NumPy arrays in
float32 or float64 the same arithmetic runs as one pass of a Numba kernel
(:func:`engine.kernels.cpu.adam_step`): no temporaries, each array read and written once, the
same bits; ``engine.use_fused(False)`` turns it off, as for the fused ops."""

from __future__ import annotations

import functools
import importlib

import numpy as np

from engine import backend, kernels
from optim.optimizer import Optimizer, check_nonnegative


class Adam(Optimizer):
    """Adam (Kingma & Ba), with t counting this parameter's steps:

        g ← -g  if maximize;   g ← g + λ θ  (L2 weight decay λ)
        m ← β₁ m + (1 - β₁) g              first moment
        v ← β₂ v + (1 - β₂) g²             second moment
        m̂ = m / (1 - β₁ᵗ),  v̂ = v / (1 - β₂ᵗ)   bias corrections
        θ ← θ - α m̂ / (√v̂ + ε)

    The articles write θ ← θ - α m̂/√v̂; without ε a parameter whose gradient has been 0
    divides 0 by 0. ``amsgrad`` uses v̂ from v_max = max(v_max, v). With
    ``decoupled_weight_decay`` (AdamW) the decay is θ ← θ (1 - αλ) before the update
    instead of the L2 term in g.

    ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
    *, maximize=False, decoupled_weight_decay=False)``; state per parameter: ``step``,
    ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (amsgrad).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False) -> None:
        name = type(self).__name__
        check_nonnegative(name, lr=lr, eps=eps, weight_decay=weight_decay)
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {i}: {beta}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def update(self, group: dict) -> None:
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        amsgrad, decoupled = group["amsgrad"], group["decoupled_weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data               # maximize is applied by the step itself
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = self._zeros_like(p)
                state["exp_avg_sq"] = self._zeros_like(p)
                if amsgrad:
                    state["max_exp_avg_sq"] = self._zeros_like(p)
            state["step"] += 1
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            v_max = state["max_exp_avg_sq"].data if amsgrad else None
            rule = _fused_kernel(p.data, g, m, v, v_max) or _literal_step
            rule(p.data, g, m, v, v_max, step=state["step"], lr=lr, beta1=beta1, beta2=beta2,
                 eps=eps, weight_decay=wd, decoupled=decoupled, maximize=group["maximize"])


def _literal_step(theta, g, m, v, v_max, *, step, lr, beta1, beta2, eps, weight_decay,
                  decoupled, maximize) -> None:
    """One step of the formulas above on whole arrays (NumPy or CuPy), in place on θ, m,
    v and v_max (None without amsgrad); g is only read. t = ``step``."""
    t = step
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled:
            theta *= 1.0 - lr * weight_decay
        else:
            g = g + weight_decay * theta
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    if v_max is not None:
        backend.array_module(v).maximum(v_max, v, out=v_max)
        v = v_max
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = v / (1.0 - beta2 ** t)
    theta -= lr * m_hat / (backend.array_module(v).sqrt(v_hat) + eps)


def _fused_kernel(theta, g, m, v, v_max):
    """The one-pass kernel (:func:`engine.kernels.cpu.adam_step`) when it serves
    these arrays: fused kernels on, NumPy arrays of one fused dtype, θ and its state
    C-contiguous and writeable; else None, and :func:`_literal_step` runs. Both give the
    same bits."""
    if not (kernels.fused_enabled() and type(g) is np.ndarray and g.shape == theta.shape
            and theta.dtype in kernels.FUSED_DTYPES):
        return None
    for a in (theta, m, v) if v_max is None else (theta, m, v, v_max):
        if not (type(a) is np.ndarray and a.dtype == g.dtype and a.shape == g.shape
                and a.flags.c_contiguous and a.flags.writeable):
            return None
    return _cpu_kernel()


@functools.cache
def _cpu_kernel():
    """The kernel, imported on first use (its module loads Numba)."""
    return importlib.import_module("engine.kernels.cpu").adam_step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ (1 - αλ), then the
    Adam update on the undecayed gradient. ``weight_decay`` defaults to 1e-2, as PyTorch.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
