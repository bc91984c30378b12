"""Numerics at the edges: NaN through the fused attention, half precision, the gradient of
std at a constant, and reductions of fused ops over empty axes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import losses

sys.path.insert(0, str(Path(__file__).parent))
from fused_paths import leaf, run  # noqa: E402

NAN = float("nan")


# ---------------------------------------------------------------- attention and NaN
def _qkv(dtype, shape=(2, 2, 4, 3), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(3)]


def _attention(causal, mask, need_weights=True):
    def fn(*t):
        kw = {"attn_mask": t[3]} if len(t) > 3 else {}
        if mask is not None:
            kw["attn_mask"] = mask
        return engine.scaled_dot_product_attention(*t[:3], is_causal=causal,
                                                   need_weights=need_weights, **kw)
    return fn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("where", ["q", "k", "v", "float_mask"])
def test_attention_nan_propagates_like_the_reference(where, causal, dtype):
    """A NaN in q, k, v or a float mask gives NaN on the fused path exactly where the
    literal formula softmax(QKᵀ/√d + M)V gives NaN, in the output and the weights. The
    gradients agree too, except under a causal mask: the CPU kernel's backward never
    multiplies a query with the keys it cannot see, so a NaN reaches fewer gradient
    entries there than through the reference's full products (0 · NaN = NaN)."""
    q, k, v = _qkv(dtype)
    arrays = [q, k, v]
    expected = np.zeros((2, 2, 4), dtype=bool)           # rows of the output that are NaN
    if where == "q":
        q[0, 1, 2] = NAN                                 # one query row
        expected[0, 1, 2] = True
    elif where == "k":
        k[1, 0, 1, 2] = NAN                              # key 1 of head (1, 0)
        expected[1, 0] = True
        expected[1, 0, 0] = not causal                   # query 0 sees only key 0
    elif where == "v":
        v[0, 0, 3, 1] = NAN                              # the value of key 3 of head (0, 0)
        expected[0, 0] = True                            # through P V, 0 · NaN = NaN
    else:
        arrays.append(np.zeros((4, 4), dtype=dtype))
        arrays[3][2, 1] = NAN                            # score (2, 1) of every head
        expected[..., 2] = True
    fn = _attention(causal, None)
    out_f, g_f, _ = run(fn, arrays, True)
    out_r, g_r, _ = run(fn, arrays, False)
    for a, b in zip(out_f, out_r):                       # the output and the weights
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)   # NaN where the other is
    np.testing.assert_array_equal(np.isnan(out_f[0]).any(axis=-1), expected)
    assert np.isfinite(out_f[0][~expected]).all()
    if where != "v":
        np.testing.assert_array_equal(np.isnan(out_f[1]).all(axis=-1), expected)
    for a, b in zip(g_f, g_r):
        if causal:
            assert not (np.isnan(a) & ~np.isnan(b)).any()
            np.testing.assert_allclose(a[~np.isnan(b)], b[~np.isnan(b)], rtol=1e-4,
                                       atol=1e-5)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_attention_fully_masked_rows_stay_zero_with_nan_at_masked_entries(fused):
    """Masked entries never take part: a NaN only they see leaves the row's output, and
    a fully masked row gives 0 even when its scores are NaN (PyTorch gives NaN there)."""
    q, k, v = _qkv(np.float64)
    q[0, 0, 1] = NAN                              # query 1 of head (0, 0): fully masked
    k[0, 1, 3] = NAN                              # key 3 of head (0, 1): masked everywhere
    keep = np.ones((4, 4), dtype=bool)
    keep[1] = False
    keep[:, 3] = False
    with engine.use_fused(fused):
        out, p = engine.scaled_dot_product_attention(leaf(q), leaf(k), leaf(v),
                                                     attn_mask=keep, need_weights=True)
    np.testing.assert_array_equal(out.data[:, :, 1], 0.0)
    np.testing.assert_array_equal(p.data[:, :, 1], 0.0)
    assert np.isfinite(out.data).all()


