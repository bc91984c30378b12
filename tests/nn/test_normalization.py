"""Layer norm and batch norm against NumPy references, float64 gradchecks, the running
statistics of batch norm in training and evaluation, and their errors."""

import numpy as np
import pytest

import engine
import nn


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def t64(a, grad=True):
    return engine.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ----------------------------------------------------------------------------- LayerNorm
def layer_norm_ref(x, k, w, b, eps):
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y * w + b if w is not None else y


@pytest.mark.parametrize("shape,norm", [((4, 6), 6), ((2, 3, 4), (3, 4))])
def test_layer_norm_matches_numpy(shape, norm):
    m = nn.LayerNorm(norm)
    assert np.all(m.weight.numpy() == 1) and np.all(m.bias.numpy() == 0)
    m.weight.data[...] = rand(*m.weight.shape, seed=1)
    m.bias.data[...] = rand(*m.bias.shape, seed=2)
    x = rand(*shape).astype(np.float32)
    k = 1 if isinstance(norm, int) else len(norm)
    ref = layer_norm_ref(x, k, m.weight.numpy(), m.bias.numpy(), 1e-5)
    np.testing.assert_allclose(m(engine.tensor(x)).numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eps", [1e-5, 1.0])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layer_norm_gradcheck(eps, affine, bias):
    m = nn.LayerNorm((3, 4), eps=eps, elementwise_affine=affine, bias=bias).double()
    if affine:
        m.weight.data[...] = rand(3, 4, seed=3)
    assert engine.gradcheck(m, (t64(rand(2, 3, 4)),))


def test_layer_norm_eps_sits_inside_the_root():
    m = nn.LayerNorm(4, eps=1.0).double()
    x = rand(3, 4)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1.0)
    np.testing.assert_allclose(m(t64(x, grad=False)).numpy(), ref, rtol=1e-12)


# ----------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (4, 3, 5)),
                                       (nn.BatchNorm2d, (3, 3, 4, 2))])
def test_batch_norm_train_and_eval_match_numpy(cls, shape):
    m = cls(3, momentum=0.2)
    m.weight.data[...] = [0.5, 2.0, -1.0]
    m.bias.data[...] = [0.1, 0.0, 0.3]
    axes = (0,) + tuple(range(2, len(shape)))
    cs = (1, 3) + (1,) * (len(shape) - 2)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rand(*shape, seed=step).astype(np.float32) * 2 + 1
        y = m(engine.tensor(x)).numpy()
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        ref = (x - mu.reshape(cs)) / np.sqrt(var.reshape(cs) + 1e-5)
        ref = ref * m.weight.numpy().reshape(cs) + m.bias.numpy().reshape(cs)
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
        n = x.size // 3
        rm = 0.8 * rm + 0.2 * mu
        rv = 0.8 * rv + 0.2 * var * n / (n - 1)
    np.testing.assert_allclose(m.running_mean.numpy(), rm, rtol=1e-5)
    np.testing.assert_allclose(m.running_var.numpy(), rv, rtol=1e-5)
    assert m.num_batches_tracked.item() == 3
    m.eval()
    x = rand(*shape, seed=9).astype(np.float32)
    ref = (x - rm.reshape(cs)) / np.sqrt(rv.reshape(cs) + 1e-5)
    ref = ref * m.weight.numpy().reshape(cs) + m.bias.numpy().reshape(cs)
    np.testing.assert_allclose(m(engine.tensor(x)).numpy(), ref, rtol=1e-4, atol=1e-5)
    assert m.num_batches_tracked.item() == 3      # eval does not count


def test_batch_norm_momentum_none_is_cumulative_average():
    m = nn.BatchNorm1d(2, momentum=None)
    means = []
    for step in range(4):
        x = rand(5, 2, seed=step).astype(np.float32) + step
        means.append(x.mean(axis=0))
        m(engine.tensor(x))
    np.testing.assert_allclose(m.running_mean.numpy(), np.mean(means, axis=0), rtol=1e-5)


def test_batch_norm_without_running_stats_uses_batch_stats_in_eval():
    m = nn.BatchNorm2d(2, track_running_stats=False, affine=False).eval()
    assert list(m.state_dict()) == []
    x = rand(3, 2, 2, 2).astype(np.float32)
    y = m(engine.tensor(x)).numpy()
    ref = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (5, 3)), (nn.BatchNorm1d, (2, 3, 4)),
                                       (nn.BatchNorm2d, (2, 3, 3, 2))])
def test_batch_norm_gradcheck_train_mode(cls, shape, affine):
    m = cls(3, affine=affine).double()
    if affine:
        m.weight.data[...] = rand(3, seed=4)
        m.bias.data[...] = rand(3, seed=5)
    assert engine.gradcheck(m, (t64(rand(*shape)),))


def test_batch_norm_gradcheck_eval_mode():
    m = nn.BatchNorm1d(3).double()
    m(t64(rand(6, 3), grad=False))
    m.eval()
    assert engine.gradcheck(m, (t64(rand(4, 3)),))


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(got 3D input"):
        nn.BatchNorm2d(3)(engine.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="has 4 channels, expected 3"):
        nn.BatchNorm1d(3)(engine.zeros(2, 4))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(engine.zeros(1, 3))
