"""Numerics at the edges against PyTorch: half precision, std at a constant, empty axes."""

from __future__ import annotations

import numpy as np
import pytest

import engine
import losses
from engine import Tensor

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.torch


def compare(ours, theirs, arrays, rtol, atol, seed=0):
    """Outputs and gradients (random upstream in the output's dtype) of ``ours``
    (engine) and ``theirs`` (torch); returns our outputs."""
    xs = [Tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    y, yt = ours(*xs), theirs(*ts)
    g = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    y.backward(Tensor(g))
    yt.backward(torch.tensor(g))
    assert y.dtype == yt.detach().numpy().dtype
    np.testing.assert_allclose(y.data.astype(np.float64), yt.detach().numpy(), rtol=rtol,
                               atol=atol)
    for x, t in zip(xs, ts):
        if t.grad is not None:
            assert x.grad.dtype == x.dtype
            np.testing.assert_allclose(x.grad.data.astype(np.float64), t.grad.numpy(),
                                       rtol=rtol, atol=atol)
    return y


# ---------------------------------------------------------------- float16
HALF_TOL = dict(rtol=2e-3, atol=2e-3)


def _half(shape, scale, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float16)


@pytest.mark.parametrize("scale", [1.0, 500.0, 5000.0])
def test_float16_softmax_and_log_softmax(path, scale):
    x = _half((5, 40), scale)
    for axis in (-1, 0):
        compare(lambda a, ax=axis: engine.softmax(a, ax),
                lambda a, ax=axis: torch.softmax(a, ax), [x], **HALF_TOL)
        compare(lambda a, ax=axis: engine.log_softmax(a, ax),
                lambda a, ax=axis: torch.log_softmax(a, ax), [x], rtol=2e-3,
                atol=2e-3 * scale)


@pytest.mark.parametrize("scale", [1.0, 500.0, 20000.0])
def test_float16_layer_norm(path, scale):
    x = _half((6, 32), scale)
    w, b = _half(32, 1.0, 1), _half(32, 1.0, 2)
    y = compare(lambda a, w_, b_: engine.layer_norm(a, 32, w_, b_),
                lambda a, w_, b_: F.layer_norm(a, (32,), w_, b_), [x, w, b], rtol=5e-3,
                atol=5e-3)
    assert np.abs(y.data).max() > 1.0                  # normalized, not collapsed to zero


@pytest.mark.parametrize("scale", [1.0, 500.0])     # PyTorch's half sum overflows beyond
def test_float16_cross_entropy(path, scale):
    x = _half((6, 9), scale)
    t = np.array([0, 8, 3, -100, 4, 4])
    for kw in ({}, {"label_smoothing": 0.1}, {"reduction": "none"}):
        compare(lambda a, kw=kw: losses.cross_entropy(a, t, **kw),
                lambda a, kw=kw: F.cross_entropy(a, torch.tensor(t), **kw), [x], rtol=2e-3,
                atol=2e-3 * scale)
    w = np.linspace(0.5, 2.0, 9).astype(np.float16)
    compare(lambda a: losses.cross_entropy(a, t, weight=w),
            lambda a: F.cross_entropy(a, torch.tensor(t), weight=torch.tensor(w)), [x],
            rtol=2e-3, atol=2e-3 * scale)


# ---------------------------------------------------------------- std at a constant
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_std_gradient_at_and_away_from_a_constant(dtype):
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(dtype)
    x[2] = 0.75
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    compare(lambda a: a.std(dim=1), lambda a: a.std(dim=1), [x], **tol)
    compare(lambda a: a.std(dim=0, keepdim=True, correction=0),
            lambda a: a.std(dim=0, keepdim=True, correction=0), [x], **tol)
    compare(lambda a: a[2:3].std(), lambda a: a[2:3].std(), [x], **tol)


# ---------------------------------------------------------------- empty axes
def test_empty_axes_like_pytorch(path):
    rng = np.random.default_rng(2)

    def a(*shape):
        return rng.standard_normal(shape)

    tol = dict(rtol=1e-10, atol=1e-12)
    compare(lambda x: engine.softmax(x), lambda x: torch.softmax(x, -1), [a(3, 0)], **tol)
    compare(lambda x: engine.log_softmax(x, 0), lambda x: torch.log_softmax(x, 0), [a(0, 2)],
            **tol)
    compare(lambda x, w, b: engine.layer_norm(x, 0, w, b),
            lambda x, w, b: F.layer_norm(x, (0,), w, b), [a(3, 0), a(0), a(0)], **tol)
    sdpa = F.scaled_dot_product_attention
    for shapes in [((2, 3, 4), (2, 0, 4), (2, 0, 5)), ((2, 0, 4), (2, 3, 4), (2, 3, 5)),
                   ((2, 3, 0), (2, 3, 0), (2, 3, 5)), ((2, 3, 4), (2, 3, 4), (2, 3, 0))]:
        compare(engine.scaled_dot_product_attention, sdpa, [a(*s) for s in shapes], **tol)
    bias = a(3, 3)
    compare(lambda q, k, v: engine.scaled_dot_product_attention(q, k, v, attn_mask=bias),
            lambda q, k, v: sdpa(q, k, v, attn_mask=torch.tensor(bias)),
            [a(2, 3, 0), a(2, 3, 0), a(2, 3, 5)], **tol)
    for reduction in ("mean", "sum", "none"):
        compare(lambda x, r=reduction: engine.cross_entropy(x, np.zeros(0, np.int64),
                                                            reduction=r),
                lambda x, r=reduction: F.cross_entropy(x, torch.zeros(0, dtype=torch.long),
                                                       reduction=r), [a(0, 3)], **tol)
