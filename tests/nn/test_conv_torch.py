"""PyTorch parity of Conv2d, MaxPool2d, AvgPool2d and functional.pad: the same weights give
the same outputs and gradients (float64 to 1e-10, float32 to 1e-5 relative), on the Numba
kernels (the default) and on the literal array code (``engine.use_fused(False)``)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("path")]

sys.path.insert(0, str(Path(__file__).parent))
from torch_parity import DTYPES, check  # noqa: E402

CONV_CASES = [
    # in, out, kernel, stride, padding, dilation, groups, bias
    (3, 4, 3, 1, 0, 1, 1, True),
    (3, 4, 3, 2, 1, 1, 1, True),
    (4, 6, (3, 2), (2, 1), (1, 0), 1, 2, False),
    (2, 4, 3, 1, 2, 2, 1, True),
    (4, 8, 3, 2, 1, (2, 1), 4, True),
    (2, 3, 1, 1, 0, 1, 1, True),
    (2, 3, 4, 1, "same", 1, 1, True),
    (2, 3, (3, 4), 1, "same", (2, 1), 1, False),
    (2, 3, 3, 1, "valid", 1, 1, True),
    (3, 5, 5, 3, 2, 1, 1, True),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d(case, dtype):
    cin, cout, k, s, p, d, g, bias = case
    kw = dict(stride=s, padding=p, dilation=d, groups=g, bias=bias)
    check(nn.Conv2d(cin, cout, k, dtype=dtype, **kw), torch.nn.Conv2d(cin, cout, k, **kw),
          lambda rng: [rng.standard_normal((2, cin, 9, 8))], dtype)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes(mode):
    kw = dict(padding=(1, 2), padding_mode=mode)
    check(nn.Conv2d(2, 3, 3, dtype=np.float64, **kw), torch.nn.Conv2d(2, 3, 3, **kw),
          lambda rng: [rng.standard_normal((2, 2, 6, 5))], np.float64)


def test_conv2d_unbatched():
    check(nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64), torch.nn.Conv2d(2, 3, 3, padding=1),
          lambda rng: [rng.standard_normal((2, 5, 5))], np.float64)


POOL_CASES = [
    # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 2, False), (2, 2, 0, 1, True),
    (3, 2, 1, 1, True), ((3, 2), (2, 1), (1, 1), 1, True), ((2, 3), 2, 0, (2, 1), False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool2d(case, dtype):
    k, s, p, d, c = case
    ours = nn.MaxPool2d(k, s, p, d, ceil_mode=c)
    theirs = torch.nn.MaxPool2d(k, s, p, d, ceil_mode=c)
    check(ours, theirs, lambda rng: [rng.standard_normal((2, 3, 9, 8))], dtype)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool2d_indices(case):
    k, s, p, d, c = case
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8))
    _, idx = nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=c)(engine.tensor(x))
    _, ref = torch.nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=c)(
        torch.tensor(x))
    np.testing.assert_array_equal(idx.numpy(), ref.numpy())


def test_max_pool2d_ties_and_plateaus_route_like_torch():
    x = np.zeros((1, 2, 6, 6))
    x[0, 1, ::2, ::2] = 1.0
    check(nn.MaxPool2d(3, 1, 1), torch.nn.MaxPool2d(3, 1, 1), lambda rng: [x], np.float64)


def test_max_pool2d_nan_ties_and_all_minus_infinity_windows(path):
    x = np.zeros((1, 2, 5, 6))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0
    x[0, 0, 0, 2], x[0, 0, 1, 3] = np.nan, np.nan
    x[0, 1] = -np.inf
    x[0, 1, 4, 5] = 2.0
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)):
        y, idx = nn.MaxPool2d(**kw, return_indices=True)(engine.tensor(x))
        yt, it = torch.nn.MaxPool2d(**kw, return_indices=True)(torch.tensor(x))
        np.testing.assert_array_equal(y.numpy(), yt.numpy())
        if path == "fused":   # the literal code keeps a padding tap for an all -inf window
            np.testing.assert_array_equal(idx.numpy(), it.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", [c for c in POOL_CASES if c[3] == 1], ids=str)
def test_avg_pool2d(case, count_include_pad, dtype):
    k, s, p, _, c = case
    kw = dict(ceil_mode=c, count_include_pad=count_include_pad)
    check(nn.AvgPool2d(k, s, p, **kw), torch.nn.AvgPool2d(k, s, p, **kw),
          lambda rng: [rng.standard_normal((2, 3, 9, 8))], dtype)


def test_avg_pool2d_divisor_override():
    check(nn.AvgPool2d(3, 2, 1, divisor_override=5), torch.nn.AvgPool2d(3, 2, 1,
                                                                      divisor_override=5),
          lambda rng: [rng.standard_normal((2, 3, 7, 7))], np.float64)


class Pad(nn.Module):
    def __init__(self, pad, mode, value=None):
        super().__init__()
        self.args = (pad, mode, value)

    def forward(self, x):
        return nn.functional.pad(x, *self.args)


class TorchPad(torch.nn.Module):
    def __init__(self, pad, mode, value=None):
        super().__init__()
        self.args = (pad, mode, value)

    def forward(self, x):
        return torch.nn.functional.pad(x, *self.args)


@pytest.mark.parametrize("pad,mode,value,shape", [
    ((1, 2), "constant", None, (2, 3, 4)),
    ((1, 2, 0, 3), "constant", 1.5, (2, 3, 4)),
    ((1, 1, 2, 0, 1, 1), "constant", -2.0, (2, 3, 4)),
    ((-1, 2, 1, -1), "constant", None, (2, 3, 4)),
    ((2, 1, 1, 2), "reflect", None, (2, 3, 4, 5)),
    ((2, 3, 1, 0), "replicate", None, (2, 3, 4, 5)),
    ((1, 3, 2, 2), "circular", None, (2, 3, 4, 5)),
    ((3, 1), "reflect", None, (2, 3, 5)),
])
def test_pad(pad, mode, value, shape):
    check(Pad(pad, mode, value), TorchPad(pad, mode, value),
          lambda rng: [rng.standard_normal(shape)], np.float64)
