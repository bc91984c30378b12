"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from engine import backend
from engine.tensor import Tensor
from optim.optimizer import Optimizer


class SGD(Optimizer):
    """θ ← θ - α g  (docs/formulas.md, F1 gradient descent), with PyTorch's options, in
    PyTorch's order:

        g ← -g                      if maximize
        g ← g + λ θ                 weight decay λ (L2 penalty)
        b ← g                       first step with momentum μ, then
        b ← μ b + (1 - τ) g         dampening τ
        g ← g + μ b  (nesterov)  or  g ← b
        θ ← θ - α g

    ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)``; state per parameter: ``momentum_buffer`` (when μ ≠ 0).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        if lr < 0.0:
            raise ValueError(f"SGD: invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"SGD: invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def update(self, group: dict) -> None:
        lr, mu = float(group["lr"]), float(group["momentum"])
        tau, wd = float(group["dampening"]), float(group["weight_decay"])
        for p, g in self._gradients(group):
            if wd != 0:
                g = g + wd * p.data
            if mu != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    xp = backend.array_module(g)
                    buf = Tensor._make(xp.array(g, dtype=p.dtype, copy=True), None, 0)
                    state["momentum_buffer"] = buf
                else:
                    b = buf.data
                    b *= mu
                    b += (1.0 - tau) * g
                g = g + mu * buf.data if group["nesterov"] else buf.data
            p.data -= lr * g
