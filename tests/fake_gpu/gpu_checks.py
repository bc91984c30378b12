"""Helpers of the fake-GPU tests: where a result lives, CPU-vs-device comparisons, random
upstream gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import engine
from engine import Tensor

sys.path.insert(0, str(Path(__file__).parents[1]))
import fake_cupy  # noqa: E402


def on_gpu(t, what="tensor"):
    """Assert ``t`` (a Tensor or an array) lives on the fake device."""
    data = t.data if isinstance(t, Tensor) else t
    assert fake_cupy.is_fake(data), f"{what}: expected a device array, got {type(data)}"
    if isinstance(t, Tensor):
        assert t.device == "cuda:0", f"{what}: device {t.device}"


def leaves(obj):
    """The Tensors inside an output (tuples, lists, dicts), in order."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in leaves(o)]
    return []


def assert_same(cpu, gpu, what="value", rtol=1e-10, atol=1e-12):
    """``gpu`` is on the fake device, with the dtype, shape and values of ``cpu``."""
    on_gpu(gpu, what)
    assert gpu.dtype == cpu.dtype, f"{what}: dtype {gpu.dtype} != {cpu.dtype}"
    assert gpu.shape == cpu.shape, f"{what}: shape {gpu.shape} != {cpu.shape}"
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=rtol, atol=atol, err_msg=what)


def to(x, device):
    """A Tensor from host data on ``device`` (float arrays require grad)."""
    if isinstance(x, np.ndarray):
        return engine.tensor(x, device=device, requires_grad=x.dtype.kind == "f")
    return x


def upstream(outs, seed=0):
    """Random upstream gradients (host arrays) for the outputs that require grad."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(o.shape).astype(o.dtype) for o in outs]


def backward(outs, grads, device):
    live = [(o, g) for o, g in zip(outs, grads) if o.requires_grad]
    if live:
        engine.backward([o for o, _ in live],
                        [engine.tensor(g, device=device) for _, g in live])


def _host_inputs(spec, rng):
    """Host arrays from a spec: a shape gives normal floats; arrays pass through."""
    out = []
    for s in spec:
        if isinstance(s, tuple):
            out.append(rng.standard_normal(s))
        else:
            out.append(s)
    return out
