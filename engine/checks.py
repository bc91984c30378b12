"""Argument checks, made once, at the public entry of an op.

The functions users call (``engine.layer_norm``, ``nn.functional.conv2d``,
``losses.cross_entropy``, ...) check their arguments here before anything is computed, and
the Functions and kernels below them trust what they get. Every error names the op and the
shapes, dtypes or devices involved.
"""

from __future__ import annotations

import numpy as np

from engine import backend
from engine.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def tensor(op: str, name: str, x) -> Tensor:
    """``x`` as a Tensor: Tensors pass, NumPy and CuPy arrays are wrapped without a copy."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) or backend.is_cuda_array(x):
        return Tensor._make(x, None, 0)
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}")


def floating(op: str, name: str, x) -> None:
    """``x`` (a Tensor or an array) holds floating-point numbers."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floating point, got {x.dtype} of shape "
                        f"{tuple(x.shape)}")


def same_dtype(op: str, **tensors) -> None:
    """The given tensors (None entries skipped) share one dtype: NumPy would silently
    promote a mix to the wider one."""
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dtypes.values())) > 1:
        desc = ", ".join(f"{name} {dt}" for name, dt in dtypes.items())
        raise TypeError(f"{op}: expected one floating dtype, got {desc}")


def dtype_of(op: str, name: str, x, dtype, like: str = "input") -> None:
    """``x`` has the dtype of the op's ``like`` argument."""
    if x.dtype != dtype:
        raise TypeError(f"{op}: {name} is {x.dtype} but the {like} is {dtype}")


def array_on(op: str, name: str, value, like: Tensor):
    """The raw array of ``value`` (a Tensor, a NumPy or CuPy array, or a nested list) on the
    device of ``like``: a list is made there, an array elsewhere is an error naming both."""
    a = value.data if isinstance(value, Tensor) else value
    if not (isinstance(a, np.ndarray) or backend.is_cuda_array(a)):
        a = backend.array_module(like.data).asarray(a)
    where, device = backend.device_of(a), backend.device_of(like.data)
    if where != device:
        raise RuntimeError(f"{op}: {name} is on {where} but the input is on {device}")
    return a


def reduction(op: str, value: str) -> None:
    """One of PyTorch's reductions: 'mean', 'sum', 'none'."""
    if value not in REDUCTIONS:
        raise ValueError(f"{op}: {value!r} is not a valid value for reduction (expected one "
                         f"of {REDUCTIONS})")


def unit_interval(op: str, name: str, value: float) -> None:
    """0 ≤ value ≤ 1 (a probability, a smoothing weight)."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{op}: {name} must lie in [0, 1], got {value}")


def image(op: str, x) -> None:
    """An image batch (N, C, H, W) or one image (C, H, W), floating point."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (unbatched) or 4-D (batched) input, got "
                         f"shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating input, got {x.dtype}")


def pair(op: str, name: str, v) -> tuple[int, int]:
    """An int or a pair of ints (kernel size, stride, padding...) as a pair."""
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return v


def class_targets(op: str, target, x: Tensor):
    """Class-index targets for scores ``x`` (classes on axis 1, or (C,) unbatched): an
    integer array on ``x``'s device of shape (N, d₁, ...) or () unbatched."""
    t = array_on(op, "target", target, x)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got {t.dtype} of "
                        f"shape {tuple(t.shape)}")
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have a class axis, got a 0-d tensor")
    if x.shape[0 if x.ndim == 1 else 1] == 0:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} has no classes (its class "
                         "axis is empty), so no target can be a class")
    expected = () if x.ndim == 1 else (x.shape[0],) + tuple(x.shape[2:])
    if tuple(t.shape) != expected:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} needs a target of shape "
                         f"{expected}, got {tuple(t.shape)}")
    return t


def class_range(op: str, t, num_classes: int, ignore_index: int) -> None:
    """Every target is a class in [0, C) or ``ignore_index``."""
    valid = t != ignore_index
    if t.size and bool(valid.any()):
        lo, hi = int(t[valid].min()), int(t[valid].max())
        if lo < 0 or hi >= num_classes:
            raise IndexError(f"{op}: target values must lie in [0, {num_classes}) or equal "
                             f"ignore_index={ignore_index}, got range [{lo}, {hi}]")
