"""PyTorch parity of the non-convolutional layers: the same weights (PyTorch's state_dict
loaded as arrays) give the same outputs, input gradients, parameter gradients and buffers."""

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

sys.path.insert(0, str(Path(__file__).parent))
from torch_parity import DTYPES, assert_close, check, load_from_torch, randomize  # noqa: E402


def normal(*shape):
    return lambda rng: [rng.standard_normal(shape)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 5), (5,)])
def test_linear(shape, bias, dtype):
    check(nn.Linear(5, 4, bias=bias, dtype=dtype), torch.nn.Linear(5, 4, bias=bias),
          normal(*shape), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{}, {"padding_idx": 1}, {"padding_idx": -2},
                                    {"scale_grad_by_freq": True, "padding_idx": 0}])
def test_embedding(kwargs, dtype):
    idx = np.array([[1, 3, 1, 0], [8, 3, 3, 1]])
    check(nn.Embedding(10, 4, dtype=dtype, **kwargs), torch.nn.Embedding(10, 4, **kwargs),
          lambda rng: [idx], dtype)


def test_embedding_max_norm_renormalizes_like_torch():
    idx = np.array([[1, 3, 1], [2, 3, 0]])
    ours = nn.Embedding(5, 4, max_norm=1.5, dtype=np.float64)
    theirs = torch.nn.Embedding(5, 4, max_norm=1.5).double()
    check(ours, theirs, lambda rng: [idx], np.float64)
    assert_close(ours.weight, theirs.weight, np.float64, "renormalized weight")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("args,kwargs,shape", [
    ((6,), {}, (4, 6)),
    (((3, 4),), {}, (2, 3, 4)),
    ((4,), {"eps": 1.0}, (2, 3, 4)),
    ((4,), {"bias": False}, (3, 4)),
    (((3, 4),), {"elementwise_affine": False}, (2, 3, 4)),
])
def test_layer_norm(args, kwargs, shape, dtype):
    check(nn.LayerNorm(*args, dtype=dtype, **kwargs),
          randomize(torch.nn.LayerNorm(*args, **kwargs)), normal(*shape), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"momentum": 0.3},
                                    {"affine": False}, {"track_running_stats": False},
                                    {"eps": 0.5}])
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                       ("BatchNorm2d", (3, 3, 4, 5))])
def test_batch_norm_train_then_eval(cls, shape, kwargs, dtype):
    ours = getattr(nn, cls)(3, dtype=dtype, **kwargs)
    theirs = randomize(getattr(torch.nn, cls)(3, **kwargs))
    shifted = lambda rng: [rng.standard_normal(shape) * 3 + 2]
    check(ours, theirs, shifted, dtype, steps=4)
    if kwargs.get("track_running_stats", True):
        assert int(ours.num_batches_tracked.item()) == 4
    ours.eval()
    theirs.eval()
    check(ours, theirs, shifted, dtype, steps=2, seed=1)


ACTIVATIONS = [
    ("ReLU", (), {}), ("GELU", (), {}), ("GELU", (), {"approximate": "tanh"}),
    ("Tanh", (), {}), ("Sigmoid", (), {}), ("LeakyReLU", (0.2,), {}),
    ("LeakyReLU", (), {}), ("Softmax", (), {"dim": 1}), ("Softmax", (), {"dim": -1}),
    ("LogSoftmax", (), {"dim": 0}), ("LogSoftmax", (), {"dim": 2}), ("Identity", (), {}),
    ("Flatten", (), {}), ("Flatten", (0, 1), {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,args,kwargs", ACTIVATIONS, ids=str)
def test_activation_and_shape_layers(name, args, kwargs, dtype):
    inputs = lambda rng: [rng.standard_normal((3, 4, 5)) * 3]
    check(getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs),
          inputs, dtype)


def test_softmax_implicit_dim_follows_torch():
    for shape in [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)]:
        x = np.random.default_rng(0).standard_normal(shape)
        with pytest.warns(UserWarning, match="Implicit dimension"):
            ours = nn.Softmax()(engine.tensor(x))
        with pytest.warns(UserWarning):
            ref = torch.nn.Softmax()(torch.tensor(x))
        assert_close(ours, ref, np.float64, str(shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_in_eval_is_identity_like_torch(dtype):
    check(nn.Dropout(0.5).eval(), torch.nn.Dropout(0.5).eval(), normal(4, 5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_equals_torch_sequential(dtype):
    theirs = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Dropout(0.0),
        torch.nn.Linear(8, 6), torch.nn.GELU(), torch.nn.Dropout(0.0),
        torch.nn.Linear(6, 3))
    check(nn.MLP([4, 8, 6, 3], activation="gelu", dtype=dtype), theirs, normal(5, 4), dtype)


def test_nested_model_state_dict_round_trip_with_torch():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(7, 4)
            self.norm = nn.LayerNorm(4)
            self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm1d(4))
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(7, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(),
                                            torch.nn.BatchNorm1d(4))
            self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 2),
                                              "b": torch.nn.Linear(4, 1)})

    ours, theirs = Ours(), Theirs()
    sd_o, sd_t = ours.state_dict(), theirs.state_dict()
    assert list(sd_o) == list(sd_t)
    assert [tuple(v.shape) for v in sd_o.values()] == [tuple(v.shape) for v in sd_t.values()]
    load_from_torch(ours, theirs)
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in sd_o.items()})
