"""The Numba kernels of convolution, max pooling and ReLU against the literal
array code: same values and gradients (random upstream gradients, float32 and float64,
non-contiguous inputs), the kernels really the ones that run, float64 gradchecks on both
paths, and the index and NaN rules of PyTorch's max pooling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn.functional as F
from engine.kernels import conv_reference, cpu_conv, cpu_pool, pool_reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from fused_paths import assert_fused_matches_reference, run, tolerances  # noqa: E402


def rand(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


CONV_CASES = [
    # input (N, C, H, W), out channels, kernel, stride, padding, dilation, groups, bias
    ((2, 3, 7, 6), 4, 3, 1, 0, 1, 1, True),
    ((2, 3, 8, 7), 5, 3, 2, 1, 1, 1, True),
    ((1, 4, 9, 8), 6, (3, 2), (2, 1), (1, 0), 1, 2, False),
    ((2, 2, 9, 9), 4, 3, 1, 2, 2, 1, True),
    ((2, 4, 8, 8), 4, 3, 2, 1, (2, 1), 4, True),          # depthwise
    ((3, 2, 5, 4), 3, 1, 1, 0, 1, 1, True),               # 1x1
    ((2, 2, 7, 6), 3, 4, 1, "same", 1, 1, True),          # even kernel: bottom/right extra
    ((2, 2, 8, 7), 3, (3, 4), 1, "same", (2, 1), 1, False),
    ((2, 3, 11, 10), 5, 5, 3, 2, 1, 1, True),             # stride 3
    ((2, 3, 6, 6), 4, 3, 4, 3, 1, 1, True),               # stride > kernel, wide padding
    ((0, 3, 6, 5), 4, 3, 1, 1, 1, 1, True),               # empty batch
    # output as wide as the input at stride 1: each tap's rows one run (RUNS below)
    ((2, 3, 6, 5), 4, 3, 1, 1, 1, 1, True),               # 3x3 padded by 1
    ((2, 4, 3, 5), 4, (5, 3), 1, (2, 1), 1, 2, True),     # taller kernel than the input
    ((2, 2, 7, 6), 3, 3, 1, (0, 1), 1, 1, False),         # Ho < H
    ((2, 2, 1, 4), 3, 3, 1, 1, 1, 1, True),               # taps with no row inside
    ((2, 2, 5, 4), 4, 1, 1, 0, 1, 2, True),               # 2 groups of 1x1 on 1 channel
]
RUNS = [5, 6, 10, 11, 12, 13, 14, 15]                     # the cases of the row-run kernels


def conv_fn(case):
    _, cout, k, s, p, d, g, bias = case

    def fn(x, W, *b):
        return F.conv2d(x, W, b[0] if b else None, stride=s, padding=p, dilation=d,
                        groups=g)
    return fn


def conv_arrays(case, dtype, transposed=False):
    shape, cout, k, _, _, _, g, bias = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rand(shape, dtype)
    if transposed:                                        # same values, another layout
        x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    arrays = [x, rand((cout, shape[1] // g, kh, kw), dtype, seed=1)]
    return arrays + ([rand((cout,), dtype, seed=2)] if bias else [])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_kernels_match_the_literal_code(case, dtype):
    rtol, atol = tolerances(dtype, magnitude=10.0)
    assert_fused_matches_reference(conv_fn(case), conv_arrays(case, dtype), rtol, atol)


def test_conv2d_kernels_take_non_contiguous_input():
    case = CONV_CASES[1]
    rtol, atol = tolerances(np.float64)
    arrays = conv_arrays(case, np.float64, transposed=True)
    assert not arrays[0].flags.c_contiguous
    assert_fused_matches_reference(conv_fn(case), arrays, rtol, atol)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 2, 4, 6, 8)], ids=str)
def test_conv2d_gradcheck_on_both_paths(case, fused):
    ins = [engine.tensor(a, requires_grad=True) for a in conv_arrays(case, np.float64)]
    with engine.use_fused(fused):
        assert engine.gradcheck(conv_fn(case), ins)


@pytest.mark.parametrize("fused", [True, False])
def test_conv2d_second_order_on_both_paths(fused):
    case = CONV_CASES[2]
    ins = [engine.tensor(a, requires_grad=True) for a in conv_arrays(case, np.float64)]
    with engine.use_fused(fused):
        assert engine.gradgradcheck(conv_fn(case), ins)


def spy(monkeypatch, module, names, calls):
    for name in names:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _r=real, _n=name, **k: (
            calls.append(_n), _r(*a, **k))[1])
    return calls


def test_the_numba_kernels_are_the_ones_that_run(monkeypatch):
    calls, literal = [], []
    spy(monkeypatch, cpu_conv, ["conv_forward", "conv_backward"], calls)
    spy(monkeypatch, cpu_pool, ["max_pool_forward", "max_pool_scatter", "relu_forward",
                                "relu_backward"], calls)
    spy(monkeypatch, conv_reference, ["conv_forward", "conv_backward"], literal)
    spy(monkeypatch, pool_reference, ["max_pool_forward", "max_pool_scatter"], literal)
    x = engine.tensor(rand((2, 3, 6, 6), np.float32), requires_grad=True)
    W = engine.tensor(rand((4, 3, 3, 3), np.float32), requires_grad=True)

    def step():
        y = F.max_pool2d(engine.relu(F.conv2d(x, W, padding=1)), 2)
        (y * y).sum().backward()

    step()
    assert calls == ["conv_forward", "relu_forward", "max_pool_forward", "max_pool_scatter",
                     "relu_backward", "conv_backward"] and literal == []
    calls.clear()
    with engine.use_fused(False):
        step()
    assert calls == [] and literal == ["conv_forward", "max_pool_forward",
                                       "max_pool_scatter", "conv_backward"]


@pytest.mark.parametrize("index", range(len(CONV_CASES)))
def test_row_run_kernels_serve_exactly_the_same_width_geometries(monkeypatch, index):
    """im2col and col2im take one run per tap when Wo = W at stride 1 and dilation 1 (the
    cases in RUNS), the per-row kernels otherwise; both give the literal code's values
    (above)."""
    case = CONV_CASES[index]
    calls = spy(monkeypatch, cpu_conv, ["_im2col_runs", "_col2im_runs", "_col2im_image"],
                [])
    x, W, *b = (engine.tensor(a, requires_grad=True) for a in conv_arrays(case, np.float32))
    conv_fn(case)(x, W, *b).sum().backward()
    images = case[0][0]
    if index in RUNS:
        assert calls == ["_im2col_runs"] * images + ["_col2im_runs"] * images
    else:
        assert calls == ["_col2im_image"] * images


@pytest.mark.parametrize("trained", ["weight", "bias", "both"])
def test_the_bias_rides_in_the_product_as_a_last_column(trained):
    """With a bias and one group the columns end in a row of ones and the product takes
    [W b], so y = [W b]·[cols; 1] and gb is the last row of gWᵀ's product; values and
    gradients stay the literal code's whichever of W and b is trained."""
    case = CONV_CASES[11]
    x, W, b = conv_arrays(case, np.float64)
    _, cols = cpu_conv.conv_forward(x, W, b, geometry(x.shape, case))
    assert cols.shape[1] == W[0].size + 1 and np.all(cols[:, -1] == 1)
    assert cpu_conv.conv_forward(x, W, None, geometry(x.shape, case))[1].shape[1] == W[0].size
    results = []
    for fused in (True, False):
        with engine.use_fused(fused):
            ts = [engine.tensor(x, requires_grad=True),
                  engine.tensor(W, requires_grad=trained != "bias"),
                  engine.tensor(b, requires_grad=trained != "weight")]
            y = conv_fn(case)(*ts)
            y.backward(engine.tensor(rand(y.shape, seed=5)))
            results.append([y.numpy()] + [t.grad.numpy() if t.requires_grad else None
                                          for t in ts])
    for ours, literal in zip(*results):
        assert (ours is None) == (literal is None)
        if ours is not None:
            np.testing.assert_allclose(ours, literal, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- max pooling
POOL_CASES = [
    # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 2, False), (2, 2, 0, 1, True),
    (3, 2, 1, 1, True), ((3, 2), (2, 1), (1, 1), 1, True), ((2, 3), 2, 0, (2, 1), False),
    (5, 3, 2, 1, True),
]


def pool_fn(case):
    k, s, p, d, c = case
    return lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode=c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_kernels_match_the_literal_code(case, dtype):
    x = rand((2, 3, 9, 8), dtype)
    rtol, atol = tolerances(dtype)       # overlapping windows add up in another order
    out = assert_fused_matches_reference(pool_fn(case), [x], rtol, atol)[0]
    with engine.use_fused(False):
        np.testing.assert_array_equal(out.numpy(), pool_fn(case)(engine.tensor(x)).numpy())
    k, s, p, d, c = case
    xt = engine.tensor(x)
    _, idx = F.max_pool2d(xt, k, s, p, d, ceil_mode=c, return_indices=True)
    with engine.use_fused(False):
        _, ref = F.max_pool2d(xt, k, s, p, d, ceil_mode=c, return_indices=True)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx.numpy(), ref.numpy())


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("case", POOL_CASES[1:6], ids=str)
def test_max_pool_gradchecks_on_both_paths(case, fused):
    x = engine.tensor(rand((2, 2, 7, 6)), requires_grad=True)
    with engine.use_fused(fused):
        assert engine.gradcheck(pool_fn(case), (x,))
        assert engine.gradgradcheck(lambda t: pool_fn(case)(t * t), (x,))


