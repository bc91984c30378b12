"""scatter_add: every fast path equals the unbuffered np.add.at reference, and the fast
paths are the ones taken."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from engine import backend
from engine import testing as et
from engine.ops import indexing


def reference(shape, index, values):
    out = np.zeros(shape)
    np.add.at(out, index, values)
    return out


def run(shape, index, values):
    out = np.zeros(shape)
    engine.scatter_add(out, index, values)
    return out


@settings(max_examples=40)
@given(data=st.data())
def test_leading_integer_arrays_match_add_at(data):
    shape = data.draw(et.shapes(min_dims=1, max_dims=3, max_side=5))
    k = data.draw(st.integers(1, len(shape)))
    n = data.draw(st.integers(0, 12))
    index = tuple(data.draw(et.index_arrays(shape[i], shape=(n,))) for i in range(k))
    values = np.random.default_rng(0).standard_normal((n,) + shape[k:])
    np.testing.assert_allclose(run(shape, index, values), reference(shape, index, values),
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=40)
@given(data=st.data())
def test_basic_and_mask_indices_match_add_at(data):
    shape = data.draw(et.shapes(min_dims=1, max_dims=3, max_side=5))
    if data.draw(st.booleans()):
        from hypothesis.extra import numpy as hnp

        index = data.draw(hnp.basic_indices(shape, allow_newaxis=False, allow_ellipsis=True))
    else:
        from hypothesis.extra import numpy as hnp

        index = data.draw(hnp.arrays(bool, shape))
    target = np.zeros(shape)
    values = np.random.default_rng(1).standard_normal(target[index].shape)
    np.testing.assert_allclose(run(shape, index, values), reference(shape, index, values))


def test_embedding_style_repeats_take_the_sorted_path(monkeypatch):
    def forbidden(*args):
        raise AssertionError("add.at used where the sorted fast path applies")

    monkeypatch.setattr(backend, "add_at", forbidden)
    idx = np.array([3, 1, 3, 3, 0, 1])
    values = np.arange(12.0).reshape(6, 2)
    got = run((5, 2), (idx,), values)
    np.testing.assert_array_equal(got, reference((5, 2), (idx,), values))
    rows, cols = np.array([0, 1, 0]), np.array([2, 2, 2])
    got = run((2, 3), (rows, cols), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(got, [[0, 0, 4], [0, 0, 2]])


def test_mixed_slices_and_arrays_fall_back_to_add_at(monkeypatch):
    calls = []
    real = backend.add_at
    monkeypatch.setattr(backend, "add_at", lambda *a: (calls.append(1), real(*a)))
    idx = np.array([1, 1, 0])
    got = run((2, 3), (slice(None), idx), np.ones((2, 3)))
    np.testing.assert_array_equal(got, [[1, 2, 0], [1, 2, 0]])
    assert calls


def test_getitem_gradient_accumulates_repeated_rows():
    w = engine.Tensor(np.zeros((4, 3)), requires_grad=True)
    idx = engine.Tensor(np.array([[0, 2], [2, 2]]))
    w[idx].sum().backward()
    np.testing.assert_array_equal(w.grad.data[:, 0], [1, 0, 3, 0])


def test_index_add_is_the_adjoint_of_getitem():
    x = engine.randn(5, 2, dtype=np.float64, requires_grad=True)
    idx = np.array([4, 0, 4])
    v = x[:3].detach().requires_grad_()
    assert engine.gradcheck(lambda v: engine.index_add(v, idx, (6, 2)), [v])
    assert engine.gradgradcheck(lambda t: t[idx] * t[idx], [x])


def test_non_integer_index_array_is_refused():
    with pytest.raises(IndexError, match="integer or bool"):
        engine.randn(3)[np.array([0.5])]


def test_prepare_index_converts_tensors_and_lists():
    x = engine.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(x[[1, 0]].data, [[3, 4, 5], [0, 1, 2]])
    np.testing.assert_array_equal(x[engine.tensor([1]), 2].data, [5])
    assert indexing.prepare_index(np, (np.int64(1), None))[0] == 1
