"""The switch between the reference formulas and the fused kernels, and the choice of kernel.

``use_fused(False)`` makes every fused op run its literal reference formula (to step through
it, or to compare); ``use_fused(True)`` (the default) picks the Numba CPU kernels for NumPy
data and the Numba CUDA kernels for CuPy data. It acts at once when called and, used as a
context manager, restores the previous setting on exit::

    engine.use_fused(False)            # from now on
    with engine.use_fused(False):      # only inside the block
        ...

The setting belongs to the thread that makes it, as PyTorch's grad mode does: another
thread keeps its own, and a new thread starts with the default (fused on).
"""

from __future__ import annotations

import threading

import numpy as np

from engine import backend

FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _State(threading.local):
    fused = True        # each thread sees this class default until it sets its own


_state = _State()


class use_fused:
    """Turn the fused kernels on or off (a plain call, or a context manager)."""

    def __init__(self, flag: bool = True):
        self._previous = _state.fused
        _state.fused = bool(flag)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.fused = self._previous
        return False


def fused_enabled() -> bool:
    """True when fused ops run their Numba kernels (the default)."""
    return _state.fused


def implementation(*arrays) -> str:
    """``'reference'``, ``'cpu'`` or ``'cuda'``: which implementation serves ``arrays``.

    The reference serves when fusion is off and for dtypes the kernels are not compiled for
    (anything but float32 and float64).
    """
    if not _state.fused:
        return "reference"
    first = arrays[0]
    if any(a.dtype not in FUSED_DTYPES for a in arrays if a is not None):
        return "reference"
    return "cuda" if backend.is_cuda_array(first) else "cpu"
