"""In-place ops, item assignment and version counters on the fake CuPy: results stay device
arrays, equal the CPU path's, and count writes to device memory like host memory."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine

sys.path.insert(0, str(Path(__file__).parent))
from gpu_checks import assert_same, on_gpu  # noqa: E402


def _program(device):
    """A non-leaf written by in-place ops and item assignment, and its gradients."""
    r = np.random.default_rng(0)
    x = engine.tensor(r.standard_normal((3, 4)), device=device, requires_grad=True)
    b = engine.tensor(r.standard_normal(4), device=device, requires_grad=True)
    y = x * 1.0
    y.mul_(b).add_(x, alpha=0.5).clamp_(-1.0, 1.0)
    y.masked_fill_(x > 1.2, 0.0)
    y[1, 2:] = b[:2]
    y[engine.tensor([0, 2], device=device)] = y[engine.tensor([2, 0], device=device)] * 2.0
    y.sigmoid_()
    (y * y).sum().backward()
    return y, x.grad, b.grad


def test_a_program_of_inplace_ops_matches_the_cpu(cuda):
    for cpu, gpu, what in zip(_program("cpu"), _program("cuda"), ("y", "x.grad", "b.grad")):
        assert_same(cpu.detach() if what == "y" else cpu, gpu.detach(), what)


def test_overwrites_and_versions_on_the_device(cuda):
    y = engine.zeros(2, 3, device="cuda")
    y.fill_(2.0).add_(1.0)
    on_gpu(y)
    assert y._version == 2 and y[1]._version == 2
    y[0].zero_()
    assert y._version == 3
    y.copy_(engine.tensor([1.0, 2.0, 3.0]))          # from the host, broadcast
    on_gpu(y)
    np.testing.assert_array_equal(y.numpy(), [[1.0, 2.0, 3.0]] * 2)
    engine.manual_seed(0)
    y.normal_()
    on_gpu(y)
    engine.manual_seed(0)
    host = engine.zeros(2, 3).normal_()
    np.testing.assert_array_equal(y.numpy(), host.numpy())   # the same draws everywhere
    assert y._version == 5


def test_a_write_to_saved_device_memory_is_caught(cuda):
    x = engine.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    y = x * 2.0
    z = y * y
    with engine.no_grad():
        y[0] = 0.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()
