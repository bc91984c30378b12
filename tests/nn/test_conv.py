"""Conv2d, MaxPool2d and AvgPool2d against direct-loop NumPy references; whole-module
float64 gradchecks (first and second order); shapes, padding rules and errors."""

import time

import numpy as np
import pytest

import engine
import nn
import nn.functional as F


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def t64(a, grad=True):
    return engine.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def conv_ref(x, W, b, stride, pads, dilation, groups):
    """Direct loops: y[n, o, i, j] = b[o] + Σ W[o, c, a, b'] xpad[n, g·C/g + c, i s + a d, ...]"""
    (sh, sw), (dh, dw) = stride, dilation
    top, bottom, left, right = pads
    xpad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, hp, wp = xpad.shape
    o, cg, kh, kw = W.shape
    ho = (hp - dh * (kh - 1) - 1) // sh + 1
    wo = (wp - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, ho, wo))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                patch = xpad[:, g * cg:(g + 1) * cg,
                             i * sh:i * sh + dh * (kh - 1) + 1:dh,
                             j * sw:j * sw + dw * (kw - 1) + 1:dw]
                y[:, oc, i, j] = (patch * W[oc]).sum(axis=(1, 2, 3))
        if b is not None:
            y[:, oc] += b[oc]
    return y


def pool_ref(x, k, s, p, d, kind, count_include_pad=True):
    """Direct loops over windows, the padding handled by clipping (no ceil_mode)."""
    n, c, h, w = x.shape
    ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
    wo = (w + 2 * p - d * (k - 1) - 1) // s + 1
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            rows = [i * s - p + a * d for a in range(k)]
            cols = [j * s - p + b * d for b in range(k)]
            rows_in = [r for r in rows if 0 <= r < h]
            cols_in = [q for q in cols if 0 <= q < w]
            win = x[:, :, rows_in][:, :, :, cols_in]
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                count = k * k if count_include_pad else len(rows_in) * len(cols_in)
                y[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return y


CONV_CASES = [
    # in, out, kernel, stride, padding, dilation, groups, bias
    (3, 4, 3, 1, 0, 1, 1, True),
    (3, 4, 3, 2, 1, 1, 1, True),
    (4, 6, (3, 2), (2, 1), (1, 0), 1, 2, False),
    (2, 4, 3, 1, 2, 2, 1, True),
    (4, 4, 3, 2, 1, (2, 1), 4, True),          # depthwise
    (2, 3, 1, 1, 0, 1, 1, True),               # 1x1
    (2, 3, 4, 1, "same", 1, 1, True),          # even kernel: asymmetric padding
    (2, 3, 3, 1, "same", 2, 1, False),
    (2, 3, 3, 1, "valid", 1, 1, True),
]


def _pads(padding, kernel, dilation):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    if padding == "valid":
        return (0, 0, 0, 0)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph, pw, pw)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_matches_direct_loops(case):
    cin, cout, k, s, p, d, g, bias = case
    m = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    m.double()
    x = rand(2, cin, 7, 6)
    pair = (lambda v: (v, v) if isinstance(v, int) else tuple(v))
    ref = conv_ref(x, m.weight.numpy(), None if m.bias is None else m.bias.numpy(),
                   pair(s), _pads(p, k, d), pair(d), g)
    y = m(t64(x, grad=False))
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_gradcheck(case):
    cin, cout, k, s, p, d, g, bias = case
    m = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias).double()
    assert engine.gradcheck(m, (t64(rand(2, cin, 6, 5)),))


def test_conv2d_float32_stays_float32_and_unbatched_input():
    m = nn.Conv2d(2, 3, 3, padding=1)
    x = engine.randn(2, 5, 5)
    y = m(x)
    assert y.shape == (3, 5, 5) and y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), m(x.reshape(1, 2, 5, 5)).numpy()[0], rtol=1e-6)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes(mode):
    m = nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode).double()
    x = rand(1, 2, 5, 4)
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode=np_mode)
    ref = conv_ref(xpad, m.weight.numpy(), m.bias.numpy(), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    np.testing.assert_allclose(m(t64(x, grad=False)).numpy(), ref, rtol=1e-10)
    assert engine.gradcheck(m, (t64(x),))


def test_conv2d_second_order_gradients():
    x = t64(rand(1, 2, 5, 5))
    W = t64(rand(4, 1, 3, 3))
    b = t64(rand(4))
    fn = lambda x, W, b: F.conv2d(x, W, b, stride=2, padding=1, dilation=1, groups=2)
    assert engine.gradgradcheck(fn, (x, W, b))


def test_conv2d_errors_name_shapes():
    m = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"conv2d: input \(1, 2, 5, 5\) has 2 channels but "
                                         r"weight \(4, 3, 3, 3\) expects 3"):
        m(engine.zeros(1, 2, 5, 5))
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        m(engine.zeros(1, 3, 2, 5))
    with pytest.raises(ValueError, match="expected a 3-D .* or 4-D"):
        m(engine.zeros(3, 5))
    with pytest.raises(ValueError, match="groups=2 must divide in_channels 3"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string 'full'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(TypeError, match="conv2d: expected one floating dtype, got input "
                                        "float64, weight float32"):
        m(engine.zeros(1, 3, 5, 5, dtype=np.float64))


def test_conv2d_state_dict_and_repr():
    m = nn.Conv2d(4, 8, (3, 5), stride=2, padding=1, groups=2, bias=False)
    assert {k: v.shape for k, v in m.state_dict().items()} == {"weight": (8, 2, 3, 5)}
    assert repr(m) == ("Conv2d(4, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), "
                       "groups=2, bias=False)")


# ----------------------------------------------------------------------------- pooling
POOL_CASES = [(2, None, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2), (2, 1, 0, 1)]


@pytest.mark.parametrize("k,s,p,d", POOL_CASES)
def test_max_pool_matches_loops_and_gradchecks(k, s, p, d):
    x = rand(2, 3, 7, 6)
    y = nn.MaxPool2d(k, s, p, d)(t64(x, grad=False))
    np.testing.assert_allclose(y.numpy(), pool_ref(x, k, s or k, p, d, "max"), rtol=1e-12)
    assert engine.gradcheck(nn.MaxPool2d(k, s, p, d), (t64(x),))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (3, 1, 1)])
