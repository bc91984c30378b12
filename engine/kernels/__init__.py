"""The array code of the fused ops, in three implementations, and the switch between them.

The fused ops are softmax, log-softmax, cross-entropy, layer norm and scaled dot-product
attention; their Functions live in :mod:`engine.ops`. Each implementation is a module with
the same array-level functions (``softmax_forward(xp, x, axis, log)``,
``attention_backward(xp, saved, ...)``, ...):

- :mod:`engine.kernels.reference`: the literal formula in array code, forward and backward,
  on NumPy or CuPy. Its backward formulas also run on Tensors, so second derivatives work
  through it. This is what the docs show and what the others are tested against.
- :mod:`engine.kernels.cpu`: Numba ``@njit`` kernels, parallel over rows (over heads for
  attention, whose matrix products stay on BLAS), compiled once and cached.
- :mod:`engine.kernels.cuda`: Numba CUDA kernels launched on CuPy arrays (matrix products on
  cuBLAS); tested without a GPU under Numba's CUDA simulator.

:func:`select` picks one for the arrays at hand: the fused kernels for float32 and float64
data, the reference for other dtypes and whenever ``engine.use_fused(False)`` (a call, or a
context manager) is in force. Softmax, log-softmax, cross-entropy and layer norm never see
float16: their entries compute it in float32 and round the result (as PyTorch does). The
fused softmax and log-softmax are differentiable twice; the other fused ops once (their
backward uses saved intermediates): under ``create_graph`` they ask for
``use_fused(False)``. In attention, a query whose keys are all masked gets
probabilities 0 and an output of 0 on every implementation, never NaN; a NaN score that
takes part makes its query's row NaN on every implementation, as in the formula.

The LSTM and GRU steps (:mod:`~engine.kernels.cpu_rnn`, :mod:`~engine.kernels.cpu_gru`,
:mod:`~engine.kernels.cuda_rnn`) and the embedding's gradient
(:mod:`~engine.kernels.cpu_embedding`, CPU only) are served by the same switch; their
reference twins are engine ops (:mod:`engine.ops.rnn`, :mod:`engine.ops.lstm`,
:mod:`engine.ops.gru`) and the scatter-add of :mod:`engine.ops.indexing`.

This package holds array code only: it imports nothing from :mod:`engine.ops`.
"""

from __future__ import annotations

import importlib
import threading

import numpy as np

from engine import backend
from engine.kernels import reference

FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _Switch(threading.local):
    """Per thread, as PyTorch's grad mode: a thread sees the class default (fused on)
    until it sets its own."""

    fused = True


_switch = _Switch()


class use_fused:
    """Turn the fused kernels on or off for this thread: at once when called, and, used as
    a context manager, back to the previous setting on exit::

        engine.use_fused(False)            # from now on
        with engine.use_fused(False):      # only inside the block
            ...

    Another thread keeps its own setting; a new thread starts with the fused kernels on.
    """

    def __init__(self, flag: bool = True):
        self._previous = _switch.fused
        _switch.fused = bool(flag)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _switch.fused = self._previous
        return False


def fused_enabled() -> bool:
    """True when fused ops run their Numba kernels in this thread (the default)."""
    return _switch.fused


_FUSED = {}          # "cpu" / "cuda" -> module, imported on first use (they load Numba)


def select(*arrays):
    """The implementation module that serves ``arrays`` (None entries are ignored):
    :mod:`~engine.kernels.reference` when fusion is off in this thread or a dtype is not
    float32 or float64, else :mod:`~engine.kernels.cpu` for NumPy arrays and
    :mod:`~engine.kernels.cuda` for CuPy arrays."""
    if not _switch.fused:
        return reference
    for a in arrays:
        if a is not None and a.dtype not in FUSED_DTYPES:
            return reference
    name = "cuda" if backend.is_cuda_array(arrays[0]) else "cpu"
    module = _FUSED.get(name)
    if module is None:
        module = _FUSED[name] = importlib.import_module(f"engine.kernels.{name}")
    return module


def cpu_fused(x) -> bool:
    """True when the Numba CPU kernels serve array ``x``: a NumPy float32 or float64 array
    while the fused kernels are on in this thread. The ops that have Numba kernels but no
    CUDA ones (convolution, pooling, ReLU's backward) choose with this; elsewhere they run
    their literal array code."""
    return type(x) is np.ndarray and x.dtype in FUSED_DTYPES and _switch.fused


__all__ = ["use_fused", "fused_enabled", "select", "cpu_fused", "reference", "FUSED_DTYPES"]
