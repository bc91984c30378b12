"""How the CPU attention shares its heads among threads: each head runs exactly once, the
threads claim heads as they come (a late thread finds the work done), small work and a
single thread stay inline."""

import threading

import numba
import numpy as np
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
    cpu_attention._over_heads(work, 37, 1 << 12)           # chunks of 37 // 16 = 2 heads
    ranges = sorted((lo, hi) for lo, hi, _ in calls)
    assert ranges == [(lo, min(lo + 2, 37)) for lo in range(0, 37, 2)]


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
    assert [(lo, hi) for lo, hi, _ in calls] == [(h, h + 1) for h in range(8)]  # 1 per claim


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


def _attention_arrays(causal, dtype, seed=0):
    rng = np.random.default_rng(seed)
    tq, tk = (8, 8) if causal else (5, 7)      # causal: blocks of 2 query rows
    draw = lambda *s: rng.standard_normal(s).astype(dtype)
    q, k, v, gout = draw(2, 3, tq, 4), draw(2, 3, tk, 4), draw(2, 3, tk, 3), draw(2, 3, tq, 3)
    bias = np.broadcast_to(draw(1, 3, tq, tk), (2, 3, tq, tk))     # a broadcast view
    keep = rng.random((2, 3, tq, tk)) > 0.2
    drop = (rng.random((2, 3, tq, tk)) > 0.3).astype(dtype) / dtype(0.7)
    return q, k, v, gout, bias, keep, drop, draw(2, 3, tq, tk)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("options", [(), ("bias", "keep"), ("drop",), ("drop", "extra"),
                                     ("bias", "keep", "drop", "extra")])
def test_numba_head_loops_equal_the_python_loops(monkeypatch, dtype, causal, options):
    """The heads' loops run as Numba kernels calling BLAS, with every option of the op
    (bias, mask, dropout, a gradient of P); their values and gradients are the Python
    loops', bit for bit (for blocks of more than one query row: NumPy multiplies a single
    row with a matrix-vector routine, whose last bits may differ)."""
    q, k, v, gout, bias, keep, drop, extra = _attention_arrays(causal, dtype)
    bias, keep, drop, extra = (a if name in options else None for name, a in
                               (("bias", bias), ("keep", keep), ("drop", drop),
                                ("extra", extra)))
    calls = []
    for name in ("_forward_heads", "_backward_heads"):
        real = getattr(cpu_attention, name)
        monkeypatch.setattr(cpu_attention, name,
                            lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])

    def both():
        out, p = cpu_attention.forward(q, k, v, 0.5, bias, keep, causal, drop)
        grads = cpu_attention.backward(q, k, v, p, gout, 0.5, drop, causal, extra,
                                       (True, True, True))
        return (out, p) + grads

    numba_path = both()
    assert set(calls) == {"_forward_heads", "_backward_heads"}
    monkeypatch.setattr(cpu_attention, "GEMM", {})          # no BLAS for kernels: Python
    calls.clear()
    python_path = both()
    assert calls == []
    for a, b in zip(numba_path, python_path):
        np.testing.assert_array_equal(a, b, strict=True)


def test_heads_run_inline_with_blas_on_one_thread(restore_threads):
    if threads.get_blas_threads() is None:
        pytest.skip("needs an OpenBLAS the engine can hold")
    threads.set_blas_threads(2)
    seen = []
    cpu_attention._over_heads(lambda lo, hi: seen.append(threads.get_blas_threads()), 4, 16)
    assert seen == [1] and threads.get_blas_threads() == 2


def test_heads_not_in_c_order_take_the_python_loops(monkeypatch):
    q, k, v, *_ = _attention_arrays(False, np.float32)
    calls = []
    real = cpu_attention._forward_heads
    monkeypatch.setattr(cpu_attention, "_forward_heads",
                        lambda *a: (calls.append(1), real(*a))[1])
    strided = np.ascontiguousarray(q.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    out, p = cpu_attention.forward(strided, k, v, 0.5, None, None, False, None)
    assert calls == []
    expected, _ = cpu_attention.forward(q, k, v, 0.5, None, None, False, None)
    assert calls == [1]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
