"""Losses without PyTorch: gradchecks in float64, the worked examples, dtypes, the fused
dispatch, errors."""

import doctest
import re

import numpy as np
import pytest

import engine
import losses
from losses import classification, regression

REDUCTIONS = ["mean", "sum", "none"]


def _t(a, grad=False):
    return engine.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- worked examples
def test_docstring_examples_run():
    for module in (losses, regression, classification, losses.metrics):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_bce_worked_value_from_the_articles():
    # y = 1, ŷ = 0.9  ->  -log 0.9 = 0.105
    loss = losses.binary_cross_entropy(engine.tensor([0.9]), engine.tensor([1.0]))
    assert round(loss.item(), 3) == 0.105
    np.testing.assert_allclose(loss.item(), -np.log(0.9), rtol=1e-6)


def test_half_sum_of_squares_is_half_the_sum_reduction():
    r = _rng(1)
    y_hat, y = r.standard_normal(7), r.standard_normal(7)
    j = 0.5 * losses.mse_loss(_t(y_hat), _t(y), reduction="sum")
    np.testing.assert_allclose(j.item(), 0.5 * np.sum((y - y_hat) ** 2), rtol=1e-14)
    np.testing.assert_allclose(losses.mse_loss(_t(y_hat), _t(y)).item(),
                               np.mean((y - y_hat) ** 2), rtol=1e-14)


def test_classic_gradient_of_the_half_sum_has_minus_sign():
    # J = ½ Σ (yᵢ - (θ0 + θ1 xᵢ))²:  ∂J/∂θ0 = -Σ (yᵢ - ŷᵢ),  ∂J/∂θ1 = -Σ (yᵢ - ŷᵢ) xᵢ
    r = _rng(2)
    x, y = r.standard_normal(6), r.standard_normal(6)
    th0, th1 = _t(0.3, True), _t(-0.7, True)
    y_hat = th0 + th1 * _t(x)
    (0.5 * losses.mse_loss(y_hat, _t(y), reduction="sum")).backward()
    resid = y - (0.3 - 0.7 * x)
    np.testing.assert_allclose(th0.grad.item(), -resid.sum(), rtol=1e-12)
    np.testing.assert_allclose(th1.grad.item(), -(resid * x).sum(), rtol=1e-12)


