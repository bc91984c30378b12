"""Gradient clipping against torch.nn.utils, and without touching shared gradient arrays."""

import math

import numpy as np
import pytest

import engine
import optim


def _params(seed=0, dtype=np.float64, scale=1.0):
    r = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 3)]
    ps = [engine.tensor(r.standard_normal(s).astype(dtype), requires_grad=True)
          for s in shapes]
    grads = [r.standard_normal(s).astype(dtype) * scale for s in shapes]
    for p, g in zip(ps, grads):
        p.grad = engine.tensor(g)
    return ps, grads


def test_clip_grad_norm_formula():
    ps, grads = _params()
    old = [p.grad.data for p in ps]
    total = optim.clip_grad_norm_(ps, max_norm=1.0)
    expected = math.sqrt(sum((g ** 2).sum() for g in grads))
    assert isinstance(total, engine.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.item(), expected, rtol=1e-14)
    coef = 1.0 / (expected + 1e-6)
    for p, g, o in zip(ps, grads, old):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-14)
        np.testing.assert_array_equal(o, g)          # the old array is untouched
    new_norm = math.sqrt(sum((p.grad.numpy() ** 2).sum() for p in ps))
    assert new_norm == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone():
    ps, grads = _params(scale=1e-3)
    optim.clip_grad_norm_(ps, max_norm=10.0)
    for p, g in zip(ps, grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_clip_grad_norm_keeps_float32_and_skips_missing_grads():
    ps, _ = _params(dtype=np.float32, scale=10.0)
    ps.append(engine.tensor([1.0], requires_grad=True))     # no gradient
    total = optim.clip_grad_norm_(ps, max_norm=0.5)
    assert total.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in ps[:3]) and ps[3].grad is None
    assert optim.clip_grad_norm_([ps[3]], 1.0).item() == 0.0


def test_clip_grad_norm_nonfinite():
    ps, _ = _params()
    ps[1].grad = engine.tensor([1.0, np.inf, 0.0, 2.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is "
                                           "non-finite"):
        optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert math.isinf(optim.clip_grad_norm_(ps, 1.0).item())


def test_clip_grad_value():
    ps, grads = _params(scale=3.0)
    old = [p.grad.data for p in ps]
    assert optim.clip_grad_value_(ps, 1.5) is None
    for p, g, o in zip(ps, grads, old):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -1.5, 1.5))
        np.testing.assert_array_equal(o, g)


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ps, grads = _params(seed=4)
    tps = []
    for g in grads:
        t = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.tensor(g)
        tps.append(t)
    total = optim.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), ref.item(), rtol=1e-13)
    for p, t in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-13)


@pytest.mark.torch
def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    ps, grads = _params(seed=5, scale=2.0)
    tps = []
    for g in grads:
        t = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.tensor(g)
        tps.append(t)
    optim.clip_grad_value_(ps, 0.7)
    torch.nn.utils.clip_grad_value_(tps, 0.7)
    for p, t in zip(ps, tps):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


def test_clip_on_every_device(device):
    ps, grads = _params(seed=6)
    dps = []
    for g in grads:
        p = engine.zeros(g.shape, dtype=np.float64, device=device, requires_grad=True)
        p.grad = engine.tensor(g).to(device)
        dps.append(p)
    total = optim.clip_grad_norm_(dps, 0.3)
    ref = optim.clip_grad_norm_(ps, 0.3)
    assert total.device == dps[0].device
    np.testing.assert_allclose(total.item(), ref.item(), rtol=1e-13)
    for p, q in zip(dps, ps):
        assert p.grad.device == p.device
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-13)
