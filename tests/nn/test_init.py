"""nn.init: distributions (bounds and moments), in-place and dtype-keeping fills, seeds; the
layers' default initialization and state_dict keys/shapes compared with PyTorch's."""

import math

import numpy as np
import pytest

import engine
import nn
from nn import init
from nn.module import Parameter


def param(*shape, dtype=np.float32):
    return Parameter(np.zeros(shape, dtype=dtype))


def assert_moments(values, mean, std, rel=0.03):
    v = np.asarray(values, dtype=np.float64).ravel()
    assert abs(v.mean() - mean) < 5 * std / math.sqrt(v.size) + 1e-12
    assert abs(v.std() - std) < rel * std


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fills_are_in_place_and_keep_dtype(dtype):
    p = param(40, 50, dtype=dtype)
    data = p.data
    for fill in (lambda t: init.uniform_(t, -1, 2), lambda t: init.normal_(t, 1, 3),
                 init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_,
                 init.kaiming_normal_, init.orthogonal_, init.trunc_normal_, init.zeros_,
                 init.ones_, lambda t: init.constant_(t, 0.25), init.eye_):
        assert fill(p) is p
        assert p.data is data and p.dtype == dtype and p.shape == (40, 50)
        assert p.requires_grad


def test_uniform_and_normal_moments():
    p = param(300, 400)
    init.uniform_(p, -2.0, 4.0)
    v = p.numpy()
    assert v.min() >= -2.0 and v.max() < 4.0
    assert_moments(v, 1.0, 6.0 / math.sqrt(12))
    init.normal_(p, 0.5, 2.0)
    assert_moments(p.numpy(), 0.5, 2.0)
    init.trunc_normal_(p, 0.0, 1.0, a=-1.0, b=1.5)
    assert p.numpy().min() >= -1.0 and p.numpy().max() <= 1.5


def test_constant_zeros_ones_eye():
    p = param(3, 4)
    assert np.all(init.constant_(p, 0.3).numpy() == np.float32(0.3))
    assert np.all(init.zeros_(p).numpy() == 0)
    assert np.all(init.ones_(p).numpy() == 1)
    np.testing.assert_array_equal(init.eye_(p).numpy(), np.eye(3, 4))
    with pytest.raises(ValueError, match="eye_: only 2-D"):
        init.eye_(param(3))


@pytest.mark.parametrize("shape,fans", [((30, 20), (20, 30)), ((8, 4, 3, 3), (36, 72)),
                                        ((5, 3, 7), (21, 35))])
def test_fans(shape, fans):
    assert init._calculate_fan_in_and_fan_out(param(*shape)) == fans


def test_fans_need_two_axes():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(param(5))


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier(gain):
    p = param(200, 300)
    bound = gain * math.sqrt(6.0 / 500)
    v = init.xavier_uniform_(p, gain).numpy()
    assert np.abs(v).max() <= bound and np.abs(v).max() > 0.99 * bound
    assert_moments(v, 0.0, bound / math.sqrt(3))
    assert_moments(init.xavier_normal_(p, gain).numpy(), 0.0, gain * math.sqrt(2.0 / 500))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.2),
                                            ("leaky_relu", math.sqrt(5)), ("tanh", 0),
                                            ("linear", 0)])
def test_kaiming(mode, nonlinearity, a):
    p = param(128, 32, 3, 3)
    fan = 32 * 9 if mode == "fan_in" else 128 * 9
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    v = init.kaiming_uniform_(p, a, mode, nonlinearity).numpy()
    assert np.abs(v).max() <= math.sqrt(3) * std
    assert_moments(v, 0.0, std)
    assert_moments(init.kaiming_normal_(p, a, mode, nonlinearity).numpy(), 0.0, std)
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        init.kaiming_uniform_(p, mode="fan_avg")


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (4, 2, 3, 3)])
def test_orthogonal(shape):
    p = init.orthogonal_(param(*shape, dtype=np.float64), gain=2.0)
    m = p.numpy().reshape(shape[0], -1)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-12)


