"""The same code on every device (one fixture, CUDA cases skipped without a GPU)."""

import numpy as np
import pytest

import engine
import losses
import nn
import optim
from data import DataLoader, TensorDataset


def small_model():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 3))


def train_losses(device, steps=5, seed=0):
    engine.manual_seed(seed)
    model = small_model().to(device)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    x = engine.tensor(rng.standard_normal((8, 6)).astype(np.float32), device=device)
    y = engine.tensor(rng.integers(0, 3, 8), device=device)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = losses.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out, model, opt


def test_tensor_round_trip(device):
    x = engine.randn(3, 4).to(device)
    assert x.device.startswith(device)
    back = x.cpu()
    assert back.device == "cpu" and isinstance(back.numpy(), np.ndarray)
    np.testing.assert_array_equal(back.numpy(), x.numpy())


def test_gradients_flow_back_across_devices(device):
    x = engine.randn(3, requires_grad=True)
    y = (x.to(device) * 2.0).sum()
    y.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 2.0))


def test_training_runs_are_reproducible_on_each_device(device):
    first, model, opt = train_losses(device)
    second, _, _ = train_losses(device)
    assert first == second
    assert all(p.device.startswith(device) for p in model.parameters())
    for state in opt.state.values():
        for v in state.values():
            if isinstance(v, engine.Tensor):
                assert v.device.startswith(device)


def test_checkpoint_from_device_loads_on_cpu_and_model_stays(device, tmp_path):
    _, model, opt = train_losses(device, steps=2)
    path = tmp_path / "ckpt.safetensors"
    engine.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    assert all(p.device.startswith(device) for p in model.parameters())
    state = engine.load(path)
    assert all(t.device == "cpu" for t in state["model"].values())
    fresh = small_model()                       # a CPU model
    fresh.load_state_dict(state["model"])
    for a, b in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert a.device == "cpu"


def test_dataloader_moves_batches(device):
    ds = TensorDataset(np.arange(12.0).reshape(6, 2).astype(np.float32), np.arange(6))
    for xb, yb in DataLoader(ds, batch_size=4, device=device):
        assert xb.device.startswith(device) and yb.device.startswith(device)


@pytest.mark.gpu
def test_same_seed_same_initial_weights_on_cpu_and_gpu():
    engine.manual_seed(3)
    cpu = small_model()
    engine.manual_seed(3)
    gpu = small_model().to("cuda")
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.gpu
def test_gpu_training_matches_cpu_training(host_dropout_masks):
    cpu, _, _ = train_losses("cpu")
    gpu, _, _ = train_losses("cuda")
    np.testing.assert_allclose(cpu, gpu, rtol=1e-4)


@pytest.mark.gpu
def test_fused_ops_dispatch_to_cuda_kernels():
    from engine import kernels

    x = engine.randn(4, 8).to("cuda")
    assert kernels.select(x.data).__name__ == "engine.kernels.cuda"
    np.testing.assert_allclose(engine.softmax(x).numpy(), engine.softmax(x.cpu()).numpy(),
                               rtol=1e-5, atol=1e-7)
