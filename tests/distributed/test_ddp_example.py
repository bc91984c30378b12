"""examples/ddp_train.py runs on 2 ranks in smoke mode and writes its checkpoint."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mpi_util import mpiexec_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_ddp_example_on_two_ranks(tmp_path):
    cmd = mpiexec_command(2)
    if cmd is None:
        pytest.skip("needs mpi4py and mpiexec")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")  # one per rank
    proc = subprocess.run(cmd + [sys.executable, str(ROOT / "examples" / "ddp_train.py"),
                                 "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 rank(s)" in proc.stdout and "test accuracy" in proc.stdout
    import engine

    state = engine.load(tmp_path / "checkpoint.safetensors")
    assert "model" in state and "optimizer" in state
