"""The switches that govern recording: grad mode and anomaly mode, per thread.

Grad mode and anomaly mode are per thread, as in PyTorch: a new thread starts with grad
enabled and anomaly checks off, and a ``no_grad`` block in one thread never changes what
another records. :meth:`engine.function.Function.apply` reads both on every call, so
each is one attribute read there: ``_modes.grad_enabled``, and :data:`anomaly_threads`,
which stays 0 (and keeps the per-thread anomaly flag unread) until some thread enters
:func:`detect_anomaly`.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from engine import backend


class _ThreadModes(threading.local):
    """This thread's switches; the class attributes are what a new thread starts with."""

    grad_enabled = True
    anomaly = False


_modes = _ThreadModes()
_anomaly_lock = threading.Lock()
anomaly_threads = 0   # threads inside detect_anomaly: ops read _modes.anomaly only if > 0


def is_grad_enabled() -> bool:
    """True while operations are recorded for differentiation (in this thread)."""
    return _modes.grad_enabled


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    previous = _modes.grad_enabled
    _modes.grad_enabled = enabled
    try:
        yield
    finally:
        _modes.grad_enabled = previous


def no_grad():
    """Context manager (and decorator) under which this thread records no graph."""
    return _grad_mode(False)


def enable_grad():
    """Context manager (and decorator) that turns recording back on inside ``no_grad``."""
    return _grad_mode(True)


def set_grad_enabled(mode: bool):
    """Context manager that sets this thread's grad mode to ``mode``."""
    return _grad_mode(bool(mode))


def anomaly_enabled() -> bool:
    """True inside :func:`detect_anomaly` in this thread."""
    return anomaly_threads > 0 and _modes.anomaly


@contextlib.contextmanager
def detect_anomaly():
    """Name the first op whose forward output or backward gradient holds NaN or inf.

    Inside this context (also usable as a decorator) every op of this thread checks its
    outputs: forward raises ``FloatingPointError`` when an output holds NaN (or inf) that
    none of its inputs held, so legitimate ``-inf`` masks pass through; backward raises
    when a gradient holds NaN or inf, naming the op whose backward produced it. The checks
    synchronize with the device: debug use only.
    """
    global anomaly_threads
    previous = _modes.anomaly
    with _anomaly_lock:
        anomaly_threads += 1
    _modes.anomaly = True
    try:
        yield
    finally:
        _modes.anomaly = previous
        with _anomaly_lock:
            anomaly_threads -= 1


def _describe(arrays) -> str:
    parts = []
    for a in arrays:
        if hasattr(a, "shape") and hasattr(a, "dtype"):
            parts.append(f"{tuple(a.shape)} {a.dtype} on {backend.device_of(a)}")
        else:
            parts.append(repr(a))
    return ", ".join(parts)


def check_forward_anomaly(op: str, inputs, outputs) -> None:
    """Raise if an output holds NaN/inf of a kind none of the inputs held."""
    def state(a):
        if isinstance(a, (int, float)):
            a = np.asarray(a)
        if not hasattr(a, "dtype") or a.dtype.kind not in "fc":
            return False, False
        xp = backend.array_module(a)
        return bool(xp.isnan(a).any()), bool(xp.isinf(a).any())

    in_nan = in_inf = False
    for a in inputs:
        n, i = state(a)
        in_nan, in_inf = in_nan or n, in_inf or i
    for k, o in enumerate(outputs):
        n, i = state(o)
        if (n and not in_nan) or (i and not (in_inf or in_nan)):
            kind = "NaN" if n else "inf"
            raise FloatingPointError(
                f"detect_anomaly: {op} forward produced {kind} in output {k} "
                f"(inputs: {_describe(inputs)})"
            )