@pytest.mark.parametrize("fused", [True, False])
def test_detect_anomaly_names_attention_when_a_query_is_nan(fused):
    q, k, v = _qkv(np.float32)
    q[1, 0, 2] = NAN
    with engine.use_fused(fused), engine.detect_anomaly():
        out = engine.scaled_dot_product_attention(leaf(q), engine.Tensor(k),
                                                  engine.Tensor(v))
        assert np.isnan(out.data[1, 0, 2]).all()
        with pytest.raises(FloatingPointError, match="Attention backward produced NaN"):
            out.sum().backward()


# ---------------------------------------------------------------- float16
def _half_cases():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 6)) * 600).astype(np.float16)       # |x| up to ~2000
    w = rng.standard_normal(6).astype(np.float16)
    b = rng.standard_normal(6).astype(np.float16)
    t = np.array([0, 5, 2, 3])
    return {
        "softmax": (lambda a: engine.softmax(a), [x]),
        "log_softmax": (lambda a: engine.log_softmax(a, axis=0), [x]),
        "layer_norm": (lambda a, w_, b_: engine.layer_norm(a, 6, w_, b_), [x, w, b]),
        "cross_entropy": (lambda a: engine.cross_entropy(a, t, label_smoothing=0.1), [x]),
    }


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", list(_half_cases()))
def test_float16_fused_ops_compute_in_float32(name, fused):
    """Half-precision inputs of any magnitude: the op runs in float32 and rounds its
    result (and the gradients) to float16, so they equal the float32 computation's."""
    fn, arrays = _half_cases()[name]
    gy_rng = np.random.default_rng(4)
    results = {}
    for dtype in (np.float16, np.float32):
        with engine.use_fused(fused):
            ins = [leaf(a.astype(dtype)) for a in arrays]
            y = fn(*ins)
            y.backward(engine.Tensor(gy_rng.standard_normal(y.shape).astype(dtype)
                                     if y.ndim else np.array(1.0, dtype)))
        results[dtype] = (y, [t.grad for t in ins])
        gy_rng = np.random.default_rng(4)
    (y16, g16), (y32, g32) = results[np.float16], results[np.float32]
    assert y16.dtype == np.float16 and all(g.dtype == np.float16 for g in g16)
    assert np.isfinite(y16.data).all() and all(np.isfinite(g.data).all() for g in g16)
    np.testing.assert_array_equal(y16.data, y32.data.astype(np.float16))
    for a, b in zip(g16, g32):
        np.testing.assert_allclose(a.data.astype(np.float32), b.data, rtol=2e-3,
                                   atol=2e-3 * np.abs(b.data).max())


def test_float16_layer_norm_of_large_values_is_not_zero():
    x = np.array([[400.0, -400.0, 0.0], [1000.0, 3000.0, 2000.0]], dtype=np.float16)
    for fused in (True, False):
        with engine.use_fused(fused):
            y = engine.layer_norm(leaf(x), 3)
        assert y.dtype == np.float16
        np.testing.assert_allclose(y.data, [[1.2247, -1.2247, 0.0], [-1.2247, 1.2247, 0.0]],
                                   rtol=1e-3)


# ---------------------------------------------------------------- std and var at a constant
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["all", "axis", "single"])
def test_std_and_var_of_a_constant_have_gradient_zero(case, dtype):
    """std = √var has the derivative (x - x̄) / ((n - ddof) std), 0/0 at a constant:
    defined as 0 (PyTorch's choice), so no NaN reaches the gradient."""
    x = np.full((3, 4), 2.5, dtype=dtype)
    x[1] = np.arange(4, dtype=dtype)                       # one row that varies
    kw = {"all": dict(correction=1), "axis": dict(dim=1, correction=1),
          "single": dict(dim=1, correction=0)}[case]
    if case == "single":
        x = x[:, :1].copy()                                # one element per row, ddof 0
    if case == "all":
        x[:] = 2.5
    for method in ("std", "var"):
        t = leaf(x)
        with engine.detect_anomaly():
            y = getattr(t, method)(**kw)
            y.backward(engine.Tensor(np.linspace(1.0, 2.0, y.numel()).reshape(y.shape)
                                     .astype(dtype)))
        assert t.grad.dtype == dtype and np.isfinite(t.grad.data).all()
        constant_rows = np.ptp(x, axis=1) == 0 if case != "all" else np.ones(3, bool)
        np.testing.assert_array_equal(t.grad.data[constant_rows], 0.0)