@pytest.mark.parametrize("case, two_by_two", [(POOL_CASES[0], True), ((2, 2, 0, 1, False), True),
                                               (POOL_CASES[3], False), (POOL_CASES[6], False),
                                               ((2, 2, 1, 1, False), False),
                                               ((2, 1, 0, 1, False), False)], ids=str)
def test_max_pool_2x2_at_stride_2_takes_its_own_kernel(monkeypatch, case, two_by_two):
    calls = spy(monkeypatch, cpu_pool, ["_max_fwd_2x2", "_max_fwd"], [])
    x = np.random.default_rng(4).integers(0, 3, (2, 3, 11, 10)).astype(np.float32)
    x[0, 0, ::3, ::2] = np.nan                         # ties everywhere, NaNs, -inf
    x[1, 2, :4, :5] = -np.inf
    k, s, p, d, c = case
    out, idx = F.max_pool2d(engine.tensor(x), k, s, p, d, ceil_mode=c, return_indices=True)
    assert set(calls) == {"_max_fwd_2x2" if two_by_two else "_max_fwd"}
    with engine.use_fused(False):
        ref, ref_idx = F.max_pool2d(engine.tensor(x), k, s, p, d, ceil_mode=c,
                                    return_indices=True)
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    np.testing.assert_array_equal(idx.numpy(), ref_idx.numpy())


