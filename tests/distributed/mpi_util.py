"""How to start ``mpiexec`` from the tests (Open MPI needs extra flags as root)."""

import os
import shutil
import sys
from pathlib import Path


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
