"""How the CPU attention shares its heads among threads: each head runs exactly once, the
threads claim heads as they come (a late thread finds the work done), small work and a
single thread stay inline."""

import threading

import numba
import pytest

from engine import threads
from engine.kernels import cpu_attention


def _recorder():
    calls, lock = [], threading.Lock()

    def work(lo, hi):
        with lock:
            calls.append((lo, hi, threading.get_ident()))

    return calls, work


@pytest.fixture
def two_threads():
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield numba.get_num_threads()
    numba.set_num_threads(before)


def test_every_head_runs_once_on_the_pool(two_threads):
    if two_threads < 2 or threads.get_blas_threads() is None:
        pytest.skip("needs two Numba threads and an OpenBLAS the pool can hold")
    calls, work = _recorder()
    cpu_attention._over_heads(work, 37, 1 << 12)
    assert sorted(lo for lo, _, _ in calls) == list(range(37))
    assert all(hi == lo + 1 for lo, hi, _ in calls)


def test_a_late_thread_finds_the_heads_done(monkeypatch, two_threads):
    """The calling thread goes first and takes every head; the worker, started after it,
    takes none (with fixed ranges it would still have had half of them to do)."""
    order = []

    def calling_thread_first(work, n, n_threads, judged=True):
        order.append(("split", n, n_threads, judged))
        for t in range(n_threads):
            work(t, t + 1)
        return True

    monkeypatch.setattr(threads, "run_split", calling_thread_first)
    monkeypatch.setattr(cpu_attention.numba, "get_num_threads", lambda: 3)
    calls, work = _recorder()
    cpu_attention._over_heads(work, 8, 1 << 13)
    assert order == [("split", 3, 3, False)]         # self-balancing: not judged
    assert [lo for lo, _, _ in calls] == list(range(8))


def test_small_work_or_one_thread_runs_inline(monkeypatch):
    def no_pool(*args):
        raise AssertionError("the pool was used")

    monkeypatch.setattr(threads, "run_split", no_pool)
    calls, work = _recorder()
    cpu_attention._over_heads(work, 4, 16)                   # 64 scores: inline
    assert calls == [(0, 4, threading.get_ident())]
    monkeypatch.setattr(cpu_attention.numba, "get_num_threads", lambda: 1)
    calls, work = _recorder()
    cpu_attention._over_heads(work, 64, 1 << 14)
    assert calls == [(0, 64, threading.get_ident())]


def test_without_a_blas_to_hold_the_calling_thread_runs_every_head(monkeypatch):
    monkeypatch.setattr(threads, "run_split", lambda work, n, t, judged: False)
    monkeypatch.setattr(cpu_attention.numba, "get_num_threads", lambda: 2)
    calls, work = _recorder()
    cpu_attention._over_heads(work, 6, 1 << 14)
    assert sorted(lo for lo, _, _ in calls) == list(range(6))
