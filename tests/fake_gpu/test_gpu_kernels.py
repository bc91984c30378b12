"""The CUDA code path on a fake CuPy with the fused kernels on: their Numba CUDA launches
run in the simulator on the fake arrays' memory, against the CPU reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
import losses
import nn

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from gpu_checks import (  # noqa: E402
    _host_inputs, assert_same, backward, leaves, on_gpu, to, upstream,
)


# The fused ops on device data run engine/kernels/cuda.py: its allocations, copies and
# shapes on the array module, then a Numba CUDA launch. With Numba's CUDA simulator (in a
# fresh interpreter: it is chosen when numba.cuda is first imported) the launch runs on the
# fake arrays' host memory, so the whole CUDA path runs here except the real launch.
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and \
    os.environ.get("XPGRAD_FAKE_CUDASIM") == "1"


def _fused_vs_reference(fn, spec, dtype, rtol, atol):
    """``fn`` on the device with the (simulated) CUDA kernels and on the CPU with the
    reference formulas: outputs and gradients."""
    host = [a.astype(dtype) if a.dtype.kind == "f" else a
            for a in _host_inputs(spec, np.random.default_rng(0))]
    results = []
    for device, fused_on in (("cuda", True), ("cpu", False)):
        with engine.use_fused(fused_on):
            xs = [to(a, device) for a in host]
            engine.manual_seed(1)
            outs = leaves(fn(*xs))
            backward(outs, upstream(outs), device)
            results.append(outs + [x.grad for x in xs if x.requires_grad])
    for i, (gpu, cpu) in enumerate(zip(*results)):
        assert_same(cpu, gpu, f"result {i}", rtol=rtol, atol=atol)


_kpm = np.array([[False, False, True], [False, False, False]])


FUSED_CASES = {
    "softmax": (lambda x: engine.softmax(x), [(3, 5)]),
    "log_softmax_dim0": (lambda x: engine.log_softmax(x, dim=0), [(4, 3)]),
    "cross_entropy": (lambda x: losses.cross_entropy(
        x, engine.tensor([4, -100, 0], device=x.device), label_smoothing=0.2), [(3, 5)]),
    "cross_entropy_none": (lambda x: losses.cross_entropy(
        x, engine.tensor([1, 2, 0], device=x.device), reduction="none"), [(3, 4)]),
    "layer_norm": (lambda x, w, b: engine.layer_norm(x, 5, w, b), [(3, 5), (5,),
                                                                    (5,)]),
    "layer_norm_plain": (lambda x: engine.layer_norm(x, (2, 3)), [(2, 2, 3)]),
    "attention": (lambda q, k, v: engine.scaled_dot_product_attention(
        q, k, v, is_causal=True, key_padding_mask=engine.tensor(_kpm, device=q.device),
        need_weights=True), [(2, 1, 3, 4), (2, 1, 3, 4), (2, 1, 3, 4)]),
    "attention_bias_dropout": (lambda q, k, v, m: engine.scaled_dot_product_attention(
        q, k, v, attn_mask=m, dropout_p=0.3), [(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4),
                                               (3, 3)]),
    "mha": (lambda x: nn.MultiheadAttention(4, 2).to(x.device, x.dtype)(
        x, x, x, key_padding_mask=_kpm, attn_mask=np.triu(np.ones((3, 3), bool), 1))[0],
        [(3, 2, 4)]),
}


if SIMULATED:     # collected only in the simulator's interpreter
    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("name", list(FUSED_CASES))
    def test_fused_cuda_kernels_on_device_arrays(simulated_cuda, host_dropout_masks, name,
                                                 dtype):
        fn, spec = FUSED_CASES[name]
        tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else \
            dict(rtol=2e-4, atol=2e-5)
        _fused_vs_reference(fn, spec, dtype, **tol)
        assert simulated_cuda, "no CUDA kernel was launched"


def test_fused_cuda_path_under_the_simulator():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    root = Path(__file__).resolve().parents[1]      # tests/; the packages are one above
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", XPGRAD_FAKE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join([str(root.parent), str(root)]),
               HYPOTHESIS_PROFILE="quick")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(Path(__file__)), "-k", "test_fused_cuda_kernels_on_device_arrays"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert f"{2 * len(FUSED_CASES)} passed" in proc.stdout, proc.stdout[-2000:]


def test_unused_outputs_get_zero_gradients_on_the_device(cuda):
    x = engine.randn(4, 3, device="cuda", requires_grad=True)
    engine.chunk(x * 2.0, 2)[0].sum().backward()       # no output of chunk is alive
    on_gpu(x.grad)
    np.testing.assert_array_equal(x.grad.numpy(), np.repeat([[2.0], [0.0]], 2, axis=0)
                                  * np.ones((4, 3), np.float32))
    q = engine.randn(2, 3, 4, device="cuda", requires_grad=True)
    out, _ = nn.MultiheadAttention(4, 2, batch_first=True).to("cuda")(q * 1.0, q, q)
    out.sum().backward()
    on_gpu(q.grad)
