"""Fused kernels across ops: the switch (per thread) and the dispatch, fused equals
reference on every device, float64 gradchecks through the fused path, second order, dtypes,
errors, and the vectorized exp."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import kernels
from engine.kernels import cpu, reference

sys.path.insert(0, str(Path(__file__).parent))
from fused_paths import assert_fused_matches_reference, leaf  # noqa: E402


# ---------------------------------------------------------------- the switch, the dispatch
def test_use_fused_call_and_context_manager():
    assert engine.fused_enabled()
    with engine.use_fused(False):
        assert not engine.fused_enabled()
        with engine.use_fused(True):
            assert engine.fused_enabled()
        assert not engine.fused_enabled()
    assert engine.fused_enabled()
    try:
        engine.use_fused(False)
        assert not engine.fused_enabled()
    finally:
        engine.use_fused(True)
    assert engine.fused_enabled() and engine.kernels.fused_enabled()


def test_use_fused_is_per_thread():
    """A setting made in one thread does not leak into another, and a new thread starts
    from the default (fused on), whatever the thread that started it had set."""
    seen = {}
    inside, release = threading.Event(), threading.Event()
    x = leaf(np.ones((2, 3)))

    def switches_off():
        with engine.use_fused(False):
            seen["worker inside"] = engine.fused_enabled()
            seen["worker node"] = engine.softmax(x)._node.impl
            inside.set()
            release.wait(10)
        seen["worker after"] = engine.fused_enabled()

    def reads():
        seen["new thread"] = engine.fused_enabled()

    worker = threading.Thread(target=switches_off)
    worker.start()
    try:
        assert inside.wait(10)
        assert engine.fused_enabled()                  # the worker's block is its own
        assert engine.softmax(x)._node.impl is cpu
        with engine.use_fused(False):
            reader = threading.Thread(target=reads)
            reader.start()
            reader.join(10)
        assert engine.fused_enabled()
    finally:
        release.set()
        worker.join(10)
    assert seen == {"worker inside": False, "worker node": reference,
                    "worker after": True, "new thread": True}


OPS = {
    "softmax": lambda x: engine.softmax(x),
    "log_softmax": lambda x: engine.log_softmax(x),
    "cross_entropy": lambda x: engine.cross_entropy(x, np.array([0, 2, 1])),
    "layer_norm": lambda x: engine.layer_norm(x, 4),
    "attention": lambda x: engine.scaled_dot_product_attention(x, x, x),
}


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dispatch_picks_fused_node_and_reference_when_off(name, dtype):
    fn = OPS[name]
    x = leaf(np.random.default_rng(0).standard_normal((3, 4)).astype(dtype))
    assert fn(x)._node.impl is cpu
    with engine.use_fused(False):
        assert fn(x)._node.impl is reference
    assert kernels.select(x.data) is cpu


def test_fused_path_really_calls_the_cpu_kernels(monkeypatch):
    calls = []
    for name in ("softmax_forward", "softmax_backward", "cross_entropy_forward",
                 "layer_norm_backward", "attention_forward", "attention_backward"):
        real = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, _r=real, _n=name, **k: (
            calls.append(_n), _r(*a, **k))[1])
    x = leaf(np.random.default_rng(0).standard_normal((3, 4)))
    engine.softmax(x).sum().backward()
    engine.cross_entropy(x, np.array([0, 1, 2]))
    engine.layer_norm(x, 4).sum().backward()
    y = engine.scaled_dot_product_attention(x, x, x)
    (y * y).sum().backward()
    assert calls == ["softmax_forward", "softmax_backward", "cross_entropy_forward",
                     "layer_norm_backward", "attention_forward", "attention_backward"]
    calls.clear()
    with engine.use_fused(False):
        engine.softmax(x).sum().backward()
        engine.scaled_dot_product_attention(x, x, x).sum().backward()
    assert calls == []


def test_engine_softmax_and_tensor_method_route_through_dispatch():
    x = leaf(np.ones((2, 3)))
    assert engine.softmax(x)._node.impl is cpu
    assert x.softmax()._node.impl is cpu
    node = x.log_softmax(dim=0)._node
    assert type(node).__name__ == "LogSoftmax" and node.impl is cpu
    with engine.use_fused(False):
        assert x.softmax()._node.impl is reference


def test_other_dtypes_fall_back_to_reference_and_float16_softmax_runs_in_float32():
    x = leaf(np.ones((2, 3), dtype=np.float16))
    assert kernels.select(x.data) is reference
    out = engine.scaled_dot_product_attention(x, x, x)
    assert out._node.impl is reference and out.dtype == np.float16
    y = engine.softmax(x)                        # widened, the fused kernel, narrowed
    inner = y._node.edges[0][0]
    assert y.dtype == np.float16 and type(inner).__name__ == "Softmax" and inner.impl is cpu


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_all_ops_fused_match_reference_per_device(device):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 33)).astype(np.float32)
    t = np.array([0, 32, -100, 7, 7])
    w, b = rng.standard_normal(33).astype(np.float32), rng.standard_normal(33).astype(np.float32)
    q, k, v = (rng.standard_normal((2, 2, 6, 8)).astype(np.float32) for _ in range(3))
    kpm = np.array([[False] * 6, [False, False, True, True, True, True]])
    tol = dict(rtol=2e-5, atol=1e-6)
    assert_fused_matches_reference(engine.softmax, [x], device=device, **tol)
    assert_fused_matches_reference(engine.log_softmax, [x], device=device, **tol)
    assert_fused_matches_reference(
        lambda a: engine.cross_entropy(a, engine.Tensor(t, device=device),
                                       label_smoothing=0.2), [x], device=device, **tol)
    assert_fused_matches_reference(lambda a, w_, b_: engine.layer_norm(a, 33, w_, b_),
                                   [x, w, b], device=device, rtol=1e-4, atol=1e-5)
    assert_fused_matches_reference(
        lambda *a: engine.scaled_dot_product_attention(
            *a, is_causal=True, key_padding_mask=engine.Tensor(kpm, device=device)),
        [q, k, v], device=device, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- gradients, dtypes
def test_gradcheck_float64_through_fused_path():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    t = np.array([1, -100, 5, 0])
    assert engine.cross_entropy(leaf(x), t)._node.impl is cpu
    engine.gradcheck(lambda a: engine.softmax(a), [x])
    engine.gradcheck(lambda a: engine.log_softmax(a, dim=0), [x])
    for red in ("mean", "sum", "none"):
        engine.gradcheck(lambda a, r=red: engine.cross_entropy(a, t, label_smoothing=0.1,
                                                               reduction=r), [x])
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    engine.gradcheck(lambda a, w_, b_: engine.layer_norm(a, 6, w_, b_), [x, w, b])
    q, k, v = (rng.standard_normal((2, 1, 3, 2)) for _ in range(3))
    bias = rng.standard_normal((3, 3))
    kpm = np.array([[False, False, True], [False, True, True]])
    engine.gradcheck(lambda a, b_, c, m: engine.scaled_dot_product_attention(
        a, b_, c, attn_mask=m, key_padding_mask=kpm, is_causal=True, need_weights=True),
        [q, k, v, bias])


def test_second_order_softmax_fused_and_others_ask_for_reference():
    x = np.random.default_rng(0).standard_normal((3, 4))
    engine.gradgradcheck(lambda a: engine.softmax(a), [x])
    engine.gradgradcheck(lambda a: engine.log_softmax(a), [x])
    t = np.array([0, 1, 3])
    ops = [lambda a: engine.cross_entropy(a, t, label_smoothing=0.2),
           lambda a: engine.layer_norm(a, 4, a[0], a[1]),
           lambda a: engine.scaled_dot_product_attention(a, a, a, is_causal=True)]
    for fn in ops:
        a = leaf(x)
        (g,) = engine.grad((fn(a) * 1.5).sum(), [a], create_graph=False)
        assert g.shape == x.shape
        with pytest.raises(RuntimeError, match=r"use_fused\(False\)"):
            engine.grad(fn(a).sum(), [a], create_graph=True)
        with engine.use_fused(False):
            engine.gradgradcheck(fn, [x])


def test_float32_stays_float32_outputs_and_grads():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    cases = [lambda a: engine.softmax(a), lambda a: engine.log_softmax(a),
             lambda a: engine.cross_entropy(a, np.array([0, 1, 2]), label_smoothing=0.1),
             lambda a: engine.layer_norm(a, 4),
             lambda a: engine.scaled_dot_product_attention(a, a, a, dropout_p=0.2)]
    for fn in cases:
        for on in (True, False):
            with engine.use_fused(on):
                a = leaf(x.copy())
                y = fn(a)
                y.sum().backward()
            assert y.dtype == np.float32 and a.grad.dtype == np.float32


# ---------------------------------------------------------------- errors
def test_errors_name_op_shapes_and_dtypes():
    x = leaf(np.zeros((3, 4)))
    with pytest.raises(IndexError, match=r"cross_entropy.*\[0, 4\).*\[0, 4\]"):
        engine.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(3, 4\).*\(3,\).*\(2,\)"):
        engine.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(TypeError, match="cross_entropy.*integer.*float64"):
        engine.cross_entropy(x, np.zeros(3))
    with pytest.raises(ValueError, match="cross_entropy: 'avg' is not a valid value"):
        engine.cross_entropy(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(5,\).*\(3, 4\)"):
        engine.layer_norm(x, 5)
    with pytest.raises(ValueError, match=r"layer_norm: weight of shape \(3,\)"):
        engine.layer_norm(x, 4, leaf(np.ones(3)))
    with pytest.raises(TypeError, match="layer_norm: weight is float32"):
        engine.layer_norm(x, 4, leaf(np.ones(4, dtype=np.float32)))
    sdpa = engine.scaled_dot_product_attention
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\(2, 3, 4\).*"
                                         r"\(2, 5, 3\)"):
        sdpa(leaf(np.zeros((2, 3, 4))), leaf(np.zeros((2, 5, 3))), leaf(np.zeros((2, 5, 3))))
    q = leaf(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 2\).*\(2, 3, 3\)"):
        sdpa(q, q, q, attn_mask=np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"expected key_padding_mask of shape \(2, 3\), got "
                                         r"\(3, 3\)"):
        sdpa(q, q, q, key_padding_mask=np.ones((3, 3), dtype=bool))
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask"):
        sdpa(q, q, q, attn_mask=np.ones((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="dropout_p"):
        sdpa(q, q, q, dropout_p=1.5)


# ---------------------------------------------------------------- the vectorized exp
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vexp_accuracy_and_special_values(dtype):
    from numba import njit

    @njit
    def apply(x, y):
        for i in range(x.size):
            y[i] = cpu.vexp(x[i])

    info = np.finfo(dtype)
    lo, hi = np.log(info.smallest_subnormal) - 1, np.log(info.max) + 1
    x = np.concatenate([np.linspace(lo, hi, 200_001), np.random.default_rng(0).normal(
        0, 30, 10_000), [0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf, np.nan]]).astype(dtype)
    y = np.empty_like(x)
    apply(x, y)
    want = np.exp(x.astype(np.longdouble))
    finite = np.isfinite(want) & (want <= info.max)
    err = np.abs(y[finite].astype(np.longdouble) - want[finite])
    ulp = np.spacing(want[finite].astype(dtype)).astype(np.longdouble)
    assert float((err / ulp).max()) <= 2.0
    assert np.all(np.isinf(y[~finite & ~np.isnan(x)]))
    np.testing.assert_array_equal(y[-3:-1], [np.inf, 0.0])
    assert np.isnan(y[-1]) and y.dtype == dtype
