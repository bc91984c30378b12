"""The Optimizer base and the update rules without PyTorch: groups, state, zero_grad,
closures, gradients never modified, dtypes and devices, errors."""

import numpy as np
import pytest

import engine
import nn
import optim

ALL = [
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (optim.Adam, {"lr": 0.1, "amsgrad": True, "weight_decay": 0.1}),
    (optim.AdamW, {"lr": 0.1}),
    (optim.RMSprop, {"lr": 0.1, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    (optim.Adagrad, {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1}),
    (optim.Adadelta, {"rho": 0.8, "eps": 1e-2, "weight_decay": 0.1}),
]


def _param(values, dtype=np.float64, device="cpu"):
    return nn.Parameter(engine.tensor(np.asarray(values, dtype=dtype)).to(device))


def _quadratic_step(opt, params, target):
    opt.zero_grad()
    loss = sum(((p - t) * (p - t)).sum() for p, t in zip(params, target))
    loss.backward()
    opt.step()
    return loss.item()


@pytest.mark.parametrize("cls, kw", ALL)
def test_optimizers_descend_a_quadratic(cls, kw):
    p = _param([3.0, -2.0, 1.0])
    target = [engine.tensor([1.0, 1.0, 1.0], dtype=np.float64)]
    kw = {**kw, "weight_decay": 0.0} if "weight_decay" in kw else kw
    opt = cls([p], **({**kw, "lr": 1.0} if cls is optim.Adagrad else kw))
    losses = [_quadratic_step(opt, [p], target) for _ in range(60)]
    assert losses[-1] < 0.05 * losses[0]


def test_sgd_momentum_by_hand():
    # b1 = g1, θ1 = θ0 - α b1;  b2 = μ b1 + (1 - τ) g2, θ2 = θ1 - α b2  with g = 2θ
    p = _param([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    for _ in range(2):
        opt.zero_grad()
        (p * p).sum().backward()
        opt.step()
    th1 = 1.0 - 0.1 * 2.0
    th2 = th1 - 0.1 * (0.9 * 2.0 + 0.5 * 2 * th1)
    np.testing.assert_allclose(p.numpy(), [th2], rtol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    # t = 1: m̂ = g, v̂ = g², so θ moves by α g / (|g| + ε) ≈ α sign(g)
    p = _param([2.0, -3.0])
    opt = optim.Adam([p], lr=0.01)
    (p * p).sum().backward()
    opt.step()
    g = np.array([4.0, -6.0])
    np.testing.assert_allclose(p.numpy(), [2.0, -3.0] - 0.01 * g / (np.abs(g) + 1e-8),
                               rtol=1e-15)
    state = opt.state[p]
    assert state["step"] == 1
    np.testing.assert_allclose(state["exp_avg"].numpy(), 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(state["exp_avg_sq"].numpy(), 0.001 * g * g, rtol=1e-15)


@pytest.mark.parametrize("cls, kw", ALL)
def test_gradient_arrays_are_never_modified(cls, kw):
    p, q = _param([1.0, 2.0]), _param([3.0, 4.0])
    g = np.array([0.5, -0.25])
    p.grad = engine.from_numpy(g)       # one array shared by both gradients
    q.grad = engine.from_numpy(g)
    opt = cls([p, q], **kw)
    for _ in range(3):
        opt.step()
    np.testing.assert_array_equal(g, [0.5, -0.25])
    assert p.grad.data is g
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(g, [0.5, -0.25])
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None and q.grad is None


@pytest.mark.parametrize("cls, kw", ALL)
def test_float32_state_and_updates_stay_float32(cls, kw):
    p = _param([1.0, -2.0], dtype=np.float32)
    opt = cls([p], **kw)
    (p * p).sum().backward()
    opt.step()
    opt.step()
    assert p.dtype == np.float32
    for key, value in opt.state[p].items():
        if key == "step":
            assert value == 2
        else:
            assert value.dtype == np.float32 and value.shape == p.shape, key


@pytest.mark.parametrize("cls, kw", ALL)
def test_optimizers_on_every_device(cls, kw, device):
    ref = _param([1.0, -2.0, 0.5])
    p = _param([1.0, -2.0, 0.5], device=device)
    target = engine.tensor([0.3, 0.3, 0.3], dtype=np.float64)
    runs = [(cls([ref], **kw), ref, target), (cls([p], **kw), p, target.to(device))]
    for opt, param, t in runs:
        for _ in range(5):
            _quadratic_step(opt, [param], [t])
    assert p.device == ref.device if device == "cpu" else p.device.startswith("cuda")
    for value in runs[1][0].state[p].values():
        if isinstance(value, engine.Tensor):
            assert value.device == p.device
    np.testing.assert_allclose(p.numpy(), ref.numpy(), rtol=1e-12)


def test_state_is_keyed_by_the_parameter_object():
    p, q = _param([1.0]), _param([1.0])
    opt = optim.Adam([p, q])
    (p * q).sum().backward()
    opt.step()
    assert set(opt.state) == {p, q}
    assert all(isinstance(k, nn.Parameter) for k in opt.state)
    assert opt.state[p]["exp_avg"] is not opt.state[q]["exp_avg"]


def test_parameters_without_gradient_are_skipped():
    p, q = _param([1.0]), _param([1.0])
    opt = optim.Adam([p, q], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert q.numpy()[0] == 1.0 and q not in opt.state


def test_closure_is_evaluated_with_grad_and_returned():
    p = _param([2.0])
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with engine.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.numpy(), [2.0 - 0.1 * 4.0])


class SignSGD(optim.Optimizer):
    """θ ← θ - η sign(g): a user's optimizer, written as ``update`` alone."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr, "maximize": False})
        self.calls = []

    def update(self, group):
        self.calls.append(("update", engine.is_grad_enabled()))
        for p, g in self._gradients(group):
            p.data -= group["lr"] * np.sign(g)

    def finish_step(self):
        self.calls.append(("finish", engine.is_grad_enabled()))
        super().finish_step()


def test_step_is_a_template_around_update_and_finish_step():
    """step: closure with grad on, then update per group and finish_step without grad."""
    p, q = _param([2.0, -3.0]), _param([1.0])
    opt = SignSGD([{"params": [p]}, {"params": [q], "lr": 0.5}])

    def closure():
        opt.zero_grad()
        opt.calls.append(("closure", engine.is_grad_enabled()))
        loss = (p * p).sum() + (q * q).sum()
        loss.backward()
        return loss

    with engine.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 14.0
    assert opt.calls == [("closure", True), ("update", False), ("update", False),
                         ("finish", False)]
    np.testing.assert_allclose(p.numpy(), [1.9, -2.9])
    np.testing.assert_allclose(q.numpy(), [0.5])
    assert engine.is_grad_enabled()
    assert opt.step() is None and len(opt.calls) == 7


def test_a_users_optimizer_keeps_pruned_weights_zero():
    layer = nn.Linear(4, 3)
    optim.pruning.l1_unstructured(layer, "weight", amount=0.5)
    pruned = layer.weight_mask.numpy() == 0
    opt = SignSGD(layer.parameters(), lr=0.3)
    (layer(engine.randn(5, 4)) ** 2).sum().backward()
    opt.step()
    assert np.all(layer.weight.numpy()[pruned] == 0)
    assert np.any(layer.weight.numpy()[~pruned] != 0)


def test_an_optimizer_without_update_cannot_be_created():
    class NoRule(optim.Optimizer):
        def step(self, closure=None):
            return None

    with pytest.raises(TypeError, match="abstract.*update"):
        NoRule([_param([1.0])], {})


def test_param_groups_defaults_and_add_param_group():
    model = nn.Linear(3, 2)
    model.double()
    opt = optim.SGD([{"params": [model.weight]}, {"params": model.bias, "lr": 0.5}],
                    lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9
    extra = _param([1.0])
    opt.add_param_group({"params": [extra], "momentum": 0.0})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.0
    named = optim.Adam(model.named_parameters())
    assert named.param_groups[0]["param_names"] == ["weight", "bias"]
    assert named.state_dict()["param_groups"][0]["params"] == [0, 1]
    assert "Parameter Group 1" in repr(opt) and "lr: 0.5" in repr(opt)


def test_optimizer_argument_errors():
    p = _param([1.0])
    with pytest.raises(ValueError, match="Adam: optimizer got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="got a single Tensor"):
        optim.SGD(p)
    with pytest.raises(TypeError, match="a set's order changes between runs"):
        optim.SGD([{"params": {p}}])
    with pytest.raises(ValueError, match="some parameters appear in more than one"):
        optim.SGD([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="the same parameter twice"):
        optim.SGD([p, p])
    with pytest.raises(ValueError, match=r"can't optimize a non-leaf Tensor \(shape \(1,\)\)"):
        optim.SGD([p * 2])
    with pytest.raises(TypeError, match="floating-point Tensors, got int64"):
        optim.SGD([engine.tensor([1, 2])])
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero "
                                         "dampening"):
        optim.SGD([p], momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Adam: invalid beta parameter at index 1: 1.0"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="AdamW: invalid learning rate: -1"):
        optim.AdamW([p], lr=-1)
    with pytest.raises(ValueError, match="RMSprop: invalid alpha value"):
        optim.RMSprop([p], alpha=-0.1)
    with pytest.raises(ValueError, match="Adagrad: invalid lr_decay value"):
        optim.Adagrad([p], lr_decay=-0.1)
    with pytest.raises(ValueError, match="Adadelta: invalid rho value: 1.5"):
        optim.Adadelta([p], rho=1.5)
    with pytest.raises(ValueError, match="Adadelta: invalid epsilon value"):
        optim.Adadelta([p], eps=-1e-6)
    with pytest.raises(ValueError, match="SGD: invalid learning rate: nan"):
        optim.SGD([p], lr=float("nan"))            # NaN is no more valid than a negative
    with pytest.raises(ValueError, match="RMSprop: invalid learning rate: -1$"):
        optim.RMSprop([p], lr=-1)                  # the same words in every optimizer
    with pytest.raises(TypeError, match="abstract"):
        optim.Optimizer([p], {})


def test_load_state_dict_errors_and_copies():
    p, q = _param([1.0]), _param([2.0])
    opt = optim.Adam([p, q])
    (p * q).sum().backward()
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="the state dict has 1 parameter groups, the "
                                         "optimizer 2"):
        optim.Adam([{"params": [p]}, {"params": [q]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter group 0 holds 2 parameters in the state "
                                         "dict but 1 in the optimizer"):
        optim.Adam([p]).load_state_dict(sd)
    other = optim.Adam([p, q])
    other.load_state_dict(sd)
    assert other.state[p]["exp_avg"] is not opt.state[p]["exp_avg"]
    assert other.state[p]["step"] == 1 and isinstance(other.state[p]["step"], int)
    f32 = optim.Adam([_param([1.0], np.float32), _param([2.0], np.float32)])
    f32.load_state_dict(sd)
    assert all(s["exp_avg"].dtype == np.float32 for s in f32.state.values())


def test_lr_changes_in_param_groups_take_effect():
    p = _param([1.0])
    opt = optim.SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.01
    (p * p).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.01 * 2.0])


def test_docstring_example():
    import doctest

    result = doctest.testmod(optim)
    assert result.attempted > 0 and result.failed == 0
