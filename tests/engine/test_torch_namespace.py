"""What a PyTorch program reaches through ``torch.`` with ``import xpgrad as torch``:
``torch.nn``, ``torch.optim``, ``torch.utils.data``, ``torch.cuda``; and the Tensor's
``type()`` and ``format()`` beside PyTorch's."""

import os
import subprocess
import sys

import numpy as np
import pytest

import data
import engine
import nn
import optim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def test_the_packages_are_reached_through_xpgrad():
    import xpgrad

    assert xpgrad.nn is nn and xpgrad.optim is optim and xpgrad.utils.data is data
    assert xpgrad.nn.init.normal_ is nn.init.normal_
    assert xpgrad.nn.utils.clip_grad_norm_ is nn.utils.clip_grad_norm_
    assert xpgrad.optim.lr_scheduler.StepLR is optim.lr_scheduler.StepLR
    assert xpgrad.utils.data.DataLoader is data.DataLoader
    assert xpgrad.tensor is engine.tensor and xpgrad.Tensor is engine.Tensor
    assert xpgrad.float is engine.float32 and xpgrad.long is engine.int64
    assert set(engine.__all__) <= set(xpgrad.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nnn'"):
        xpgrad.nnn  # noqa: B018


def test_importing_the_engine_imports_none_of_them():
    """nn, optim and data import the engine, never the reverse; xpgrad gathers them all."""
    code = ("import sys, engine; assert not {'nn', 'optim', 'data', 'xpgrad'} & "
            "set(sys.modules); import xpgrad; assert {'nn', 'optim', 'data'} <= "
            "set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


def test_cuda_namespace():
    from xpgrad import cuda

    assert cuda.is_available() == engine.cuda_is_available()
    assert cuda.device_count() >= int(cuda.is_available())
    if not cuda.is_available():
        assert cuda.device_count() == 0
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            cuda.synchronize()
    cuda.synchronize("cpu")


@pytest.mark.parametrize("values, target", [
    ([1, 2, 3], "float32"), ([1.5, -2.0], "int64"), ([1.5, 0.0], "bool"),
    ([0.25, 1.0], "float64"), ([3, 4], "int64"),
])
def test_type_casts_and_names_as_pytorch(values, target):
    x, xt = engine.tensor(values), torch.tensor(values)
    assert x.type() == xt.type().replace("torch.", "engine.")
    y, yt = x.type(getattr(engine, target)), xt.type(getattr(torch, target))
    assert y.type() == yt.type().replace("torch.", "engine.")
    np.testing.assert_array_equal(y.numpy(), yt.numpy())
    assert (y is x) == (yt is xt)
    name = yt.type()
    assert x.type(name).dtype == y.dtype                    # 'torch.FloatTensor'
    assert x.type(name.replace("torch.", "engine.")).dtype == y.dtype


def test_type_passes_the_gradient_and_refuses_an_unknown_name():
    w = engine.tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    w.type(engine.float32).sum().backward()
    assert w.grad.dtype == np.float64 and w.grad.tolist() == [1.0, 1.0]
    for lib in (engine, torch):
        with pytest.raises(ValueError, match="invalid type: 'torch.Foo'|invalid type 'torch"):
            lib.tensor([1]).type("torch.Foo")


@pytest.mark.parametrize("spec", ["", ".4f", "8.2e", "+.3g"])
def test_a_zero_d_tensor_formats_as_its_number(spec):
    for value in (2.718281828, -0.5):
        assert format(engine.tensor(value), spec) == format(torch.tensor(value), spec)
    assert f"{engine.tensor(7):{spec or 'd'}}" == f"{torch.tensor(7):{spec or 'd'}}"


def test_a_tensor_with_axes_takes_only_the_empty_format():
    x = engine.tensor([1.0, 2.0])
    assert f"{x}" == repr(x)
    for lib in (engine, torch):
        with pytest.raises(TypeError, match="unsupported format string"):
            f"{lib.tensor([1.0, 2.0]):.2f}"
