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
