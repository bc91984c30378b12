"""ReLU's backward: gx = gy where y > 0, else 0, also when gy holds inf or NaN at the zeros
(PyTorch's threshold_backward), on the product path and on the select path."""

import numpy as np
import pytest

import engine


def _grad(x, gy, dtype=np.float32):
    t = engine.tensor(np.asarray(x, dtype=dtype), requires_grad=True)
    engine.relu(t).backward(engine.tensor(np.asarray(gy, dtype=dtype)))
    return t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_is_gy_where_the_output_is_positive(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 33)).astype(dtype)
    x[0, :5] = 0.0
    gy = rng.standard_normal(x.shape).astype(dtype)
    gx = _grad(x, gy, dtype)
    assert gx.dtype == dtype
    np.testing.assert_array_equal(gx, np.where(x > 0, gy, 0.0))


def test_inf_and_nan_upstream_give_zero_where_the_output_is_zero():
    x = [-1.0, 0.0, 2.0, -3.0, 4.0, 5.0]
    gy = [np.inf, np.nan, 1.5, -np.inf, np.nan, -np.inf]
    gx = _grad(x, gy)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 1.5, 0.0, np.nan, -np.inf])


def test_matches_torch_threshold_backward():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    gy[::3, ::2] = np.inf
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor(gy))
    np.testing.assert_array_equal(_grad(x, gy), tx.grad.numpy())


def test_second_derivative_through_the_select_path():
    x = engine.tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True)
    (g,) = engine.grad([(engine.relu(x) ** 2).sum()], [x], create_graph=True)
    g.sum().backward()
    np.testing.assert_array_equal(g.numpy(), [0.0, 1.0, 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 2.0])
