"""Layers against NumPy references, whole-module float64 gradchecks, dropout statistics,
the containers, and the same numbers on every device."""

from collections import OrderedDict

import numpy as np
import pytest

import engine
import nn
from engine import Tensor
from engine import random as engine_random


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def t64(a, grad=True):
    return engine.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ----------------------------------------------------------------------------- Linear
def test_linear_matches_numpy_for_any_leading_axes():
    m = nn.Linear(4, 3)
    W, b = m.weight.numpy(), m.bias.numpy()
    for shape in [(4,), (5, 4), (2, 5, 4)]:
        x = rand(*shape).astype(np.float32)
        y = m(engine.tensor(x))
        assert y.shape == shape[:-1] + (3,) and y.dtype == np.float32
        np.testing.assert_allclose(y.numpy(), x @ W.T + b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_linear_gradcheck(shape, bias):
    m = nn.Linear(4, 3, bias=bias).double()
    assert engine.gradcheck(m, (t64(rand(*shape)),))


def test_linear_errors_name_shapes_and_dtypes():
    m = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"linear: input \(2, 5\) does not fit weight "
                                         r"\(3, 4\)"):
        m(engine.zeros(2, 5))
    with pytest.raises(TypeError, match="linear: expected one floating dtype, got input "
                                        "float64, weight float32"):
        m(engine.zeros(2, 4, dtype=np.float64))


def test_identity_and_flatten():
    x = engine.randn(2, 3, 4, 5)
    assert nn.Identity(7, key="ignored")(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Flatten(start_dim=2)(x).shape == (2, 3, 20)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), x.numpy().reshape(2, 60))


# ----------------------------------------------------------------------------- Embedding
def test_embedding_lookup_and_padding_row():
    emb = nn.Embedding(10, 4, padding_idx=2)
    assert np.all(emb.weight.numpy()[2] == 0)
    idx = np.array([[1, 2, 1], [9, 2, 0]])
    y = emb(engine.tensor(idx))
    assert y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y.numpy(), emb.weight.numpy()[idx])
    gy = rand(2, 3, 4).astype(np.float32)
    y.backward(engine.tensor(gy))
    ref = np.zeros((10, 4), dtype=np.float32)
    np.add.at(ref, idx, gy)
    ref[2] = 0                                    # the padding row gets no gradient
    np.testing.assert_allclose(emb.weight.grad.numpy(), ref, rtol=1e-6)


def test_embedding_negative_padding_idx_and_errors():
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4
    with pytest.raises(ValueError, match="padding_idx 5 must be within num_embeddings 5"):
        nn.Embedding(5, 2, padding_idx=5)
    emb = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"embedding: index out of range: indices span "
                                         r"\[0, 5\] for a table of 5 rows"):
        emb(engine.tensor([0, 5]))
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        emb(engine.tensor([0.0, 1.0]))


def test_embedding_gradcheck_with_repeated_indices():
    idx = engine.tensor([[1, 3, 1, 0], [3, 3, 5, 0]])
    assert engine.gradcheck(nn.Embedding(6, 3).double(), (idx,))
    # padding_idx deliberately departs from the true gradient: its row gets none
    padded = nn.Embedding(6, 3, padding_idx=0).double()
    assert engine.gradcheck(padded, (engine.tensor([[1, 3, 1], [3, 3, 5]]),))
    padded(idx).backward(engine.tensor(rand(2, 4, 3)))
    assert np.all(padded.weight.grad.numpy()[0] == 0)
    assert np.all(padded.weight.grad.numpy()[[1, 3, 5]] != 0)


def test_embedding_from_pretrained_is_frozen_copy():
    table = rand(4, 2)
    emb = nn.Embedding.from_pretrained(engine.tensor(table))
    assert not emb.weight.requires_grad
    np.testing.assert_array_equal(emb.weight.numpy(), table)
    table[0] = 9
    assert emb.weight.numpy()[0, 0] != 9
    assert nn.Embedding.from_pretrained(engine.tensor(table), freeze=False).weight.requires_grad


# ----------------------------------------------------------------------------- Dropout
def test_dropout_is_identity_in_eval_and_for_p0():
    x = engine.randn(4, 5)
    d = nn.Dropout(0.4).eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x


