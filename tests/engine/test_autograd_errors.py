"""Numbers (dtypes of scalars and arrays, seeds), errors that name the op, and anomaly
detection."""

import numpy as np
import pytest

import engine
from engine import Tensor


# ----------------------------------------------------------------------------- numbers
def test_python_scalars_keep_float32_on_both_sides():
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    results = [x + 2, 2 + x, x - 1.5, 1.5 - x, x * 3, 3 * x, x / 2, 2 / x, x ** 2, 2 ** x,
               x * np.float64(2.0), np.float64(2.0) * x]
    for r in results:
        assert r.dtype == np.float32
    sum(r.sum() for r in results).backward()
    assert x.grad.dtype == np.float32


def test_arrays_on_either_side_of_operators():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = np.array([3.0, 4.0])
    for r, want in [(x + a, [4, 6]), (a + x, [4, 6]), (a - x, [2, 2]), (a * x, [3, 8]),
                    (a / x, [3, 2]), (x @ a, 11.0), (a @ x, 11.0)]:
        assert isinstance(r, Tensor)
        np.testing.assert_allclose(r.data, want)


def test_default_dtype():
    assert Tensor([1.0]).dtype == np.float32
    engine.set_default_dtype(np.float64)
    assert Tensor([1.0]).dtype == np.float64 and engine.zeros(2).dtype == np.float64
    engine.set_default_dtype(np.float32)
    assert engine.randn(2).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.int64
    with pytest.raises(TypeError, match="float32 or float64"):
        engine.set_default_dtype(np.int32)


def test_manual_seed_reproduces_draws():
    engine.manual_seed(123)
    a = engine.randn(5).data
    engine.manual_seed(123)
    b = engine.randn(5).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, engine.randn(5).data)


# ----------------------------------------------------------------------------- errors
def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) @ \(5, 2\)"):
        engine.randn(3, 4) @ engine.randn(5, 2)


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(4,\)"):
        engine.randn(3) + engine.randn(4)


def test_reshape_and_index_errors_name_the_op():
    with pytest.raises(ValueError, match="reshape: cannot reshape shape \\(2, 3\\)"):
        engine.randn(2, 3).reshape(4)
    with pytest.raises(IndexError, match="getitem"):
        engine.randn(2, 3)[5]


def test_cuda_without_gpu_raises_clear_error():
    if engine.cuda_is_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        engine.randn(2).to("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        engine.randn(2).to("tpu")


def test_mixing_devices_names_both():
    """Simulated without a GPU: an object that presents itself as a CuPy array."""
    from engine import function

    class Device:
        id = 0

    class FakeCupyArray:
        __module__ = "cupy._core.core"
        device = Device()

    with pytest.raises(RuntimeError, match="Add: .*cpu and cuda:0"):
        function._check_devices("Add", [np.ones(2), FakeCupyArray()])


@pytest.mark.gpu
def test_mixing_real_devices_raises():
    a = engine.randn(3)
    b = engine.randn(3).to("cuda")
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        a + b


# ----------------------------------------------------------------------------- anomaly
def test_detect_anomaly_names_forward_op():
    x = Tensor([1.0, -1.0])
    with engine.detect_anomaly():
        with pytest.raises(FloatingPointError, match="Log forward produced NaN"):
            with np.errstate(invalid="ignore"):
                engine.log(x)


def test_detect_anomaly_names_backward_op():
    x = Tensor([0.0, 4.0], requires_grad=True)
    with engine.detect_anomaly():
        y = engine.sqrt(x).sum()
        with pytest.raises(FloatingPointError, match="Sqrt backward produced inf"):
            with np.errstate(divide="ignore"):
                y.backward()


def test_detect_anomaly_lets_legitimate_masks_through():
    x = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    mask = Tensor([[False, False, True]])
    with engine.detect_anomaly():
        y = engine.softmax(engine.where(mask, -np.inf, x)).sum()
        y.backward()
    assert np.isfinite(x.grad.data).all()


def test_outside_detect_anomaly_nan_passes_silently():
    with np.errstate(invalid="ignore"):
        y = engine.log(Tensor([-1.0]))
    assert np.isnan(y.data).all()
