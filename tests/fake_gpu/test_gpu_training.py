"""The CUDA code path on a fake CuPy: optimizers, clipping, schedulers, pruning, data
loaders, initialization, training and checkpoints give the CPU's numbers on the device."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import losses
import nn
import optim
from data import DataLoader, TensorDataset
from engine import Tensor

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from gpu_checks import (  # noqa: E402
    assert_same, on_gpu,
)


# ----------------------------------------------------------------------------- optim
def _model(device=None):
    engine.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().to(device)


OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                        weight_decay=0.01),
    "sgd_dampening": lambda p: optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.3,
                                         maximize=True),
    "adam": lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
    "adam_amsgrad": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01, amsgrad=True),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.9, centered=True,
                                       weight_decay=0.01),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                       initial_accumulator_value=0.1),
    "groups": lambda p: optim.Adam([{"params": p[:2], "lr": 0.1}, {"params": p[2:]}],
                                   lr=0.01),
}


def _optimize(make_opt, device, steps=4, clip=None, scheduler=None):
    model = _model(device)
    opt = make_opt(list(model.parameters()))
    sched = scheduler(opt) if scheduler else None
    rng = np.random.default_rng(7)
    x = engine.tensor(rng.standard_normal((5, 4)), device=device)
    y = engine.tensor(rng.integers(0, 3, 5), device=device)
    norms, lrs = [], []
    for _ in range(steps):
        opt.zero_grad()
        losses.cross_entropy(model(x), y).backward()
        if clip is not None:
            norms.append(clip(model.parameters()))
        opt.step()
        if sched is not None:
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
    return model, opt, norms, lrs


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_on_device(cuda, name):
    cpu, cpu_opt, _, _ = _optimize(OPTIMIZERS[name], "cpu")
    gpu, gpu_opt, _, _ = _optimize(OPTIMIZERS[name], "cuda")
    for (n, a), (_, b) in zip(cpu.named_parameters(), gpu.named_parameters()):
        assert_same(a, b, n)
    for pa, pb in zip(cpu.parameters(), gpu.parameters()):
        state_a, state_b = cpu_opt.state[pa], gpu_opt.state[pb]
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            if isinstance(state_a[key], Tensor):
                assert_same(state_a[key], state_b[key], f"state {key}")
            else:
                assert state_a[key] == state_b[key]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_on_device(cuda, norm_type):
    clip = lambda ps: optim.clip_grad_norm_(ps, max_norm=0.05, norm_type=norm_type)
    cpu, _, cpu_norms, _ = _optimize(OPTIMIZERS["sgd"], "cpu", clip=clip)
    gpu, _, gpu_norms, _ = _optimize(OPTIMIZERS["sgd"], "cuda", clip=clip)
    for a, b in zip(cpu_norms, gpu_norms):
        assert_same(a, b, "total norm")
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        assert_same(a, b, "clipped step")
    model = _model("cuda")
    model(engine.ones(2, 4, dtype=np.float64, device="cuda")).sum().backward()
    optim.clip_grad_value_(model.parameters(), 0.01)
    for p in model.parameters():
        on_gpu(p.grad)
        assert float(abs(p.grad).max()) <= 0.01


@pytest.mark.parametrize("make", [
    lambda o: optim.lr_scheduler.StepLR(o, 2, gamma=0.5),
    lambda o: optim.lr_scheduler.MultiStepLR(o, [1, 3], gamma=0.1),
    lambda o: optim.lr_scheduler.ExponentialLR(o, 0.9),
    lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 3, eta_min=1e-4),
    lambda o: optim.lr_scheduler.LinearLR(o, 0.1, 1.0, total_iters=2),
    lambda o: optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)),
    lambda o: optim.lr_scheduler.SequentialLR(
        o, [optim.lr_scheduler.LinearLR(o, 0.5, total_iters=2),
            optim.lr_scheduler.ExponentialLR(o, 0.5)], milestones=[2]),
])
def test_schedulers_drive_device_optimizers(cuda, make):
    cpu, _, _, cpu_lrs = _optimize(OPTIMIZERS["adam"], "cpu", steps=5, scheduler=make)
    gpu, _, _, gpu_lrs = _optimize(OPTIMIZERS["adam"], "cuda", steps=5, scheduler=make)
    assert cpu_lrs == gpu_lrs and all(isinstance(lr, float) for lr in gpu_lrs)
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        assert_same(a, b, "scheduled step")


def test_pruning_on_device(cuda):
    from optim import pruning

    results = {}
    for device in ("cpu", "cuda"):
        model = _model(device)
        pruning.l1_unstructured(model[0], "weight", amount=0.4)
        pruning.l1_unstructured(model[0], "weight", amount=3)
        pruning.global_unstructured([(model[0], "bias"), (model[2], "weight")], amount=0.5)
        pruning.identity(model[2], "bias")
        opt = optim.SGD(model.parameters(), lr=0.5)
        model(engine.ones(3, 4, dtype=np.float64, device=device)).sum().backward()
        opt.step()                                 # the masks are applied after the step
        assert pruning.is_pruned(model)
        masks = {n: b for n, b in model.named_buffers() if n.endswith("_mask")}
        pruning.remove(model[0], "weight")
        results[device] = list(model.parameters()) + [masks[k] for k in sorted(masks)]
    for a, b in zip(results["cpu"], results["cuda"]):
        assert_same(a, b, "pruned")
    assert int((results["cuda"][0] == 0.0).sum()) == 13 + 3     # round(0.4 · 32) + 3


# ----------------------------------------------------------------------------- data
def test_dataloader_moves_batches_to_the_device(cuda):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = np.arange(10)
    for dataset in (TensorDataset(x, y),
                    TensorDataset(engine.tensor(x, device="cuda"), engine.tensor(y))):
        batches = {}
        for device in ("cpu", "cuda"):
            loader = DataLoader(dataset, batch_size=4, shuffle=True, seed=3, device=device)
            batches[device] = [b for xb_yb in loader for b in xb_yb]
        assert len(batches["cuda"]) == 6
        for a, b in zip(batches["cpu"], batches["cuda"]):
            assert_same(a, b, "batch", rtol=0, atol=0)
    samples = [(engine.tensor(x[i], device="cuda"), {"id": i, "y": np.float32(i)})
               for i in range(5)]
    loader = DataLoader(samples, batch_size=2, collate_fn=None, device="cuda")
    xb, meta = next(iter(loader))
    on_gpu(xb)
    on_gpu(meta["id"])
    on_gpu(meta["y"])
    assert meta["y"].dtype == np.float32


# ----------------------------------------------------------------------------- modules
def test_same_seed_same_initial_weights_on_either_device(cuda):
    makes = [lambda **kw: nn.Linear(5, 4, **kw), lambda **kw: nn.Conv2d(2, 3, 3, **kw),
             lambda **kw: nn.Embedding(6, 4, **kw), lambda **kw: nn.LayerNorm(4, **kw),
             lambda **kw: nn.BatchNorm2d(3, **kw), lambda **kw: nn.LSTM(3, 4, 2, **kw),
             lambda **kw: nn.MultiheadAttention(8, 2, **kw),
             lambda **kw: nn.Transformer(8, 2, 1, 1, 16, **kw)]
    for make in makes:
        engine.manual_seed(11)
        cpu = make()
        engine.manual_seed(11)
        moved = make().to("cuda")
        engine.manual_seed(11)
        built = make(device="cuda")
        for (name, a), b, c in zip(cpu.state_dict().items(), moved.state_dict().values(),
                                   built.state_dict().values()):
            assert_same(a, b, f"{type(cpu).__name__}.{name} moved", rtol=0, atol=0)
            assert_same(a, c, f"{type(cpu).__name__}.{name} built", rtol=0, atol=0)


def test_init_functions_on_device_parameters(cuda):
    from nn import init

    fns = [init.uniform_, init.normal_, init.trunc_normal_, lambda t: init.constant_(t, 0.3),
           init.zeros_, init.ones_, init.eye_, init.xavier_uniform_, init.xavier_normal_,
           init.kaiming_uniform_, lambda t: init.kaiming_normal_(t, mode="fan_out"),
           init.orthogonal_]
    for fn in fns:
        engine.manual_seed(2)
        a = fn(nn.Parameter(np.zeros((4, 6), np.float32)))
        engine.manual_seed(2)
        b = fn(nn.Parameter(np.zeros((4, 6), np.float32)).to("cuda"))
        assert_same(a, b, getattr(fn, "__name__", "init"), rtol=0, atol=0)


def _transformer_steps(device, steps=3):
    engine.manual_seed(0)
    model = nn.Transformer(8, 2, 1, 1, 16, dropout=0.2, batch_first=True).to(device)
    head = nn.Linear(8, 5).to(device)
    emb = nn.Embedding(5, 8).to(device)
    params = list(model.parameters()) + list(head.parameters()) + list(emb.parameters())
    opt = optim.AdamW(params, lr=1e-2)
    rng = np.random.default_rng(0)
    src = engine.tensor(rng.integers(0, 5, (3, 6)), device=device)
    tgt = engine.tensor(rng.integers(0, 5, (3, 4)), device=device)
    mask = nn.Transformer.generate_square_subsequent_mask(4, device=device)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        logits = head(model(emb(src), emb(tgt), tgt_mask=mask))
        loss = losses.cross_entropy(logits.reshape(-1, 5), tgt.reshape(-1))
        loss.backward()
        optim.clip_grad_norm_(params, 1.0)
        opt.step()
        out.append(loss.item())
    return out


def test_training_gives_the_same_losses_on_either_device(cuda, host_dropout_masks):
    from data import TensorDataset as TD

    def mlp_losses(device):
        engine.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        model.to(device)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        rng = np.random.default_rng(1)
        ds = TD(rng.standard_normal((20, 6)).astype(np.float32), rng.integers(0, 3, 20))
        out = []
        for _ in range(2):
            for xb, yb in DataLoader(ds, batch_size=8, shuffle=True, device=device):
                opt.zero_grad()
                loss = losses.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                out.append(loss.item())
        return out

    np.testing.assert_allclose(mlp_losses("cuda"), mlp_losses("cpu"), rtol=1e-6)
    np.testing.assert_allclose(_transformer_steps("cuda"), _transformer_steps("cpu"),
                               rtol=1e-5)


def test_checkpoint_from_the_device_loads_on_the_cpu(cuda, tmp_path):
    model, opt, _, _ = _optimize(OPTIMIZERS["adam"], "cuda", steps=2)
    bn = nn.BatchNorm1d(3).to("cuda")
    bn(engine.randn(4, 3, device="cuda"))
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "bn": bn.state_dict(),
             "raw": cuda.arange(3.0), "step": engine.tensor(7, device="cuda")}
    for t in state["model"].values():
        on_gpu(t)
    path = tmp_path / "ckpt.safetensors"
    engine.save(state, path)
    assert all(p.device == "cuda:0" for p in model.parameters())
    loaded = engine.load(path)
    fresh = _model()
    fresh.load_state_dict(loaded["model"])
    for a, b in zip(fresh.parameters(), model.parameters()):
        assert a.device == "cpu"
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    cpu_opt = optim.Adam(fresh.parameters(), lr=0.01, weight_decay=0.1)
    cpu_opt.load_state_dict(loaded["opt"])
    for p in fresh.parameters():
        assert all(v.device == "cpu" for v in cpu_opt.state[p].values()
                   if isinstance(v, Tensor))
    back = _model("cuda")                               # CPU state into a device model
    back.load_state_dict(loaded["model"])
    gpu_opt = optim.Adam(back.parameters(), lr=0.01, weight_decay=0.1)
    gpu_opt.load_state_dict(loaded["opt"])
    for p, q in zip(back.parameters(), model.parameters()):
        assert_same(q, p, "reloaded")
        for key, v in gpu_opt.state[p].items():
            if isinstance(v, Tensor):
                assert_same(opt.state[q][key], v, f"state {key}")
    bn2 = nn.BatchNorm1d(3)
    bn2.load_state_dict(loaded["bn"])
    np.testing.assert_array_equal(bn2.running_mean.numpy(), bn.running_mean.numpy())
    assert int(bn2.num_batches_tracked.item()) == 1
    assert isinstance(loaded["raw"], np.ndarray) and loaded["raw"].tolist() == [0, 1, 2]
    assert loaded["step"].shape == () and loaded["step"].item() == 7


def test_map_location_loads_the_tensors_onto_the_device(cuda, tmp_path):
    w = engine.randn(2, 3)
    engine.save({"w": w, "raw": np.arange(3), "n": 4}, tmp_path / "ckpt.pt")
    loaded = engine.load(tmp_path / "ckpt.pt", map_location="cuda")
    on_gpu(loaded["w"])
    np.testing.assert_array_equal(loaded["w"].numpy(), w.numpy())
    assert isinstance(loaded["raw"], np.ndarray) and loaded["n"] == 4


def test_module_moves_and_casts_keep_the_device(cuda):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.PositionalEncoding(4, 8))
    model.cuda() if hasattr(model, "cuda") else model.to("cuda")
    for t in list(model.parameters()) + [b for b in model.buffers() if b is not None]:
        on_gpu(t)
    model.double()
    for t in model.parameters():
        on_gpu(t)
        assert t.dtype == np.float64
    model.to("cpu")
    assert all(t.device == "cpu" for t in model.parameters())
    assert all(b.device == "cpu" for b in model.buffers() if b is not None)
