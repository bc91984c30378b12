"""What every loss shares: the reduction, target conversion and argument checks."""

from __future__ import annotations

import warnings

import numpy as np

from engine import backend
from engine.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(op: str, reduction: str) -> None:
    """Refuse anything but PyTorch's three reductions, naming the op."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction "
                         f"(expected one of {REDUCTIONS})")


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """'none': the elementwise losses; 'sum': Σ ℓ; 'mean': (1/n) Σ ℓ over all n elements
    (NaN for no elements, as PyTorch)."""
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.size == 0:
        return loss.sum() if reduction == "sum" else loss.sum() * float("nan")
    return loss.mean()


def as_tensor(x, op: str, name: str) -> Tensor:
    """A Tensor for ``x``: Tensors pass through, arrays are wrapped without a copy."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) or backend.is_cuda_array(x):
        return Tensor._make(x, None, 0)
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}")


def target_array(target, like: Tensor, op: str):
    """The raw array of an index target, on the device of ``like`` (an error otherwise)."""
    t = target.data if isinstance(target, Tensor) else target
    if not (isinstance(t, np.ndarray) or backend.is_cuda_array(t)):
        t = backend.module_for(like.device).asarray(t)
    if backend.device_of(t) != like.device:
        raise RuntimeError(f"{op}: target is on {backend.device_of(t)} but the input is on "
                           f"{like.device}")
    return t


def weight_array(weight, like: Tensor, op: str, name: str = "weight"):
    """A constant (non-differentiable) weight as an array of the input's dtype and device."""
    if weight is None:
        return None
    w = weight.data if isinstance(weight, Tensor) else weight
    if not (isinstance(w, np.ndarray) or backend.is_cuda_array(w)):
        w = backend.module_for(like.device).asarray(w)
    if backend.device_of(w) != like.device:
        raise RuntimeError(f"{op}: {name} is on {backend.device_of(w)} but the input is on "
                           f"{like.device}")
    return w.astype(like.dtype, copy=False)


def warn_if_broadcast(op: str, input: Tensor, target) -> None:
    """PyTorch's warning for regression losses whose target shape differs from the input's."""
    shape = tuple(getattr(target, "shape", ()))
    if shape != tuple(input.shape):
        warnings.warn(
            f"{op}: using a target size {shape} that is different to the input size "
            f"{tuple(input.shape)}; this will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            UserWarning, stacklevel=3,
        )
