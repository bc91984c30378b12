"""engine.threads: idle OpenMP threads sleep unless the user chose otherwise, BLAS thread
limits nest and restore (from several threads too), and the worker pool covers the work
once with BLAS held to one thread."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine import threads

ROOT = Path(__file__).resolve().parents[2]
needs_openblas = pytest.mark.skipif(threads.get_blas_threads() is None,
                                    reason="NumPy's BLAS is not an OpenBLAS found here")


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_omp_wait_policy_is_passive_unless_the_user_set_it(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(ROOT)
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", "import os, engine.threads; "
                          "print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == expected, out.stderr


@needs_openblas
def test_blas_limits_nest_the_smallest_wins_and_the_count_comes_back():
    before = threads.get_blas_threads()
    with threads.blas_threads(1) as held:
        assert held and threads.get_blas_threads() == 1
        with threads.blas_threads(3):
            assert threads.get_blas_threads() == 1           # the smallest limit held
        assert threads.get_blas_threads() == 1
    assert threads.get_blas_threads() == before


@needs_openblas
def test_set_blas_threads_is_the_count_a_limit_returns_to():
    before = threads.get_blas_threads()
    try:
        assert threads.set_blas_threads(1)
        with threads.blas_threads(1):
            assert threads.set_blas_threads(3)               # held: applies on release
            assert threads.get_blas_threads() == 1
        assert threads.get_blas_threads() == 3
    finally:
        threads.set_blas_threads(before)
    with pytest.raises(ValueError, match="set_blas_threads: need at least 1 thread, got 0"):
        threads.set_blas_threads(0)


@needs_openblas
def test_limits_held_by_several_threads_restore_the_count_when_all_are_released():
    before = threads.get_blas_threads()
    entered, release = threading.Barrier(3), threading.Event()

    def hold():
        with threads.blas_threads(1):
            entered.wait(10)
            release.wait(10)

    workers = [threading.Thread(target=hold) for _ in range(2)]
    for w in workers:
        w.start()
    entered.wait(10)
    assert threads.get_blas_threads() == 1
    release.set()
    for w in workers:
        w.join(10)
    assert threads.get_blas_threads() == before


@needs_openblas
def test_run_split_covers_every_item_once_with_blas_on_one_thread():
    seen, blas_inside = [], []
    lock = threading.Lock()

    def work(lo, hi):
        with lock:
            seen.extend(range(lo, hi))
            blas_inside.append(threads.get_blas_threads())

    before = threads.get_blas_threads()
    assert threads.run_split(work, 10, 3)
    assert sorted(seen) == list(range(10)) and set(blas_inside) == {1}
    assert threads.pool_started() and threads.get_blas_threads() == before


@needs_openblas
def test_run_split_raises_a_worker_error_after_every_range_ran():
    done = []

    def work(lo, hi):
        done.append((lo, hi))
        if lo > 0:
            raise RuntimeError(f"range {lo}:{hi} failed")

    before = threads.get_blas_threads()
    with pytest.raises(RuntimeError, match="range 2:4 failed"):
        threads.run_split(work, 4, 2)
    assert sorted(done) == [(0, 2), (2, 4)]
    assert threads.get_blas_threads() == before