def test_avg_pool_matches_loops_and_gradchecks(k, s, p, count_include_pad):
    x = rand(2, 3, 7, 6)
    m = nn.AvgPool2d(k, s, p, count_include_pad=count_include_pad)
    ref = pool_ref(x, k, s or k, p, 1, "avg", count_include_pad)
    np.testing.assert_allclose(m(t64(x, grad=False)).numpy(), ref, rtol=1e-12)
    assert engine.gradcheck(m, (t64(x),))


def test_max_pool_gradient_goes_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, 1.0, 3.0]]]])
    xt = t64(x)
    F.max_pool2d(xt, 2).backward(t64([[[[10.0, 20.0]]]], grad=False))
    np.testing.assert_array_equal(xt.grad.numpy(), [[[[0, 10, 20, 0], [0, 0, 0, 0]]]])


def test_max_pool_overlapping_windows_accumulate_and_indices():
    x = np.array([[[[0.0, 1.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]]])
    xt = t64(x)
    y, idx = F.max_pool2d(xt, 2, stride=1, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), [[[[5, 5], [5, 5]]]])
    np.testing.assert_array_equal(idx.numpy(), [[[[4, 4], [4, 4]]]])
    assert idx.dtype == np.int64
    y.sum().backward()
    assert xt.grad.numpy()[0, 0, 1, 1] == 4


def test_ceil_mode_output_sizes_and_values():
    x = rand(1, 2, 5, 5)
    y = F.max_pool2d(t64(x, grad=False), 2, ceil_mode=True)
    assert y.shape == (1, 2, 3, 3)
    np.testing.assert_allclose(y.numpy()[..., 2, 2], x[..., 4, 4])
    a = F.avg_pool2d(t64(x, grad=False), 2, ceil_mode=True)
    np.testing.assert_allclose(a.numpy()[..., 2, 2], x[..., 4, 4])      # a 1-element window
    np.testing.assert_allclose(a.numpy()[..., 0, 2], x[..., 0:2, 4].mean(-1))
    assert engine.gradcheck(lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True), (t64(x),))
    assert engine.gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), (t64(x),))


def test_avg_pool_divisor_override():
    x = rand(1, 1, 4, 4)
    y = F.avg_pool2d(t64(x, grad=False), 2, divisor_override=3)
    np.testing.assert_allclose(y.numpy()[0, 0, 0, 0], x[0, 0, :2, :2].sum() / 3)


def test_pooling_second_order_gradients():
    x = t64(rand(1, 2, 5, 5))
    assert engine.gradgradcheck(lambda t: F.max_pool2d(t * t, 2, 1), (x,))
    assert engine.gradgradcheck(lambda t: F.avg_pool2d(t * t, 3, 2, 1), (x,))


def test_pooling_errors():
    with pytest.raises(ValueError, match="pad should be at most half of kernel size"):
        nn.MaxPool2d(2, padding=2)(engine.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool2d: input \(1, 1, 1, 1\) is too small"):
        nn.MaxPool2d(2)(engine.zeros(1, 1, 1, 1))
    with pytest.raises(ValueError, match="expected a 3-D .* or 4-D"):
        nn.AvgPool2d(2)(engine.zeros(4, 4))


def test_pooling_keeps_dtype_and_unbatched():
    x = engine.randn(3, 6, 6)
    assert nn.MaxPool2d(2)(x).shape == (3, 3, 3)
    assert nn.AvgPool2d(3, 1, 1)(x).dtype == np.float32


# ----------------------------------------------------------------------------- a small CNN
def _cnn():
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 8 * 8, 10))


def test_cnn_trains_one_step_with_all_gradients():
    model = _cnn()
    x = engine.randn(4, 3, 32, 32)
    y = model(x)
    assert y.shape == (4, 10)
    (y * y).mean().backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())


@pytest.mark.slow
def test_cnn_step_is_fast():
    """32×32×3 → 64 → 128 CNN, batch 32: forward + backward well under a second."""
    model = _cnn()
    x = engine.randn(32, 3, 32, 32)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.zero_grad()
        (model(x) ** 2).mean().backward()
        times.append(time.perf_counter() - start)
    assert min(times) < 1.0, times
