"""The per-coordinate adaptive optimizers: each coordinate's step is scaled by a running
measure of its own past squared gradients.

- :class:`Adagrad` (Duchi et al., 2011): steps shrinking with the accumulated g².
- :class:`RMSprop` (Hinton's lecture 6e): the gradient divided by a running root-mean-square
  of its recent values (an exponential average instead of Adagrad's sum), with PyTorch's
  centered and momentum variants.
- :class:`Adadelta` (Zeiler, 2012): steps sized by the running RMS of past updates over the
  running RMS of past gradients.

Adam (:mod:`optim.adam`) divides a running mean of the gradients by RMSprop's running
root-mean-square, both corrected for their start at zero.
"""

from __future__ import annotations

from engine import backend
from optim.optimizer import Optimizer, check_nonnegative


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
        check_nonnegative("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                          initial_accumulator_value=initial_accumulator_value, eps=eps)
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
        check_nonnegative("RMSprop", lr=lr, eps=eps, momentum=momentum,
                          weight_decay=weight_decay, alpha=alpha)
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
        check_nonnegative("Adadelta", lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho value: {rho}")
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
