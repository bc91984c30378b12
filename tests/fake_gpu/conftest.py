"""The CUDA code path, run without a GPU on a fake CuPy (tests/fake_cupy.py).

Every test installs the fake, moves its inputs to ``"cuda"`` and checks three things: the
results and gradients are fake device arrays (a plain NumPy array coming back means some
code ran NumPy on device data or built a host array it forgot to move), they equal the CPU
path's, and nothing mixes host and device arrays (the fake raises there as CuPy does).
Fused kernels run their reference formulas here (fixture ``cuda``); the Numba CUDA kernels
themselves run under Numba's simulator in test_gpu_kernels.py (fixture ``simulated_cuda``)
and in tests/engine/test_kernels_cuda.py.
"""

import sys
from pathlib import Path

import pytest

import engine

sys.path.insert(0, str(Path(__file__).parents[1]))
import fake_cupy  # noqa: E402


@pytest.fixture
def cuda(monkeypatch):
    """The fake CuPy installed, fused kernels on their reference formulas."""
    cp = fake_cupy.install(monkeypatch)
    with engine.use_fused(False):
        yield cp


@pytest.fixture
def simulated_cuda(monkeypatch):
    """The fake CuPy with the fused kernels on, their launches in the CUDA simulator."""
    fake_cupy.install(monkeypatch)
    launched = fake_cupy.simulate_kernels(monkeypatch)
    with engine.use_fused(True):
        yield launched
