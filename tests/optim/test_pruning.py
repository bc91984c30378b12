"""Magnitude pruning: the masks chosen (also against torch.nn.utils.prune), and pruned
weights staying exactly zero through training with every optimizer."""

import doctest

import numpy as np
import pytest

import engine
import losses
import nn
import optim
from optim import pruning


def _mlp(seed=0):
    engine.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    return model.double()


def _data(seed=1):
    r = np.random.default_rng(seed)
    return engine.tensor(r.standard_normal((16, 6))), engine.tensor(r.integers(0, 3, 16))


def _train(model, opt, steps):
    x, y = _data()
    for _ in range(steps):
        opt.zero_grad()
        losses.cross_entropy(model(x), y).backward()
        opt.step()


def test_docstring_example():
    result = doctest.testmod(pruning)
    assert result.attempted > 0 and result.failed == 0


def test_l1_unstructured_zeroes_the_smallest_magnitudes():
    layer = _mlp()[0]
    w = layer.weight.numpy()
    pruning.l1_unstructured(layer, "weight", amount=0.3)
    k = round(0.3 * w.size)
    smallest = np.argsort(np.abs(w).ravel(), kind="stable")[:k]
    expected = np.ones(w.size)
    expected[smallest] = 0
    mask = layer.weight_mask.numpy()
    np.testing.assert_array_equal(mask.ravel(), expected)
    np.testing.assert_array_equal(layer.weight.numpy(), w * mask)
    assert layer.weight_mask.dtype == layer.weight.dtype
    assert list(layer.state_dict()) == ["weight", "bias", "weight_mask"]
    assert isinstance(layer.weight, nn.Parameter) and pruning.is_pruned(layer)


def test_pruning_again_prunes_among_the_remaining_weights():
    layer = _mlp()[0]
    pruning.l1_unstructured(layer, amount=0.5)          # 24 of 48
    pruning.l1_unstructured(layer, amount=10)           # 10 more of the 24 left
    assert int((layer.weight_mask.numpy() == 0).sum()) == 34


@pytest.mark.parametrize("name, kw", [
    ("Adam", {"lr": 0.05}), ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.5}), ("SGD", {"lr": 0.5, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}), ("Adagrad", {"lr": 0.5}),
])
def test_pruned_weights_stay_zero_through_training(name, kw):
    model = _mlp()
    opt = getattr(optim, name)(model.parameters(), **kw)
    _train(model, opt, 3)                               # momentum built up before pruning
    pruning.l1_unstructured(model[0], "weight", amount=0.4)
    pruning.l1_unstructured(model[2], "weight", amount=5)
    masks = [model[0].weight_mask.numpy() == 0, model[2].weight_mask.numpy() == 0]
    before = model[0].weight.numpy()
    _train(model, opt, 10)
    for layer, pruned in zip((model[0], model[2]), masks):
        assert np.all(layer.weight.numpy()[pruned] == 0)
    assert not np.allclose(model[0].weight.numpy()[~masks[0]], before[~masks[0]])


def test_remove_keeps_the_zeros_but_stops_enforcing_them():
    model = _mlp()
    opt = optim.Adam(model.parameters(), lr=0.05)
    pruning.l1_unstructured(model[0], amount=0.5)
    pruned = model[0].weight_mask.numpy() == 0
    pruning.remove(model[0], "weight")
    assert "weight_mask" not in model[0].state_dict() and not pruning.is_pruned(model)
    assert np.all(model[0].weight.numpy()[pruned] == 0)
    _train(model, opt, 2)
    assert np.any(model[0].weight.numpy()[pruned] != 0)
    with pytest.raises(ValueError, match="remove: parameter 'weight' of Linear is not pruned"):
        pruning.remove(model[0], "weight")


def test_manual_update_loop_uses_apply_masks():
    model = _mlp()
    pruning.l1_unstructured(model[2], amount=0.5)
    pruned = model[2].weight_mask.numpy() == 0
    x, y = _data()
    losses.cross_entropy(model(x), y).backward()
    with engine.no_grad():
        for p in model.parameters():
            p.data -= 0.1 * p.grad.data
    assert np.any(model[2].weight.numpy()[pruned] != 0)
    pruning.apply_masks(model.parameters())
    assert np.all(model[2].weight.numpy()[pruned] == 0)


