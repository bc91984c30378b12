"""Tensor factories, with PyTorch's signatures: from data, constants, ranges, the ``*_like``
and ``new_*`` families, and the engine's seeded random draws.

Random draws are made on the host by the engine generator (or the ``generator`` given), so
a seed gives the same numbers on every device, and copied to ``device``.
"""

from __future__ import annotations

import math

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


def _generator(generator):
    return random.default_generator() if generator is None else generator


def tensor(data, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A new Tensor holding a copy of ``data`` (as ``torch.tensor``)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing memory with ``array`` (no copy)."""
    return Tensor._make(array, None, 0)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.zeros(_shape(size), dtype=_float(dtype)), device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.ones(_shape(size), dtype=_float(dtype)), device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.empty(_shape(size), dtype=_float(dtype)), device, requires_grad)


def _fill_dtype(fill_value, dtype):
    """``full``'s dtype: as given, else bool for a bool, int64 for an int, else the
    default float dtype."""
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        return dtypes.bool_
    if dtype is None and isinstance(fill_value, (int, np.integer)):
        return dtypes.int64
    return _float(dtype)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    size = (size,) if isinstance(size, int) else tuple(size)
    return _finish(np.full(size, fill_value, dtype=_fill_dtype(fill_value, dtype)), device,
                   requires_grad)


# ----------------------------------------------------------------------------- *_like
def _like(x, dtype, device):
    """The array module, dtype and device of a tensor made like ``x``."""
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    device = backend.device_of(x.data) if device is None else backend.parse_device(device)
    return backend.module_for(device), dtype, device


def zeros_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp, dtype, device = _like(input, dtype, device)
    return _finish(xp.zeros(input.shape, dtype=dtype), device, requires_grad)


def ones_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp, dtype, device = _like(input, dtype, device)
    return _finish(xp.ones(input.shape, dtype=dtype), device, requires_grad)


def empty_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp, dtype, device = _like(input, dtype, device)
    return _finish(xp.empty(input.shape, dtype=dtype), device, requires_grad)


def full_like(input: Tensor, fill_value, *, dtype=None, device=None,
              requires_grad=False) -> Tensor:
    xp, dtype, device = _like(input, dtype, device)
    return _finish(xp.full(input.shape, fill_value, dtype=dtype), device, requires_grad)


def rand_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1) with the shape (and dtype, device) of ``input``."""
    _, dtype, device = _like(input, dtype, device)
    return rand(input.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(input: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal with the shape (and dtype, device) of ``input``."""
    _, dtype, device = _like(input, dtype, device)
    return randn(input.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randint_like(input: Tensor, low: int = 0, high: int | None = None, *, dtype=None,
                 device=None) -> Tensor:
    """Integers uniform on [low, high) with the shape of ``input`` (``randint_like(x, high)``
    or ``randint_like(x, low, high)``), in ``input``'s dtype unless told otherwise."""
    if high is None:
        low, high = 0, low
    _, dtype, device = _like(input, dtype, device)
    data = random.default_generator().integers(low, high, size=input.shape)
    return _finish(data.astype(dtype), device, False)


# ----------------------------------------------------------------------------- new_*
def new_tensor(self: Tensor, data, *, dtype=None, device=None,
               requires_grad=False) -> Tensor:
    """A copy of ``data`` with this tensor's dtype and device unless told otherwise."""
    _, dtype, device = _like(self, dtype, device)
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def new_zeros(self: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros of ``size`` with this tensor's dtype and device unless told otherwise."""
    xp, dtype, device = _like(self, dtype, device)
    return _finish(xp.zeros(_shape(size), dtype=dtype), device, requires_grad)


def new_ones(self: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones of ``size`` with this tensor's dtype and device unless told otherwise."""
    xp, dtype, device = _like(self, dtype, device)
    return _finish(xp.ones(_shape(size), dtype=dtype), device, requires_grad)


def new_empty(self: Tensor, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """An uninitialized tensor of ``size`` with this tensor's dtype and device."""
    xp, dtype, device = _like(self, dtype, device)
    return _finish(xp.empty(_shape(size), dtype=dtype), device, requires_grad)


def new_full(self: Tensor, size, fill_value, *, dtype=None, device=None,
             requires_grad=False) -> Tensor:
    """``fill_value`` everywhere in ``size``, with this tensor's dtype and device."""
    xp, dtype, device = _like(self, dtype, device)
    size = (size,) if isinstance(size, int) else tuple(size)
    return _finish(xp.full(size, fill_value, dtype=dtype), device, requires_grad)


# ----------------------------------------------------------------------------- ranges
def _number(v):
    return v.item() if isinstance(v, Tensor) else v


def arange(start, end=None, step=1, *, dtype=None, device=None,
           requires_grad=False) -> Tensor:
    """PyTorch's ``arange(end)``, ``arange(start, end)``, ``arange(start, end, step)``:
    values in [start, end) spaced by ``step``; int64 unless an argument is a float (then
    the default float dtype)."""
    start, end, step = (_number(v) for v in (start, end, step))
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        floats = any(isinstance(v, (float, np.floating)) for v in (start, end, step))
        dtype = dtypes.get_default_dtype() if floats else dtypes.int64
    n = max(math.ceil((end - start) / step), 0)
    data = (start + step * np.arange(n, dtype=np.float64)).astype(dtype) if \
        np.dtype(dtype).kind == "f" else np.arange(start, end, step, dtype=dtype)
    return _finish(data, device, requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None,
             requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (PyTorch's
    ``linspace``; NumPy's third argument ``num`` is ``steps`` here)."""
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    data = np.linspace(_number(start), _number(end), int(steps), dtype=np.float64)
    return _finish(data.astype(_float(dtype)), device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None,
        requires_grad=False) -> Tensor:
    return _finish(np.eye(n, m, dtype=_float(dtype)), device, requires_grad)


# ----------------------------------------------------------------------------- random
def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1) from the engine generator."""
    data = _generator(generator).random(_shape(size), dtype=_float(dtype))
    return _finish(data, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal from the engine generator."""
    data = _generator(generator).standard_normal(_shape(size), dtype=_float(dtype))
    return _finish(data, device, requires_grad)


def randint(low: int, high: int | None = None, size=None, *, generator=None, dtype=None,
            device=None) -> Tensor:
    """Integers uniform on [low, high): PyTorch's ``randint(high, size)`` and
    ``randint(low, high, size)``; int64 unless ``dtype``."""
    if size is None:
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint: size is required, as in randint(10, (3,)) or "
                        "randint(0, 10, (3,))")
    size = (size,) if isinstance(size, int) else tuple(size)
    data = _generator(generator).integers(low, high, size=size, dtype=np.int64)
    return _finish(data.astype(dtypes.int64 if dtype is None else dtype), device, False)


def randperm(n: int, *, generator=None, dtype=None, device=None) -> Tensor:
    """A random permutation of 0..n-1 from the engine generator."""
    data = _generator(generator).permutation(n)
    return _finish(data.astype(dtypes.int64 if dtype is None else dtype), device, False)


def multinomial(input, num_samples: int, replacement: bool = False, *,
                generator=None) -> Tensor:
    """Category indices drawn with probabilities proportional to the rows of ``input``
    ((C,) or (N, C) non-negative weights, not necessarily normalized): ``num_samples``
    per row, with or without replacement; int64 on ``input``'s device.

    Without replacement each row's categories are ordered by Eᵢ / wᵢ, Eᵢ ~ Exp(1), and
    the first ``num_samples`` taken, which is drawing one at a time, each in proportion
    to the weights left (Efraimidis and Spirakis).
    """
    w = backend.to_numpy(input.data if isinstance(input, Tensor) else np.asarray(input))
    if w.ndim not in (1, 2) or w.shape[-1] == 0:
        raise ValueError(f"multinomial: expected weights of shape (C,) or (N, C), got "
                         f"{w.shape}")
    w2 = w.reshape(-1, w.shape[-1]).astype(np.float64)
    if not np.all(np.isfinite(w2)) or np.any(w2 < 0) or np.any(w2.sum(axis=1) <= 0):
        raise ValueError("multinomial: weights must be finite, non-negative and have a "
                         "positive sum in every row")
    if num_samples <= 0:
        raise ValueError(f"multinomial: num_samples must be positive, got {num_samples}")
    if not replacement and num_samples > int((w2 > 0).sum(axis=1).min()):
        raise ValueError(f"multinomial: cannot draw {num_samples} samples without "
                         f"replacement from a row with {int((w2 > 0).sum(axis=1).min())} "
                         "nonzero weights")
    gen = _generator(generator)
    if replacement:
        cdf = np.cumsum(w2, axis=1)
        cdf /= cdf[:, -1:]
        u = gen.random((w2.shape[0], num_samples))
        out = np.stack([np.searchsorted(c, r, side="right") for c, r in zip(cdf, u)])
        out = np.minimum(out, w2.shape[1] - 1)
    else:
        with np.errstate(divide="ignore"):
            keys = gen.exponential(size=w2.shape) / w2        # weight 0: key inf, never
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64).reshape(w.shape[:-1] + (num_samples,))
    return _finish(out, backend.device_of(input.data) if isinstance(input, Tensor) else None,
                   False)
