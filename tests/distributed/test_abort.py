"""An exception on one rank ends every rank promptly, naming the rank and the error."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mpi_util import run_two_ranks  # noqa: E402

SCRIPT = """
import time
import numpy as np
import engine.distributed as dist

dist.init()
if dist.get_rank() == 1:
    raise ValueError("bad batch on purpose")
dist.allreduce_scalar(1)          # rank 0 waits here for a rank that will never come
time.sleep(60)
"""

MISMATCH = """
import engine.distributed as dist
import nn

dist.init()
model = nn.Linear(3, 4 + dist.get_rank())
dist.broadcast_parameters(model)
"""


def test_exception_on_rank_1_aborts_both_ranks(tmp_path):
    proc, seconds = run_two_ranks(tmp_path, SCRIPT)
    assert proc.returncode != 0
    assert seconds < 30
    out = proc.stdout + proc.stderr
    assert "[rank 1] ValueError: bad batch on purpose" in out


def test_mismatched_parameter_shapes_are_detected_at_broadcast(tmp_path):
    proc, _ = run_two_ranks(tmp_path, MISMATCH)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "broadcast_parameters" in out and "rank 0" in out and "rank 1" in out
    assert "(4, 3)" in out and "(5, 3)" in out
