"""The default floating dtype (float32) and dtype helpers."""

from __future__ import annotations

import numpy as np

_default_dtype = np.dtype(np.float32)


def set_default_dtype(dtype) -> None:
    """Set the dtype used for tensors made from Python floats and by the factories.

    Only ``float32`` (the default) and ``float64`` are accepted.
    """
    global _default_dtype
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"set_default_dtype: expected float32 or float64, got {dt}")
    _default_dtype = dt


def get_default_dtype() -> np.dtype:
    """The current default floating dtype."""
    return _default_dtype


def is_floating(dtype) -> bool:
    """True for float16/32/64 dtypes (the only ones that carry gradients)."""
    return np.dtype(dtype).kind == "f"


def float_dtype_of(dtype) -> np.dtype:
    """``dtype`` if it is floating, else the default dtype (for results like ``mean``)."""
    dt = np.dtype(dtype)
    return dt if dt.kind == "f" else _default_dtype