def test_softmax_cross_entropy_gradient_is_p_minus_y():
    x = _rng(3).standard_normal((4, 5))
    t = np.array([0, 3, 1, 4])
    xt = _t(x, True)
    losses.cross_entropy(xt, t, reduction="sum").backward()
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(xt.grad.numpy(), p - np.eye(5)[t], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- gradchecks
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("fn, kw", [
    (losses.mse_loss, {}), (losses.l1_loss, {}),
    (losses.smooth_l1_loss, {"beta": 0.5}), (losses.huber_loss, {"delta": 0.5}),
])
def test_gradcheck_regression(fn, kw, reduction):
    r = _rng(4)
    x = r.standard_normal((3, 4))
    y = x + r.choice([-1.0, 1.0], size=(3, 4)) * r.uniform(0.1, 2.0, size=(3, 4))
    engine.gradcheck(lambda a, b: fn(a, b, reduction=reduction, **kw),
                     [_t(x, True), _t(y, True)])


@pytest.mark.parametrize("shape", [(5, 4), (4,), (2, 3, 2, 2)])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_cross_entropy_indices(shape, use_weight, smoothing, reduction):
    r = _rng(5)
    x = r.standard_normal(shape)
    c = shape[0] if len(shape) == 1 else shape[1]
    t = r.integers(0, c, size=() if len(shape) == 1 else (shape[0],) + shape[2:])
    if t.ndim:
        t.reshape(-1)[0] = -100
    w = r.uniform(0.5, 2.0, size=c) if use_weight else None
    engine.gradcheck(lambda a: losses.cross_entropy(a, t, weight=w, reduction=reduction,
                                                    label_smoothing=smoothing), [_t(x, True)])


@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_cross_entropy_probabilities(use_weight, reduction):
    r = _rng(6)
    x = r.standard_normal((3, 4, 2))
    y = r.uniform(size=(3, 4, 2))
    y /= y.sum(axis=1, keepdims=True)
    w = r.uniform(0.5, 2.0, size=4) if use_weight else None
    engine.gradcheck(lambda a, b: losses.cross_entropy(a, b, weight=w, reduction=reduction,
                                                       label_smoothing=0.1),
                     [_t(x, True), _t(y, True)])


@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_nll_loss(use_weight, reduction):
    r = _rng(7)
    x = r.standard_normal((6, 3))
    t = np.array([0, 2, 1, -100, 2, 2])
    w = r.uniform(0.5, 2.0, size=3) if use_weight else None
    engine.gradcheck(lambda a: losses.nll_loss(a, t, weight=w, reduction=reduction),
                     [_t(x, True)])


@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_binary_cross_entropy(use_weight, reduction):
    r = _rng(8)
    x, y = r.uniform(0.1, 0.9, size=(4, 3)), r.uniform(size=(4, 3))
    w = r.uniform(0.5, 2.0, size=3) if use_weight else None
    engine.gradcheck(lambda a, b: losses.binary_cross_entropy(a, b, weight=w,
                                                              reduction=reduction),
                     [_t(x, True), _t(y, True)])


def test_gradgradcheck_binary_cross_entropy():
    r = _rng(9)
    x, y = r.uniform(0.1, 0.9, size=5), r.uniform(size=5)
    engine.gradgradcheck(lambda a, b: losses.binary_cross_entropy(a, b, reduction="sum"),
                         [_t(x, True), _t(y, True)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_bce_with_logits_all_arguments(reduction):
    r = _rng(10)
    x = r.standard_normal((4, 3)) * 3
    y, w, pw = r.uniform(size=(4, 3)), r.uniform(0.5, 2, size=(4, 3)), r.uniform(1, 3, 3)
    engine.gradcheck(
        lambda a, b, c, d: losses.binary_cross_entropy_with_logits(
            a, b, weight=c, pos_weight=d, reduction=reduction),
        [_t(x, True), _t(y, True), _t(w, True), _t(pw, True)])


# ---------------------------------------------------------------- dtypes and dispatch
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                                  "binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_float32_stays_float32(name):
    r = _rng(11)
    x = engine.tensor(r.uniform(0.1, 0.9, size=(3, 2)).astype(np.float32), requires_grad=True)
    y = r.uniform(size=(3, 2)).astype(np.float64)   # a float64 target must not upcast
    out = getattr(losses, name)(x, engine.tensor(y.astype(np.float32)))
    assert out.dtype == np.float32
    out.backward()
    assert x.grad.dtype == np.float32
    if name.startswith("binary"):
        assert getattr(losses, name)(x, y).dtype == np.float32


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_float32_class_losses_with_float64_weight_stay_float32(fn):
    x = engine.tensor(_rng(12).standard_normal((4, 3)).astype(np.float32))
    out = getattr(losses, fn)(x, np.array([0, 1, 2, 1]), weight=np.array([1.0, 2.0, 0.5]))
    assert out.dtype == np.float32


def test_cross_entropy_common_case_calls_the_fused_kernel(monkeypatch):
    calls = []
    real = engine.cross_entropy

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(classification.engine, "cross_entropy", spy)
    x = _t(_rng(13).standard_normal((5, 3)))
    t = np.array([0, 2, 1, 1, -1])
    fused = losses.cross_entropy(x, t, ignore_index=-1, label_smoothing=0.1)
    assert calls == [dict(ignore_index=-1, label_smoothing=0.1, reduction="mean")]
    composed = losses.cross_entropy(x, t, weight=np.ones(3), ignore_index=-1,
                                    label_smoothing=0.1)
    assert len(calls) == 1                   # a class weight takes the composed path
    np.testing.assert_allclose(fused.item(), composed.item(), rtol=1e-13)
    with engine.use_fused(False):
        np.testing.assert_allclose(losses.cross_entropy(x, t, ignore_index=-1,
                                                        label_smoothing=0.1).item(),
                                   fused.item(), rtol=1e-13)


def test_nll_of_log_softmax_is_cross_entropy():
    r = _rng(14)
    x = _t(r.standard_normal((6, 4)))
    t = r.integers(0, 4, size=6)
    np.testing.assert_allclose(
        losses.nll_loss(engine.log_softmax(x, dim=1), t, reduction="none").numpy(),
        losses.cross_entropy(x, t, reduction="none").numpy(), rtol=1e-13)


# ---------------------------------------------------------------- classes
def test_loss_classes_register_weights_as_buffers():
    ce = losses.CrossEntropyLoss(weight=[1.0, 2.0, 3.0], label_smoothing=0.1)
    assert list(ce.state_dict()) == ["weight"]
    assert ce.weight.dtype == np.float32
    bce = losses.BCEWithLogitsLoss(pos_weight=[2.0])
    assert list(bce.state_dict()) == ["pos_weight"]
    assert list(losses.MSELoss().state_dict()) == []
    assert "reduction='sum'" in repr(losses.L1Loss(reduction="sum"))


def test_loss_classes_equal_functions():
    r = _rng(15)
    x, y = _t(r.standard_normal((4, 3))), _t(r.standard_normal((4, 3)))
    p, q = _t(r.uniform(0.1, 0.9, (4, 3))), _t(r.uniform(size=(4, 3)))
    t = np.array([0, 2, 1, 2])
    cases = [
        (losses.MSELoss(reduction="sum")(x, y), losses.mse_loss(x, y, reduction="sum")),
        (losses.L1Loss()(x, y), losses.l1_loss(x, y)),
        (losses.SmoothL1Loss(beta=0.4)(x, y), losses.smooth_l1_loss(x, y, beta=0.4)),
        (losses.HuberLoss(delta=0.4)(x, y), losses.huber_loss(x, y, delta=0.4)),
        (losses.CrossEntropyLoss(ignore_index=2)(x, t),
         losses.cross_entropy(x, t, ignore_index=2)),
        (losses.NLLLoss(weight=np.array([1.0, 2.0, 3.0]))(x, t),
         losses.nll_loss(x, t, weight=np.array([1.0, 2.0, 3.0]))),
        (losses.BCELoss()(p, q), losses.binary_cross_entropy(p, q)),
        (losses.BCEWithLogitsLoss(pos_weight=np.array([1.0, 2.0, 3.0]))(x, q),
         losses.binary_cross_entropy_with_logits(x, q, pos_weight=np.array([1.0, 2.0, 3.0]))),
    ]
    for ours, ref in cases:
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-14)


# ---------------------------------------------------------------- errors
def test_invalid_reduction_names_the_loss():
    with pytest.raises(ValueError, match=r"mse_loss: 'avg' is not a valid value for reduction"):
        losses.mse_loss(_t([1.0]), _t([1.0]), reduction="avg")
    with pytest.raises(ValueError, match="CrossEntropyLoss: 'total'"):
        losses.CrossEntropyLoss(reduction="total")


def test_cross_entropy_target_errors():
    x = _t(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"input of shape \(3, 4\) needs a target of shape "
                                         r"\(3,\), got \(2,\)"):
        losses.cross_entropy(x, np.array([0, 1]), weight=np.ones(4))
    with pytest.raises(IndexError, match=r"target values must lie in \[0, 4\).*\[0, 4\]"):
        losses.nll_loss(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"class-probability targets must have the input's "
                                         r"shape \(3, 4\), got \(3, 3\)"):
        losses.cross_entropy(x, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\) for 4 classes"):
        losses.cross_entropy(x, np.array([0, 1, 2]), weight=np.ones(3))
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        losses.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(TypeError, match="input must be floating point, got int64"):
        losses.nll_loss(engine.tensor([[1, 2]]), np.array([0]))


def test_binary_cross_entropy_errors():
    with pytest.raises(ValueError, match="all elements of input should be between 0 and 1"):
        losses.binary_cross_entropy(_t([0.5, 1.5]), _t([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"target size \(3,\) must be the same as the input "
                                         r"size \(2,\)"):
        losses.binary_cross_entropy(_t([0.5, 0.5]), _t([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target size"):
        losses.binary_cross_entropy_with_logits(_t([0.5, 0.5]), _t([[1.0, 0.0]]))


@pytest.mark.parametrize("target, shown", [([1.5, 0.0], "[0.0, 1.5]"),
                                           ([-0.25, 1.0], "[-0.25, 1.0]")])
def test_binary_cross_entropy_refuses_targets_outside_the_unit_interval(target, shown):
    """As PyTorch: a target outside [0, 1] is not a probability (the loss could go
    negative); the message names the op and the targets' range."""
    x = _t([0.3, 0.6], True)
    message = ("binary_cross_entropy: all elements of target should be between 0 and 1 "
               f"(got range {shown})")
    for y in (_t(target), _t(target, True), target, np.array(target)):
        with pytest.raises(ValueError, match=re.escape(message)):
            losses.binary_cross_entropy(x, y)
    with pytest.raises(ValueError, match=re.escape(message)):
        losses.BCELoss(reduction="sum")(x, _t(target))
    assert x.grad is None
    losses.binary_cross_entropy(x, _t([0.0, 1.0])).backward()      # the ends are fine


def test_regression_argument_errors():
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be non-negative"):
        losses.smooth_l1_loss(_t([1.0]), _t([0.0]), beta=-1.0)
    with pytest.raises(ValueError, match="huber_loss: delta must be positive"):
        losses.huber_loss(_t([1.0]), _t([0.0]), delta=0.0)


def test_losses_on_every_device(device):
    r = _rng(16)
    x = r.standard_normal((6, 4))
    t = np.array([0, 3, 1, 2, -100, 3])
    w = r.uniform(0.5, 2, size=4)
    y = r.uniform(size=(6, 4))
    on = lambda a: engine.tensor(a).to(device)
    for kw in ({}, {"weight": w, "label_smoothing": 0.1}):
        ref = losses.cross_entropy(_t(x), t, **kw)
        dev_kw = {k: on(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        out = losses.cross_entropy(on(x), on(t), **dev_kw)
        assert out.device == engine.tensor(0.0).to(device).device
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12)
    xs = on(x).sigmoid()
    for fn in (losses.binary_cross_entropy, losses.mse_loss):
        np.testing.assert_allclose(fn(xs, on(y)).numpy(), fn(_t(x).sigmoid(), _t(y)).numpy(),
                                   rtol=1e-12)
    if device != "cpu":
        with pytest.raises(RuntimeError, match="target is on cpu but the input is on cuda"):
            losses.cross_entropy(on(x), t, weight=w)


def test_list_targets_and_empty_batches():
    x = _t([[1.0, 2.0], [0.5, 0.0]])
    np.testing.assert_allclose(losses.cross_entropy(x, [[0.2, 0.8], [1.0, 0.0]]).item(),
                               losses.cross_entropy(x, _t([[0.2, 0.8], [1.0, 0.0]])).item())
    np.testing.assert_allclose(losses.cross_entropy(x, [1, 0], weight=[1.0, 2.0]).item(),
                               losses.cross_entropy(x, np.array([1, 0]),
                                                    weight=np.array([1.0, 2.0])).item())
    empty = _t(np.zeros((0, 3)))
    assert np.isnan(losses.mse_loss(empty, empty).item())
    assert losses.mse_loss(empty, empty, reduction="sum").item() == 0.0
