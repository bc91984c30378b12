"""nn.functional: values against NumPy, argument handling and errors, gradients of first
and second order, and a few PyTorch parity checks of functional-only options."""

import numpy as np
import pytest

import engine
import nn
import nn.functional as F


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def t64(a, grad=True):
    return engine.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_exports():
    for name in ["linear", "relu", "gelu", "tanh", "sigmoid", "leaky_relu", "softmax",
                 "log_softmax", "dropout", "embedding", "layer_norm", "batch_norm",
                 "conv2d", "max_pool2d", "avg_pool2d", "flatten", "pad"]:
        assert callable(getattr(F, name)), name
    assert nn.functional is F


# ----------------------------------------------------------------------------- linear
def test_linear_values_and_gradients():
    x, W, b = rand(2, 3, 4), rand(5, 4, seed=1), rand(5, seed=2)
    y = F.linear(t64(x, False), t64(W, False), t64(b, False))
    np.testing.assert_allclose(y.numpy(), x @ W.T + b, rtol=1e-12)
    np.testing.assert_allclose(F.linear(t64(x, False), t64(W, False)).numpy(), x @ W.T,
                               rtol=1e-12)
    assert engine.gradcheck(F.linear, (t64(x), t64(W), t64(b)))
    assert engine.gradgradcheck(F.linear, (t64(x), t64(W), t64(b)))


def test_linear_argument_errors():
    x = engine.zeros(2, 4)
    with pytest.raises(ValueError, match=r"linear: weight must be 2-D \(out, in\), got "
                                         r"shape \(4,\)"):
        F.linear(x, engine.zeros(4))
    with pytest.raises(ValueError, match=r"linear: bias \(3,\) does not fit weight \(5, 4\)"):
        F.linear(x, engine.zeros(5, 4), engine.zeros(3))


