"""Fused kernels: the switch and the dispatch, fused equals reference (forward and backward
with random upstream gradients) on drawn shapes and extreme values, float64 gradchecks
through the fused path, dtypes, masks, dropout, errors, and the vectorized exp."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from engine import kernels
from engine import Tensor
from engine import testing as et
from engine import threads
from engine.kernels import cpu, reference

F32_EPS = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------- helpers
def leaf(a, device="cpu"):
    """A leaf Tensor around ``a`` itself (keeps a non-contiguous layout)."""
    t = Tensor._make(a, None, 0) if device == "cpu" else Tensor(a, device=device)
    return t.requires_grad_()


def run(fn, arrays, fused_on, seed=0, device="cpu", upstream=None):
    """Outputs and input gradients of ``fn`` (random upstream gradient; the engine's
    generator reseeded, so both paths draw the same dropout masks)."""
    engine.manual_seed(seed)
    with engine.use_fused(fused_on):
        ins = [leaf(a, device) for a in arrays]
        out = fn(*ins)
        outs = out if isinstance(out, tuple) else (out,)
        rng = np.random.default_rng(seed)
        grads = upstream or [Tensor(rng.standard_normal(o.shape).astype(o.dtype),
                                    device=device) for o in outs]
        engine.backward(list(outs), grads)
    return ([o.numpy() for o in outs],
            [None if t.grad is None else t.grad.numpy() for t in ins], outs)


def assert_fused_matches_reference(fn, arrays, rtol, atol, device="cpu", seed=0):
    before = [a.copy() for a in arrays]
    out_f, g_f, outs = run(fn, arrays, True, seed, device)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b, err_msg="fused op modified its input")
    out_r, g_r, _ = run(fn, arrays, False, seed, device)
    for a, b in zip(out_f, out_r):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg="forward")
    for a, b in zip(g_f, g_r):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg="backward")
    return outs


def tolerances(dtype, magnitude=1.0):
    if dtype == np.float64:
        return 1e-9, 1e-11 * max(1.0, magnitude)
    return 2e-5, 8 * F32_EPS * max(1.0, magnitude)


@st.composite
def matrices(draw, min_rows=1, max_rows=5, extreme=True):
    """(rows, width) arrays: widths 1 to long, values normal / ±1e4 / a row at -200,
    contiguous or strided or transposed, float32 or float64."""
    n = draw(st.integers(min_rows, max_rows))
    c = draw(st.one_of(st.integers(1, 20), st.sampled_from([64, 257, 1030])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["normal", "large", "row-200"] if extreme else ["normal"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c))
    if kind == "large":
        x = rng.uniform(-1e4, 1e4, (n, c))
    elif kind == "row-200":
        x[rng.integers(n)] -= 200.0
    x = x.astype(dtype)
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed"]))
    if layout != "contiguous":
        x = et.strided_copy(x, transposed=layout == "transposed")
    return x


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
    node = x.log_softmax(axis=0)._node
    assert type(node).__name__ == "LogSoftmax" and node.impl is cpu
    with engine.use_fused(False):
        assert x.softmax()._node.impl is reference


def test_other_dtypes_fall_back_to_reference():
    x = leaf(np.ones((2, 3), dtype=np.float16))
    assert kernels.select(x.data) is reference
    y = engine.softmax(x)
    assert y._node.impl is reference and y.dtype == np.float16


# ---------------------------------------------------------------- fused == reference
@settings(deadline=None)
@given(x=matrices(), log=st.booleans(), axis=st.sampled_from([-1, 0]))
def test_softmax_fused_matches_reference(x, log, axis):
    fn = (lambda t: engine.log_softmax(t, axis)) if log else (lambda t: engine.softmax(t, axis))
    rtol, atol = tolerances(x.dtype, float(np.abs(x).max()) if log else 1.0)
    outs = assert_fused_matches_reference(fn, [x], rtol, atol)
    assert outs[0].dtype == x.dtype


@settings(deadline=None)
@given(x=matrices(), data=st.data())
def test_cross_entropy_fused_matches_reference(x, data):
    n, c = x.shape
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    ignore = data.draw(st.sampled_from([-100, 0]))
    if data.draw(st.booleans()):
        target[0] = ignore
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 1.0]))
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))

    def fn(t):
        return engine.cross_entropy(t, target, ignore_index=ignore,
                                    label_smoothing=smoothing, reduction=reduction)

    rtol, atol = tolerances(x.dtype, float(np.abs(x).max()))
    outs = assert_fused_matches_reference(fn, [x], rtol, atol * n)
    assert outs[0].dtype == x.dtype


@settings(deadline=None)
@given(x=matrices(extreme=False), data=st.data())
def test_layer_norm_fused_matches_reference(x, data):
    c = x.shape[1]
    affine = data.draw(st.sampled_from(["both", "weight", "bias", "none"]))
    eps = data.draw(st.sampled_from([1e-5, 1.0]))
    if data.draw(st.booleans()):
        x = x.copy()
        x[0] = 3.25                                      # a constant row: var 0
    rng = np.random.default_rng(1)
    w = rng.standard_normal(c).astype(x.dtype)
    b = rng.standard_normal(c).astype(x.dtype)
    arrays = [x] + ([w] if affine in ("both", "weight") else []) + \
        ([b] if affine in ("both", "bias") else [])

    def fn(t, *p):
        weight = p[0] if affine in ("both", "weight") else None
        bias = p[-1] if affine in ("both", "bias") else None
        return engine.layer_norm(t, c, weight, bias, eps=eps)

    # gradients scale with 1/σ: relative to their size, wide rows sum more terms
    rtol, atol = tolerances(x.dtype, 1.0)
    assert_fused_matches_reference(fn, arrays, rtol * 10, atol * 100)


@st.composite
def attention_case(draw):
    b = draw(st.integers(1, 2))
    h = draw(st.integers(1, 3))
    tq = draw(st.integers(1, 9))
    tk = draw(st.one_of(st.integers(1, 9), st.just(70)))
    d = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, k, v = (rng.standard_normal((b, h, t, d)).astype(dtype) for t in (tq, tk, tk))
    if draw(st.booleans()):
        q = et.strided_copy(q)
    if draw(st.booleans()):
        k = et.strided_copy(k, transposed=True)
    kw = {"is_causal": draw(st.booleans())}
    mask = draw(st.sampled_from(["none", "bool", "float", "padding", "float-inf"]))
    if mask == "bool":
        kw["attn_mask"] = rng.random((tq, tk)) > 0.3
    elif mask == "float":
        kw["attn_mask"] = rng.standard_normal((h, tq, tk)).astype(dtype)
    elif mask == "float-inf":
        m = np.zeros((tq, tk), dtype=dtype)
        m[rng.random((tq, tk)) > 0.6] = -np.inf
        kw["attn_mask"] = m
    elif mask == "padding":
        kw["key_padding_mask"] = rng.random((b, tk)) > 0.6
    if draw(st.booleans()):
        kw["scale"] = 0.3
    return (q, k, v), kw


@settings(deadline=None)
@given(case=attention_case(), need_weights=st.booleans())
def test_attention_fused_matches_reference(case, need_weights):
    (q, k, v), kw = case

    def fn(*t):
        return engine.scaled_dot_product_attention(*t, need_weights=need_weights, **kw)

    rtol, atol = tolerances(q.dtype, 1.0)
    outs = assert_fused_matches_reference(fn, [q, k, v], rtol * 10, atol * 10)
    out = outs[0]
    assert out.dtype == q.dtype and not np.isnan(out.numpy()).any()


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


# ---------------------------------------------------------------- extreme values
def test_softmax_extremes_ninf_masks_and_huge_logits():
    x = np.array([[1e4, -1e4, 0.0, 1e4],
                  [-np.inf, 0.0, -np.inf, 1.0],
                  [-200.0, -201.0, -199.5, -200.0],
                  [-3e38, 3e38, 0.0, 1.0]], dtype=np.float32)
    for fn in (engine.softmax, engine.log_softmax):
        y = fn(leaf(x))
        with engine.use_fused(False), np.errstate(over="ignore"):
            r = fn(leaf(x))
        np.testing.assert_allclose(y.data, r.data, rtol=1e-6, atol=1e-6)
    p = engine.softmax(leaf(x)).data
    assert p[1, 0] == 0 and p[1, 2] == 0 and np.isclose(p[1].sum(), 1)
    np.testing.assert_allclose(p[0], [0.5, 0, 0, 0.5])


def test_softmax_nan_and_all_ninf_rows_propagate_like_reference():
    x = np.array([[np.nan, 1.0, 2.0], [-np.inf] * 3, [0.0, 1.0, 2.0]])
    with np.errstate(invalid="ignore"):
        y = engine.softmax(leaf(x)).data
        with engine.use_fused(False):
            r = engine.softmax(leaf(x)).data
    np.testing.assert_array_equal(np.isnan(y), np.isnan(r))
    assert np.isnan(y[:2]).all() and np.isfinite(y[2]).all()


def test_cross_entropy_huge_logits_and_ignored_rows():
    x = np.array([[1e4, -1e4, 0.0], [-200.0, -200.0, -199.0], [5.0, 5.0, 5.0]])
    t = np.array([1, 2, -100])
    for ls in (0.0, 0.3):
        assert_fused_matches_reference(
            lambda a, ls=ls: engine.cross_entropy(a, t, label_smoothing=ls, reduction="none"),
            [x], rtol=1e-12, atol=1e-9)
    loss = engine.cross_entropy(leaf(x), t, reduction="none").data
    np.testing.assert_allclose(loss, [2e4, np.log(1 + 2 * np.exp(-1.0)), 0.0], rtol=1e-12)


def test_cross_entropy_all_ignored_gives_nan_loss_and_zero_grad():
    for on in (True, False):
        with engine.use_fused(on):
            x = leaf(np.ones((2, 3)))
            loss = engine.cross_entropy(x, np.array([-100, -100]))
            loss.backward()
        assert np.isnan(loss.item())
        np.testing.assert_array_equal(x.grad.data, 0)


def test_layer_norm_constant_rows_and_eps_one():
    x = np.full((3, 5), 7.0)
    x[1] = np.arange(5.0)
    for eps in (1e-5, 1.0):
        out = assert_fused_matches_reference(lambda a, e=eps: engine.layer_norm(a, 5, eps=e), [x],
                                             rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(out[0].data[0], 0.0)
    y = engine.layer_norm(leaf(x), 5, eps=1.0).data[1]
    np.testing.assert_allclose(y, (np.arange(5.0) - 2) / np.sqrt(2.0 + 1.0))


def test_layer_norm_over_several_axes_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    w, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    assert_fused_matches_reference(lambda a, w_, b_: engine.layer_norm(a, (4, 5), w_, b_),
                                   [x, w, b], rtol=1e-10, atol=1e-12)


def test_attention_fully_masked_rows_give_zeros_and_finite_grads():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    mask = np.ones((4, 4), dtype=bool)
    mask[2] = False                                     # query 2 sees no key
    for on in (True, False):
        with engine.use_fused(on):
            ts = [leaf(a) for a in (q, k, v)]
            out, p = engine.scaled_dot_product_attention(*ts, attn_mask=mask,
                                                         need_weights=True)
            (out * out).sum().backward()
        assert np.all(out.data[..., 2, :] == 0) and np.all(p.data[..., 2, :] == 0)
        assert all(np.isfinite(t.grad.data).all() for t in ts)
        np.testing.assert_array_equal(ts[0].grad.data[..., 2, :], 0)
    kpm = np.ones((2, 4), dtype=bool)                    # every key of batch 0 padded
    kpm[1, 0] = False
    out = engine.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v),
                                              key_padding_mask=kpm)
    assert np.all(out.data[0] == 0)
    np.testing.assert_allclose(out.data[1], np.broadcast_to(v[1, :, :1], (3, 4, 5)))


def test_attention_ninf_float_mask_and_causal_rows():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 6, 4)) for _ in range(3))
    m = np.zeros((6, 6))
    m[:, 0] = -np.inf
    out, p = engine.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), attn_mask=m,
                                                 is_causal=True, need_weights=True)
    assert np.all(p.data[0, 0] == 0) and np.all(out.data[0, 0] == 0)  # row 0: key 0 only
    np.testing.assert_allclose(p.data[0, 1:].sum(-1), 1.0)
    assert np.all(np.triu(p.data[0], 1) == 0)


# ---------------------------------------------------------------- gradients, dtypes
def test_gradcheck_float64_through_fused_path():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    t = np.array([1, -100, 5, 0])
    assert engine.cross_entropy(leaf(x), t)._node.impl is cpu
    engine.gradcheck(lambda a: engine.softmax(a), [x])
    engine.gradcheck(lambda a: engine.log_softmax(a, axis=0), [x])
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


def test_attention_dropout_same_mask_for_fused_and_reference_and_seeded():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 5, 4)) for _ in range(3))
    outs = []
    for on in (True, False, True):
        outs.append(run(lambda *t: engine.scaled_dot_product_attention(*t, dropout_p=0.4),
                        [q, k, v], on, seed=7)[:2])
    for out, grads in outs[1:]:
        np.testing.assert_allclose(out[0], outs[0][0][0], rtol=1e-12)
        for g, g0 in zip(grads, outs[0][1]):
            np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-12)
    engine.manual_seed(7)
    _, p = engine.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), need_weights=True,
                                               dropout_p=0.4)
    np.testing.assert_allclose(p.data.sum(-1), 1.0)        # weights before dropout
    engine.manual_seed(7)
    keep = engine.default_generator().random((2, 5, 5), dtype=np.float32) >= 0.4
    np.testing.assert_allclose(outs[0][0][0], (p.data * keep / 0.6) @ v, rtol=1e-12)
    zero = engine.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v), dropout_p=1.0)
    np.testing.assert_array_equal(zero.data, 0)


def test_attention_weights_gradient_flows_with_dropout():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 3, 4)) for _ in range(3))
    for seed in (1, 2):
        res = run(lambda *t: engine.scaled_dot_product_attention(
            *t, dropout_p=0.5, need_weights=True), [q, k, v], True, seed=seed)
        ref = run(lambda *t: engine.scaled_dot_product_attention(
            *t, dropout_p=0.5, need_weights=True), [q, k, v], False, seed=seed)
        for a, b in zip(res[1], ref[1]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_attention_learned_float_mask_gets_gradient():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    bias = rng.standard_normal((3, 1, 5))                  # broadcast over queries
    outs = assert_fused_matches_reference(
        lambda a, b_, c, m: engine.scaled_dot_product_attention(a, b_, c, attn_mask=m),
        [q, k, v, bias], rtol=1e-10, atol=1e-12)
    assert outs[0].shape == (2, 3, 5, 4)


def test_attention_three_axis_inputs_with_padding_mask():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 3, 4))
    k, v = rng.standard_normal((2, 6, 4)), rng.standard_normal((2, 6, 2))
    kpm = np.zeros((2, 6), dtype=bool)
    kpm[0, 4:] = True
    out = assert_fused_matches_reference(
        lambda *t: engine.scaled_dot_product_attention(*t, key_padding_mask=kpm),
        [q, k, v], rtol=1e-10, atol=1e-12)[0]
    s = q[0] @ k[0, :4].T / 2.0
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(out.data[0], p @ v[0, :4], rtol=1e-12)


def test_cross_entropy_unbatched_and_spatial_forms():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3))                       # (N, C, d)
    t = np.array([[0, 3, -100], [2, 2, 1]])
    loss = engine.cross_entropy(leaf(x), t, reduction="none")
    flat = engine.cross_entropy(leaf(x.transpose(0, 2, 1).reshape(6, 4)), t.reshape(6),
                                reduction="none")
    assert loss.shape == (2, 3)
    np.testing.assert_allclose(loss.data.reshape(6), flat.data)
    one = engine.cross_entropy(leaf(x[0, :, 0]), np.array(2))
    assert one.shape == ()
    np.testing.assert_allclose(one.item(), -np.log(np.exp(x[0, 2, 0]) /
                                                   np.exp(x[0, :, 0]).sum()))
    engine.gradcheck(lambda a: engine.cross_entropy(a, t, label_smoothing=0.1), [x])


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


def test_attention_heads_on_the_thread_pool_match_reference_and_restore_blas():
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((2, 4, 64, 16)) for _ in range(3))   # 8 heads of 64²
    kpm = rng.random((2, 64)) > 0.8
    before = threads.get_blas_threads()
    assert_fused_matches_reference(
        lambda *t: engine.scaled_dot_product_attention(*t, is_causal=True,
                                                       key_padding_mask=kpm, dropout_p=0.1),
        [q, k, v], rtol=1e-9, atol=1e-11)
    assert threads.get_blas_threads() == before
    if cpu.numba.get_num_threads() > 1 and before is not None:
        assert threads.pool_started()