def test_dropout_same_seed_same_mask():
    x = engine.ones(50, 40)
    d = nn.Dropout(0.3)
    engine.manual_seed(7)
    a = d(x).numpy()
    engine.manual_seed(7)
    b = d(x).numpy()
    c = d(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_expectation_and_scales_survivors(p, dtype):
    x = engine.ones(400, 500, dtype=dtype)
    y = nn.Dropout(p)(x).numpy()
    assert y.dtype == dtype
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - p), rtol=1e-6)
    n = y.size
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)


def test_dropout_gradient_is_the_mask():
    x = engine.randn(30, 20, requires_grad=True)
    y = nn.Dropout(0.25)(x)
    y.backward(engine.ones(30, 20))
    mask = y.numpy() / x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_and_attention_dropout_draw_one_mask(dtype):
    """nn.Dropout and the attention's dropout multiply by engine.random.dropout_mask: the
    same seed drops the same elements whatever the dtype."""
    engine.manual_seed(3)
    y = nn.Dropout(0.4)(engine.ones(2, 3, 4, 4, dtype=dtype)).numpy()
    engine.manual_seed(3)
    mask = engine_random.dropout_mask((2, 3, 4, 4), 0.4, dtype, "cpu")
    np.testing.assert_array_equal(y, mask)
    assert mask.dtype == dtype
    eye = engine.tensor(np.broadcast_to(np.eye(4), (2, 3, 4, 4)), dtype=dtype)
    _, p = engine.scaled_dot_product_attention(eye, eye, eye, need_weights=True)
    engine.manual_seed(3)
    out = engine.scaled_dot_product_attention(eye, eye, eye, dropout_p=0.4)   # (P ⊙ D) I
    np.testing.assert_allclose(out.numpy(), p.numpy() * mask, rtol=1e-6)


def test_dropout_p1_and_invalid_p():
    assert np.all(nn.Dropout(1.0)(engine.randn(3, 3)).numpy() == 0)
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


# ----------------------------------------------------------------------------- activations
ACTS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Tanh(), np.tanh),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.GELU(approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    (nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    (nn.LogSoftmax(dim=0), lambda x: x - np.log(np.exp(x).sum(0, keepdims=True))),
]


@pytest.mark.parametrize("layer,ref", ACTS, ids=lambda v: type(v).__name__)
def test_activations_match_numpy_and_gradcheck(layer, ref):
    x = rand(4, 5) + 0.05          # away from the ReLU kink at 0 for finite differences
    np.testing.assert_allclose(layer(t64(x, grad=False)).numpy(), ref(x), rtol=1e-10)
    assert engine.gradcheck(layer, (t64(x),))
    assert layer(engine.tensor(x.astype(np.float32))).dtype == np.float32


def test_gelu_exact_and_bad_approximate():
    from math import erf

    x = rand(7)
    ref = np.array([0.5 * v * (1 + erf(v / np.sqrt(2))) for v in x])
    np.testing.assert_allclose(nn.GELU()(t64(x, grad=False)).numpy(), ref, rtol=1e-10)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        nn.GELU("fast")


# ----------------------------------------------------------------------------- containers
def test_sequential_indexing_len_append_and_slices():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b
    seq.append(c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub.state_dict()) == ["2.weight", "2.bias"]
    x = engine.randn(4, 2)
    np.testing.assert_allclose(seq(x).numpy(), c(b(a(x))).numpy())
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        seq[3]
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    del seq[0]
    assert len(seq) == 2
    seq.insert(0, a)
    assert seq[0] is a and list(seq.state_dict())[:2] == ["0.weight", "0.bias"]


def test_sequential_from_ordered_dict_uses_names():
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert isinstance(seq[1], nn.ReLU)


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh()])
    ml += [nn.Sigmoid()]
    assert [type(m).__name__ for m in ml][3:] == ["ReLU", "Tanh", "Sigmoid"]
    assert isinstance(ml[-1], nn.Sigmoid) and len(ml[1:3]) == 2
    del ml[0]
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ml.insert(0, nn.Identity())
    assert isinstance(ml[0], nn.Identity) and len(ml) == 6
    with pytest.raises(TypeError, match="ModuleList has no forward"):
        ml(engine.zeros(1))


