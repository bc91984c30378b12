"""Adam and AdamW, written as the textbook formulas (docs/formulas.md, F11 Adam, with
its ε)."""

from __future__ import annotations

from engine import backend
from optim.optimizer import Optimizer


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
        if not 0.0 <= lr:
            raise ValueError(f"{name}: invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"{name}: invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"{name}: invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def update(self, group: dict) -> None:
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        for p, g in self._gradients(group):
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = self._zeros_like(p)
                state["exp_avg_sq"] = self._zeros_like(p)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = self._zeros_like(p)
            state["step"] += 1
            t = state["step"]
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p.data *= 1.0 - lr * wd
                else:
                    g = g + wd * p.data
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            m *= beta1
            m += (1.0 - beta1) * g
            v *= beta2
            v += (1.0 - beta2) * (g * g)
            if group["amsgrad"]:
                v_max = state["max_exp_avg_sq"].data
                backend.array_module(v).maximum(v_max, v, out=v_max)
                v = v_max
            m_hat = m / (1.0 - beta1 ** t)
            v_hat = v / (1.0 - beta2 ** t)
            p.data -= lr * m_hat / (backend.array_module(v).sqrt(v_hat) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ (1 - αλ), then the
    Adam update on the undecayed gradient. ``weight_decay`` defaults to 1e-2, as PyTorch.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
