"""Every loss with its options against PyTorch: values and gradients in float64 (1e-10),
values in float32 (1e-5 relative)."""

import numpy as np
import pytest

import engine
import losses

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.torch

REDUCTIONS = ["mean", "sum", "none"]
TOL = dict(rtol=1e-10, atol=1e-12)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _ours(a, grad=True):
    return engine.tensor(a, requires_grad=grad and a.dtype.kind == "f")


def _theirs(a, grad=True):
    return torch.tensor(a, requires_grad=grad and a.dtype.kind == "f")


def _compare(ours_fn, torch_fn, arrays, grads=(0,), tol=TOL):
    """Run both on the same arrays, backward with one random upstream, compare the loss
    and the gradients of the arrays listed in ``grads``."""
    ts_ours = [_ours(a, i in grads) for i, a in enumerate(arrays)]
    ts_torch = [_theirs(a, i in grads) for i, a in enumerate(arrays)]
    out = ours_fn(*ts_ours)
    ref = torch_fn(*ts_torch)
    assert out.shape == tuple(ref.shape)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **tol)
    u = _rng(99).standard_normal(out.shape)
    out.backward(engine.tensor(u))
    ref.backward(torch.tensor(u))
    for i in grads:
        assert ts_ours[i].grad is not None, f"no gradient for argument {i}"
        np.testing.assert_allclose(ts_ours[i].grad.numpy(), ts_torch[i].grad.numpy(), **tol)


# ---------------------------------------------------------------- regression
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, kw", [
    ("mse_loss", {}), ("l1_loss", {}),
    ("smooth_l1_loss", {"beta": 1.0}), ("smooth_l1_loss", {"beta": 0.3}),
    ("smooth_l1_loss", {"beta": 0.0}),
    ("huber_loss", {"delta": 1.0}), ("huber_loss", {"delta": 0.4}),
])
def test_regression_losses(name, kw, reduction):
    r = _rng(1)
    x = r.standard_normal((5, 4))
    y = r.standard_normal((5, 4))
    y[0, :2] = x[0, :2]                      # d = 0 exactly (the kink of |d|)
    ours = getattr(losses, name)
    theirs = getattr(F, name)
    _compare(lambda a, b: ours(a, b, reduction=reduction, **kw),
             lambda a, b: theirs(a, b, reduction=reduction, **kw), [x, y], grads=(0, 1))


def test_regression_broadcast_warns_like_torch():
    x = np.arange(3.0)
    y = np.arange(3.0).reshape(3, 1)
    with pytest.warns(UserWarning, match=r"mse_loss: using a target size \(3, 1\)"):
        out = losses.mse_loss(engine.tensor(x), engine.tensor(y))
    with pytest.warns(UserWarning):
        ref = F.mse_loss(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(out.item(), ref.item(), **TOL)


# ---------------------------------------------------------------- nll and cross-entropy
def _class_case(shape, ignore_index=-100, seed=0):
    """Logits of ``shape`` (classes on axis 1, or (C,)) and matching integer targets with
    some set to ``ignore_index``."""
    r = _rng(seed)
    x = r.standard_normal(shape) * 2
    c = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])
    t = r.integers(0, c, size=tshape).astype(np.int64)
    if t.ndim:
        t.reshape(-1)[::3] = ignore_index
    return x, t, r.uniform(0.5, 2.0, size=c)


