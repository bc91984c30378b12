"""engine.memory: once the engine is imported, arrays freed and allocated again reuse the
process's memory (no page faults), unless the user set glibc's thresholds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ALLOCATE = """
import resource, sys
import numpy as np
if sys.argv[1] == "engine":
    import engine
    print("kept", engine.memory.KEPT)
for _ in range(3):                        # warm up: the heap grows to its working size
    a = np.ones(2_000_000, np.float32); b = a * 2; del a, b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):                       # 8 MB arrays, each touched: 2,000 pages
    a = np.ones(2_000_000, np.float32); b = a * 2; del a, b
print("faults", resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the thresholds are glibc's")


def faults(*args, env=None):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")},
           "PYTHONPATH": str(ROOT), **(env or {})}
    out = subprocess.run([sys.executable, "-c", ALLOCATE, *args], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split() for line in out.stdout.splitlines())
    return int(lines["faults"]), lines.get("kept")


def test_freed_arrays_are_reused_without_page_faults():
    plain, _ = faults("numpy")
    kept, flag = faults("engine")
    assert flag == "True"
    assert plain > 8000            # arrays mapped afresh (16,000 to 30,000 faults seen)
    assert kept < 1000


def test_the_users_own_glibc_thresholds_win():
    count, flag = faults("engine", env={"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert flag == "False" and count > 8000
