"""Hypothesis strategies for testing ops, yours included (needs ``hypothesis``).

    from hypothesis import given
    from engine import testing as et

    @given(et.arrays(shape=et.shapes(max_dims=3)))
    def test_my_op(x):
        engine.gradcheck(my_op, [x])

Shapes are small (finite differences cost two evaluations per element); floats are bounded;
``non_contiguous`` views exercise strided layouts; ``away_from`` moves values off kinks
(``|x|`` at 0, ``relu`` at 0) where a central difference straddles two slopes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy[tuple]:
    """Array shapes; set ``min_side=0`` to include empty axes."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
                         max_side: int = 4) -> st.SearchStrategy[tuple]:
    """Pairs ``(shape_a, shape_b)`` that broadcast together, either way round (size-1 axes
    and missing leading axes on both sides)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side,
    ).map(lambda bs: bs.input_shapes)


def floats(low: float = -3.0, high: float = 3.0, width: int = 64) -> st.SearchStrategy:
    """Finite floats in ``[low, high]``."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)


def large_floats(magnitude: float = 1e4, width: int = 64) -> st.SearchStrategy:
    """Finite floats of large magnitude, both signs: ``|x|`` up to ``magnitude``."""
    return st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False,
                     width=width)


def away_from(elements: st.SearchStrategy, points=(0.0,), margin: float = 1e-2):
    """Values from ``elements`` moved at least ``margin`` away from each of ``points``."""
    def shift(x):
        for p in points:
            if abs(x - p) < margin:
                x = p + margin if x >= p else p - margin
        return x

    return elements.map(shift)


def strided_copy(array: np.ndarray, transposed: bool = False) -> np.ndarray:
    """The same values in a non-contiguous layout: every other element of a buffer twice
    as large, or (``transposed``, 2+ axes) a transposed view of a reversed-axes copy."""
    if transposed and array.ndim >= 2:
        return np.ascontiguousarray(array.transpose()).transpose()
    if array.ndim == 0:
        return array.copy()
    big = np.zeros(tuple(2 * n for n in array.shape), dtype=array.dtype)
    view = big[tuple(slice(None, None, 2) for _ in array.shape)]
    view[...] = array
    return view


def _non_contiguous(draw, array: np.ndarray) -> np.ndarray:
    return strided_copy(array, transposed=draw(st.booleans()))


@st.composite
def arrays(draw, dtype=np.float64, shape=None, elements=None,
           non_contiguous=None) -> np.ndarray:
    """Float arrays of ``shape`` (a tuple or a strategy); ``elements`` defaults to
    ``floats()``; ``non_contiguous`` True/False forces the layout, None lets Hypothesis
    pick."""
    if shape is None:
        shape = shapes()
    if not isinstance(shape, tuple):
        shape = draw(shape)
    if elements is None:
        elements = floats(width=64 if np.dtype(dtype) == np.float64 else 32)
    a = draw(hnp.arrays(dtype, shape, elements=elements))
    strided = draw(st.booleans()) if non_contiguous is None else non_contiguous
    if strided and a.size > 1:
        a = _non_contiguous(draw, a)
    return a


@st.composite
def index_arrays(draw, size: int, shape=None, unique: bool = False) -> np.ndarray:
    """Integer index arrays into an axis of ``size`` (negative indices included;
    repeats unless ``unique``)."""
    if shape is None:
        shape = (draw(st.integers(0, size)),) if unique else draw(shapes(max_dims=2))
    n = int(np.prod(shape))
    if unique:
        values = draw(st.lists(st.integers(0, size - 1), min_size=n, max_size=n, unique=True))
    else:
        values = draw(st.lists(st.integers(-size, size - 1), min_size=n, max_size=n))
    return np.array(values, dtype=np.int64).reshape(shape)
