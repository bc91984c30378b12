"""Fused layer norm and attention equal their reference formulas (forward and backward
with random upstream gradients): drawn shapes, masks, constant rows, fully masked rows,
dropout, learned masks, and the attention heads on the thread pool."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from engine import testing as et
from engine import threads
from engine.kernels import cpu

sys.path.insert(0, str(Path(__file__).parent))
from fused_paths import (  # noqa: E402
    assert_fused_matches_reference, leaf, matrices, run, tolerances,
)


# ---------------------------------------------------------------- layer norm
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


def test_layer_norm_bias_without_weight_over_several_axes():
    """The gradient of a bias alone comes back in the normalized shape on every path."""
    rng = np.random.default_rng(5)
    x, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((4, 5))
    outs = assert_fused_matches_reference(
        lambda a, b_: engine.layer_norm(a, (4, 5), None, b_), [x, b], rtol=1e-10, atol=1e-12)
    assert outs[0].shape == x.shape


# ---------------------------------------------------------------- attention
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
