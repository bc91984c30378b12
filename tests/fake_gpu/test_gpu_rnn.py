"""The recurrent layers' CUDA path on a fake CuPy with the fused ops on: the LSTM's sequence
op and step op run their array-module code on device arrays and give the CPU kernels'
results; the embedding's gradient goes through the device scatter-add."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import nn

sys.path.insert(0, str(Path(__file__).parent))
from gpu_checks import assert_same, backward, fake_cupy, leaves, on_gpu, to, upstream  # noqa: E402


@pytest.fixture
def fused_cuda(monkeypatch):
    """The fake CuPy installed, fused ops on (the LSTM's need no kernel launch)."""
    cp = fake_cupy.install(monkeypatch)
    with engine.use_fused(True):
        yield cp


def _run(make, host, device, call):
    engine.manual_seed(0)
    m = make().to(device)
    xs = [to(a, device) for a in host]
    outs = leaves(call(m, *xs))
    backward(outs, upstream(outs), device)
    return outs, outs + [x.grad for x in xs if x.requires_grad] + \
        [p.grad for p in m.parameters()]


CASES = {
    "lstm": (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True),
             [(2, 5, 3), (4, 2, 4), (4, 2, 4)], lambda m, x, h, c: m(x, (h, c))),
    "lstm_nobias": (lambda: nn.LSTM(2, 3, bias=False), [(4, 3, 2)], lambda m, x: m(x)),
    "lstm_cell": (lambda: nn.LSTMCell(3, 4), [(2, 3), (2, 4), (2, 4)],
                  lambda m, x, h, c: m(x, (h, c))),
    "embedding_lstm": (lambda: nn.Sequential(nn.Embedding(9, 3, padding_idx=0),
                                             nn.LSTM(3, 2, batch_first=True)),
                       [np.array([[1, 4, 4, 0], [8, 1, 0, 0]])], lambda m, i: m(i)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(CASES))
def test_fused_recurrent_layers_on_device_match_cpu(fused_cuda, name, dtype):
    make, spec, call = CASES[name]
    rng = np.random.default_rng(1)
    host = [rng.standard_normal(s).astype(dtype) if isinstance(s, tuple) else s for s in spec]
    build = lambda: make().to(dtype=dtype)
    _, cpu = _run(build, host, "cpu", call)
    outs, gpu = _run(build, host, "cuda", call)
    fused = {"LSTMSequence", "LSTMCellFunction"}
    assert type(outs[0].grad_fn).__name__ in fused | {"SwapAxes"}
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    assert len(cpu) == len(gpu)
    for i, (a, b) in enumerate(zip(cpu, gpu)):
        assert_same(a, b, f"result {i}", **tol)


def test_lstm_sequence_op_is_taken_on_device(fused_cuda):
    m = nn.LSTM(2, 3).to("cuda")
    out, (h, c) = m(engine.randn(4, 2, 2, device="cuda", requires_grad=True))
    assert type(out.grad_fn).__name__ == "LSTMSequence"
    (out.sum() + (h * c).sum()).backward()
    for p in m.parameters():
        on_gpu(p.grad, "parameter gradient")
