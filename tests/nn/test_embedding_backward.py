"""The embedding's gradient as one Numba pass (engine.kernels.cpu_embedding): against the
scatter-add reference, a NumPy loop and PyTorch, with padding, repeated indices,
frequency scaling and max_norm; which route serves which case."""

import numpy as np
import pytest

import engine
import nn
import nn.functional as F
from engine import Tensor
from engine.kernels import cpu as cpu_kernels
from engine.kernels import cpu_embedding


def _numpy_grad(idx, gy, num, padding_idx=None, scale=False):
    """gW[r] = Σ_{p: idx[p]=r} gy[p] (/ count(r)), padding row 0, by a plain loop."""
    flat = idx.reshape(-1)
    g = gy.reshape(flat.size, gy.shape[-1]).astype(np.float64)
    counts = np.bincount(flat, minlength=num)
    gW = np.zeros((num, g.shape[1]))
    for p, r in enumerate(flat):
        if r != padding_idx:
            gW[r] += g[p] / counts[r] if scale else g[p]
    return gW.reshape((num,) + gy.shape[idx.ndim:])


def _grad(idx, W, gy, fused, **kw):
    w = Tensor._make(W.copy(), None, 0).requires_grad_()
    with engine.use_fused(fused):
        y = F.embedding(engine.tensor(idx), w, **kw)
        y.backward(Tensor._make(gy, None, 0))
    return y, w.grad.numpy()


CASES = [
    dict(idx_shape=(7,), num=5),                              # every row repeated
    dict(idx_shape=(4, 6), num=50, padding_idx=3),
    dict(idx_shape=(2, 3, 4), num=4, scale_grad_by_freq=True),
    dict(idx_shape=(5, 9), num=11, padding_idx=0, scale_grad_by_freq=True),
    dict(idx_shape=(0, 3), num=6),                            # no positions at all
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
def test_kernel_matches_loop_and_scatter_reference(case, dtype, index_dtype):
    case = dict(case)
    shape, num = case.pop("idx_shape"), case.pop("num")
    rng = np.random.default_rng(num)
    idx = rng.integers(0, num, shape).astype(index_dtype)
    W = rng.standard_normal((num, 6)).astype(dtype)
    gy = rng.standard_normal(shape + (6,)).astype(dtype)
    want = _numpy_grad(idx, gy, num, case.get("padding_idx"),
                       case.get("scale_grad_by_freq", False))
    _, fused = _grad(idx, W, gy, True, **case)
    _, reference = _grad(idx, W, gy, False, **case)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert fused.dtype == dtype and fused.shape == (num, 6)
    np.testing.assert_allclose(fused, want, **tol)
    np.testing.assert_allclose(reference, want, **tol)
    if "padding_idx" in case:
        assert not fused[case["padding_idx"]].any()


def test_the_fused_route_is_the_kernel(monkeypatch):
    calls = []
    kernel = cpu_embedding.embedding_backward
    monkeypatch.setattr(cpu_kernels, "embedding_backward",
                        lambda *a: calls.append(a[1].shape) or kernel(*a))
    idx = np.array([[1, 2, 2]])
    W, gy = np.ones((3, 2)), np.ones((1, 3, 2))
    _, g = _grad(idx, W, gy, True)
    assert calls == [(1, 3)]
    np.testing.assert_array_equal(g, [[0, 0], [1, 1], [2, 2]])
    _grad(idx, W, gy, False)
    assert calls == [(1, 3)]                       # use_fused(False): the scatter-add route


def test_parallel_columns_equal_serial_and_non_contiguous_upstream():
    """A gradient large enough to split its columns among threads, upstream given as a
    transposed view (as a batch-first LSTM's input gradient arrives)."""
    rng = np.random.default_rng(0)
    T, B, D, num = 64, 40, 128, 300
    assert T * B * D >= cpu_embedding.PARALLEL_MIN
    idx = rng.integers(0, num, (B, T))
    gy = rng.standard_normal((T, B, D)).astype(np.float32).swapaxes(0, 1)   # (B, T, D) view
    assert not gy.flags.c_contiguous
    for kw in ({}, {"padding_idx": 7, "scale_grad_by_freq": True}):
        want = _numpy_grad(idx, gy, num, kw.get("padding_idx"),
                           kw.get("scale_grad_by_freq", False))
        got = cpu_embedding.embedding_backward(np, idx, gy, num, kw.get("padding_idx"),
                                               kw.get("scale_grad_by_freq", False))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gradcheck_through_the_kernel():
    """Repeated indices; a padding row or frequency scaling make the gradient differ from
    the derivative on purpose, so they are checked against the loop above instead."""
    idx = engine.tensor(np.array([[0, 3, 3], [1, 0, 3]]))
    W = engine.tensor(np.random.default_rng(1).standard_normal((4, 3)), dtype=np.float64,
                      requires_grad=True)
    engine.gradcheck(lambda w: F.embedding(idx, w), [W])


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw", [{}, {"padding_idx": 2}, {"scale_grad_by_freq": True},
                                {"padding_idx": 0, "scale_grad_by_freq": True},
                                {"max_norm": 1.0}, {"max_norm": 0.5, "padding_idx": 1}])
def test_gradient_matches_torch(dtype, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 9, (6, 7))
    idx[0, :4] = 2                                              # a row seen many times
    weight = rng.standard_normal((9, 5))
    gy = rng.standard_normal((6, 7, 5))
    ours = nn.Embedding(9, 5, dtype=dtype, **kw)
    ours.weight.data[...] = weight.astype(dtype)
    theirs = torch.nn.Embedding(9, 5, **kw).to(torch.float64 if dtype == np.float64
                                                else torch.float32)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
    y = ours(engine.tensor(idx))
    y.backward(engine.tensor(gy.astype(dtype)))
    ty = theirs(torch.tensor(idx))
    ty.backward(torch.tensor(gy, dtype=ty.dtype))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(ours.weight.numpy(), theirs.weight.detach().numpy(), **tol)