def test_module_dict():
    md = nn.ModuleDict({"enc": nn.Linear(2, 3), "act": nn.ReLU()})
    md["dec"] = nn.Linear(3, 2)
    assert list(md) == ["enc", "act", "dec"] and "act" in md and len(md) == 3
    assert list(md.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert isinstance(md.pop("act"), nn.ReLU) and "act" not in md
    assert [k for k, _ in md.items()] == ["enc", "dec"]
    with pytest.raises(KeyError, match="ModuleDict has no key 'nope'"):
        md["nope"]


def test_mlp_layout_and_forward():
    mlp = nn.MLP([4, 8, 6, 2], activation="tanh", dropout=0.2)
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    assert list(mlp.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias",
                                      "6.weight", "6.bias"]
    mlp.eval()
    x = engine.randn(5, 4)
    h = np.tanh(x.numpy() @ mlp[0].weight.numpy().T + mlp[0].bias.numpy())
    h = np.tanh(h @ mlp[3].weight.numpy().T + mlp[3].bias.numpy())
    ref = h @ mlp[6].weight.numpy().T + mlp[6].bias.numpy()
    np.testing.assert_allclose(mlp(x).numpy(), ref, rtol=1e-5, atol=1e-6)
    assert isinstance(nn.MLP([2, 2], activation=nn.GELU), nn.Sequential)
    assert isinstance(nn.MLP([2, 3, 2], activation=nn.GELU)[1], nn.GELU)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nn.MLP([2, 2, 2], activation="swish")
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.MLP([3])


def test_mlp_gradcheck():
    mlp = nn.MLP([3, 5, 2], activation="gelu").double()
    assert engine.gradcheck(mlp, (t64(rand(4, 3)),))


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(3, 2), lambda: nn.LayerNorm(3), lambda: nn.BatchNorm1d(3),
    lambda: nn.Conv2d(3, 2, 3), lambda: nn.Embedding(4, 3)], ids=["linear", "ln", "bn",
                                                               "conv", "emb"])
def test_layers_create_parameters_in_the_requested_dtype(make):
    engine.set_default_dtype(np.float64)
    assert all(p.dtype == np.float64 for p in make().parameters())
    engine.set_default_dtype(np.float32)
    assert all(p.dtype == np.float32 for p in make().parameters())


def test_layers_accept_dtype_argument():
    m = nn.Linear(2, 2, dtype=np.float64)
    assert m.weight.dtype == np.float64
    assert nn.Conv2d(1, 1, 1, dtype="float64").bias.dtype == np.float64
    assert isinstance(m.weight, Tensor)


# ----------------------------------------------------------------------------- devices
def backend_name(dev):
    return "cpu" if dev == "cpu" else "cuda:0"


DEVICE_CASES = [
    (lambda: nn.Linear(6, 4), (3, 6)),
    (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 7, 7)),
    (lambda: nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2, ceil_mode=True)),
     (2, 3, 9, 9)),
    (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    (lambda: nn.LayerNorm(6), (3, 6)),
    (lambda: nn.MLP([6, 5, 2], activation="gelu"), (4, 6)),
]


@pytest.mark.parametrize("make,shape", DEVICE_CASES, ids=["linear", "conv", "pools", "bn",
                                                          "ln", "mlp"])
def test_layers_give_the_same_numbers_on_every_device(device, make, shape):
    engine.manual_seed(2)
    ref = make().double()
    engine.manual_seed(2)
    m = make().double().to(device)
    x = rand(*shape)
    gy = None
    outs = []
    for mod, dev in ((ref, "cpu"), (m, device)):
        xt = engine.tensor(x, requires_grad=True, device=dev)
        y = mod(xt)
        assert y.device == backend_name(dev)
        gy = rand(*y.shape, seed=1) if gy is None else gy
        y.backward(engine.tensor(gy, device=dev))
        outs.append((y.numpy(), xt.grad.numpy(), [p.grad.numpy() for p in mod.parameters()]))
    (y0, gx0, gp0), (y1, gx1, gp1) = outs
    np.testing.assert_allclose(y1, y0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx1, gx0, rtol=1e-10, atol=1e-12)
    for a, b in zip(gp1, gp0):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(m.buffers(), ref.buffers()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10)


def test_embedding_and_dropout_on_device(device):
    engine.manual_seed(4)
    emb = nn.Embedding(7, 3, padding_idx=1).to(device)
    idx = engine.tensor([[1, 2, 2], [6, 1, 0]], device=device)
    y = emb(idx)
    assert y.device == backend_name(device)
    y.backward(engine.ones(2, 3, 3, device=device))
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], [1, 0, 2, 0, 0, 0, 1])
    engine.manual_seed(9)
    a = nn.Dropout(0.5)(engine.ones(20, 20, device=device)).numpy()
    engine.manual_seed(9)
    b = nn.Dropout(0.5)(engine.ones(20, 20)).numpy()
    np.testing.assert_array_equal(a, b)           # the same mask on every device
