"""Threads on the CPU: the engine's thread count, the OpenMP wait policy, BLAS's thread
count, one worker pool, and matrix products shared among its threads.

- :func:`set_num_threads` / :func:`get_num_threads` (PyTorch's names) cap every thread the
  engine runs: its worker pool, Numba's parallel loops and NumPy's BLAS. Without a call the
  count is BLAS's own (``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` or the cores, or what
  threadpoolctl set), so the usual ways of limiting BLAS limit the engine too.
- Numba's parallel loops (the fused kernels) run on OpenMP threads. With the default wait
  policy idle OpenMP threads spin, and on a machine with more runnable threads than cores
  (BLAS's threads, PyTorch's pool, other processes) a spinning pool turns a 20 µs kernel
  into 20 ms. So idle threads sleep: ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it
  (set when this module is imported; the OpenMP runtime reads it when its pool starts).
- NumPy's BLAS (OpenBLAS in NumPy's wheels) multiplies the matrices. Its own threads
  spin-wait for work, and when another process holds a core the thread that waits for a
  descheduled partner burns the core that partner needs: a training step of an MLP took
  4.5 ms with one BLAS thread and 9.0 ms (13 ms of CPU) with two on a two-core machine
  with other work on it. So the engine
  never lets BLAS start threads: each product runs on one BLAS thread, set through
  OpenBLAS's own C function (found once with ``ctypes``: about 0.3 µs a call, where
  threadpoolctl's ``threadpool_limits`` block takes about 170 µs), and :func:`matmul`
  shares a large product among the worker pool's threads.
- The worker pool (:func:`run_split`) runs work that the engine splits among threads
  itself (row blocks of a matrix product, attention heads). Its threads sleep on a lock
  between tasks, so a waiting thread gives its core away instead of spinning on it; a
  hand-off costs about 5 µs. When other processes hold the cores, a woken worker waits
  behind them and the split runs no faster than one thread, a little slower: the pool
  notices (:class:`_Contention`) and pauses, and the work runs on the calling thread
  until a later split runs side by side again.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def openblas_library():
    """(library, prefix, suffix) of NumPy's OpenBLAS, whose functions are named
    ``{prefix}openblas_set_num_threads{suffix}``, ``{prefix}cblas_sgemm{suffix}``, ...
    (64-bit integers when the suffix is ``64_``), or None when not found."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)       # already loaded by NumPy: the same library
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
            if hasattr(lib, f"{prefix}openblas_get_num_threads{suffix}"):
                return lib, prefix, suffix
    return None


def _openblas_functions():
    """(get, set) of the thread count of NumPy's OpenBLAS, or () when not found."""
    if (found := openblas_library()) is None:
        return ()
    lib, prefix, suffix = found
    get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
    put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
    return get, put


class _Blas:
    """The BLAS thread count: a base value and the limits held (the count in force is the
    smallest of the base and the limits held)."""

    lock = threading.Lock()
    functions = None        # (get, set) once looked up; () when NumPy's BLAS is not OpenBLAS
    base = None             # the count when no limit is held
    current = None          # the count last set while limits are held
    limits: list = []

    @classmethod
    def calls(cls):
        if cls.functions is None:
            cls.functions = _openblas_functions()
        return cls.functions

    @classmethod
    def apply(cls) -> None:
        """Set the count in force (the lock held), calling BLAS only when it changes."""
        n = min(cls.limits + [cls.base])
        if n != cls.current:
            cls.functions[1](n)
            cls.current = n

    @classmethod
    def hold(cls, n: int) -> bool:
        """Limit BLAS to at most ``n`` threads until :meth:`release`; False (nothing held)
        when the BLAS cannot be reached."""
        with cls.lock:
            if not cls.calls():
                return False
            if not cls.limits:            # the count may have been set from outside
                cls.base = cls.current = cls.functions[0]()
            cls.limits.append(n)
            cls.apply()
        return True

    @classmethod
    def release(cls, n: int) -> None:
        with cls.lock:
            cls.limits.remove(n)
            cls.apply()

    @classmethod
    def count(cls) -> int | None:
        """The count outside the limits held, or None without a reachable BLAS."""
        if not cls.calls():
            return None
        return cls.base if cls.limits else cls.functions[0]()


def get_blas_threads() -> int | None:
    """Threads NumPy's BLAS uses now, or None when it is not an OpenBLAS found here."""
    calls = _Blas.calls()
    return calls[0]() if calls else None


def set_blas_threads(n: int) -> bool:
    """Let NumPy's BLAS use ``n`` threads from now on (process-wide; limits held by
    :func:`blas_threads` still apply while held). False when the BLAS is not reachable."""
    if n < 1:
        raise ValueError(f"set_blas_threads: need at least 1 thread, got {n}")
    with _Blas.lock:
        if not _Blas.calls():
            return False
        _Blas.base = int(n)
        if not _Blas.limits:
            _Blas.current = None          # set it even if it looks unchanged
        _Blas.apply()
    return True