SHAPES = [(6, 4), (4,), (3, 4, 2, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(shape, use_weight, ignore_index, reduction):
    x, t, w = _class_case(shape, ignore_index)
    x = np.log(np.exp(x) / np.exp(x).sum(axis=0 if len(shape) == 1 else 1, keepdims=True))
    kw = dict(ignore_index=ignore_index, reduction=reduction)
    _compare(lambda a, b: losses.nll_loss(a, b, weight=w if use_weight else None, **kw),
             lambda a, b: F.nll_loss(a, b, weight=torch.tensor(w) if use_weight else None,
                                     **kw), [x, t])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_indices(shape, use_weight, ignore_index, smoothing, reduction):
    x, t, w = _class_case(shape, ignore_index, seed=3)
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    _compare(lambda a, b: losses.cross_entropy(a, b, weight=w if use_weight else None, **kw),
             lambda a, b: F.cross_entropy(a, b, weight=torch.tensor(w) if use_weight
                                          else None, **kw), [x, t])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities(shape, use_weight, smoothing, reduction):
    r = _rng(5)
    x = r.standard_normal(shape)
    axis = 0 if len(shape) == 1 else 1
    y = r.uniform(size=shape)
    y /= y.sum(axis=axis, keepdims=True)
    w = r.uniform(0.5, 2.0, size=shape[axis])
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    _compare(lambda a, b: losses.cross_entropy(a, b, weight=w if use_weight else None, **kw),
             lambda a, b: F.cross_entropy(a, b, weight=torch.tensor(w) if use_weight
                                          else None, **kw), [x, y], grads=(0, 1))


@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
def test_every_target_ignored_gives_nan_like_torch(fn, use_weight):
    x = _rng().standard_normal((3, 4))
    t = np.full(3, -100)
    w = np.ones(4) * 2 if use_weight else None
    ours = getattr(losses, fn)(engine.tensor(x), t, weight=w)
    ref = getattr(F, fn)(torch.tensor(x), torch.tensor(t),
                         weight=None if w is None else torch.tensor(w))
    assert np.isnan(ours.item()) and np.isnan(ref.item())


@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_float32_matches_and_keeps_dtype(use_weight):
    x, t, w = _class_case((8, 5), seed=7)
    x32 = x.astype(np.float32)
    kw = dict(weight=w.astype(np.float32) if use_weight else None, label_smoothing=0.1)
    ours = losses.cross_entropy(engine.tensor(x32), t, **kw)
    ref = F.cross_entropy(torch.tensor(x32), torch.tensor(t),
                          weight=None if kw["weight"] is None else torch.tensor(kw["weight"]),
                          label_smoothing=0.1)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours.item(), ref.item(), rtol=1e-5)


# ---------------------------------------------------------------- binary cross-entropy
@pytest.mark.parametrize("weight_shape", [None, (5, 3), (3,)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(weight_shape, reduction):
    r = _rng(11)
    x = r.uniform(0.05, 0.95, size=(5, 3))
    y = r.uniform(size=(5, 3))
    w = None if weight_shape is None else r.uniform(0.5, 2, size=weight_shape)
    _compare(lambda a, b: losses.binary_cross_entropy(a, b, weight=w, reduction=reduction),
             lambda a, b: F.binary_cross_entropy(
                 a, b, weight=None if w is None else torch.tensor(w), reduction=reduction),
             [x, y], grads=(0, 1))


def test_binary_cross_entropy_clamps_at_0_and_1_like_torch():
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-60, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.3])
    _compare(lambda a, b: losses.binary_cross_entropy(a, b, reduction="none"),
             lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), [x, y])
    yt = engine.tensor(y, requires_grad=True)
    out = losses.binary_cross_entropy(engine.tensor(x), yt, reduction="none")
    assert out.numpy()[0] == 100.0          # -max(log 0, -100)
    out.sum().backward()
    # The target gradient is that of the clamped loss, max(log(1-x), -100) - max(log x, -100)
    # (finite), where PyTorch returns -logit(x) (±inf at 0 and 1).
    with np.errstate(divide="ignore"):
        expected = np.maximum(np.log1p(-x), -100) - np.maximum(np.log(x), -100)
    np.testing.assert_allclose(yt.grad.numpy(), expected, rtol=1e-12)