@pytest.mark.parametrize("fused", [True, False])
def test_max_pool_ties_nan_and_minus_infinity_follow_pytorch(fused):
    x = np.zeros((1, 1, 4, 6))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0          # a tie in the first window: the first wins
    x[0, 0, 0, 2], x[0, 0, 1, 3] = np.nan, np.nan  # two NaNs: the last one read wins
    x[0, 0, 2:, 4:] = -np.inf                      # all -inf: the window's first element
    with engine.use_fused(fused):
        y, idx = F.max_pool2d(engine.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[1, 9, 4], [12, 14, 16]])
    assert np.isnan(y.numpy()[0, 0, 0, 1]) and y.numpy()[0, 0, 1, 2] == -np.inf


@pytest.mark.parametrize("fused", [True, False])
def test_max_pool_window_in_the_padding_corner_takes_its_first_inside_element(fused):
    x = engine.tensor(np.full((1, 1, 3, 3), -np.inf), requires_grad=True)
    with engine.use_fused(fused):
        y, idx = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
        y.backward(engine.tensor(np.arange(1.0, 5.0).reshape(1, 1, 2, 2)))
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[0, 1], [3, 4]])
    assert np.all(y.numpy() == -np.inf)
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])


@pytest.mark.parametrize("fused", [True, False])
def test_max_pool_return_indices_runs_the_forward_once_and_owns_its_indices(monkeypatch,
                                                                             fused):
    calls = spy(monkeypatch, cpu_pool if fused else pool_reference, ["max_pool_forward"], [])
    x = np.random.default_rng(7).standard_normal((2, 3, 6, 5)).astype(np.float32)
    xt = engine.tensor(x, requires_grad=True)
    gy = np.random.default_rng(8).standard_normal((2, 3, 3, 2)).astype(np.float32)
    with engine.use_fused(fused):
        y, idx = F.max_pool2d(xt, 2, return_indices=True)
        plain = F.max_pool2d(engine.tensor(x), 2)
        assert calls == ["max_pool_forward", "max_pool_forward"]
        expected = idx.numpy().copy()
        idx[...] = 0                                   # the indices are the caller's
        y.backward(engine.tensor(gy))
    np.testing.assert_array_equal(y.numpy(), plain.numpy())
    gx = np.zeros((2, 3, 30), dtype=np.float32)
    np.put_along_axis(gx, expected.reshape(2, 3, 6), gy.reshape(2, 3, 6), axis=2)
    np.testing.assert_array_equal(xt.grad.numpy(), gx.reshape(x.shape))


# ----------------------------------------------------------------------------- ReLU
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (300, 400)])        # serial and parallel
def test_relu_backward_kernel_matches_where(shape, dtype):
    x = rand(shape, dtype)
    x.reshape(-1)[::3] = 0.0                                           # ReLU'(0) = 0
    gy = rand(shape, dtype, seed=1)
    gy.reshape(-1)[1::5] = np.inf
    gy.reshape(-1)[2::7] = np.nan
    out_f, g_f, _ = run(engine.relu, [x], True, upstream=[engine.tensor(gy)])
    out_r, g_r, _ = run(engine.relu, [x], False, upstream=[engine.tensor(gy)])
    np.testing.assert_array_equal(out_f[0], out_r[0])
    np.testing.assert_array_equal(g_f[0], g_r[0])
    assert g_f[0].dtype == dtype
    np.testing.assert_array_equal(g_f[0], np.where(x > 0, gy, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (300, 400), (4, 64, 32, 32)])   # serial, parallel
