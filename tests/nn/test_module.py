"""The module system: registration, traversal, modes, freezing, devices and state dicts."""

import copy

import numpy as np
import pytest

import engine
import nn
from engine import Tensor
from nn.module import Parameter


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = Parameter(np.ones(4, dtype=np.float32))
        self.register_buffer("count", engine.zeros(1))
        self.register_buffer("scratch", engine.zeros(2), persistent=False)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block()
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 2)])
        self.head_bias = Parameter(np.zeros(2, dtype=np.float32))

    def forward(self, x):
        x = self.first(x)
        for layer in self.layers:
            x = layer(x)
        return x + self.head_bias


def test_registration_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["head_bias", "first.scale", "first.fc.weight", "first.fc.bias",
                     "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert [n for n, _ in net.named_buffers()] == ["first.count", "first.scratch"]
    assert [n for n, _ in net.named_modules()] == [
        "", "first", "first.fc", "first.act", "layers", "layers.0", "layers.1"]
    assert [n for n, _ in net.named_children()] == ["first", "layers"]
    assert list(net.children()) == [net.first, net.layers]
    assert len(list(net.modules())) == 7
    assert [n for n, _ in net.first.named_parameters(prefix="first")] == [
        "first.scale", "first.fc.weight", "first.fc.bias"]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["head_bias"]


def test_state_dict_keys_and_persistence():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["head_bias", "first.scale", "first.count", "first.fc.weight",
                        "first.fc.bias", "layers.0.weight", "layers.0.bias",
                        "layers.1.weight", "layers.1.bias"]
    assert "first.scratch" not in sd                     # non-persistent buffer
    assert sd["first.fc.weight"].shape == (4, 3)
    assert not sd["first.fc.weight"].requires_grad       # detached
    assert sd["first.fc.weight"].data is net.first.fc.weight.data   # shares data


def test_unknown_attribute_raises_attribute_error():
    net = Net()
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'nope'"):
        _ = net.nope
    assert not hasattr(net, "nope")


def test_assignment_before_init_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            super().__init__()

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Bad()


def test_reassigning_and_deleting_members():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        m.weight = engine.zeros(3, 2)
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert "bias" not in m.state_dict()
    m.extra = nn.ReLU()
    assert list(dict(m.named_children())) == ["extra"]
    del m.extra
    assert list(m.children()) == []
    m.plain = 3                                   # ordinary attributes still work
    assert m.plain == 3


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(3, 3)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.named_modules())) == 3    # the shared module once


def test_forward_call_and_backward_reach_every_parameter():
    engine.manual_seed(1)
    net = Net()
    x = engine.randn(5, 3)
    y = net(x)
    assert y.shape == (5, 2)
    y.sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype


def test_module_without_forward_raises_on_call():
    with pytest.raises(NotImplementedError, match="Empty must define forward"):
        type("Empty", (nn.Module,), {})()(1)


def test_apply_visits_children_first_then_self():
    net = Net()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Block", "Linear", "Linear", "ModuleList", "Net"]


def test_apply_for_custom_init():
    net = Net()

    def init_fn(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)

    net.apply(init_fn)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            assert np.all(m.weight.numpy() == 0.5)


def test_train_eval_propagate():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net[1][0].training


def test_zero_grad_set_to_none_and_zeros():
    m = nn.Linear(3, 2)
    m(engine.randn(4, 3)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert np.all(m.weight.grad.numpy() == 0) and m.weight.grad.dtype == np.float32
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_requires_grad_freezes_parameters():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    net[0].requires_grad_(False)
    net(engine.randn(5, 3)).sum().backward()
    assert net[0].weight.grad is None and net[0].bias.grad is None
    assert net[1].weight.grad is not None
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())


def test_to_dtype_keeps_parameter_objects_and_int_buffers():
    bn = nn.BatchNorm1d(3)
    w = bn.weight
    bn.double()
    assert bn.weight is w and w.dtype == np.float64
    assert bn.running_mean.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    bn.to(dtype=np.float32)
    assert w.dtype == np.float32


def test_to_device_cpu_is_a_no_op_and_cuda_errors_without_gpu():
    m = nn.Linear(2, 2)
    w = m.weight.data
    assert m.to("cpu") is m and m.weight.data is w
    if not engine.cuda_is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            m.to("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        m.to("tpu")


@pytest.mark.gpu
def test_to_cuda_moves_parameters_and_buffers_and_grads():
    bn = nn.BatchNorm2d(2)
    lin = nn.Linear(2, 2)
    lin(engine.randn(3, 2)).sum().backward()
    for m in (bn, lin):
        m.to("cuda")
        assert all(t.device == "cuda:0" for t in list(m.parameters()) + list(m.buffers()))
    assert lin.weight.grad.device == "cuda:0"
    y = bn(engine.randn(2, 2, 3, 3, device="cuda"))
    assert y.device == "cuda:0"


def test_load_state_dict_from_arrays_and_tensors_converts_dtype():
    a, b = Net(), Net()
    sd = {k: v.numpy().astype(np.float64) for k, v in a.state_dict().items()}
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
        assert vb.dtype == np.float32, k
    w = b.first.fc.weight
    b.load_state_dict(a.state_dict())                   # Tensors work too
    assert b.first.fc.weight is w                       # same Parameter object
    sd["first.fc.weight"][...] = 7.0                    # later edits of the source ...
    assert not np.any(b.first.fc.weight.numpy() == 7.0)  # ... do not leak into the model


def test_load_state_dict_names_missing_unexpected_and_mismatched_keys():
    net = Net()
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    del sd["layers.1.bias"]
    sd["layers.2.weight"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert "Net" in msg
    assert "missing keys: layers.1.bias" in msg
    assert "unexpected keys: layers.2.weight" in msg
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["layers.1.bias"]
    assert result.unexpected_keys == ["layers.2.weight"]

    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    sd["first.fc.weight"] = np.zeros((3, 4), dtype=np.float32)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch: first.fc.weight: "
                                               r"checkpoint \(3, 4\) vs model \(4, 3\)"):
            net.load_state_dict(sd, strict=strict)


def test_load_state_dict_restores_buffers():
    a, b = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    for _ in range(3):
        a(engine.randn(8, 3))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.running_mean.numpy(), a.running_mean.numpy())
    assert int(b.num_batches_tracked.item()) == 3


def test_deepcopy_gives_independent_module():
    net = Net()
    twin = copy.deepcopy(net)
    twin.first.fc.weight.data[...] = 0
    assert not np.all(net.first.fc.weight.numpy() == 0)
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in net.named_parameters()]
    assert isinstance(twin.first.fc.weight, Parameter)


def test_parameter_is_a_trainable_leaf():
    p = Parameter(np.ones(3, dtype=np.float32))
    assert p.requires_grad and p.is_leaf and isinstance(p, Tensor)
    assert not Parameter(np.ones(3), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:")


def test_repr_nests_children():
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert text == ("Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n"
                    "  (1): ReLU()\n)")


def test_reassigning_a_member_keeps_its_position():
    net = Net()
    net.first = Block()
    assert [n for n, _ in net.named_children()] == ["first", "layers"]
    lin = nn.Linear(2, 2)
    lin.weight = Parameter(np.zeros((2, 2), dtype=np.float32))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
