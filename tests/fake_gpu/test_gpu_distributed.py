"""The CUDA code path on a fake CuPy: gradient buckets, data splits and parameter
broadcasts of the data-parallel tools stay on the device."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn
from data import DataLoader, TensorDataset
from engine import Tensor

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from gpu_checks import (  # noqa: E402
    assert_same, leaves, on_gpu,
)


class _TwoRanks:
    """An MPI communicator of two ranks whose other rank holds 3x this rank's values."""

    def Allreduce(self, sendbuf, recvbuf, op=None):
        assert isinstance(recvbuf, np.ndarray), "MPI gets host buffers"
        recvbuf *= recvbuf.dtype.type(4)

    def bcast(self, obj, root=0):
        return obj

    def allgather(self, obj):
        return [obj, 3 * obj if isinstance(obj, (int, float)) else obj]

    def Bcast(self, buf, root=0):
        assert isinstance(buf, np.ndarray) and buf.flags.c_contiguous, "MPI gets host buffers"
        buf += buf.dtype.type(1)                        # root's values differ from ours


def _reduced_grads(device, monkeypatch, reduce=True, **kwargs):
    from types import SimpleNamespace

    from engine import distributed as dist

    monkeypatch.setattr(dist, "_mpi", lambda: SimpleNamespace(IN_PLACE="in place", SUM="sum",
                                                             MAX="max", MIN="min"))
    monkeypatch.setattr(dist._World, "comm", _TwoRanks())
    monkeypatch.setattr(dist._World, "size", 2)
    monkeypatch.setattr(dist._World, "nccl", None)
    engine.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2).double(), nn.Linear(3, 3))
    model.to(device)
    x = engine.randn(4, 3, device=device)
    model[1](model[0](x).double()).sum().backward()        # model[2] gets no gradient
    if reduce:
        dist.allreduce_gradients(model.parameters(), bucket_bytes=64, **kwargs)
    return model


@pytest.mark.parametrize("num_samples", [None, 3])
def test_allreduce_gradients_packs_device_buckets(cuda, monkeypatch, num_samples):
    cpu = _reduced_grads("cpu", monkeypatch, num_samples=num_samples)
    gpu = _reduced_grads("cuda", monkeypatch, num_samples=num_samples)
    for (name, a), b in zip(cpu.named_parameters(), gpu.parameters()):
        assert_same(a.grad, b.grad, f"{name} grad", rtol=0, atol=0)
        assert b.grad.dtype == b.dtype
    # (g + 3g) / 2 ranks; weighted: (3 g + 3 · 3g) / (3 + 9) samples
    factor = 2.0 if num_samples is None else 1.0
    plain = _reduced_grads("cpu", monkeypatch, reduce=False)
    for (name, a), b in zip(gpu.named_parameters(), plain.parameters()):
        want = np.zeros(a.shape) if b.grad is None else factor * b.grad.numpy()
        np.testing.assert_allclose(a.grad.numpy(), want, rtol=1e-6, err_msg=name)


def test_splits_of_device_data_stay_on_the_device(cuda):
    from data import random_split, train_test_split

    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    y = np.array([0, 1, 2] * 4)
    parts = {}
    for device in ("cpu", "cuda"):
        xt, yt = engine.tensor(x, device=device), engine.tensor(y, device=device)
        parts[device] = train_test_split(xt, yt.data, test_size=0.25, stratify=yt, seed=0)
    for a, b in zip(parts["cpu"], parts["cuda"]):
        a, b = (t if isinstance(t, Tensor) else Tensor._make(t, None, 0) for t in (a, b))
        assert_same(a, b, "split", rtol=0, atol=0)
    ds = TensorDataset(engine.tensor(x, device="cuda"), engine.tensor(y, device="cuda"))
    train, test = random_split(ds, [0.75, 0.25], seed=1)
    for loader in (DataLoader(train, batch_size=4, shuffle=True),
                   DataLoader(test, batch_size=2, collate_fn=lambda b: b)):
        for batch in loader:
            for t in leaves(batch):
                on_gpu(t)


def test_broadcast_parameters_keeps_them_on_the_device(cuda, monkeypatch):
    from engine import distributed as dist

    monkeypatch.setattr(dist._World, "comm", _TwoRanks())
    engine.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to("cuda")
    before = [t.numpy() for t in model.state_dict().values()]
    dist.broadcast_parameters(model)
    for t, b in zip(model.state_dict().values(), before):
        on_gpu(t)
        np.testing.assert_array_equal(t.numpy(), b + 1)
