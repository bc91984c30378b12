"""RMSprop (Hinton's lecture 6e), with PyTorch's centered and momentum variants."""

from __future__ import annotations

from engine import backend
from optim.optimizer import Optimizer


class RMSprop(Optimizer):
    """Divide the gradient by a running root-mean-square of its recent values:

        g ← -g  if maximize;   g ← g + λ θ  (weight decay λ)
        s ← α s + (1 - α) g²                      mean square
        centered:  ḡ ← α ḡ + (1 - α) g,   r = √(s - ḡ²) + ε     (variance instead)
        otherwise: r = √s + ε
        momentum μ > 0:  b ← μ b + g / r,   θ ← θ - η b
        otherwise:                          θ ← θ - η g / r

    ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, *, maximize=False)``; state per parameter: ``step``, ``square_avg`` (s),
    ``momentum_buffer`` (b, when μ > 0), ``grad_avg`` (ḡ, when centered).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 *, maximize: bool = False) -> None:
        for key, value in (("learning rate", lr), ("epsilon", eps), ("momentum", momentum),
                           ("weight_decay", weight_decay), ("alpha", alpha)):
            if not 0.0 <= value:
                raise ValueError(f"RMSprop: invalid {key} value: {value}")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group: dict) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        wd, mu = float(group["weight_decay"]), float(group["momentum"])
        for p, g in self._gradients(group):
            xp = backend.array_module(p.data)
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["square_avg"] = self._zeros_like(p)
                if mu > 0:
                    state["momentum_buffer"] = self._zeros_like(p)
                if group["centered"]:
                    state["grad_avg"] = self._zeros_like(p)
            state["step"] += 1
            if wd != 0:
                g = g + wd * p.data
            s = state["square_avg"].data
            s *= alpha
            s += (1.0 - alpha) * (g * g)
            if group["centered"]:
                g_avg = state["grad_avg"].data
                g_avg += (1.0 - alpha) * (g - g_avg)    # α ḡ + (1 - α) g, as a lerp
                r = xp.sqrt(s - g_avg * g_avg) + eps
            else:
                r = xp.sqrt(s) + eps
            if mu > 0:
                b = state["momentum_buffer"].data
                b *= mu
                b += g / r
                p.data -= lr * b
            else:
                p.data -= lr * (g / r)
