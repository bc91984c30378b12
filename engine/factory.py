"""Tensor factories: from data, constants, ranges and the engine's seeded random draws.

Random draws are made on the host by the engine generator (so a seed gives the same
numbers on every device) and copied to ``device``.
"""

from __future__ import annotations

import numpy as np

from engine import backend, dtypes, random
from engine.tensor import Tensor


def _finish(array, device, requires_grad) -> Tensor:
    if device is not None:
        array = backend.to_device(array, backend.parse_device(device))
    t = Tensor._make(array, None, 0)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _float(dtype) -> np.dtype:
    return dtypes.get_default_dtype() if dtype is None else np.dtype(dtype)


def _shape(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def tensor(data, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A new Tensor holding a copy of ``data`` (as ``torch.tensor``)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing memory with ``array`` (no copy)."""
    return Tensor._make(array, None, 0)


def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.zeros(_shape(shape), dtype=_float(dtype)), device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.ones(_shape(shape), dtype=_float(dtype)), device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.empty(_shape(shape), dtype=_float(dtype)), device, requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None and isinstance(fill_value, (bool, int)) and not isinstance(
            fill_value, float):
        dtype = np.bool_ if isinstance(fill_value, bool) else np.int64
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _finish(np.full(shape, fill_value, dtype=_float(dtype)), device, requires_grad)


def zeros_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    xp = backend.array_module(x.data)
    return _finish(xp.zeros(x.shape, dtype=dtype or x.dtype), None, requires_grad)


def ones_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    xp = backend.array_module(x.data)
    return _finish(xp.ones(x.shape, dtype=dtype or x.dtype), None, requires_grad)


def full_like(x: Tensor, fill_value, dtype=None, requires_grad=False) -> Tensor:
    xp = backend.array_module(x.data)
    return _finish(xp.full(x.shape, fill_value, dtype=dtype or x.dtype), None, requires_grad)


def arange(start, stop=None, step=1, dtype=None, device=None) -> Tensor:
    """Evenly spaced values in [start, stop); integers unless any argument is a float."""
    if stop is None:
        start, stop = 0, start
    if dtype is None and any(isinstance(v, float) for v in (start, stop, step)):
        dtype = dtypes.get_default_dtype()
    return _finish(np.arange(start, stop, step, dtype=dtype), device, False)


def linspace(start, stop, num: int, dtype=None, device=None) -> Tensor:
    return _finish(np.linspace(start, stop, num, dtype=_float(dtype)), device, False)


def eye(n: int, m: int | None = None, dtype=None, device=None) -> Tensor:
    return _finish(np.eye(n, m, dtype=_float(dtype)), device, False)


def rand(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1) from the engine generator."""
    data = random.default_generator().random(_shape(shape), dtype=_float(dtype))
    return _finish(data, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal from the engine generator."""
    data = random.default_generator().standard_normal(_shape(shape), dtype=_float(dtype))
    return _finish(data, device, requires_grad)


def randint(low: int, high: int, shape, dtype=np.int64, device=None) -> Tensor:
    """Integers uniform on [low, high) from the engine generator."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    data = random.default_generator().integers(low, high, size=shape, dtype=dtype)
    return _finish(data, device, False)


def randperm(n: int, device=None) -> Tensor:
    """A random permutation of 0..n-1 from the engine generator."""
    return _finish(random.default_generator().permutation(n), device, False)