def test_calculate_gain_table_and_errors():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == 5.0 / 3
    assert init.calculate_gain("relu") == math.sqrt(2.0)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01 ** 2))
    assert init.calculate_gain("leaky_relu", 0.3) == math.sqrt(2.0 / 1.09)
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "big")


def test_same_seed_same_weights():
    engine.manual_seed(5)
    a = nn.Linear(6, 4).weight.numpy()
    engine.manual_seed(5)
    b = nn.Linear(6, 4).weight.numpy()
    c = nn.Linear(6, 4).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


@pytest.mark.gpu
def test_same_seed_same_weights_on_gpu():
    engine.manual_seed(3)
    cpu = nn.Conv2d(3, 4, 3).weight.numpy()
    engine.manual_seed(3)
    gpu = nn.Conv2d(3, 4, 3, device="cuda").weight
    assert gpu.device == "cuda:0"
    np.testing.assert_array_equal(gpu.numpy(), cpu)


# ----------------------------------------------------------------------------- layer defaults
def test_linear_and_conv_defaults_are_uniform_one_over_sqrt_fan_in():
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for t in (lin.weight, lin.bias):
        v = t.numpy()
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.95 * bound
    assert_moments(lin.weight.numpy(), 0.0, bound / math.sqrt(3))
    conv = nn.Conv2d(32, 64, 3, groups=4)
    bound = 1 / math.sqrt(8 * 9)
    assert np.abs(conv.weight.numpy()).max() <= bound
    assert_moments(conv.weight.numpy(), 0.0, bound / math.sqrt(3))
    assert np.abs(conv.bias.numpy()).max() <= bound


def test_embedding_default_is_standard_normal_with_zero_padding_row():
    emb = nn.Embedding(500, 64, padding_idx=3)
    v = emb.weight.numpy()
    assert np.all(v[3] == 0)
    assert_moments(np.delete(v, 3, axis=0), 0.0, 1.0)


def test_norm_defaults():
    ln = nn.LayerNorm((2, 3))
    assert np.all(ln.weight.numpy() == 1) and np.all(ln.bias.numpy() == 0)
    bn = nn.BatchNorm2d(4)
    assert np.all(bn.weight.numpy() == 1) and np.all(bn.bias.numpy() == 0)
    assert np.all(bn.running_mean.numpy() == 0) and np.all(bn.running_var.numpy() == 1)
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.shape == ()
    bn(engine.randn(3, 4, 2, 2))
    bn.reset_running_stats()
    assert bn.num_batches_tracked.item() == 0 and np.all(bn.running_var.numpy() == 1)