def test_binary_cross_entropy_refuses_targets_outside_0_1_like_torch():
    x = np.array([0.3, 0.6])
    for y in (np.array([1.5, 0.0]), np.array([0.5, -1e-3])):
        with pytest.raises(ValueError, match="all elements of target should be between 0 "
                                             "and 1"):
            losses.binary_cross_entropy(_ours(x), _ours(y, grad=False))
        with pytest.raises(RuntimeError, match="all elements of target should be between 0 "
                                               "and 1"):
            F.binary_cross_entropy(_theirs(x), _theirs(y, grad=False))


@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("use_pos_weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(use_weight, use_pos_weight, reduction):
    r = _rng(13)
    x = r.standard_normal((6, 3)) * 4
    x[0] = [60.0, -60.0, 0.0]                # far in both tails and the kink of |x|
    y = r.uniform(size=(6, 3))
    w = r.uniform(0.5, 2, size=(6, 3))
    pw = r.uniform(0.5, 3, size=3)
    arrays = [x, y] + ([w] if use_weight else []) + ([pw] if use_pos_weight else [])

    def call(fn, wrap):
        def run(a, b, *rest):
            rest = list(rest)
            kw = dict(reduction=reduction)
            if use_weight:
                kw["weight"] = rest.pop(0)
            if use_pos_weight:
                kw["pos_weight"] = rest.pop(0)
            return fn(a, b, **kw)
        return run

    # PyTorch does not differentiate w.r.t. weight and pos_weight (ours does: see the
    # gradchecks)
    _compare(call(losses.binary_cross_entropy_with_logits, _ours),
             call(F.binary_cross_entropy_with_logits, _theirs), arrays, grads=(0, 1))


def test_bce_with_logits_float32_large_logits_finite():
    x = np.array([[100.0, -100.0, 30.0, -30.0]], dtype=np.float32)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    xt = engine.tensor(x, requires_grad=True)
    out = losses.binary_cross_entropy_with_logits(xt, y, reduction="none")
    ref = F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y),
                                             reduction="none")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5)
    out.sum().backward()
    assert np.all(np.isfinite(xt.grad.numpy()))


# ---------------------------------------------------------------- classes
@pytest.mark.parametrize("ours, theirs, kw, kind", [
    (losses.MSELoss, torch.nn.MSELoss, {"reduction": "sum"}, "regression"),
    (losses.L1Loss, torch.nn.L1Loss, {}, "regression"),
    (losses.SmoothL1Loss, torch.nn.SmoothL1Loss, {"beta": 0.5}, "regression"),
    (losses.HuberLoss, torch.nn.HuberLoss, {"delta": 0.7, "reduction": "none"},
     "regression"),
    (losses.CrossEntropyLoss, torch.nn.CrossEntropyLoss,
     {"label_smoothing": 0.1, "ignore_index": 0}, "logits"),
    (losses.NLLLoss, torch.nn.NLLLoss, {"reduction": "sum"}, "logits"),
    (losses.BCELoss, torch.nn.BCELoss, {}, "probabilities"),
    (losses.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, {}, "binary-logits"),
])
def test_loss_classes_match_torch_modules(ours, theirs, kw, kind):
    r = _rng(17)
    if kind == "logits":
        x, t, w = _class_case((6, 4), ignore_index=kw.get("ignore_index", -100))
        kw = dict(kw, weight=w)
    elif kind == "probabilities":
        x, t = r.uniform(0.1, 0.9, (4, 3)), r.uniform(size=(4, 3))
        kw = dict(kw, weight=r.uniform(size=3))
    elif kind == "binary-logits":
        x, t = r.standard_normal((4, 3)), r.uniform(size=(4, 3))
        kw = dict(kw, weight=r.uniform(size=3), pos_weight=r.uniform(1, 2, size=3))
    else:
        x, t = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    loss = ours(**kw)
    ref = theirs(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                    for k, v in kw.items()})
    _compare(loss, ref, [x, t])
    if "weight" in kw:
        np.testing.assert_array_equal(loss.state_dict()["weight"].numpy(),
                                      ref.state_dict()["weight"].numpy())
