"""NumPy sees a Tensor as its numeric array: ``np.asarray``/``np.array`` through
``__array__(dtype=None, copy=None)`` (NumPy 2's protocol), NumPy functions through
``__array_function__``; ufuncs keep deferring to the Tensor's own operators."""

import sys
from pathlib import Path

import numpy as np
import pytest

import engine

sys.path.insert(0, str(Path(__file__).parents[1]))
import fake_cupy  # noqa: E402


@pytest.fixture
def t():
    return engine.tensor([[1.0, 2.0, 4.0], [-3.0, 0.5, 8.0]])


def test_asarray_is_the_numeric_array_sharing_memory(t):
    a = np.asarray(t)
    assert type(a) is np.ndarray and a.dtype == np.float32 and a.shape == (2, 3)
    np.testing.assert_array_equal(a, t.data)
    assert np.shares_memory(a, t.data)           # as np.asarray(torch_tensor) on the CPU


def test_array_copies_and_converts(t):
    a = np.array(t)
    assert a.dtype == np.float32 and not np.shares_memory(a, t.data)
    np.testing.assert_array_equal(a, t.data)
    b = np.asarray(t, dtype=np.float64)
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, t.data.astype(np.float64))
    c = np.array(t, copy=False)
    assert np.shares_memory(c, t.data)
    with pytest.raises(ValueError, match="copy"):
        np.array(t, dtype=np.float64, copy=False)


@pytest.mark.parametrize("value, dtype", [(3.5, np.float32), (7, np.int64), (True, np.bool_)])
def test_scalars_integers_and_bools(value, dtype):
    a = np.asarray(engine.tensor(value))
    assert a.shape == () and a.dtype == dtype and a.item() == value
    m = np.asarray(engine.tensor([[True, False]]))
    assert m.dtype == np.bool_ and m.shape == (1, 2)


def test_a_tensor_that_requires_grad_converts_too():
    """Unlike PyTorch's, which refuses; xpgrad's .numpy() never refuses either."""
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    np.testing.assert_array_equal(np.asarray(x), [1.0, 2.0])
    y = x * 3.0
    np.testing.assert_array_equal(np.array(y), [3.0, 6.0])


def test_numpy_functions_take_tensors(t):
    ref = t.numpy()
    assert np.mean(t) == pytest.approx(np.mean(ref))
    assert np.sum(t) == pytest.approx(np.sum(ref))
    assert np.max(t) == np.max(ref) and np.argmin(t) == np.argmin(ref)
    assert np.std(t) == pytest.approx(np.std(ref))
    np.testing.assert_array_equal(np.mean(t, axis=0), ref.mean(axis=0))
    np.testing.assert_array_equal(np.concatenate([t, t]), np.concatenate([ref, ref]))
    np.testing.assert_array_equal(np.stack([t, ref]), np.stack([ref, ref]))
    np.testing.assert_array_equal(np.where(t > 1.0, t, 0.0), np.where(ref > 1, ref, 0.0))
    assert np.allclose(t, ref) and np.array_equal(t, ref)
    np.testing.assert_allclose(t, ref)
    assert np.linalg.norm(t) == pytest.approx(np.linalg.norm(ref))
    assert type(np.mean(t)) is np.float32


def test_results_are_arrays_not_object_arrays(t):
    for a in (np.asarray(t), np.array([t, t]), np.asarray([t.data, t])):
        assert a.dtype == np.float32


def test_ufuncs_still_defer_to_the_tensor(t):
    """``__array_ufunc__ = None``: ndarray (op) Tensor is the Tensor's reflected op."""
    r = np.ones((2, 3), dtype=np.float32) + t
    assert isinstance(r, engine.Tensor)
    np.testing.assert_array_equal(r.numpy(), t.numpy() + 1)
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.exp(t)


def test_a_cuda_tensor_asks_for_cpu_first(monkeypatch):
    fake_cupy.install(monkeypatch)
    y = engine.tensor([1.0, 2.0]).to("cuda")
    with pytest.raises(TypeError, match=r"cuda:0.*\.cpu\(\)"):
        np.asarray(y)
    with pytest.raises(TypeError, match=r"cuda:0.*\.cpu\(\)"):
        np.mean(y)
    np.testing.assert_array_equal(np.asarray(y.cpu()), [1.0, 2.0])
