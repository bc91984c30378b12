"""The Numba CUDA kernels under the CUDA simulator, against the reference formulas.

Run by ``test_kernels_cuda.py`` in a fresh interpreter: the simulator must be switched on
before ``numba.cuda`` is first imported. The fused Functions are pointed at the CUDA kernel
module, which the simulator runs on NumPy arrays. Shapes are tiny and blocks few: every
simulated thread is a Python thread.
"""

from __future__ import annotations

import os

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import engine  # noqa: E402
from engine import kernels  # noqa: E402
from engine import Tensor  # noqa: E402
from engine.kernels import cuda as cuda_kernels  # noqa: E402


@pytest.fixture(autouse=True)
def _cuda_kernels(monkeypatch):
    monkeypatch.setattr(kernels, "select", lambda *arrays: cuda_kernels
                        if engine.fused_enabled() else kernels.reference)


def run(fn, arrays, fused_on, seed=0):
    with engine.use_fused(fused_on):
        ins = [Tensor(a, requires_grad=True) for a in arrays]
        out = fn(*ins)
        outs = out if isinstance(out, tuple) else (out,)
        rng = np.random.default_rng(seed)
        engine.backward(list(outs), [Tensor(rng.standard_normal(o.shape).astype(o.dtype))
                                     for o in outs])
    return [o.data for o in outs], [t.grad.data for t in ins], outs


def check(fn, arrays, rtol=None, atol=None):
    dtype = arrays[0].dtype
    rtol = rtol or (1e-10 if dtype == np.float64 else 1e-5)
    atol = atol or (1e-12 if dtype == np.float64 else 1e-6)
    out_f, g_f, outs = run(fn, arrays, True)
    assert all(o._node.impl is cuda_kernels for o in outs)
    out_r, g_r, _ = run(fn, arrays, False)
    for a, b in zip(out_f + g_f, out_r + g_r):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_simulator_is_on_with_small_blocks():
    assert cuda_kernels.SIMULATOR
    assert cuda_kernels.threads_for(1) == 1 and cuda_kernels.threads_for(1000) == 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [1, 3, 9])
def test_softmax_and_log_softmax(dtype, width):
    x = np.random.default_rng(width).standard_normal((2, width)).astype(dtype)
    check(engine.softmax, [x])
    check(engine.log_softmax, [x])


def test_softmax_extremes_and_other_axis():
    x = np.array([[1e4, -1e4, 0.0, 1e4, 3.0], [-np.inf, 0.0, -np.inf, 1.0, -200.0]])
    check(engine.softmax, [x])
    check(engine.log_softmax, [np.where(np.isinf(x), -50.0, x)])
    check(lambda a: engine.softmax(a, dim=0), [x[:, :3].T.copy()])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy(dtype, reduction):
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(dtype) * 3
    x[1, 2] = 1e4
    t = np.array([5, -100, 0])
    check(lambda a: engine.cross_entropy(a, t, label_smoothing=0.2, reduction=reduction),
          [x], atol=1e-9 if dtype == np.float64 else 1e-3)
    check(lambda a: engine.cross_entropy(a, np.array([2, 2, 1]), reduction="sum"), [x],
          atol=1e-9 if dtype == np.float64 else 1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 7)).astype(dtype)
    x[1] = 2.5                                           # a constant row
    w, b = rng.standard_normal(7).astype(dtype), rng.standard_normal(7).astype(dtype)
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    check(lambda a, w_, b_: engine.layer_norm(a, 7, w_, b_), [x, w, b], **tol)
    check(lambda a: engine.layer_norm(a, 7, eps=1.0), [x], **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_causal_padding_bias(dtype):
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, 3, 4)).astype(dtype) for _ in range(3))
    tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    kpm = np.array([[False, False, True]])
    check(lambda *t: engine.scaled_dot_product_attention(*t, is_causal=True,
                                                        key_padding_mask=kpm), [q, k, v],
          **tol)
    bias = rng.standard_normal((3, 3)).astype(dtype)
    check(lambda *t: engine.scaled_dot_product_attention(*t, need_weights=True),
          [q, k, v, bias][:3], **tol)
    check(lambda a, b, c, m: engine.scaled_dot_product_attention(a, b, c, attn_mask=m),
          [q, k, v, bias], **tol)


