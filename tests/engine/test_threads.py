"""engine.threads: idle OpenMP threads sleep unless the user chose otherwise, BLAS thread
limits nest and restore (from several threads too), and the worker pool covers the work
once with BLAS held to one thread."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine import threads

ROOT = Path(__file__).resolve().parents[2]
needs_openblas = pytest.mark.skipif(threads.get_blas_threads() is None,
                                    reason="NumPy's BLAS is not an OpenBLAS found here")


@pytest.fixture(autouse=True)
def _no_pause():
    """Each test starts with the pool unpaused, whatever splits ran before."""
    c = threads._Contention
    c.pause_until, c.pause, c.strikes = 0.0, None, 0
    yield
    c.pause_until, c.pause, c.strikes = 0.0, None, 0


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


# ----------------------------------------------------------------------------- thread count
@needs_openblas
def test_set_num_threads_sets_the_engine_blas_and_numba_counts(restore_threads):
    import numba

    import engine

    engine.set_num_threads(1)
    assert engine.get_num_threads() == 1 and threads.get_blas_threads() == 1
    assert numba.get_num_threads() == 1
    engine.set_num_threads(3)
    assert engine.get_num_threads() == 3 and threads.get_blas_threads() == 3
    assert numba.get_num_threads() == min(3, numba.config.NUMBA_NUM_THREADS)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_num_threads: need a whole number of "
                                             "threads >= 1, got"):
            engine.set_num_threads(bad)


@needs_openblas
def test_without_set_num_threads_the_count_follows_blas(restore_threads):
    threads._count = None
    threads.set_blas_threads(1)            # as threadpoolctl or OPENBLAS_NUM_THREADS would
    assert threads.get_num_threads() == 1
    threads.set_blas_threads(2)
    assert threads.get_num_threads() == 2
    with threads.blas_threads(1):          # a limit held is not the count
        assert threads.get_num_threads() == 2


# ----------------------------------------------------------------------------- matmul
def _products(rng, dtype):
    r = lambda *s: rng.standard_normal(s).astype(dtype)
    yield r(64, 48), r(48, 80)                        # more columns than rows
    yield r(96, 40), r(40, 24)
    yield r(3, 50, 40), r(40, 30)                     # batched
    yield r(2, 1, 30, 20), r(3, 20, 40)               # broadcast batch axes
    yield r(40, 70)[:, ::2], r(70, 50)[::2].T.copy().T   # strided and transposed
    yield r(40), r(40, 30)                            # 1-D operands
    yield r(30, 40), r(40)


@needs_openblas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("split", [False, True])
def test_matmul_equals_numpy_split_or_not(monkeypatch, restore_threads, dtype, split):
    rng = np.random.default_rng(0)
    threads._count = 3
    monkeypatch.setattr(threads, "SPLIT_FLOPS", 1000 if split else 10**12)
    parts = []
    real = threads.run_split
    monkeypatch.setattr(threads, "run_split",
                        lambda w, n, t: (parts.append(t), real(w, n, t))[1])
    before = threads.get_blas_threads()
    for a, b in _products(rng, dtype):
        y = threads.matmul(a, b)
        assert y.dtype == dtype and y.shape == (a @ b).shape
        np.testing.assert_allclose(y, a @ b, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
    assert threads.get_blas_threads() == before
    assert parts == ([3] * 5 if split else [])       # 1-D operands never split


def test_matmul_splits_only_large_products_and_at_most_one_part_per_split_flops(
        monkeypatch, restore_threads):
    threads._count = 4
    parts = []
    monkeypatch.setattr(threads, "_split", lambda a, b, out, n: (parts.append(n), a @ b)[1])
    small = np.ones((8, 8), np.float32)
    threads.matmul(small, small)
    m = int(round((threads.SPLIT_FLOPS * 3 / 2) ** (1 / 3))) + 1    # 3 parts' flops
    big = np.ones((m, m), np.float32)
    threads.matmul(big, big)
    assert parts == [3]
    threads._count = 2
    threads.matmul(big, big)
    assert parts == [3, 2]
    ints = np.ones((m, m), np.int64)                                 # no BLAS: no split
    np.testing.assert_array_equal(threads.matmul(ints, ints), ints @ ints)
    assert parts == [3, 2]


@needs_openblas
def test_run_split_in_use_by_another_thread_returns_false_and_runs_nothing():
    inside, release = threading.Event(), threading.Event()
    ran = []

    def hold(lo, hi):
        if lo == 0:
            inside.set()
            release.wait(10)

    t = threading.Thread(target=threads.run_split, args=(hold, 2, 2))
    t.start()
    assert inside.wait(10)
    assert not threads.run_split(lambda lo, hi: ran.append((lo, hi)), 4, 2)
    release.set()
    t.join(10)
    threads._Contention.pause_until = 0.0        # that split idled: not what is tested here
    assert ran == [] and threads.run_split(lambda lo, hi: ran.append((lo, hi)), 4, 2)
    assert sorted(ran) == [(0, 2), (2, 4)]


@needs_openblas
def test_a_forked_child_starts_its_own_workers():
    import multiprocessing as mp

    threads.run_split(lambda lo, hi: None, 2, 2)          # the parent's pool exists
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply(_split_in_child)
    assert got == [0, 1, 2, 3, 4, 5]


def _split_in_child():
    out = np.zeros(6)

    def work(lo, hi):
        out[lo:hi] = np.arange(lo, hi)

    assert threads.run_split(work, 6, 3)
    return out.astype(int).tolist()


# ----------------------------------------------------------------------------- contention
@needs_openblas
def test_splits_whose_threads_did_not_run_side_by_side_pause_the_pool():
    ran = []
    for strike in range(1, threads.STRIKES + 1):
        assert threads._Contention.pause is None
        assert threads.run_split(lambda lo, hi: time.sleep(0.002), 2, 2)   # efficiency 0
        assert threads._Contention.strikes == strike
    assert threads._Contention.pause == threads.MIN_PAUSE
    assert not threads.run_split(lambda lo, hi: ran.append(lo), 2, 2) and ran == []
    a = np.ones((300, 300), np.float32)
    np.testing.assert_array_equal(threads.matmul(a, a), a @ a)        # on one thread
    threads._Contention.pause_until = 0.0
    assert threads.run_split(lambda lo, hi: ran.append(lo), 2, 2) and sorted(ran) == [0, 1]


@needs_openblas
def test_a_split_left_unjudged_neither_counts_nor_ignores_a_pause():
    ran = []
    for _ in range(threads.STRIKES + 1):                  # efficiency 0, not judged
        assert threads.run_split(lambda lo, hi: time.sleep(0.002), 2, 2, judged=False)
    assert threads._Contention.strikes == 0 and threads._Contention.pause is None
    threads._Contention.pause_until = time.perf_counter() + 60.0
    assert not threads.run_split(lambda lo, hi: ran.append(lo), 2, 2, judged=False)
    assert ran == []


def test_one_slow_split_among_efficient_ones_does_not_pause_the_pool():
    c = threads._Contention
    for _ in range(3):
        c.record(elapsed=0.01, cpu=0.01, threads=2)      # one thread's worth: serial
        assert c.strikes == 1 and c.pause is None and c.pause_until == 0.0
        c.record(elapsed=0.01, cpu=0.019, threads=2)     # side by side
        assert c.strikes == 0 and c.pause is None and c.pause_until == 0.0


def test_the_pause_doubles_up_to_its_maximum_and_an_efficient_split_resets_it():
    c = threads._Contention
    pauses = []
    for _ in range(threads.STRIKES - 1 + 8):
        c.record(elapsed=0.01, cpu=0.01, threads=2)      # one thread's worth: serial
        pauses.append(c.pause)
    assert pauses[:threads.STRIKES - 1] == [None] * (threads.STRIKES - 1)
    assert pauses[threads.STRIKES - 1:] == [min(threads.MIN_PAUSE * 2 ** i, threads.MAX_PAUSE)
                                            for i in range(8)]
    assert c.pause_until > time.perf_counter() + 0.5 * threads.MAX_PAUSE
    c.record(elapsed=0.01, cpu=0.019, threads=2)         # side by side
    assert c.pause is None and c.strikes == 0
    c.pause_until = 0.0
    c.record(elapsed=threads.MIN_JUDGED / 2, cpu=0.0, threads=2)   # too short to judge
    assert c.pause is None and c.pause_until == 0.0


@needs_openblas
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_sequence_ops_run_every_product_on_one_blas_thread(monkeypatch, restore_threads,
                                                            cell):
    """The whole-sequence LSTM/GRU ops multiply through the engine's products: BLAS on one
    thread in every call (BLAS's own threads spin while they wait, and collapse when the
    cores are shared), the large products shared among the pool's threads."""
    import engine
    import nn

    engine.set_num_threads(2)                           # BLAS's count is 2 outside
    counts, parts = [], []
    real_matmul, real_split = np.matmul, threads.run_split
    monkeypatch.setattr(np, "matmul", lambda *a, **k: (
        counts.append(threads.get_blas_threads()), real_matmul(*a, **k))[1])
    monkeypatch.setattr(threads, "run_split",
                        lambda w, n, t: (parts.append(t), real_split(w, n, t))[1])
    monkeypatch.setattr(threads, "SPLIT_FLOPS", 2000)   # the small test sizes split too
    engine.manual_seed(0)
    layer = getattr(nn, cell)(8, 6, batch_first=True)
    x = engine.randn(3, 5, 8, requires_grad=True)
    out, _ = layer(x)
    out.sum().backward()
    assert counts and set(counts) == {1}
    assert parts                                        # the XA and gradient products
    assert threads.get_blas_threads() == 2