def test_std_gradient_and_second_derivative_where_it_varies():
    x = np.random.default_rng(5).standard_normal((3, 5))
    assert engine.gradcheck(lambda t: t.std(axis=1, ddof=1), [x])
    assert engine.gradcheck(lambda t: t.std(), [x])
    assert engine.gradgradcheck(lambda t: t.std(axis=0, keepdims=True), [x])


# ---------------------------------------------------------------- empty axes
def _empty_cases():
    rng = np.random.default_rng(6)

    def a(*shape):
        return rng.standard_normal(shape)

    v = a(2, 3, 2)
    return {   # name: (fn, inputs, expected output)
        "softmax": (lambda x: engine.softmax(x), [a(3, 0)], np.zeros((3, 0))),
        "log_softmax_axis0": (lambda x: engine.log_softmax(x, axis=0), [a(0, 4)],
                              np.zeros((0, 4))),
        "layer_norm": (lambda x, w, b: engine.layer_norm(x, 0, w, b), [a(3, 0), a(0), a(0)],
                       np.zeros((3, 0))),
        "layer_norm_two_axes": (lambda x: engine.layer_norm(x, (2, 0)), [a(3, 2, 0)],
                                np.zeros((3, 2, 0))),
        "attention_no_keys": (lambda q, k, v: engine.scaled_dot_product_attention(q, k, v),
                              [a(2, 3, 4), a(2, 0, 4), a(2, 0, 5)], np.zeros((2, 3, 5))),
        "attention_no_keys_causal": (
            lambda q, k, v: engine.scaled_dot_product_attention(q, k, v, is_causal=True),
            [a(2, 3, 4), a(2, 0, 4), a(2, 0, 5)], np.zeros((2, 3, 5))),
        "attention_no_queries": (lambda q, k, v: engine.scaled_dot_product_attention(q, k, v),
                                 [a(2, 0, 4), a(2, 3, 4), a(2, 3, 5)], np.zeros((2, 0, 5))),
        "attention_no_features": (    # empty dot products: scores 0, the mean of the values
            lambda q, k, v: engine.scaled_dot_product_attention(q, k, v),
            [a(2, 3, 0), a(2, 3, 0), v], np.broadcast_to(v.mean(axis=1, keepdims=True),
                                                         (2, 3, 2))),
        "cross_entropy_no_rows": (lambda x: engine.cross_entropy(x, np.zeros(0, np.int64),
                                                                 reduction="sum"),
                                  [a(0, 3)], np.zeros(())),
    }


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", list(_empty_cases()))
def test_fused_ops_over_empty_axes_give_pytorchs_result(name, fused):
    fn, arrays, expected = _empty_cases()[name]
    with engine.use_fused(fused):
        ins = [leaf(x) for x in arrays]
        y = fn(*ins)
        y.backward(engine.Tensor(np.ones(y.shape)))
    assert y.shape == expected.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    for t in ins:
        assert t.grad.shape == t.shape and np.isfinite(t.grad.data).all()


@pytest.mark.parametrize("fused", [True, False])
def test_cross_entropy_over_no_classes_names_the_op_and_shape(fused):
    x = leaf(np.zeros((2, 0)))
    with engine.use_fused(fused):
        for fn in (lambda: engine.cross_entropy(x, np.full(2, -100)),
                   lambda: engine.cross_entropy(x, np.zeros(2, np.int64)),
                   lambda: losses.cross_entropy(x, np.zeros(2, np.int64),
                                                weight=np.zeros(0))):
            with pytest.raises(ValueError, match=r"cross_entropy: .*\(2, 0\).* no classes"):
                fn()
    with pytest.raises(ValueError, match=r"nll_loss: .*\(2, 0\).* no classes"):
        losses.nll_loss(x, np.zeros(2, np.int64))