def test_attention_fully_masked_row_and_dropout():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, 3, 2)) for _ in range(3))
    mask = np.array([[True, False, True], [False, False, False], [True, True, True]])
    with engine.use_fused(True):
        out = engine.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v),
                                                 attn_mask=mask)
    assert np.all(out.data[0, 1] == 0) and np.isfinite(out.data).all()
    check(lambda *t: engine.scaled_dot_product_attention(*t, attn_mask=mask), [q, k, v])
    results = []
    for on in (True, False):
        engine.manual_seed(5)
        results.append(run(lambda *t: engine.scaled_dot_product_attention(
            *t, dropout_p=0.5), [q, k, v], on)[:2])
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_nan_where_the_reference_has_nan(causal):
    """A NaN in q (head 0), k (head 1), v (head 2) and the float mask (head 3)."""
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((1, 4, 3, 2)) for _ in range(3))
    bias = np.zeros((4, 3, 3))
    q[0, 0, 1, 0] = k[0, 1, 1, 1] = v[0, 2, 2, 0] = bias[3, 2, 0] = np.nan

    def fn(*t):
        return engine.scaled_dot_product_attention(*t, attn_mask=bias, is_causal=causal,
                                                   need_weights=True)

    out_f, g_f, outs = run(fn, [q, k, v], True)
    assert all(o._node.impl is cuda_kernels for o in outs)
    out_r, g_r, _ = run(fn, [q, k, v], False)
    for a, b in zip(out_f, out_r):                 # NaN exactly where the reference has
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert np.isnan(out_f[0]).any(axis=(2, 3)).all()          # in every head
    for a, b in zip(g_f, g_r):
        if causal:              # a hidden key's NaN value: d sums only the keys seen
            assert not (np.isnan(a) & ~np.isnan(b)).any()
            np.testing.assert_allclose(a[~np.isnan(b)], b[~np.isnan(b)], rtol=1e-10,
                                       atol=1e-12)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_attention_fully_masked_row_of_nan_scores_gives_zeros():
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((1, 3, 2)) for _ in range(3))
    q[0, 1] = np.nan
    keep = np.ones((3, 3), dtype=bool)
    keep[1] = False
    check(lambda *t: engine.scaled_dot_product_attention(*t, attn_mask=keep), [q, k, v])
    with engine.use_fused(True):
        out = engine.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v),
                                                 attn_mask=keep)
    np.testing.assert_array_equal(out.data[0, 1], 0.0)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "layer_norm", "cross_entropy"])
def test_float16_runs_the_float32_kernels(name, monkeypatch):
    picked = []
    monkeypatch.setattr(kernels, "select", lambda *arrays: picked.append(arrays[0].dtype)
                        or cuda_kernels)
    fn = {"softmax": engine.softmax, "log_softmax": engine.log_softmax,
          "layer_norm": lambda a: engine.layer_norm(a, 5),
          "cross_entropy": lambda a: engine.cross_entropy(a, np.array([4, 0, 2]))}[name]
    x = (np.random.default_rng(8).standard_normal((3, 5)) * 800).astype(np.float16)
    ys, grads = [], []
    for dtype in (np.float16, np.float32):
        t = Tensor(x.astype(dtype), requires_grad=True)
        y = fn(t)
        y.backward(Tensor(np.ones(y.shape, dtype=dtype)))
        ys.append(y)
        grads.append(t.grad)
    assert picked and all(dt == np.float32 for dt in picked)
    assert ys[0].dtype == grads[0].dtype == np.float16
    np.testing.assert_array_equal(ys[0].data, ys[1].data.astype(np.float16))
    np.testing.assert_array_equal(grads[0].data, grads[1].data.astype(np.float16))


def test_empty_axes_give_pytorchs_results():
    rng = np.random.default_rng(9)
    q, v = rng.standard_normal((1, 3, 0)), rng.standard_normal((1, 3, 2))
    check(engine.softmax, [rng.standard_normal((3, 0))])
    check(lambda a: engine.layer_norm(a, (2, 0)), [rng.standard_normal((3, 2, 0))])
    check(engine.scaled_dot_product_attention, [rng.standard_normal((1, 2, 3)),
                                                rng.standard_normal((1, 0, 3)),
                                                rng.standard_normal((1, 0, 2))])
    check(engine.scaled_dot_product_attention, [q, q, v])
    with engine.use_fused(True):
        out = engine.scaled_dot_product_attention(Tensor(q), Tensor(q), Tensor(v))
    np.testing.assert_allclose(out.data, np.broadcast_to(v.mean(axis=1), (1, 3, 2)))