# ----------------------------------------------------------------------------- against PyTorch
@pytest.mark.torch
class TestAgainstTorch:
    @pytest.fixture(autouse=True)
    def _torch(self):
        self.torch = pytest.importorskip("torch")
        self.torch.manual_seed(0)

    def test_gain_and_fans_match(self):
        tinit = self.torch.nn.init
        for name in ("linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
            assert init.calculate_gain(name) == pytest.approx(tinit.calculate_gain(name))
        assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(
            tinit.calculate_gain("leaky_relu", 0.2))
        for shape in [(3, 4), (8, 4, 3, 3), (2, 3, 5)]:
            assert init._calculate_fan_in_and_fan_out(param(*shape)) == \
                tinit._calculate_fan_in_and_fan_out(self.torch.empty(shape))

    @pytest.mark.parametrize("name,kwargs", [
        ("xavier_uniform_", {}), ("xavier_normal_", {"gain": 0.5}),
        ("kaiming_uniform_", {"a": math.sqrt(5)}), ("kaiming_normal_", {"mode": "fan_out"}),
        ("kaiming_uniform_", {"nonlinearity": "relu"}), ("uniform_", {"a": -0.5, "b": 1.0}),
        ("normal_", {"mean": 1.0, "std": 0.2}), ("orthogonal_", {"gain": 1.5}),
    ])
    def test_initializer_statistics_match(self, name, kwargs):
        ours = getattr(init, name)(param(256, 64, 3), **kwargs).numpy().astype(np.float64)
        theirs = getattr(self.torch.nn.init, name)(
            self.torch.empty(256, 64, 3), **kwargs).numpy().astype(np.float64)
        assert abs(ours.std() - theirs.std()) < 0.03 * theirs.std()
        assert abs(ours.mean() - theirs.mean()) < 0.03 * max(theirs.std(), abs(theirs.mean()))
        if "uniform" in name:
            assert abs(np.abs(ours).max() - np.abs(theirs).max()) < 0.01 * np.abs(theirs).max()

    @pytest.mark.parametrize("make", [
        lambda m: m.Linear(300, 200),
        lambda m: m.Conv2d(16, 32, (3, 5), groups=2),
        lambda m: m.Embedding(300, 40, padding_idx=0),
    ], ids=["linear", "conv", "embedding"])
    def test_layer_default_init_statistics_match(self, make):
        ours, theirs = make(nn), make(self.torch.nn)
        uniform = not isinstance(ours, nn.Embedding)
        fan_in = init._calculate_fan_in_and_fan_out(ours.weight)[0]
        for (name, p), (tname, tp) in zip(ours.named_parameters(),
                                          theirs.named_parameters()):
            assert name == tname
            a, b = p.numpy().astype(np.float64), tp.detach().numpy().astype(np.float64)
            assert p.dtype == np.float32 and a.shape == b.shape
            if a.size >= 1000:
                assert abs(a.std() - b.std()) < 0.05 * b.std(), name
            if uniform:   # both U(±1/√fan_in)
                bound = 1 / math.sqrt(fan_in)
                assert np.abs(a).max() <= bound and np.abs(b).max() <= bound
                assert np.abs(a).max() > 0.8 * bound, name

    @pytest.mark.parametrize("make", [
        lambda m: m.Linear(5, 3), lambda m: m.Linear(5, 3, bias=False),
        lambda m: m.Embedding(7, 3, padding_idx=2), lambda m: m.LayerNorm((3, 4)),
        lambda m: m.LayerNorm(4, elementwise_affine=False), lambda m: m.LayerNorm(4, bias=False),
        lambda m: m.BatchNorm1d(6), lambda m: m.BatchNorm2d(6, affine=False),
        lambda m: m.BatchNorm2d(6, track_running_stats=False),
        lambda m: m.Conv2d(4, 6, 3, groups=2), lambda m: m.Conv2d(4, 6, (1, 3), bias=False),
        lambda m: m.Dropout(0.2), lambda m: m.MaxPool2d(2), lambda m: m.AvgPool2d(3),
        lambda m: m.Flatten(), lambda m: m.Identity(), lambda m: m.ReLU(),
        lambda m: m.Sequential(m.Linear(2, 3), m.ReLU(), m.Sequential(m.Linear(3, 1))),
        lambda m: m.ModuleList([m.Conv2d(1, 2, 3), m.BatchNorm2d(2)]),
        lambda m: m.ModuleDict({"x": m.Linear(1, 2), "y": m.LayerNorm(2)}),
    ], ids=lambda f: "layer")
    def test_default_state_dict_keys_shapes_and_dtypes(self, make):
        ours, theirs = make(nn).state_dict(), make(self.torch.nn).state_dict()
        assert list(ours) == list(theirs)
        for k in ours:
            assert tuple(ours[k].shape) == tuple(theirs[k].shape), k
            assert str(ours[k].dtype) == str(theirs[k].dtype).replace("torch.", "").replace(
                "long", "int64"), k
        # ... and the other way round: PyTorch loads our state dict
        tm = make(self.torch.nn)
        tm.load_state_dict({k: self.torch.from_numpy(v.numpy()) for k, v in ours.items()})
