"""How to start ``mpiexec`` from the tests (Open MPI needs extra flags as root)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def mpiexec_command(n: int) -> list[str] | None:
    """The command prefix that starts ``n`` ranks, or None without MPI."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    exe = Path(sys.executable).parent / "mpiexec"
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    if exe is None:
        return None
    cmd = [exe, "-n", str(n)]
    if "Open MPI" in MPI.Get_library_version():
        cmd += ["--oversubscribe"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd += ["--allow-run-as-root"]
    return cmd


def run_two_ranks(tmp_path, source: str, timeout: float = 60, env: dict | None = None):
    """Run the Python ``source`` on 2 ranks; the finished process and its seconds."""
    cmd = mpiexec_command(2)
    if cmd is None:
        pytest.skip("needs mpi4py and mpiexec")
    script = tmp_path / "script.py"
    script.write_text(source)
    start = time.perf_counter()
    proc = subprocess.run(cmd + [sys.executable, str(script)], capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))
    return proc, time.perf_counter() - start
