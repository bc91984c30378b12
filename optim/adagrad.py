"""Adagrad (Duchi et al.): per-coordinate steps shrinking with the accumulated g²."""

from __future__ import annotations

from engine import backend
from optim.optimizer import Optimizer


class Adagrad(Optimizer):
    """Per-coordinate learning rates from the sum of all past squared gradients:

        g ← -g  if maximize;   g ← g + λ θ  (weight decay λ)
        η_t = η / (1 + (t - 1) δ)           learning-rate decay δ
        s ← s + g²                          (s starts at initial_accumulator_value)
        θ ← θ - η_t g / (√s + ε)

    ``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
    eps=1e-10, *, maximize=False)``; state per parameter (created at construction, as
    PyTorch): ``step``, ``sum`` (s).
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        for key, value in (("learning rate", lr), ("lr_decay", lr_decay),
                           ("weight_decay", weight_decay),
                           ("initial_accumulator_value", initial_accumulator_value),
                           ("epsilon", eps)):
            if not 0.0 <= value:
                raise ValueError(f"Adagrad: invalid {key} value: {value}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value,
                        maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = 0
                self.state[p]["sum"] = self._zeros_like(
                    p, float(group["initial_accumulator_value"]))

    def update(self, group: dict) -> None:
        lr, decay = float(group["lr"]), float(group["lr_decay"])
        wd, eps = float(group["weight_decay"]), float(group["eps"])
        for p, g in self._gradients(group):
            state = self.state[p]
            if not state:                   # a group added after construction
                state["step"] = 0
                state["sum"] = self._zeros_like(
                    p, float(group["initial_accumulator_value"]))
            state["step"] += 1
            if wd != 0:
                g = g + wd * p.data
            lr_t = lr / (1 + (state["step"] - 1) * decay)
            s = state["sum"].data
            s += g * g
            p.data -= lr_t * (g / (backend.array_module(s).sqrt(s) + eps))