def test_pruned_checkpoint_loads_into_a_model_pruned_with_identity(tmp_path):
    model = _mlp()
    pruning.global_unstructured([(model[0], "weight"), (model[2], "weight")], amount=0.6)
    engine.save(model.state_dict(), tmp_path / "pruned.safetensors")
    fresh = _mlp(seed=7)
    for layer in (fresh[0], fresh[2]):
        pruning.identity(layer, "weight")
    fresh.load_state_dict(engine.load(tmp_path / "pruned.safetensors"))
    opt = optim.Adam(fresh.parameters(), lr=0.1)
    _train(fresh, opt, 3)
    for a, b in ((fresh[0], model[0]), (fresh[2], model[2])):
        np.testing.assert_array_equal(a.weight_mask.numpy(), b.weight_mask.numpy())
        assert np.all(a.weight.numpy()[a.weight_mask.numpy() == 0] == 0)


def test_global_unstructured_uses_one_threshold():
    model = _mlp()
    ws = [model[0].weight.numpy(), model[2].weight.numpy()]
    pruning.global_unstructured([(model[0], "weight"), (model[2], "weight")], amount=0.5)
    flat = np.abs(np.concatenate([w.ravel() for w in ws]))
    threshold = np.sort(flat)[round(0.5 * flat.size) - 1]
    for layer, w in zip((model[0], model[2]), ws):
        np.testing.assert_array_equal(layer.weight_mask.numpy(), np.abs(w) > threshold)


def test_conv2d_and_dtype_moves():
    conv = nn.Conv2d(2, 3, 3)
    pruning.l1_unstructured(conv, "weight", amount=0.25)
    assert conv.weight_mask.shape == conv.weight.shape == (3, 2, 3, 3)
    assert int((conv.weight_mask.numpy() == 0).sum()) == round(0.25 * 54)
    conv.double()
    assert conv.weight_mask.dtype == np.float64
    opt = optim.SGD(conv.parameters(), lr=0.1, momentum=0.9)
    x = engine.tensor(np.random.default_rng(2).standard_normal((2, 2, 5, 5)))
    for _ in range(3):
        opt.zero_grad()
        (conv(x) ** 2).sum().backward()
        opt.step()
    assert np.all(conv.weight.numpy()[conv.weight_mask.numpy() == 0] == 0)


def test_pruning_errors():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"amount=1.5 must be a fraction in \[0, 1\]"):
        pruning.l1_unstructured(layer, amount=1.5)
    with pytest.raises(ValueError, match="amount=7 is larger than the 6 entries"):
        pruning.l1_unstructured(layer, amount=7)
    with pytest.raises(AttributeError, match="Linear has no parameter 'kernel'"):
        pruning.l1_unstructured(layer, "kernel")
    with pytest.raises(TypeError, match="amount must be an int or a float"):
        pruning.l1_unstructured(layer, amount="half")


@pytest.mark.torch
def test_masks_and_training_match_torch_prune():
    torch = pytest.importorskip("torch")
    tprune = pytest.importorskip("torch.nn.utils.prune")
    model = _mlp()
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 3)).double()
    tmodel.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    opt = optim.Adam(model.parameters(), lr=0.05, weight_decay=0.01)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.05, weight_decay=0.01)
    x, y = _data()
    tx, ty = torch.tensor(x.numpy()), torch.tensor(y.numpy())

    def train_torch(steps):
        for _ in range(steps):
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
            topt.step()

    _train(model, opt, 2)
    train_torch(2)
    pruning.l1_unstructured(model[0], "weight", amount=0.3)
    tprune.l1_unstructured(tmodel[0], "weight", amount=0.3)
    pruning.l1_unstructured(model[0], "weight", amount=0.3)      # iterative
    tprune.l1_unstructured(tmodel[0], "weight", amount=0.3)
    pruning.global_unstructured([(model[2], "weight"), (model[2], "bias")], amount=7)
    tprune.global_unstructured([(tmodel[2], "weight"), (tmodel[2], "bias")],
                               pruning_method=tprune.L1Unstructured, amount=7)
    for i in (0, 2):
        np.testing.assert_array_equal(model[i].weight_mask.numpy(),
                                      tmodel[i].weight_mask.numpy())
    np.testing.assert_array_equal(model[2].bias_mask.numpy(), tmodel[2].bias_mask.numpy())
    _train(model, opt, 10)
    train_torch(10)
    # PyTorch's module.weight is recomputed only at the next forward: compare orig ⊙ mask
    for i, name in ((0, "weight"), (2, "weight"), (2, "bias")):
        effective = getattr(tmodel[i], name + "_orig") * getattr(tmodel[i], name + "_mask")
        np.testing.assert_allclose(getattr(model[i], name).numpy(),
                                   effective.detach().numpy(), rtol=1e-10, atol=1e-12)