def test_relu_forward_kernel_matches_maximum(shape, dtype):
    x = rand(shape, dtype)
    flat = x.reshape(-1)
    flat[::11], flat[1::13], flat[2::17] = np.nan, -0.0, 0.0
    flat[3::19], flat[4::23] = np.inf, -np.inf
    y = cpu_pool.relu_forward(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert not np.signbit(y).any()                                     # -0 gives 0
    out_f, _, _ = run(engine.relu, [x], True)
    np.testing.assert_array_equal(out_f[0], np.maximum(x, 0))


def test_relu_forward_kernel_takes_non_contiguous_input():
    x = rand((400, 300)).T
    np.testing.assert_array_equal(cpu_pool.relu_forward(x), np.maximum(x, 0))
    np.testing.assert_array_equal(engine.relu(engine.tensor(x)).numpy(), np.maximum(x, 0))


def test_relu_backward_kernel_takes_broadcast_and_transposed_gradients():
    x = engine.tensor(rand((4, 6)).T, requires_grad=True)              # non-contiguous
    engine.relu(x).sum().backward()                                    # gy broadcast
    np.testing.assert_array_equal(x.grad.numpy(), (x.numpy() > 0).astype(np.float64))


def geometry(shape, case):
    from engine.ops.conv import ConvGeometry, out_size

    _, _, k, s, p, d, g, _ = case
    kh, kw = (k, k) if isinstance(k, int) else k
    (sh, sw), (ph, pw), (dh, dw) = [(v, v) if isinstance(v, int) else v for v in (s, p, d)]
    return ConvGeometry((sh, sw), (ph, ph, pw, pw), (dh, dw), g, (kh, kw), shape[2:],
                        (out_size(shape[2], kh, sh, ph, ph, dh),
                         out_size(shape[3], kw, sw, pw, pw, dw)))


def split_among(monkeypatch, count):
    """Let every conv share its images among ``count`` threads; the thread counts of the
    splits are recorded in the returned list."""
    from engine import threads

    monkeypatch.setattr(cpu_conv, "SPLIT_COPY", 1)
    monkeypatch.setattr(threads, "SPLIT_FLOPS", 1)
    monkeypatch.setattr(threads, "_count", count)
    monkeypatch.setattr(threads._Contention, "pause_until", 0.0)
    parts = []
    real = threads.run_split
    monkeypatch.setattr(threads, "run_split",
                        lambda w, n, t: (parts.append(t), real(w, n, t))[1])
    return parts


@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 2, 4, 8, 9, 11, 12, 13, 14)],
                         ids=str)
def test_im2col_per_image_equals_the_literal_columns(monkeypatch, case):
    shape = (5,) + case[0][1:]
    geo = geometry(shape, case)
    parts = split_among(monkeypatch, 3)
    x = rand(shape, np.float32)
    ref = conv_reference.im2col(x, geo)                             # (g, K/g, N·Ho·Wo)
    ref = ref.reshape(ref.shape[:2] + (5, -1)).transpose(2, 0, 1, 3).reshape(5, -1,
                                                                            ref.shape[2] // 5)
    np.testing.assert_array_equal(cpu_conv.im2col(x, geo), ref)
    assert parts == [3]


@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (0, 2, 3, 4, 8, 11)], ids=str)
def test_conv2d_images_shared_among_threads_match_the_literal_code(monkeypatch, case):
    parts = split_among(monkeypatch, 3)
    arrays = conv_arrays(((7,) + case[0][1:],) + case[1:], np.float64, transposed=True)
    rtol, atol = tolerances(np.float64, magnitude=10.0)
    assert_fused_matches_reference(conv_fn(case), arrays, rtol, atol)
    assert parts == [3, 3]                                  # the forward, the backward


def test_conv2d_threads_sum_their_weight_and_bias_gradients(monkeypatch):
    split_among(monkeypatch, 2)
    x, W, b = (engine.tensor(a, requires_grad=True) for a in conv_arrays(CONV_CASES[0],
                                                                          np.float64))
    y = F.conv2d(x, W, b)
    gy = rand(y.shape, seed=3)
    y.backward(engine.tensor(gy))
    cols = conv_reference.im2col(x.numpy(), geometry(x.shape, CONV_CASES[0]))[0]
    gym = gy.transpose(1, 0, 2, 3).reshape(W.shape[0], -1)
    np.testing.assert_allclose(W.grad.numpy().reshape(W.shape[0], -1), gym @ cols.T,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), gy.sum(axis=(0, 2, 3)), rtol=1e-12)
