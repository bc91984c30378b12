"""PyTorch's factories and conversions: ``arange``/``linspace`` signatures, the ``*_like``
and ``new_*`` families, ``multinomial``, dtype names, casts, ``to``, ``engine.device`` and
``np.asarray(tensor)``, against torch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import engine

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


def same(ours, theirs):
    assert ours.shape == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("args", [(5,), (2, 7), (1, 2.5, 0.5), (0.0, 1.0, 0.1), (10, 0, -3),
                                  (3.0,), (-2, 2)])
def test_arange(args):
    same(engine.arange(*args), torch.arange(*args))


def test_arange_keywords_and_tensor_bounds():
    same(engine.arange(5, dtype=engine.float64), torch.arange(5, dtype=torch.float64))
    same(engine.arange(engine.tensor(4)), torch.arange(torch.tensor(4)))
    assert engine.arange(3, requires_grad=False).dtype == engine.int64
    with pytest.raises(ValueError, match="arange: step must be nonzero"):
        engine.arange(0, 3, 0)


@pytest.mark.parametrize("args", [(0, 1, 5), (-1.5, 2.0, 7), (3, 3, 1), (0, 1, 0)])
def test_linspace(args):
    same(engine.linspace(*args), torch.linspace(*args))
    same(engine.linspace(*args, dtype=engine.float64),
         torch.linspace(*args, dtype=torch.float64))


def test_like_family():
    x = engine.ones(2, 3, dtype=engine.float64)
    t = torch.ones(2, 3, dtype=torch.float64)
    for name in ("zeros_like", "ones_like"):
        same(getattr(engine, name)(x), getattr(torch, name)(t))
        same(getattr(engine, name)(x, dtype=engine.float32),
             getattr(torch, name)(t, dtype=torch.float32))
    same(engine.full_like(x, 7), torch.full_like(t, 7))
    for name in ("empty_like", "rand_like", "randn_like"):
        ours, theirs = getattr(engine, name)(x), getattr(torch, name)(t)
        assert ours.shape == (2, 3) and ours.dtype == engine.float64 == x.dtype
        assert str(theirs.dtype) == "torch.float64"
    r = engine.rand_like(x, requires_grad=True)
    assert r.requires_grad and r.is_leaf and 0 <= r.numpy().min() and r.numpy().max() < 1
    i = engine.randint_like(x, 10)
    assert i.dtype == engine.float64 and np.all((0 <= i.numpy()) & (i.numpy() < 10))
    j = engine.randint_like(engine.zeros(1000, dtype=engine.long), 3, 5)
    assert j.dtype == engine.int64 and set(np.unique(j.numpy())) == {3, 4}
    assert str(torch.randint_like(torch.zeros(2, dtype=torch.long), 3, 5).dtype) == \
        "torch.int64"


def test_like_family_is_seeded():
    engine.manual_seed(3)
    a = engine.randn_like(engine.zeros(4))
    engine.manual_seed(3)
    np.testing.assert_array_equal(a.numpy(), engine.randn_like(engine.zeros(4)).numpy())


def test_new_family_keeps_dtype_and_device():
    x = engine.zeros(2, dtype=engine.float64)
    t = torch.zeros(2, dtype=torch.float64)
    same(x.new_zeros(2, 3), t.new_zeros(2, 3))
    same(x.new_ones((3,)), t.new_ones((3,)))
    same(x.new_full((2, 2), 5), t.new_full((2, 2), 5))
    same(x.new_tensor([1, 2]), t.new_tensor([1, 2]))
    same(x.new_tensor([1, 2], dtype=engine.int32), t.new_tensor([1, 2], dtype=torch.int32))
    assert x.new_empty(4, 1).shape == (4, 1) and x.new_empty(4, 1).dtype == engine.float64
    y = x.new_zeros(3, requires_grad=True)
    assert y.requires_grad and y.device == x.device


@pytest.mark.parametrize("name,dtype", [("float", "float32"), ("double", "float64"),
                                        ("half", "float16"), ("long", "int64"),
                                        ("int", "int32"), ("bool", "bool")])
def test_casts(name, dtype):
    a = np.array([[0.0, 1.5], [-2.0, 3.0]])
    ours, theirs = getattr(engine.tensor(a), name)(), getattr(torch.tensor(a), name)()
    assert str(ours.dtype) == dtype
    same(ours, theirs)


def test_casts_return_self_when_nothing_changes_and_pass_gradients():
    x = engine.ones(3, requires_grad=True)
    assert x.float() is x and x.to(engine.float32) is x and x.to("cpu") is x
    y = x.double()
    assert y.dtype == engine.float64
    (y * 2).sum().backward()
    assert x.grad.dtype == engine.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    assert x.to(copy=True) is not x


def test_to_forms():
    x = engine.ones(2, dtype=engine.float32)
    other = engine.zeros(1, dtype=engine.float64)
    assert x.to(engine.float64).dtype == np.float64
    assert x.to("float16").dtype == np.float16
    assert x.to(np.int32).dtype == np.int32
    assert x.to("cpu", engine.float64).dtype == np.float64
    assert x.to(engine.device("cpu"), dtype=engine.int64).dtype == np.int64
    assert x.to(device="cpu", dtype=engine.half).dtype == np.float16
    assert x.to(other).dtype == np.float64 and x.type_as(other).dtype == np.float64
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        x.to("tpu")


def test_dtype_names():
    for name in ("float32", "float", "float64", "double", "float16", "half", "int64", "long",
                 "int32", "int", "bool", "uint8", "int16", "int8", "short"):
        ours, theirs = getattr(engine, name), getattr(torch, name)
        assert str(ours) == str(theirs).replace("torch.", ""), name
        assert engine.zeros(1, dtype=ours).dtype == ours
    assert engine.float is engine.float32 and engine.long is engine.int64
    assert engine.tensor([1, 2]).dtype == engine.long
    namespace = {}
    exec("from engine import *", namespace)
    assert "float" not in namespace and "int" not in namespace and "bool" not in namespace


def test_device():
    d = engine.device("cuda:1")
    assert d == "cuda:1" and d.type == "cuda" and d.index == 1
    assert repr(d) == "device(type='cuda', index=1)" == repr(torch.device("cuda:1"))
    assert engine.device("cuda", 0) == "cuda:0" and engine.device("cpu").index is None
    assert repr(engine.device("cpu")) == repr(torch.device("cpu"))
    x = engine.zeros(2)
    assert x.device == "cpu" and x.device == engine.device("cpu")
    assert isinstance(x.device, engine.device) and str(x.device) == "cpu"
    assert f"{x.device}" == "cpu" and {x.device: 1}["cpu"] == 1
    with pytest.raises(ValueError, match="unknown device"):
        engine.device("gpu")


def test_asarray_gives_the_numbers():
    x = engine.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a = np.asarray(x)
    assert a.dtype == np.float32 and a.shape == (2, 2) and a is x.data
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    c = np.array(x, copy=True)
    c[0, 0] = 9.0
    assert x.data[0, 0] == 1.0
    stacked = np.array([engine.tensor([1.0, 2.0]), engine.tensor([3.0, 4.0])])
    assert stacked.dtype == np.float32 and stacked.shape == (2, 2)
    np.testing.assert_array_equal(np.asarray(torch.tensor([1.0, 2.0])),
                                  np.asarray(engine.tensor([1.0, 2.0])))
    with pytest.raises(ValueError, match="needs a copy, but copy=False"):
        np.asarray(x, dtype=np.float64, copy=False)


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial(replacement):
    w = engine.tensor([[1.0, 0.0, 3.0, 6.0], [5.0, 5.0, 0.0, 0.0]])
    engine.manual_seed(0)
    draws = engine.multinomial(w, 2, replacement=replacement)
    assert draws.shape == (2, 2) and draws.dtype == engine.int64
    assert torch.multinomial(torch.tensor(w.numpy()), 2, replacement).shape == (2, 2)
    engine.manual_seed(0)
    np.testing.assert_array_equal(engine.multinomial(w, 2, replacement).numpy(),
                                  draws.numpy())
    assert not np.any(draws.numpy()[0] == 1) and set(draws.numpy()[1]) <= {0, 1}
    if not replacement:
        assert all(len(set(row)) == 2 for row in draws.numpy().tolist())


def test_multinomial_frequencies():
    engine.manual_seed(1)
    p = np.array([0.1, 0.2, 0.7])
    counts = np.bincount(engine.multinomial(engine.tensor(p), 20000, True).numpy(),
                         minlength=3)
    np.testing.assert_allclose(counts / 20000, p, atol=0.015)
    firsts = [int(engine.multinomial(engine.tensor(p * 10), 3).numpy()[0])
              for _ in range(3000)]
    np.testing.assert_allclose(np.bincount(firsts, minlength=3) / 3000, p, atol=0.03)
    g = engine.Generator().manual_seed(5)
    a = engine.multinomial(engine.tensor(p), 5, True, generator=g)
    g.manual_seed(5)
    np.testing.assert_array_equal(a.numpy(), engine.multinomial(
        engine.tensor(p), 5, True, generator=g).numpy())


def test_multinomial_errors():
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement"):
        engine.multinomial(engine.tensor([1.0, 1.0, 0.0]), 3)
    with pytest.raises(ValueError, match="non-negative"):
        engine.multinomial(engine.tensor([1.0, -1.0]), 1)
    with pytest.raises(ValueError, match="shape"):
        engine.multinomial(engine.ones(2, 2, 2), 1)


def test_randint_forms():
    engine.manual_seed(0)
    a = engine.randint(5, (3, 2))
    assert a.shape == (3, 2) and a.dtype == engine.int64 and a.numpy().max() < 5
    b = engine.randint(3, 6, (100,))
    assert b.numpy().min() >= 3 and b.numpy().max() < 6
    assert engine.randint(0, 2, (2,), dtype=engine.int32).dtype == engine.int32
    with pytest.raises(TypeError, match="randint: size is required"):
        engine.randint(5)