# ----------------------------------------------------------------------------- activations
def test_activation_functions():
    x = rand(3, 4)
    xt = t64(x, False)
    np.testing.assert_allclose(F.relu(xt).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(F.tanh(xt).numpy(), np.tanh(x), rtol=1e-12)
    np.testing.assert_allclose(F.sigmoid(xt).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(F.leaky_relu(xt, 0.3).numpy(), np.where(x > 0, x, 0.3 * x))
    np.testing.assert_allclose(F.leaky_relu(xt).numpy(), np.where(x > 0, x, 0.01 * x))
    tanh_gelu = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(xt, approximate="tanh").numpy(), tanh_gelu, rtol=1e-12)
    with pytest.raises(ValueError, match="gelu: approximate must be"):
        F.gelu(xt, approximate="erf")


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_along_dim(dim):
    x = rand(3, 4) * 5
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    ref = e / e.sum(axis=dim, keepdims=True)
    np.testing.assert_allclose(F.softmax(t64(x, False), dim).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(t64(x, False), dim=dim).numpy(), np.log(ref),
                               rtol=1e-12)
    assert engine.gradcheck(lambda t: F.softmax(t, dim), (t64(x),))
    assert engine.gradcheck(lambda t: F.log_softmax(t, dim), (t64(x),))


def test_softmax_without_dim_warns_and_uses_the_legacy_rule():
    x = t64(rand(2, 3, 4), False)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = F.softmax(x)
    np.testing.assert_allclose(y.numpy().sum(axis=0), 1.0)
    with pytest.warns(UserWarning, match="log_softmax"):
        y = F.log_softmax(t64(rand(2, 3), False))
    np.testing.assert_allclose(np.exp(y.numpy()).sum(axis=1), 1.0)


# ----------------------------------------------------------------------------- dropout
def test_dropout_functional():
    x = engine.randn(100, 100)
    assert F.dropout(x, 0.5, training=False) is x
    engine.manual_seed(11)
    a = F.dropout(x, 0.5).numpy()
    engine.manual_seed(11)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    assert set(np.unique(np.round(a / x.numpy(), 5))) <= {0.0, 2.0}
    with pytest.raises(ValueError, match="between 0 and 1, but got -0.1"):
        F.dropout(x, -0.1)


# ----------------------------------------------------------------------------- embedding
def test_embedding_functional_and_scale_grad_by_freq():
    W = t64(rand(5, 3))
    idx = engine.tensor([[0, 2, 2], [4, 2, 0]])
    y = F.embedding(idx, W)
    np.testing.assert_array_equal(y.numpy(), W.numpy()[idx.numpy()])
    gy = rand(2, 3, 3, seed=3)
    F.embedding(idx, W, scale_grad_by_freq=True).backward(engine.tensor(gy))
    counts = np.bincount(idx.numpy().ravel(), minlength=5)
    ref = np.zeros((5, 3))
    np.add.at(ref, idx.numpy(), gy / counts[idx.numpy()][..., None])
    np.testing.assert_allclose(W.grad.numpy(), ref, rtol=1e-12)


def test_embedding_max_norm_renormalizes_looked_up_rows_in_place():
    table = rand(4, 3) * 3
    W = t64(table)
    F.embedding(engine.tensor([1, 1, 3]), W, max_norm=1.0)
    norms = np.linalg.norm(W.numpy(), axis=1)
    assert np.all(norms[[1, 3]] <= 1.0 + 1e-6)
    np.testing.assert_array_equal(W.numpy()[[0, 2]], table[[0, 2]])   # untouched rows


def test_embedding_second_order():
    W = t64(rand(5, 3))
    idx = engine.tensor([[0, 2, 2], [4, 2, 0]])
    assert engine.gradgradcheck(lambda w: F.embedding(idx, w) ** 2, (W,))


# ----------------------------------------------------------------------------- layer norm
def test_layer_norm_functional():
    x = rand(2, 3, 4)
    w, b = rand(4, seed=1), rand(4, seed=2)
    y = F.layer_norm(t64(x, False), 4, t64(w, False), t64(b, False), eps=1e-5)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10)
    assert engine.gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
                            (t64(x), t64(rand(3, 4)), t64(rand(3, 4, seed=5))))
    with pytest.raises(ValueError, match="layer_norm"):
        F.layer_norm(t64(x, False), (5,))


# ----------------------------------------------------------------------------- batch norm
def test_batch_norm_functional_training_updates_running_stats():
    x = rand(6, 3) * 2 + 1
    rm, rv = engine.zeros(3, dtype=np.float64), engine.ones(3, dtype=np.float64)
    y = F.batch_norm(t64(x, False), rm, rv, training=True, momentum=0.5)
    np.testing.assert_allclose(y.numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5),
                               rtol=1e-10)
    np.testing.assert_allclose(rm.numpy(), 0.5 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.5 + 0.5 * x.var(0, ddof=1), rtol=1e-12)
    y = F.batch_norm(t64(x, False), rm, rv, training=False)
    np.testing.assert_allclose(y.numpy(), (x - rm.numpy()) / np.sqrt(rv.numpy() + 1e-5),
                               rtol=1e-10)


def test_batch_norm_functional_gradients_with_partial_affine():
    x = t64(rand(4, 3, 2))
    b = t64(rand(3, seed=1))
    fn = lambda x, b: F.batch_norm(x, None, None, None, b, training=True)
    assert engine.gradcheck(fn, (x, b))
    fn = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=0.1)
    args = (x, t64(rand(3, seed=2)), b)
    assert engine.gradcheck(fn, args)
    assert engine.gradgradcheck(fn, args)


def test_batch_norm_functional_errors():
    with pytest.raises(ValueError, match="running_mean and running_var are needed"):
        F.batch_norm(engine.zeros(4, 3), None, None, training=False)
    with pytest.raises(ValueError, match=r"weight of shape \(4,\) does not fit the 3 "
                                         r"channels"):
        F.batch_norm(engine.zeros(4, 3), None, None, engine.ones(4), training=True)
    with pytest.raises(ValueError, match="expected an input of shape"):
        F.batch_norm(engine.zeros(4), None, None, training=True)


