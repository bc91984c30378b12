"""The Numba CUDA kernels, in CI without a GPU: ``cudasim_cases.py`` under Numba's CUDA
simulator in a fresh interpreter (the simulator is chosen when ``numba.cuda`` is first
imported, so it cannot be switched on inside this test process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("cudasim_cases.py")
ROOT = Path(__file__).resolve().parents[2]


def test_cuda_kernels_under_the_simulator():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(CASES)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
