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


# PyTorch's dtype names (``engine.float32``, ``engine.long``, ...): NumPy dtypes, so that
# ``x.dtype == engine.float32`` and ``np.zeros(3, dtype=engine.long)`` both work.
float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
uint8 = np.dtype(np.uint8)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

NAMES = {"float16": float16, "half": half, "float32": float32, "float": float32,
         "float64": float64, "double": double, "uint8": uint8, "int8": int8,
         "int16": int16, "short": short, "int32": int32, "int": int32, "int64": int64,
         "long": long, "bool": bool_}

# PyTorch's legacy tensor type names, as ``x.type()`` gives them (``engine.FloatTensor``)
TENSOR_TYPES = {float16: "HalfTensor", float32: "FloatTensor", float64: "DoubleTensor",
                uint8: "ByteTensor", int8: "CharTensor", int16: "ShortTensor",
                int32: "IntTensor", int64: "LongTensor", bool_: "BoolTensor"}


def _category(dtype: np.dtype) -> int:
    """0 bool, 1 integer, 2 floating: PyTorch promotes across categories by these."""
    return 2 if dtype.kind == "f" else (0 if dtype.kind == "b" else 1)


def promote_types(a, b) -> np.dtype:
    """PyTorch's ``promote_types``: the smallest dtype holding both.

    It differs from NumPy's where an integer meets a float: the float wins as it is
    (int64 with float32 is float32; NumPy says float64).
    """
    a, b = np.dtype(a), np.dtype(b)
    if a == b:
        return a
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def _operand_dtype(x):
    """``(priority, dtype)`` of one operand: 2 for a tensor with dimensions, 1 for a 0-d
    tensor, 0 for a Python or NumPy scalar (a float one counts as the default dtype)."""
    if isinstance(x, (bool, np.bool_)):
        return 0, bool_
    if isinstance(x, (int, np.integer)):
        return 0, int64
    if isinstance(x, (float, np.floating)):
        return 0, _default_dtype
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        raise TypeError(f"result_type: expected a tensor, an array or a number, got "
                        f"{type(x).__name__}")
    return (2 if x.ndim else 1), np.dtype(dtype)


def result_type(*operands) -> np.dtype:
    """The dtype of an elementwise op on ``operands``, by PyTorch's rules.

    Tensors with dimensions decide first; a 0-d tensor or a Python scalar changes the
    result only when it belongs to a higher category (bool < integer < floating): float32
    with an int64 tensor or a Python float stays float32, an int tensor with a Python float
    gives the default float dtype, float32 with float64 gives float64.
    """
    best = [None, None, None]          # the promoted dtype per priority
    for x in operands:
        priority, dtype = _operand_dtype(x)
        best[priority] = dtype if best[priority] is None else \
            promote_types(best[priority], dtype)
    scalars, zero_dim, dimensioned = best
    return _combine(dimensioned, _combine(zero_dim, scalars))


def _combine(higher, lower):
    """c10's ``combine_categories``: ``higher`` (from a higher-priority class of operands)
    wins unless ``lower`` is of a higher category (either may be None: absent)."""
    if higher is None or lower is None:
        return lower if higher is None else higher
    if _category(higher) == 2:
        return higher
    if _category(higher) == 0 or _category(lower) == 2:
        return promote_types(higher, lower)
    return higher
