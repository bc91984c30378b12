"""The fused ops (and their reference forms) against PyTorch: values and gradients in
float64 (to ~1e-10) and float32 (to ~1e-5 relative)."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import Tensor

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.torch


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)


def compare(ours, theirs, arrays, dtype, seed=0):
    """Outputs and gradients (random upstream) of ``ours`` (engine) and ``theirs`` (torch)."""
    arrays = [a.astype(dtype) for a in arrays]
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = ours(*xs), theirs(*ts)
    ys = y if isinstance(y, tuple) else (y,)
    yts = yt if isinstance(yt, tuple) else (yt,)
    rng = np.random.default_rng(seed)
    gs = [rng.standard_normal(o.shape).astype(dtype) for o in ys]
    engine.backward(list(ys), [Tensor(g) for g in gs])
    torch.autograd.backward(list(yts), [torch.tensor(g) for g in gs])
    for a, b in zip(ys, yts):
        assert a.dtype == dtype
        np.testing.assert_allclose(a.data, b.detach().numpy(), **tol(dtype))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.data, t.grad.numpy(), **tol(dtype))


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_log_softmax(path, dtype):
    x = np.random.default_rng(0).standard_normal((4, 300)) * 5
    x[1] -= 200
    for ax in (-1, 0):
        compare(lambda a, ax=ax: engine.softmax(a, ax),
                lambda a, ax=ax: torch.softmax(a, ax), [x], dtype)
        compare(lambda a, ax=ax: engine.log_softmax(a, ax),
                lambda a, ax=ax: torch.log_softmax(a, ax), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_cross_entropy(path, dtype, reduction, smoothing):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 10)) * 3
    t = np.array([0, 9, -100, 3, 3, 7])
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    compare(lambda a: engine.cross_entropy(a, t, **kw),
            lambda a: F.cross_entropy(a, torch.tensor(t), **kw), [x], dtype)
    t2 = np.array([[0, 2], [1, 1]])                  # (N, C, d) logits, other ignore_index
    compare(lambda a: engine.cross_entropy(a, t2, ignore_index=1, **kw),
            lambda a: F.cross_entropy(a, torch.tensor(t2), ignore_index=1, **kw),
            [rng.standard_normal((2, 3, 2))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(path, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 64)) * 2 + 1
    w, b = rng.standard_normal(64), rng.standard_normal(64)
    compare(lambda a, w_, b_: engine.layer_norm(a, 64, w_, b_),
            lambda a, w_, b_: F.layer_norm(a, (64,), w_, b_), [x, w, b], dtype)
    compare(lambda a: engine.layer_norm(a, (4, 64), eps=1.0),
            lambda a: F.layer_norm(a, (4, 64), eps=1.0), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float", "causal+bool"])
def test_scaled_dot_product_attention(path, dtype, mask):
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((2, 3, 5, 8)), rng.standard_normal((2, 3, 7, 8)), \
        rng.standard_normal((2, 3, 7, 4))
    bool_mask = rng.random((5, 7)) > 0.3
    bool_mask[:, 0] = True
    kw, kwt = {}, {}
    if "causal" in mask:
        kw["is_causal"] = kwt["is_causal"] = True
    if "bool" in mask:
        kw["attn_mask"] = bool_mask
        kwt["attn_mask"] = torch.tensor(bool_mask)
    if mask == "causal+bool":        # PyTorch takes one or the other: give it the product
        del kwt["is_causal"]
        kwt["attn_mask"] = torch.tensor(bool_mask & np.tri(5, 7, dtype=bool))
    if mask == "float":
        m = rng.standard_normal((3, 5, 7))
        compare(lambda a, b, c, m_: engine.scaled_dot_product_attention(a, b, c, attn_mask=m_),
                lambda a, b, c, m_: F.scaled_dot_product_attention(a, b, c, attn_mask=m_),
                [q, k, v, m], dtype)
        return
    compare(lambda *a: engine.scaled_dot_product_attention(*a, scale=0.4, **kw),
            lambda *a: F.scaled_dot_product_attention(*a, scale=0.4, **kwt), [q, k, v], dtype)


def test_key_padding_mask_matches_torch_multihead_convention(path):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 2, 4, 6)) for _ in range(3))
    kpm = np.array([[False, False, False, True], [False, True, True, True]])
    allowed = torch.tensor(~kpm)[:, None, None, :]
    compare(lambda *a: engine.scaled_dot_product_attention(*a, key_padding_mask=kpm),
            lambda *a: F.scaled_dot_product_attention(*a, attn_mask=allowed), [q, k, v],
            np.float64)
