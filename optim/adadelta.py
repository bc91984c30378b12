"""Adadelta (Zeiler, 2012): steps sized by the running RMS of past updates over the running
RMS of past gradients."""

from __future__ import annotations

from engine import backend
from optim.optimizer import Optimizer


class Adadelta(Optimizer):
    """Per-coordinate steps in the units of θ, from two running averages (ρ the decay):

        g ← -g  if maximize;   g ← g + λ θ  (weight decay λ)
        v ← ρ v + (1 - ρ) g²                  mean square of the gradients
        Δ = √(u + ε) / √(v + ε) · g           the update
        u ← ρ u + (1 - ρ) Δ²                  mean square of the updates
        θ ← θ - η Δ

    Zeiler's rule has no learning rate (η = 1, PyTorch's default); PyTorch's η scales it.

    ``Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False)``;
    state per parameter: ``step``, ``square_avg`` (v), ``acc_delta`` (u).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Adadelta: invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Adadelta: invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Adadelta: invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group: dict) -> None:
        lr, rho = float(group["lr"]), float(group["rho"])
        eps, wd = float(group["eps"]), float(group["weight_decay"])
        for p, g in self._gradients(group):
            xp = backend.array_module(p.data)
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["square_avg"] = self._zeros_like(p)
                state["acc_delta"] = self._zeros_like(p)
            state["step"] += 1
            if wd != 0:
                g = g + wd * p.data
            v, u = state["square_avg"].data, state["acc_delta"].data
            v *= rho
            v += (1.0 - rho) * (g * g)
            delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
            u *= rho
            u += (1.0 - rho) * (delta * delta)
            p.data -= lr * delta
