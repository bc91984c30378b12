"""The public Hypothesis strategies do what they promise."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import testing as et


@given(et.broadcastable_shapes())
def test_broadcastable_pairs_broadcast(shapes):
    np.broadcast_shapes(*shapes)


@settings(max_examples=30)
@given(et.arrays(shape=et.shapes(min_dims=1, min_side=2), non_contiguous=True))
def test_non_contiguous_arrays_are_strided(a):
    assert not a.flags.c_contiguous


@given(et.arrays(shape=(3, 3), elements=et.away_from(et.floats(), (0.0, 1.0), 0.1)))
def test_away_from_keeps_the_margin(a):
    assert np.all(np.abs(a) >= 0.1 - 1e-12) and np.all(np.abs(a - 1) >= 0.1 - 1e-12)


@given(et.arrays(shape=(5,), elements=et.large_floats(1e4)))
def test_large_floats_are_finite_and_bounded(a):
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1e4)


@given(st.integers(1, 6).flatmap(lambda n: et.index_arrays(n, unique=True).map(
    lambda idx: (n, idx))))
def test_unique_index_arrays(pair):
    n, idx = pair
    assert len(set(idx.tolist())) == idx.size and np.all((0 <= idx) & (idx < n))


def test_strided_copy_keeps_values():
    a = np.arange(12.0).reshape(3, 4)
    for transposed in (False, True):
        b = et.strided_copy(a, transposed)
        assert not b.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