# ----------------------------------------------------------------------------- shapes
def test_flatten():
    x = engine.zeros(2, 3, 4, 5)
    assert F.flatten(x).shape == (120,)
    assert F.flatten(x, 1).shape == (2, 60)
    assert F.flatten(x, 1, 2).shape == (2, 12, 5)


def test_pad_ordering_is_last_axis_first():
    x = rand(2, 3, 4)
    y = F.pad(t64(x, False), (1, 2, 3, 0), value=7.0)
    ref = np.pad(x, ((0, 0), (3, 0), (1, 2)), constant_values=7.0)
    np.testing.assert_array_equal(y.numpy(), ref)
    y = F.pad(t64(x, False), (0, 0, -1, 1))
    np.testing.assert_array_equal(y.numpy(), np.pad(x[:, 1:], ((0, 0), (0, 1), (0, 0))))


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                          ("circular", "wrap")])
def test_pad_modes_values_and_gradients(mode, np_mode):
    x = rand(2, 3, 4)
    y = F.pad(t64(x, False), (2, 1, 1, 2), mode=mode)
    np.testing.assert_array_equal(y.numpy(), np.pad(x, ((0, 0), (1, 2), (2, 1)), np_mode))
    assert engine.gradcheck(lambda t: F.pad(t, (2, 1, 1, 2), mode=mode), (t64(x),))


def test_pad_errors():
    x = engine.zeros(2, 3)
    with pytest.raises(ValueError, match="padding length 3 must be even"):
        F.pad(x, (1, 1, 1))
    with pytest.raises(ValueError, match="pad: mode must be"):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="reflect padding \\(3, 0\\) must be smaller than"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="value is only used with mode='constant'"):
        F.pad(x, (1, 0), mode="replicate", value=2.0)


def test_functional_conv_and_pools_equal_the_layers():
    m = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    x = engine.randn(2, 2, 7, 7)
    np.testing.assert_array_equal(F.conv2d(x, m.weight, m.bias, 2, 1).numpy(), m(x).numpy())
    np.testing.assert_array_equal(F.max_pool2d(x, 2).numpy(), nn.MaxPool2d(2)(x).numpy())
    np.testing.assert_array_equal(F.avg_pool2d(x, 3, 1, 1).numpy(),
                                  nn.AvgPool2d(3, 1, 1)(x).numpy())


# ----------------------------------------------------------------------------- vs PyTorch
@pytest.mark.torch
def test_batch_norm_functional_matches_torch():
    torch = pytest.importorskip("torch")
    x = rand(5, 3, 4)
    rm, rv = engine.zeros(3, dtype=np.float64), engine.ones(3, dtype=np.float64)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    b = rand(3, seed=1)
    for _ in range(3):
        y = F.batch_norm(t64(x, False), rm, rv, None, t64(b, False), True, 0.3, 1e-3)
        ref = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, None,
                                             torch.tensor(b), True, 0.3, 1e-3)
        np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)
        x = x * 1.5 + 0.5
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-12)


@pytest.mark.torch
def test_softmax_gelu_leaky_relu_match_torch_in_float32():
    torch = pytest.importorskip("torch")
    x = (rand(4, 6) * 4).astype(np.float32)
    tx = torch.tensor(x)
    tf = torch.nn.functional
    pairs = [(F.softmax(engine.tensor(x), 0), tf.softmax(tx, 0)),
             (F.log_softmax(engine.tensor(x), 1), tf.log_softmax(tx, 1)),
             (F.gelu(engine.tensor(x)), tf.gelu(tx)),
             (F.leaky_relu(engine.tensor(x), 0.1), tf.leaky_relu(tx, 0.1))]
    for ours, ref in pairs:
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
