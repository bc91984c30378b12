"""A collective that waits longer than the timeout aborts every rank, naming the ranks
that did not arrive and where they are instead."""

import math
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import engine.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from mpi_util import run_two_ranks  # noqa: E402

SKIPPED_COLLECTIVE = """
import time
import engine.distributed as dist

dist.init(timeout=1.5)
dist.barrier()
if dist.get_rank() == 0:
    dist.allreduce_scalar(1)      # rank 1 skips this one and is busy elsewhere
time.sleep(60)
"""

LATE_THEN_MISSING = """
import time
import engine.distributed as dist

dist.init()                                # the timeout comes from the environment
if dist.get_rank() == 1:
    time.sleep(0.5)                        # late, but within the timeout
print(f"rank {dist.get_rank()}: sum {dist.allreduce_scalar(dist.get_rank() + 1)}", flush=True)
if dist.get_rank() == 1:
    dist.barrier()                         # rank 0 never comes
time.sleep(60)
"""


def test_rank_skipping_a_collective_is_named_and_every_rank_aborts(tmp_path):
    proc, seconds = run_two_ranks(tmp_path, SKIPPED_COLLECTIVE, timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert seconds < 20                          # not the 60 s the ranks would sleep
    assert "[rank 0]" in out and "allreduce_scalar (collective #2)" in out
    assert "timeout of 1.5 s" in out
    assert "did not arrive: rank 1" in out
    assert "rank 1 is not in a collective (the last it finished: barrier, #1)" in out


def test_timeout_from_the_environment_lets_a_late_rank_join(tmp_path):
    proc, seconds = run_two_ranks(tmp_path, LATE_THEN_MISSING, timeout=30,
                                  env={"XPGRAD_COLLECTIVE_TIMEOUT": "2"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert seconds < 20
    assert "rank 0: sum 3" in out and "rank 1: sum 3" in out
    assert "[rank 1]" in out and "barrier (collective #2)" in out and "timeout of 2 s" in out
    assert "did not arrive: rank 0" in out


def test_timeout_resolution(monkeypatch):
    monkeypatch.delenv("XPGRAD_COLLECTIVE_TIMEOUT", raising=False)
    assert dist.collective_timeout() == 600.0
    assert dist.collective_timeout(2.5) == 2.5
    assert dist.collective_timeout(timedelta(minutes=2)) == 120.0
    assert dist.collective_timeout(math.inf) == math.inf          # no watchdog
    monkeypatch.setenv("XPGRAD_COLLECTIVE_TIMEOUT", "45")
    assert dist.collective_timeout() == 45.0
    assert dist.collective_timeout(3) == 3.0                      # the argument wins
    monkeypatch.setenv("XPGRAD_COLLECTIVE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="XPGRAD_COLLECTIVE_TIMEOUT='soon'"):
        dist.collective_timeout()
    for bad in (0, -1.0, math.nan):
        with pytest.raises(ValueError, match="positive number of seconds"):
            dist.collective_timeout(bad)