@contextlib.contextmanager
def blas_threads(n: int):
    """Hold NumPy's BLAS to at most ``n`` threads inside the block (nested and from several
    threads: the smallest limit held is in force). Yields False, doing nothing, when the
    BLAS cannot be reached."""
    held = _Blas.hold(int(n))
    try:
        yield held
    finally:
        if held:
            _Blas.release(int(n))


# ----------------------------------------------------------------------------- thread count
_count = None       # set by set_num_threads; None: BLAS's count


def set_num_threads(n: int) -> None:
    """Let the engine use ``n`` threads (as ``torch.set_num_threads``): its worker pool,
    NumPy's BLAS (:func:`set_blas_threads`) and Numba's parallel loops (in the calling
    thread: Numba keeps the count per thread, and cannot exceed ``NUMBA_NUM_THREADS``)."""
    global _count
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: need a whole number of threads >= 1, got {n!r}")
    import numba

    _count = n
    set_blas_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    """The threads the engine may use: the count given to :func:`set_num_threads`, else
    BLAS's thread count, else the cores this process may run on."""
    if _count is not None:
        return _count
    blas = _Blas.count()
    if blas is not None:
        return blas
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


# ----------------------------------------------------------------------------- worker pool
class _Worker:
    """A thread that sleeps on ``go`` until given a range, runs it and releases ``done``."""

    def __init__(self) -> None:
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.task = self.error = None
        self.cpu = 0.0                            # CPU seconds of the last range
        threading.Thread(target=self._serve, name="xpgrad-worker", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.go.acquire()
            work, lo, hi = self.task
            start = time.thread_time()
            try:
                work(lo, hi)
            except BaseException as e:            # handed to the caller by join()
                self.error = e
            self.cpu = time.thread_time() - start
            self.task = work = None               # hold no arrays of a finished task
            self.done.release()

    def start(self, work, lo: int, hi: int) -> None:
        self.task = (work, lo, hi)
        self.go.release()

    def join(self) -> BaseException | None:
        self.done.acquire()
        error, self.error = self.error, None
        return error


class _Pool:
    """The workers of one process (a forked child starts its own: the parent's threads do
    not exist there); ``busy`` lets one caller at a time use them."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.busy = threading.Lock()
        self.workers: list[_Worker] = []

    def take(self, n: int) -> list[_Worker]:
        while len(self.workers) < n:
            self.workers.append(_Worker())
        return self.workers[:n]


_POOL = None
_POOL_LOCK = threading.Lock()


def _pool() -> _Pool:
    global _POOL
    if _POOL is None or _POOL.pid != os.getpid():
        with _POOL_LOCK:
            if _POOL is None or _POOL.pid != os.getpid():
                _POOL = _Pool()
    return _POOL


class _Contention:
    """Whether splitting work among threads has paid lately.

    A split is judged by its parallel efficiency, the CPU time of all its ranges over
    threads × the time it took: about 1 when the threads ran side by side, about 1/threads
    when they ran one after the other, as they do when other processes hold the cores (a
    woken worker then waits behind them, or shares the caller's core). A single slow split
    proves little: on a quiet machine a short-lived process (or the hypervisor) now and
    then takes a core for a few milliseconds, and one pause of the pool would then cost a
    CNN's step a third of its time. So only :data:`STRIKES` splits in a row below
    :data:`MIN_EFFICIENCY` make the pool stay unused, for a pause that doubles with each
    further such split (from :data:`MIN_PAUSE` to :data:`MAX_PAUSE` seconds); an efficient
    split resets both, so a busy machine costs about ten slow splits a second. The pause
    stays short: a split right after it may meet another passing burst (the probes of a
    step that starts as another process's threads still spin), and with pauses doubling up
    to a second such probes kept the pool off for whole runs of a quiet machine (a CNN's
    step at its one-thread time, 1.9x PyTorch's, in 5 of 13 benchmark runs; 0 of 4 with
    pauses capped at 0.1 s). Splits shorter than :data:`MIN_JUDGED` seconds are not
    judged: the hand-off to a worker dominates them.
    """

    pause_until = 0.0
    pause = None
    strikes = 0

    @classmethod
    def record(cls, elapsed: float, cpu: float, threads: int) -> None:
        if elapsed < MIN_JUDGED:
            return
        if cpu >= MIN_EFFICIENCY * threads * elapsed:
            cls.pause, cls.strikes = None, 0
            return
        cls.strikes += 1
        if cls.strikes >= STRIKES:
            cls.pause = MIN_PAUSE if cls.pause is None else min(2 * cls.pause, MAX_PAUSE)
            cls.pause_until = time.perf_counter() + cls.pause


MIN_EFFICIENCY = 0.7
STRIKES = 2
MIN_PAUSE, MAX_PAUSE = 0.02, 0.1
MIN_JUDGED = 1e-4


def run_split(work, n: int, threads: int, judged: bool = True) -> bool:
    """Run ``work(lo, hi)`` over ``threads`` consecutive ranges of ``range(n)``: the calling
    thread takes the first range, the pool's workers the others, BLAS held to one thread
    meanwhile (a BLAS pool under each worker would oversubscribe the cores). An error in
    any range is raised once all have run. Returns False, having run nothing, when BLAS
    cannot be held, another thread is using the pool, or recent splits found the cores
    busy (:class:`_Contention`): the caller then runs the work itself.

    ``judged=False`` keeps the split out of :class:`_Contention`'s judgement (it still
    obeys a pause): for work whose threads claim items from a shared counter, where a
    worker that starts late leaves its items to the others and costs nothing, and the CPU
    share tells nothing about the cores (it is low even on an idle machine)."""
    if time.perf_counter() < _Contention.pause_until:
        return False
    pool = _pool()
    if not pool.busy.acquire(blocking=False):
        return False
    try:
        if not _Blas.hold(1):
            return False
        try:
            bounds = [n * t // threads for t in range(threads + 1)]
            workers = pool.take(threads - 1)
            start, cpu = time.perf_counter(), time.thread_time()
            for t, worker in enumerate(workers, 1):
                worker.start(work, bounds[t], bounds[t + 1])
            try:
                work(bounds[0], bounds[1])
            finally:
                cpu = time.thread_time() - cpu
                errors = [worker.join() for worker in workers]
            if judged:
                _Contention.record(time.perf_counter() - start,
                                   cpu + sum(worker.cpu for worker in workers), threads)
            for error in errors:
                if error is not None:
                    raise error
        finally:
            _Blas.release(1)
    finally:
        pool.busy.release()
    return True


def pool_started() -> bool:
    """True once :func:`run_split` has started worker threads in this process."""
    return _POOL is not None and _POOL.pid == os.getpid() and bool(_POOL.workers)


# ----------------------------------------------------------------------------- matrix products
# A product is shared among threads only when each gets at least this many flops
# (2·m·n·k): about 30 µs of one thread's BLAS at the 130 Gflop/s measured here for the
# workloads' products, against a hand-off to a worker and back of 5 to 20 µs when the
# worker's core is awake (measured: about 5 µs with the cores idle, 20 µs with them
# shared). A smaller part would spend about as long handing off as it saves. Between the
# products of a small model's step the worker's core goes idle, and waking it costs more
# (on a two-core virtual machine, in an MLP's step: 20-40 µs for the wake-up call, the
# worker's part starting 60-100 µs after the split began); splits that lose that way are
# caught by :class:`_Contention`, which then keeps the products on the calling thread.
SPLIT_FLOPS = 4_000_000


def matmul(a, b, out=None):
    """``a @ b`` on NumPy arrays with NumPy's rules, BLAS on one thread per call: a product
    of at least 2 × :data:`SPLIT_FLOPS` flops is cut into row blocks of the result (column
    blocks when it has fewer rows than columns), one per thread of :func:`get_num_threads`
    (at most one per :data:`SPLIT_FLOPS`), run by :func:`run_split`; a smaller one runs on
    the calling thread alone."""
    if a.ndim >= 2 and b.ndim >= 2:
        m, n = a.shape[-2], b.shape[-1]
        flops = 2 * max(a.size * n, b.size * m)          # 2·batch·m·k·n
        if flops >= 2 * SPLIT_FLOPS and a.dtype == b.dtype and a.dtype.kind in "fc":
            parts = min(get_num_threads(), flops // SPLIT_FLOPS, max(m, n))
            if parts > 1:
                return _split(a, b, out, parts)
    return _one_thread(a, b, out)


def _split(a, b, out, parts: int):
    m, n = a.shape[-2], b.shape[-1]
    if out is None:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (m, n), a.dtype)
    if m >= n:
        def work(lo, hi):
            np.matmul(a[..., lo:hi, :], b, out=out[..., lo:hi, :])
    else:
        def work(lo, hi):
            np.matmul(a, b[..., lo:hi], out=out[..., lo:hi])
    if not run_split(work, max(m, n), parts):
        _one_thread(a, b, out)
    return out


def _one_thread(a, b, out):
    """``a @ b`` with BLAS on one thread: its count set for this call and put back (no lock:
    a race between threads can only leave one product on more threads, never a wrong
    count afterwards, as the count read first is the one put back)."""
    calls = _Blas.calls()
    count = calls[0]() if calls else 1
    if count == 1:
        return np.matmul(a, b, out=out)
    calls[1](1)
    try:
        return np.matmul(a, b, out=out)
    finally:
        calls[1](count)
